"""The retrainer's content in its database: idempotent writes by digest, checked reads, two
replicas writing one content at once, a process killed mid-write, and the import of a state
folder's files (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, update

from services.retrainer.content import (
    ContentStore,
    CorruptContentError,
    MissingContentError,
    blocking_engine,
)
from services.retrainer.content_tables import ContentRow
from services.retrainer.file_import import import_state_files
from services.retrainer.retraining.pipeline import Step
from services.retrainer.retraining.step_store import DatabaseStepStore
from services.retrainer.settings import MAX_CONTENT_BYTES, Settings
from services.runtime import sha256_hex
from tests.content_tools import migrated, stored_content
from tests.retrainer.retrainer_harness import in_memory_retrainer

PEOPLE = {"token-ana": ("ana", "l2")}


def _store(engine: Engine, kind: str = "artifact") -> ContentStore:
    return ContentStore(engine, kind=kind, suffix=".skops")


async def test_content_is_stored_once_by_digest_and_read_back_checked(database_url: str) -> None:
    engine = await migrated(database_url)
    try:
        artifacts, datasets = _store(engine), _store(engine, "dataset")
        content = os.urandom(300_000)
        sha256 = await artifacts.put(content)
        assert sha256 == sha256_hex(content)
        assert await artifacts.put(content) == sha256  # again: no error, still one row
        assert await artifacts.get(sha256) == content
        assert artifacts.has(sha256)
        # Kinds are apart: an artifact is not a dataset.
        assert await datasets.get(sha256) is None
        assert await asyncio.to_thread(stored_content, engine) == [("artifact", sha256)]
        assert artifacts.uri_of(sha256) == f"sha256/{sha256}.skops"
    finally:
        engine.dispose()


async def test_a_missing_content_is_a_clear_error_and_a_bad_digest_is_refused(
    database_url: str,
) -> None:
    engine = await migrated(database_url)
    try:
        store = _store(engine)
        absent = "0" * 64
        assert await store.get(absent) is None
        with pytest.raises(MissingContentError, match=f"no artifact is stored under {absent}"):
            store.require(absent)
        for bad in ("", "A" * 64, "0" * 63, "../" + "0" * 61, "0" * 64 + "\n"):
            with pytest.raises(ValueError, match="not a SHA-256"):
                await store.get(bad)
    finally:
        engine.dispose()


async def test_a_read_checks_the_bytes_against_their_digest(database_url: str) -> None:
    engine = await migrated(database_url)
    try:
        store = _store(engine)
        sha256 = await store.put(b"the model")
        with engine.begin() as connection:
            connection.execute(
                update(ContentRow).where(ContentRow.sha256 == sha256).values(content=b"the modem")  # type: ignore[arg-type]  # SQLModel column
            )
        with pytest.raises(CorruptContentError, match=sha256):
            await store.get(sha256)
        with pytest.raises(CorruptContentError):
            store.put_checked(sha256, b"other bytes")  # a write is checked too
    finally:
        engine.dispose()


async def test_two_stores_on_one_database_writing_the_same_content_at_once_both_succeed(
    database_url: str,
) -> None:
    engines = [await migrated(database_url), await migrated(database_url)]
    try:
        stores = [_store(engine) for engine in engines]
        rounds = 8
        contents = [os.urandom(2_000_000) for _ in range(rounds)]
        barrier = threading.Barrier(2)

        def write_all(store: ContentStore) -> list[str]:
            digests = []
            for content in contents:
                barrier.wait(timeout=60)  # both insert the same content at the same moment
                digests.append(store.put_now(content))
            return digests

        first, second = await asyncio.gather(
            *(asyncio.to_thread(write_all, store) for store in stores)
        )
        assert first == second == [sha256_hex(content) for content in contents]
        stored = await asyncio.to_thread(stored_content, engines[0])
        assert stored == sorted(("artifact", sha256) for sha256 in first)
        for content, sha256 in zip(contents, first, strict=True):
            assert stores[1].get_now(sha256) == content
    finally:
        for engine in engines:
            engine.dispose()


_WRITE_FOREVER = """
import os, sys
from services.retrainer.content import ContentStore, blocking_engine
from services.runtime import sha256_hex
store = ContentStore(blocking_engine(sys.argv[1]), kind="artifact", suffix=".skops")
def say(line):
    os.write(1, (line + "\\n").encode())  # one write: a kill cannot cut a line in two

