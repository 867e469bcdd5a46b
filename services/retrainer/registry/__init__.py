"""The model registry: models, versions, artifacts and datasets, and where each model is deployed.

Pure rules (``deployments``) decide how a deployment moves; ``store`` and ``tables`` keep
versions and the append-only revision log with the outbox; ``artifacts``, ``datasets`` and
``trial_scoring`` check what is registered; ``api`` and ``cli`` (``vigil models``, with
``spec_scaffold`` drafting a registration file) face services and people.
"""
