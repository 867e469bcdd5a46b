"""Idempotency records are kept for a while, not forever.

A handled event's id only has to outlive the ways the event can come back: a redelivery after a
crash (seconds) or someone replaying the topic (at most its retention). Kept longer, the ids
only grow the database, by one row per event. :func:`forget_periodically` runs as a service's
background task and deletes the ids older than the retention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.envelope import utc_now
from services.runtime.database import Sessions, forget_processed_before

__all__ = ["Forget", "forget_periodically", "forgetting_processed_ids"]

log = logging.getLogger(__name__)

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