while True:
    content = os.urandom(8 * 1024 * 1024)
    say("writing " + sha256_hex(content))
    say("stored " + store.put_now(content))
"""


def _inserting_elsewhere(url: str) -> bool:
    """Whether another connection is running an insert into the content table (PostgreSQL)."""
    with psycopg.connect(url) as connection:
        found = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'active' "
            "AND query ILIKE 'INSERT INTO retrainer_content%'"
        ).fetchone()
    return found is not None and found[0] > 0


async def test_a_process_killed_mid_write_leaves_no_half_content(database_url: str) -> None:
    engine = await migrated(database_url)
    postgres = database_url.startswith("postgresql")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITE_FOREVER,
        database_url,
        stdout=asyncio.subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(Path.cwd())},
    )
    stdout = child.stdout
    assert stdout is not None
    lines: list[str] = []

    async def read_line() -> str:
        raw: bytes = await asyncio.wait_for(stdout.readline(), 120)
        line = raw.decode().strip()
        assert line, "the writer stopped"
        lines.append(line)
        return line

    try:
        while sum(line.startswith("stored") for line in lines) < 2:
            await read_line()
        while not (await read_line()).startswith("writing"):
            pass
        if postgres:
            # Kill while the server is running the insert: the transaction is open.
            deadline = time.monotonic() + 30
            while not await asyncio.to_thread(_inserting_elsewhere, database_url):
                assert time.monotonic() < deadline, "the insert was never seen running"
        else:
            await asyncio.sleep(0.15)  # 8 MB: the write is under way
        child.send_signal(signal.SIGKILL)
        rest, _ = await asyncio.wait_for(child.communicate(), 30)
        lines.extend(line.strip() for line in rest.decode().splitlines())
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == -signal.SIGKILL
    stored_lines = {line.split()[1] for line in lines if line.startswith("stored")}
    in_flight = {line.split()[1] for line in lines if line.startswith("writing")} - stored_lines
    try:
        store = _store(engine)
        stored = {sha256 for _, sha256 in await asyncio.to_thread(stored_content, engine)}
        assert stored_lines <= stored  # nothing committed was lost
        assert stored <= stored_lines | in_flight
        for sha256 in stored:  # every row whole: its bytes match its digest
            assert sha256_hex(await store.get(sha256) or b"") == sha256
        if postgres:
            assert not in_flight & stored  # killed before its commit: no row at all
        # The database takes writes again at once (no lock left behind).
        again = await store.put(b"after the kill")
        assert await store.get(again) == b"after the kill"
    finally:
        engine.dispose()


def _files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


def _legacy_state(state: Path) -> dict[str, bytes]:
    """Files as a file-store retrainer left them: one of each kind, a step record, a corrupt one."""
    files = {
        "artifact": (state / "artifacts" / "sha256", ".skops", b"an artifact"),
        "dataset": (state / "datasets" / "sha256", ".csv", b"a,b\n1,x\n"),
        "blob": (state / "pipeline" / "blobs" / "sha256", ".json", b'{"rows":[]}'),
    }
    contents = {}
    for kind, (folder, suffix, content) in files.items():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{sha256_hex(content)}{suffix}").write_bytes(content)
        contents[kind] = content
    corrupt = state / "datasets" / "sha256" / f"{sha256_hex(b'original')}.csv"
    corrupt.write_bytes(b"tampered")
    (state / "datasets" / "sha256" / ".incoming-x1").write_bytes(b"half")
    steps = state / "pipeline" / "steps" / "prepare"
    steps.mkdir(parents=True)
    record = {"prepared_sha256": sha256_hex(files["blob"][2])}
    (steps / f"{'a' * 64}.json").write_text(json.dumps(record))
    return contents


async def test_a_state_folders_files_are_imported_once_and_the_corrupt_one_is_left(
    database_url: str, tmp_path: Path
) -> None:
    engine = await migrated(database_url)
    try:
        state = tmp_path / "state"
        contents = _legacy_state(state)
        report = await asyncio.to_thread(import_state_files, state, engine)
        assert (report.imported, report.step_records) == (3, 1)
        assert [path.name for path in report.refused] == [f"{sha256_hex(b'original')}.csv"]
        for kind, content in contents.items():
            assert _store(engine, kind).get_now(sha256_hex(content)) == content
        steps = DatabaseStepStore(engine)
        assert steps.outputs(Step.PREPARE, "a" * 64) == {
            "prepared_sha256": sha256_hex(contents["blob"])
        }
        assert await asyncio.to_thread(_files, state) == [
            ".incoming-x1",
            f"{sha256_hex(b'original')}.csv",
        ]
        again = await asyncio.to_thread(import_state_files, state, engine)
        assert (again.imported, again.step_records) == (0, 0)
        assert len(await asyncio.to_thread(stored_content, engine)) == 3
    finally:
        engine.dispose()


async def test_two_imports_of_one_folder_at_once_import_each_file_once(
    database_url: str, tmp_path: Path
) -> None:
    engines = [await migrated(database_url), await migrated(database_url)]
    try:
        contents = _legacy_state(tmp_path)
        reports = await asyncio.gather(
            *(asyncio.to_thread(import_state_files, tmp_path, engine) for engine in engines)
        )
        assert sum(report.imported for report in reports) <= 6  # each file at most twice
        assert sorted(await asyncio.to_thread(stored_content, engines[0])) == sorted(
            (kind, sha256_hex(content)) for kind, content in contents.items()
        )
    finally:
        for engine in engines:
            engine.dispose()


async def test_the_retrainer_imports_its_state_folders_files_when_it_starts(
    database_url: str, tmp_path: Path
) -> None:
    contents = _legacy_state(tmp_path / "state")
    async with in_memory_retrainer(tmp_path, database_url, PEOPLE) as retrainer:
        digest = f"sha256:{sha256_hex(contents['dataset'])}"
        served = await retrainer.http.get(f"/datasets/{digest}", headers=retrainer.as_person("ana"))
        assert served.status_code == 200, served.text
        assert served.content == contents["dataset"]
        missing = await retrainer.http.get(
            f"/datasets/sha256:{'0' * 64}", headers=retrainer.as_person("ana")
        )
        assert missing.status_code == 404
        left = await asyncio.to_thread(_files, tmp_path / "state")
        assert left == [".incoming-x1", f"{sha256_hex(b'original')}.csv"]
    content = blocking_engine(database_url)
    try:
        kinds = {kind for kind, _ in await asyncio.to_thread(stored_content, content)}
        assert kinds == {"artifact", "dataset", "blob"}
    finally:
        content.dispose()


def test_uploads_larger_than_one_database_value_cannot_be_configured() -> None:
    """An artifact or a dataset is one value in the database: a larger upload would be accepted
    and then fail to store (a 500), so the limit cannot be set above what a value can hold."""
    assert Settings(max_upload_bytes=MAX_CONTENT_BYTES).max_upload_bytes == MAX_CONTENT_BYTES
    with pytest.raises(ValidationError, match="max_upload_bytes"):
        Settings(max_upload_bytes=MAX_CONTENT_BYTES + 1)


async def test_a_connection_in_use_when_the_engine_is_disposed_is_closed_when_its_use_ends(
    database_url: str,
) -> None:
    """The pipeline's worker thread can hold a connection while the service stops and disposes
    the engine: it must close when the thread is done with it, not wait for garbage collection
    in a discarded pool (a ResourceWarning that failed the suite)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("sqlite3 connections are the service's own file, not a server connection")
    engine = await migrated(database_url)
    connection = engine.connect()
    driver = connection.connection.dbapi_connection
    assert isinstance(driver, psycopg.Connection)
    engine.dispose()
    connection.close()  # the thread's use ends after the dispose
    assert driver.closed
