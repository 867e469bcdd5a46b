"""A replica's database connection dying in the middle of a transaction, as with SIGKILL: the
connection is dropped and the test waits until PostgreSQL has ended its backend, so the rows it
locked are free (otherwise the other replica can still find them locked and skip them)."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.polling import eventually

__all__ = ["kill_connection"]


async def kill_connection(dying: AsyncSession, observer: AsyncSession) -> None:
    """Drop ``dying``'s connection without a rollback and wait until its backend is gone
    (``observer`` is a session on another connection to the same database)."""
    connection = await dying.connection()
    pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await connection.invalidate()

    async def alive() -> int:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        count = (await (await observer.connection()).execute(query, {"pid": pid})).scalar_one()
        await observer.rollback()  # a fresh snapshot of pg_stat_activity on each probe
        return int(count)

    await eventually(alive, lambda count: count == 0, timeout_s=10, what="the backend ended")
