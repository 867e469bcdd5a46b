"""Tables for tests of the runtime's own database mechanics (toy tables, no service history), and
the death of a lease holder's session as PostgreSQL sees it.

Services' tests build their databases through their migrations (``migrate(engine, HISTORY)``),
the path production takes; ``create_all`` is for tables no service owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from services.runtime.leases import lease_key

__all__ = ["create_tables", "kill_holder"]


async def create_tables(engine: AsyncEngine, models: Sequence[type[SQLModel]]) -> None:
    """Create the tables of the given models if missing."""
    tables = [cast(Table, model.__table__) for model in models]  # type: ignore[attr-defined]  # set by SQLModel for table=True classes
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: SQLModel.metadata.create_all(sync, tables=tables))


async def kill_holder(engine: AsyncEngine, lease: str) -> None:
    """Terminate the session holding ``lease`` from a connection of ``engine``, as if its
    process were SIGKILLed (PostgreSQL; only in this test's database). Returns once the
    session's process has exited, so its locks are gone: without the timeout argument,
    ``pg_terminate_backend`` only sends the signal (PostgreSQL 14 and later)."""
    async with engine.connect() as admin:
        await admin.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted"
                " AND ((classid::bigint << 32) | objid::bigint) = :key"
                " AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"  # not other tests' databases
            ),
            {"key": lease_key(lease)},  # the shift wraps to the signed key
        )
