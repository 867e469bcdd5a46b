"""Handling an event once: every way Vigil remembers which events it handled, and forgets them.

Kafka delivers at least once: after a crash or a rebalance the batches a consumer had not
committed come again, and anyone may replay a topic. Three records answer "handled before?":

- :class:`SeenEvents`, a bounded memory of ids in every consumer: it skips a redelivery without a
  database (what a restart loses, the next two keep);
- :func:`first_time` / :func:`new_event_ids`, one row per event (``processed_events``) written in
  the transaction of the handler's effects: exact, for services handling a few events at a time
  (the incident log, the registry, the runner);
- :class:`HandledIds`, one row per batch (``handled_batches``, 16 bytes per id) with the newest ids
  in memory: what a hot path handling thousands of events a second can afford (the monitor), at
  the price of remembering only the newest ids, which is enough for Kafka's redeliveries.

A handled event's id only has to outlive the ways the event can come back: a redelivery after a
crash (seconds) or a replay (at most the topic's retention). Kept longer, the ids only grow the
database, so :func:`forget_periodically` runs as a background task and deletes the older ones
(docs/adr/0003-delivery-rules.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import cast
from uuid import UUID

from sqlalchemy import Index, Table, delete, insert
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.envelope import utc_now
from services.runtime.database import Sessions, UtcDateTime

__all__ = [
    "Forget",
    "HandledBatch",
    "HandledIds",
    "ProcessedEvent",
    "SeenEvents",
    "first_time",
    "forget_periodically",
    "forget_processed_before",
    "forgetting_processed_ids",
    "new_event_ids",
]

log = logging.getLogger(__name__)


class SeenEvents:
    """A bounded memory of handled event ids (least recently seen forgotten first).

    Kafka redelivers after a rebalance or a crash, usually within the last few thousand events;
    services whose effects must survive a restart also record ids in their own database.

    Ids are kept as ``UUID.int``: an int is hashed in C (a ``UUID`` hashes in a Python method)
    and is not tracked by the garbage collector, so a full memory (100,000 ids) adds nothing to
    what each full collection walks (docs/adr/0016-hot-path.md).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, UUID) and event_id.int in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: UUID) -> None:
        """Remember an id, forgetting the oldest one when full."""
        self.add_many((event_id,))

    def add_many(self, event_ids: Iterable[UUID]) -> None:
        """Remember ids in order, forgetting the oldest ones beyond the capacity."""
        ids = self._ids
        for event_id in event_ids:
            key = event_id.int
            ids[key] = None
            ids.move_to_end(key)
        while len(ids) > self._capacity:
            ids.popitem(last=False)


# ---------------------------------------------------------------- one row per event


class ProcessedEvent(SQLModel, table=True):
    """An event id whose effects are committed; written in the same transaction as the effects."""

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_processed_at", "processed_at"),)

    event_id: UUID = Field(primary_key=True)
    processed_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)


_PROCESSED = cast(Table, ProcessedEvent.__table__)  # type: ignore[attr-defined]  # set by SQLModel


async def new_event_ids(session: AsyncSession, event_ids: Sequence[UUID]) -> list[UUID]:
    """Record a batch of event ids as handled in the session's transaction; return those that
    were not handled before, in their first-seen order (duplicates within the batch count once).

    The batch form of :func:`first_time`: one query and one insert for the whole batch.
    """
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return []
    seen = set(
        (
            await session.exec(
                select(ProcessedEvent.event_id).where(col(ProcessedEvent.event_id).in_(unique))
            )
        ).all()
    )
    fresh = [event_id for event_id in unique if event_id not in seen]
    if fresh:
        now = utc_now()
        await (await session.connection()).execute(
            insert(_PROCESSED),  # the table, not the entity: no ORM bookkeeping per row
            [{"event_id": event_id, "processed_at": now} for event_id in fresh],
        )
    return fresh


async def forget_processed_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete the ids of events processed before ``cutoff``; return how many."""
    result = await session.exec(
        delete(ProcessedEvent).where(col(ProcessedEvent.processed_at) < cutoff)
    )
    return int(result.rowcount or 0)


async def first_time(session: AsyncSession, event_id: UUID) -> bool:
    """Record ``event_id`` as handled in the session's transaction; ``False`` if it already was.

    Call it at the start of a handler's transaction and skip the work when it returns ``False``.
    Two transactions racing on the same id cannot both commit (primary key).
    """
    if await session.get(ProcessedEvent, event_id) is not None:
        return False
    session.add(ProcessedEvent(event_id=event_id))
    return True


# ---------------------------------------------------------------- one row per batch


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


# ---------------------------------------------------------------- forgetting


Forget = Callable[[AsyncSession, datetime], Awaitable[int]]
"""Deletes in the session's transaction what was recorded before the cutoff; returns how many."""


async def forget_periodically(
    sessions: Sessions,
    forget: Forget,
    retention: timedelta,
    *,
    every_seconds: float = 600.0,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Forget what is older than ``retention`` now and every ``every_seconds``, until cancelled."""
    while True:
        async with sessions() as session, session.begin():
            forgotten = await forget(session, clock() - retention)
        if forgotten:
            log.info("forgot %d handled event ids older than %s", forgotten, retention)
        await asyncio.sleep(every_seconds)


def forgetting_processed_ids(
    sessions: Sessions, retention_seconds: float, clock: Callable[[], datetime] = utc_now
) -> Callable[[], Awaitable[None]]:
    """The background task of a service that records processed ids one row per event (with
    ``first_time`` or ``new_event_ids``)."""

    async def run() -> None:
        await forget_periodically(
            sessions, forget_processed_before, timedelta(seconds=retention_seconds), clock=clock
        )

    return run
