"""Durable idempotency for hot paths: a batch's handled event ids in one row.

:func:`services.runtime.database.first_time` writes (and first looks up) one row per event,
which is right for services that handle a few events at a time. A service handling thousands of
events a second pays for that on every event. :class:`HandledIds` instead keeps the newest handled
ids in memory and appends each batch's new ids as a single row (16 bytes per id) in the same
transaction as the batch's effects; at start it reloads the newest rows. Kafka redelivers what a
crash left uncommitted — the last polled batches — so a memory of the newest ids (``capacity``)
covers redeliveries; rows older than the retention are pruned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy import Index, delete, insert
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.envelope import utc_now
from services.runtime.database import UtcDateTime
from services.runtime.idempotency import SeenEvents

__all__ = ["HandledBatch", "HandledIds"]

_ID_BYTES = 16


class HandledBatch(SQLModel, table=True):
    """Event ids whose effects committed in one transaction, concatenated (16 bytes each)."""

    __tablename__ = "handled_batches"
    __table_args__ = (Index("ix_handled_batches_handled_at", "handled_at"),)

    id: int | None = Field(default=None, primary_key=True)
    handled_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    event_ids: bytes


class HandledIds:
    """The newest handled event ids in memory, recorded durably one batch per row.

    Use: ``fresh = await handled.record(session, ids)`` inside the transaction that makes the
    batch's effects, act on ``fresh`` only, and after the commit call ``handled.remember(fresh)``
    (a rolled-back batch must not be remembered as handled).
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._seen = SeenEvents(capacity)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seen

    async def load(self, session: AsyncSession) -> None:
        """Remember the newest recorded ids, up to the capacity."""
        rows = await session.exec(
            select(HandledBatch.event_ids).order_by(col(HandledBatch.id).desc())
        )
        batches: list[bytes] = []
        count = 0
        for blob in rows:
            batches.append(blob)
            count += len(blob) // _ID_BYTES
            if count >= self._capacity:
                break
        for blob in reversed(batches):  # oldest first, so the newest are forgotten last
            for start in range(0, len(blob), _ID_BYTES):
                self._seen.add(UUID(bytes=blob[start : start + _ID_BYTES]))

    async def record(self, session: AsyncSession, event_ids: Iterable[UUID]) -> list[UUID]:
        """Record the ids not handled before as one row in the session's transaction; return
        them, in order."""
        fresh = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in self._seen]
        if fresh:
            await session.exec(
                insert(HandledBatch),
                params=[{"handled_at": utc_now(), "event_ids": b"".join(i.bytes for i in fresh)}],
            )
        return fresh

    def remember(self, event_ids: Iterable[UUID]) -> None:
        """Remember ids whose transaction committed."""
        for event_id in event_ids:
            self._seen.add(event_id)

    @staticmethod
    async def forget_before(session: AsyncSession, cutoff: datetime) -> int:
        """Delete rows recorded before ``cutoff``; return how many."""
        result = await session.exec(
            delete(HandledBatch).where(col(HandledBatch.handled_at) < cutoff)
        )
        return int(result.rowcount or 0)
