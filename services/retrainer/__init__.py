"""The retrainer service. It owns the model registry: models, versions with their lineage and
maintenance instructions, artifacts and datasets by content, the champion / challenger
deployment and its append-only history; every change goes out on ``models`` from an outbox."""
