"""Replicas starting together: one migrates, the others wait for it and then change nothing.

Real processes (``migrate_once.py``) on one database. The test holds the schema lock itself
until every process is up (and, on PostgreSQL, seen waiting for the lock), then lets them race.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

from services.runtime import create_engine
from services.runtime.migrations import SCHEMA_LOCK, differences
from tests.migrations.test_upgrades import SERVICES, build_0_1_0, current_revision, history_of

REPLICAS = 3


@asynccontextmanager
async def schema_lock_held(url: str) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """Hold the lock a migration takes; yield a count of processes seen waiting for it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(parsed.database), isolation_level=None)
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("BEGIN IMMEDIATE")

        async def unknown() -> int:
            return REPLICAS  # SQLite shows no waiters; the processes' "ready" has to do

        try:
            yield unknown
        finally:
            holder.execute("COMMIT")
            holder.close()
        return
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
        await connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))

        async def waiting() -> int:
            cursor = await connection.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

        try:
            yield waiting
        finally:
            await connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


async def start_replica(service: str, url: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.migrations.migrate_once",
        service,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=150)
    assert line == b"ready\n", line
    return process


async def finish(process: asyncio.subprocess.Process) -> dict[str, str | None]:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=150)
    assert process.returncode == 0, stderr.decode()
    result: dict[str, str | None] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("service", ["incident-log"])
@pytest.mark.parametrize("from_0_1_0", [False, True], ids=["new", "0.1.0"])
async def test_replicas_starting_together_migrate_once(
    database_url: str, service: str, from_0_1_0: bool
) -> None:
    assert service in SERVICES
    history = history_of(service)
    engine = create_engine(database_url)
    try:
        if from_0_1_0:
            await build_0_1_0(engine, service)
        await engine.dispose()
        async with schema_lock_held(database_url) as waiting:
            replicas = list(
                await asyncio.gather(
                    *(start_replica(service, database_url) for _ in range(REPLICAS))
                )
            )
            deadline = time.monotonic() + 150
            while await waiting() < REPLICAS:
                assert time.monotonic() < deadline, "the replicas never queued for the lock"
                assert all(p.returncode is None for p in replicas), "a replica did not wait"
                await asyncio.sleep(0.05)
            assert all(p.returncode is None for p in replicas)
        results = [await finish(process) for process in replicas]

        migrated = [r for r in results if r["before"] != history.head()]
        assert len(migrated) == 1, results
        assert all(r["after"] == history.head() for r in results)
        assert await current_revision(engine) == [history.head()]
        async with engine.connect() as connection:
            assert await connection.run_sync(lambda sync: differences(history, sync)) == []
    finally:
        await engine.dispose()
