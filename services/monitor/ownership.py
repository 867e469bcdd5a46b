"""Which replica's memory of a model is current: one revision per model, raised by every step.

Monitor replicas share one PostgreSQL database and each keeps the state it restored in memory;
Kafka gives a model's partition to one replica at a time, but a rebalance moves it, and a replica
that owned a model before (or still finishes a batch after losing it) holds a stale copy. Every
step (``MonitorService._apply`` in ``services/monitor/service.py``) therefore raises the revisions
of the models it touches first, which locks their rows until it commits, compares the revisions
they had with the ones its memory continues, and restores from the database before computing if
any differs. Two replicas stepping the same model queue on the row lock, and the second computes
on the first's committed state, so no prediction is judged twice and no window is lost
(ADR 0017). On SQLite the write transaction is exclusive anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

__all__ = ["ModelRevisionRow", "advance_revisions", "all_revisions"]


class ModelRevisionRow(SQLModel, table=True):
    """How many steps changed a model's state: the version of its state in the database."""

    __tablename__ = "monitor_model_revisions"

    model: str = Field(primary_key=True)
    revision: int = 0


async def advance_revisions(
    session: AsyncSession, models: Iterable[str], known: Mapping[str, int]
) -> dict[str, int]:
    """Raise the models' revisions in the session's transaction and return the ones they had.

    One ``UPDATE … RETURNING`` both locks the rows until the transaction ends (a second replica
    stepping the same model waits for the commit, then sees this step's revision) and reads them;
    rows of models this replica has never seen are created first.
    """
    wanted = sorted(set(models))
    if not wanted:
        return {}
    unseen = [model for model in wanted if model not in known]
    if unseen:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        rows = [{"model": model, "revision": 0} for model in unseen]
        insert = dialect.insert(ModelRevisionRow).values(rows)
        await session.exec(insert.on_conflict_do_nothing(index_elements=["model"]))
    raised = await session.exec(
        update(ModelRevisionRow)
        .where(col(ModelRevisionRow.model).in_(wanted))
        .values(revision=ModelRevisionRow.revision + 1)
        .returning(col(ModelRevisionRow.model), col(ModelRevisionRow.revision))
    )
    return {model: revision - 1 for model, revision in raised.all()}


async def all_revisions(session: AsyncSession) -> dict[str, int]:
    """Every model's revision (read before a snapshot, so the memory is never ahead of it)."""
    rows = await session.exec(select(ModelRevisionRow.model, ModelRevisionRow.revision))
    return dict(rows.all())
