"""The incident log's schema history: one Alembic revision per change of its database.

Add a revision with ``vigil db revision --service incident-log -m "what changed"``
(docs/DEVELOPING.md); the service applies them on start (``services/runtime/migrations.py``).
"""

from pathlib import Path

from services.incident_log.tables import TABLES
from services.runtime.idempotency import ProcessedEvent
from services.runtime.migrations import SchemaHistory
from services.runtime.names import ServiceName
from services.runtime.outbox import OUTBOX_TABLES

__all__ = ["HISTORY"]

HISTORY = SchemaHistory(
    service=ServiceName.INCIDENT_LOG,
    versions=Path(__file__).parent,
    tables=[*TABLES, ProcessedEvent, *OUTBOX_TABLES],
    baseline_tables=frozenset(
        {
            "alerts",
            "api_tokens",
            "incidents",
            "outbox",
            "processed_events",
            "retrains",
            "signals",
            "silences",
            "timeline",
            "timers",
        }
    ),
)
