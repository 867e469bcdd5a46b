"""The transactional outbox: events staged in a service's own transaction, published by a relay.

A handler (or API call) that changes state stages its outgoing events with :func:`stage` in the
same transaction; :class:`OutboxRelay` publishes committed rows in order and marks them sent.
A crash after the commit and before the publish loses nothing (the relay finds the rows on
restart); a crash after the publish and before the mark publishes the row again with the same
``event_id``, which consumers discard. Several relays on PostgreSQL share the work with
``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Index, delete
from sqlmodel import Field, SQLModel, col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.envelope import Envelope, utc_now
from contracts.topics import EVENT_TYPES, topic_of
from services.runtime.database import Sessions, UtcDateTime
from services.runtime.publisher import Publisher

__all__ = ["OutboxMessage", "OutboxRelay", "stage"]

log = logging.getLogger(__name__)


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


class OutboxRelay:
    """Publishes committed outbox rows in commit order, then marks them published."""

    def __init__(
        self,
        sessions: Sessions,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._wake = asyncio.Event()

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; return how many were published."""
        async with self._sessions() as session, session.begin():
            query = (
                select(OutboxMessage)
                .where(col(OutboxMessage.published_at).is_(None))
                .order_by(col(OutboxMessage.id))
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = list((await session.exec(query)).all())
            if not rows:
                return 0
            await self._publisher.publish_many(
                EVENT_TYPES[row.event_type].model_validate_json(row.payload) for row in rows
            )
            now = utc_now()
            for row in rows:
                row.published_at = now
                session.add(row)
        return len(rows)

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
