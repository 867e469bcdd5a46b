"""The incident log: the central record of what went wrong with which model, and who is on it.

It turns alerts into incidents (deduplicated by fingerprint, correlated per model version), routes
them through three tiers with frozen policies and fenced timers, keeps an append-only timeline of
every action with its actor, publishes every change on ``incidents`` from an outbox, and serves
the HTTP API of the on-call console. It is Vigil's identity provider: it issues, lists, revokes
and expires the API tokens every service checks (``tokens.py``, ``token_api.py``, ``auth.py``).
"""
