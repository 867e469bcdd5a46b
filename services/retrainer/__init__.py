"""The retrainer service: the model registry, and governed retraining and rollout of its models.

It is three rooms, each a sub-package, around what they share at the top:

- ``registry/``: models, versions with their lineage and maintenance instructions, artifacts
  and datasets by content, the champion / challenger deployment and its append-only history;
  every change goes out on ``models`` from an outbox.
- ``retraining/``: labelled live data, triggers and schedules, runs, the cached pipeline, the
  validation gate, and the worker that carries a run through to a candidate.
- ``rollout/``: a candidate that passed the gate becomes a promotion request, a person decides
  it, and the canary promotes or withdraws the approved candidate.

At the top: the composition root (``app``), the settings, the callers of the HTTP API
(``callers``), the content store the registry and the pipeline both keep bytes in (``content``,
``content_tables``, ``file_import``), the command line's URL and client (``cli``) and the
schema history (``migrations``).
"""
