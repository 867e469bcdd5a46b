"""The monitor's schema history: one Alembic revision per change of its database.

Add a revision with ``vigil db revision --service monitor -m "what changed"``
(docs/DEVELOPING.md); the service applies them on start (``services/runtime/migrations.py``).
"""

from pathlib import Path

from services.monitor.store import TABLES
from services.runtime.migrations import SchemaHistory
from services.runtime.names import ServiceName

__all__ = ["HISTORY"]

HISTORY = SchemaHistory(
    service=ServiceName.MONITOR,
    versions=Path(__file__).parent,
    tables=TABLES,
    baseline_tables=frozenset(
        {
            "handled_batches",
            "monitor_clocks",
            "monitor_comparison_outcomes",
            "monitor_episodes",
            "monitor_pairings",
            "monitor_pending",
            "monitor_windows",
            "outbox",
        }
    ),
)
