"""The registry and retrainer's schema history: one Alembic revision per change of its database.

Add a revision with ``vigil db revision --service retrainer -m "what changed"``
(docs/DEVELOPING.md); the service applies them on start (``services/runtime/migrations.py``).
"""

from pathlib import Path

from services.retrainer.content_tables import CONTENT_TABLES
from services.retrainer.registry.tables import REGISTRY_TABLES
from services.retrainer.retraining.tables import RETRAINING_TABLES
from services.retrainer.rollout.tables import ROLLOUT_TABLES
from services.runtime.idempotency import ProcessedEvent
from services.runtime.migrations import SchemaHistory
from services.runtime.names import ServiceName
from services.runtime.outbox import OUTBOX_TABLES

__all__ = ["HISTORY"]

HISTORY = SchemaHistory(
    service=ServiceName.RETRAINER,
    versions=Path(__file__).parent,
    tables=[
        *REGISTRY_TABLES,
        *RETRAINING_TABLES,
        *ROLLOUT_TABLES,
        *CONTENT_TABLES,
        ProcessedEvent,
        *OUTBOX_TABLES,
    ],
    baseline_tables=frozenset(
        {
            "outbox",
            "processed_events",
            "registry_aliases",
            "registry_deployment_revisions",
            "registry_models",
            "registry_versions",
            "retrainer_asks",
            "retrainer_evaluations",
            "retrainer_live_examples",
            "retrainer_produced_datasets",
            "retrainer_promotions",
            "retrainer_runs",
        }
    ),
)
