"""The drift detector's schema history: one Alembic revision per change of its database.

Add a revision with ``vigil db revision --service drift-detector -m "what changed"``
(docs/DEVELOPING.md); the service applies them on start (``services/runtime/migrations.py``).
"""

from pathlib import Path

from services.drift_detector.episode_store import TABLES
from services.runtime.migrations import SchemaHistory
from services.runtime.names import ServiceName

__all__ = ["HISTORY"]

HISTORY = SchemaHistory(
    service=ServiceName.DRIFT_DETECTOR,
    versions=Path(__file__).parent,
    tables=TABLES,
    baseline_tables=frozenset({"drift_episodes"}),
)
