"""A start killed mid-migration changes nothing; the next start migrates.

The process runs the incident log's revisions plus one of the test's own that creates a table,
signals, and stalls; the test SIGKILLs it there. The revisions share one transaction, so the
database is left as it was: unversioned 0.1.0, every row kept, none of 0002's tables.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect

from services.runtime import create_engine
from services.runtime.migrations import differences, migrate
from tests.migrations.test_upgrades import (
    build_0_1_0,
    fill_every_table,
    history_of,
    read_back,
)

STALLING_REVISION = '''"""Test only: creates a table, signals, and stalls until killed."""

import os
import time

import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("stalled", sa.Column("id", sa.Integer(), primary_key=True))
    open(os.environ["VIGIL_TEST_STALLED"], "w").close()
    time.sleep(600)
'''


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_migration_killed_mid_way_leaves_the_database_as_it_was(
    database_url: str, tmp_path: Path
) -> None:
    history = history_of("incident-log")
    versions = tmp_path / "versions"
    versions.mkdir()
    for revision in history.versions.glob("0*.py"):
        shutil.copy(revision, versions)
    head = history.head()  # a revision id need not be its file's number
    (versions / "9999_stalls.py").write_text(STALLING_REVISION.replace("{head}", head))
    stalled = tmp_path / "stalled"
    engine = create_engine(database_url)
    try:
        await build_0_1_0(engine, "incident-log")
        async with engine.begin() as connection:
            written = await connection.run_sync(fill_every_table)
            before = await connection.run_sync(lambda sync: read_back(sync, written))
            released = await connection.run_sync(tables)

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.migrations.migrate_once",
            "incident-log",
            database_url,
            str(versions),
            env={**os.environ, "VIGIL_TEST_STALLED": str(stalled)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not stalled.exists():
            assert process.returncode is None, "the migration ended before the stall"
            assert time.monotonic() < deadline, "the migration never reached the stall"
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        await process.wait()

        async with engine.connect() as connection:
            assert await connection.run_sync(tables) == released  # no version, no 0002 tables
            assert await connection.run_sync(lambda sync: read_back(sync, written)) == before

        upgrade = await migrate(engine, history)  # the next start

        assert upgrade.adopted
        assert upgrade.after == history.head()
        async with engine.connect() as connection:
            assert await connection.run_sync(lambda sync: read_back(sync, written)) == before
            assert await connection.run_sync(lambda sync: differences(history, sync)) == []
    finally:
        await engine.dispose()
