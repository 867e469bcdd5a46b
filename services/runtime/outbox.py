"""The transactional outbox: events staged in a service's own transaction, published by a relay.

A handler (or API call) that changes state stages its outgoing events with :func:`stage` in the
same transaction; :class:`OutboxRelay` publishes committed rows in order and marks them sent.
One pass of the relay (:meth:`OutboxRelay.publish_pending`)::

    read a batch of pending rows, oldest first (a read: on SQLite no write lock)
      │  a row that does not decode or validate ──────────────┐
      ▼                                                       │
    publish the others in order, outside any transaction      │
      │  an event the broker refuses for good (EventRefused) ─┤ poison: moved to outbox_poison
      │  broker unreachable, timeout: stop, rows stay pending │ with its payload and the reason,
      ▼                                                       │ counted, logged at ERROR
    in one short write transaction: mark the published rows, move the poison rows

So one bad row never blocks the rows after it, a broker outage never poisons anything (the
pass fails and the next one retries), and the write lock is never held while Kafka is awaited.

Delivery: a crash after the commit and before the publish loses nothing (the relay finds the rows
on restart); a crash after the publish and before the mark publishes the rows again with the same
``event_id``, which consumers discard. One relay publishes at a time: passes in a process take
turns, and on PostgreSQL the relays of several processes take a transaction-level advisory lock
(the others skip the pass and stand by; the lock dies with its holder's connection), which keeps
commit order, and so per-key order, across replicas. A SQLite file belongs to one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import Index, Text, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel, col, func, insert, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.envelope import Envelope, utc_now
from contracts.topics import EVENT_TYPES, topic_of
from services.runtime.database import Sessions, UtcDateTime
from services.runtime.observability import ServiceMetrics
from services.runtime.publisher import EventRefused, Publisher
from services.runtime.waiting import wait_at_most

__all__ = [
    "OUTBOX_TABLES",
    "OutboxMessage",
    "OutboxPoison",
    "OutboxRelay",
    "outbox_values",
    "stage",
    "stage_once",
]

log = logging.getLogger(__name__)

RELAY_TURN_LOCK = 0x6F_75_74_62_6F_78
"""Key of the PostgreSQL advisory lock a relay holds for a pass ("outbox" in ASCII)."""


class OutboxMessage(SQLModel, table=True):
    """An event committed with the state change it reports, waiting to be published."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: UUID = Field(unique=True)
    event_type: str
    topic: str
    payload: str
    created_at: datetime = Field(default_factory=utc_now, sa_type=UtcDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class OutboxPoison(SQLModel, table=True):
    """An outbox row the relay set aside because it can never be published, with the reason.

    Kept until an operator deletes it (or fixes the payload and inserts it back into ``outbox``).
    """

    __tablename__ = "outbox_poison"

    id: int = Field(primary_key=True, description="The row's id in outbox (its place in order).")
    event_id: UUID = Field(index=True)
    event_type: str
    topic: str
    payload: str
    created_at: datetime = Field(sa_type=UtcDateTime)
    failed_at: datetime = Field(sa_type=UtcDateTime)
    reason: str = Field(description="invalid (does not decode or validate) or refused (broker).")
    failure: str = Field(sa_type=Text, description="The error, as the decoder or broker said it.")


OUTBOX_TABLES: tuple[type[SQLModel], ...] = (OutboxMessage, OutboxPoison)
"""The tables a service that stages events creates."""


def stage(session: AsyncSession, events: Iterable[Envelope]) -> None:
    """Add events to the outbox in the session's transaction, in order."""
    for event in events:
        session.add(
            OutboxMessage(
                event_id=event.event_id,
                event_type=event.type,
                topic=topic_of(type(event)).value,
                payload=event.model_dump_json(),
            )
        )


def outbox_values(events: Iterable[Envelope]) -> list[dict[str, object]]:
    """The outbox rows of events as column values, in order, for a multi-row insert in the
    caller's transaction (what :func:`stage` adds one ORM object at a time)."""
    now = utc_now()
    return [
        {
            "event_id": event.event_id,
            "event_type": event.type,
            "topic": topic_of(type(event)).value,
            "payload": event.model_dump_json(),
            "created_at": now,
            "published_at": None,
        }
        for event in events
    ]


async def stage_once(session: AsyncSession, events: Iterable[Envelope]) -> None:
    """Stage events like :func:`stage`, leaving out those whose event id the outbox already
    holds: outputs with derived ids, decided again after a replay, are staged once."""
    rows = outbox_values(events)
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert_rows = dialect.insert(OutboxMessage).values(rows)
    await session.exec(insert_rows.on_conflict_do_nothing(index_elements=["event_id"]))


@dataclass(frozen=True, slots=True)
class _Poison:
    row: OutboxMessage
    reason: Literal["invalid", "refused"]
    failure: str


class OutboxRelay:
    """Publishes committed outbox rows in commit order, then marks them published."""

    def __init__(
        self,
        sessions: Sessions,
        publisher: Publisher,
        *,
        metrics: ServiceMetrics | None = None,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._wake = asyncio.Event()
        self._turn_in_process = asyncio.Lock()

    @property
    def batch_size(self) -> int:
        """Most rows one :meth:`publish_pending` pass reads: a pass that settled fewer found
        nothing more pending when it read."""
        return self._batch_size

    def wake(self) -> None:
        """Publish now rather than at the next poll (call after committing staged events)."""
        self._wake.set()

    async def run(self) -> None:
        """Publish until cancelled: on every wake-up, and at least every poll interval."""
        passes = 0
        while True:
            self._wake.clear()
            while await self.publish_pending() == self._batch_size:
                pass
            passes += 1
            if passes % 1000 == 1:
                await self.prune()
            await wait_at_most(self._wake, self._poll_interval_s)

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows, setting poison rows aside; return how many rows
        the pass settled (published or set aside), 0 if another relay holds the turn.

        A transient publishing failure propagates after the rows published before it and the
        poison rows are settled; the others stay pending for the next pass.
        """
        async with self._turn() as ours:
            if not ours:
                return 0
            rows = await self._pending_batch()
            published: list[OutboxMessage] = []
            poisoned: list[_Poison] = []
            decoded: list[tuple[OutboxMessage, Envelope]] = []
            for row in rows:
                model = EVENT_TYPES.get(row.event_type)
                if model is None:
                    poisoned.append(_Poison(row, "invalid", f"unknown type {row.event_type!r}"))
                    continue
                try:
                    decoded.append((row, model.model_validate_json(row.payload)))
                except ValidationError as error:
                    poisoned.append(_Poison(row, "invalid", str(error)))
            try:
                await self._publish(decoded, published, poisoned)
            finally:
                await self._settle(published, poisoned)
        return len(published) + len(poisoned)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[bool]:
        async with self._turn_in_process, self._sessions() as session:
            if session.get_bind().dialect.name != "postgresql":
                yield True
                return
            # Held by this session's transaction for the whole pass; a reader takes no row locks
            # on PostgreSQL, so writers staging new rows never wait for it.
            lock = select(func.pg_try_advisory_xact_lock(RELAY_TURN_LOCK))
            yield bool((await session.exec(lock)).one())

    async def _pending_batch(self) -> list[OutboxMessage]:
        async with self._sessions() as session:
            query = (
                select(OutboxMessage)
                .where(col(OutboxMessage.published_at).is_(None))
                .order_by(col(OutboxMessage.id))
                .limit(self._batch_size)
            )
            return list((await session.exec(query)).all())

    async def _publish(
        self,
        decoded: list[tuple[OutboxMessage, Envelope]],
        published: list[OutboxMessage],
        poisoned: list[_Poison],
    ) -> None:
        if not decoded:
            return
        try:
            await self._publisher.publish_many(event for _, event in decoded)
        except EventRefused:
            pass  # which ones? One at a time below, in order (the others publish again)
        else:
            published.extend(row for row, _ in decoded)
            return
        for row, event in decoded:
            try:
                await self._publisher.publish(event)
            except EventRefused as refused:
                poisoned.append(_Poison(row, "refused", refused.reason))
            else:
                published.append(row)

    async def _settle(self, published: list[OutboxMessage], poisoned: list[_Poison]) -> None:
        if not published and not poisoned:
            return
        now = utc_now()
        async with self._sessions() as session, session.begin():
            if published:
                await session.exec(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id).in_([row.id for row in published]))
                    .values(published_at=now)
                )
            if poisoned:
                await session.exec(
                    insert(OutboxPoison),
                    params=[_poison_row(poison, now) for poison in poisoned],
                )
                await session.exec(
                    delete(OutboxMessage).where(
                        col(OutboxMessage.id).in_([poison.row.id for poison in poisoned])
                    )
                )
        for poison in poisoned:
            row = poison.row
            log.error(
                "outbox row %s (%s, event %s) set aside in outbox_poison: %s",
                row.id,
                row.event_type,
                row.event_id,
                poison.failure,
                extra={"event_id": str(row.event_id), "event_type": row.event_type},
            )
            if self._metrics is not None:
                self._metrics.outbox_poisoned.labels(
                    self._metrics.service, row.event_type, poison.reason
                ).inc()

    async def prune(self) -> int:
        """Delete rows published longer ago than the retention; return how many."""
        cutoff = utc_now() - self._retention
        async with self._sessions() as session, session.begin():
            result = await session.exec(
                delete(OutboxMessage).where(col(OutboxMessage.published_at) < cutoff)
            )
            return int(result.rowcount or 0)

    async def pending(self) -> int:
        """Return how many rows wait to be published."""
        async with self._sessions() as session:
            count = await session.exec(
                select(func.count()).where(col(OutboxMessage.published_at).is_(None))
            )
            return int(count.one())

    async def poisoned(self) -> int:
        """Return how many rows were set aside in ``outbox_poison`` and are still there."""
        async with self._sessions() as session:
            return int((await session.exec(select(func.count()).select_from(OutboxPoison))).one())

    async def oldest_pending_age(self) -> timedelta | None:
        """Return how long the oldest pending row has waited (``None``: nothing waits)."""
        async with self._sessions() as session:
            oldest = (
                await session.exec(
                    select(func.min(OutboxMessage.created_at)).where(
                        col(OutboxMessage.published_at).is_(None)
                    )
                )
            ).one()
        return None if oldest is None else max(utc_now() - oldest, timedelta(0))

    async def observe(self) -> None:
        """Set the outbox gauges of the service's metrics from the database (before a scrape)."""
        if self._metrics is None:
            return
        service = self._metrics.service
        age = await self.oldest_pending_age()
        self._metrics.outbox_pending_rows.labels(service).set(await self.pending())
        self._metrics.outbox_poisoned_rows.labels(service).set(await self.poisoned())
        self._metrics.outbox_oldest_pending_seconds.labels(service).set(
            age.total_seconds() if age is not None else 0.0
        )


def _poison_row(poison: _Poison, now: datetime) -> dict[str, object]:
    row = poison.row
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "topic": row.topic,
        "payload": row.payload,
        "created_at": row.created_at,
        "failed_at": now,
        "reason": poison.reason,
        "failure": poison.failure,
    }
