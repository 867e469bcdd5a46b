"""Which replica's memory of a model is current: one revision per model, raised by every step.

Monitor replicas share one PostgreSQL database and each keeps the state it restored in memory;
Kafka gives a model's partition to one replica at a time, but a rebalance moves it, and a replica
that owned a model before (or still finishes a batch after losing it) holds a stale copy. Every
step therefore locks the revision rows of the models it touches (``FOR UPDATE``; SQLite's write
transaction is already exclusive), compares them with the revisions its memory continues, and if
any differs restores from the database before computing (:class:`MonitorService._apply` in
``services/monitor/service.py``); then it raises them. Two replicas stepping the same model
queue on the row lock, and the second computes on the first's committed state, so no prediction
is judged twice and no window is lost (ADR 0017).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

__all__ = ["ModelRevisionRow", "all_revisions", "lock_revisions", "raise_revisions"]


class ModelRevisionRow(SQLModel, table=True):
    """How many steps changed a model's state: the version of its state in the database."""

    __tablename__ = "monitor_model_revisions"

    model: str = Field(primary_key=True)
    revision: int = 0


async def lock_revisions(session: AsyncSession, models: Iterable[str]) -> dict[str, int]:
    """Lock the models' revision rows (creating missing ones) until the transaction ends;
    return their revisions. Rows are locked in name order, so two steps never deadlock."""
    wanted = sorted(set(models))
    if not wanted:
        return {}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    missing = dialect.insert(ModelRevisionRow).values([{"model": m, "revision": 0} for m in wanted])
    await session.exec(missing.on_conflict_do_nothing(index_elements=["model"]))
    rows = await session.exec(
        select(ModelRevisionRow.model, ModelRevisionRow.revision)
        .where(col(ModelRevisionRow.model).in_(wanted))
        .order_by(col(ModelRevisionRow.model))
        .with_for_update()
    )
    return dict(rows.all())


async def raise_revisions(session: AsyncSession, locked: dict[str, int]) -> dict[str, int]:
    """Raise the revisions of the models locked by :func:`lock_revisions`; return the new ones."""
    if not locked:
        return {}
    await session.exec(
        update(ModelRevisionRow)
        .where(col(ModelRevisionRow.model).in_(list(locked)))
        .values(revision=ModelRevisionRow.revision + 1)
    )
    return {model: revision + 1 for model, revision in locked.items()}


async def all_revisions(session: AsyncSession) -> dict[str, int]:
    """Every model's revision (read before a snapshot, so the memory is never ahead of it)."""
    rows = await session.exec(select(ModelRevisionRow.model, ModelRevisionRow.revision))
    return dict(rows.all())
