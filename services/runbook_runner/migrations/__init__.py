"""The runbook runner's schema history: one Alembic revision per change of its database.

Add a revision with ``vigil db revision --service runbook-runner -m "what changed"``
(docs/DEVELOPING.md); the service applies them on start (``services/runtime/migrations.py``).
"""

from pathlib import Path

from services.runbook_runner.tables import TABLES
from services.runtime.migrations import SchemaHistory
from services.runtime.names import ServiceName
from services.runtime.outbox import OUTBOX_TABLES

__all__ = ["HISTORY"]

HISTORY = SchemaHistory(
    service=ServiceName.RUNBOOK_RUNNER,
    versions=Path(__file__).parent,
    tables=[*TABLES, *OUTBOX_TABLES],
    baseline_tables=frozenset({"outbox", "runbook_runs"}),
)
