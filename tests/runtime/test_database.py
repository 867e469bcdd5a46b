"""Shared persistence mechanics on SQLite and PostgreSQL: timestamps, processed ids, the outbox."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import JSON, Column
from sqlalchemy.exc import OperationalError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel, select

from services.runtime.database import Sessions, create_engine, session_factory
from services.runtime.idempotency import (
    ProcessedEvent,
    first_time,
    forget_periodically,
    forget_processed_before,
    new_event_ids,
)
from services.runtime.outbox import OutboxMessage, OutboxRelay, stage
from tests.database_tools import create_tables
from tests.factories import make_alert
from tests.polling import eventually
from tests.publishers import RecordingPublisher


@pytest.fixture
def schema() -> list[type[SQLModel]]:
    return [ProcessedEvent, OutboxMessage]


async def test_an_event_id_is_processed_once_and_only_when_its_transaction_commits(
    sessions: Sessions,
) -> None:
    alert = make_alert()

    async def mark_then_fail() -> None:
        async with sessions() as session, session.begin():
            assert await first_time(session, alert.event_id)
            raise RuntimeError("handler failed after marking")

    with pytest.raises(RuntimeError):
        await mark_then_fail()
    async with sessions() as session, session.begin():
        assert await first_time(session, alert.event_id)
    async with sessions() as session, session.begin():
        assert not await first_time(session, alert.event_id)


async def test_staged_events_are_published_in_order_only_after_commit(sessions: Sessions) -> None:
    publisher = RecordingPublisher()
    relay = OutboxRelay(sessions, publisher)
    alerts = [make_alert(summary=f"alert {n}") for n in range(5)]

    async def stage_then_fail() -> None:
        async with sessions() as session, session.begin():
            stage(session, [make_alert(summary="rolled back")])
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await stage_then_fail()
    async with sessions() as session, session.begin():
        stage(session, alerts[:3])
    async with sessions() as session, session.begin():
        stage(session, alerts[3:])

    assert await relay.pending() == 5
    assert await relay.publish_pending() == 5
    assert publisher.events == alerts
    assert await relay.publish_pending() == 0
    assert await relay.pending() == 0


async def test_a_failed_publish_leaves_the_rows_for_the_next_pass(sessions: Sessions) -> None:
    publisher = RecordingPublisher()
    relay = OutboxRelay(sessions, publisher)
    alert = make_alert()
    async with sessions() as session, session.begin():
        stage(session, [alert])
    publisher.fail_next = True
    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    assert await relay.pending() == 1
    assert await relay.publish_pending() == 1
    assert publisher.events == [alert]


async def test_the_relay_publishes_when_woken(sessions: Sessions) -> None:
    publisher = RecordingPublisher()
    relay = OutboxRelay(sessions, publisher, poll_interval_s=30)
    earlier, alert = make_alert(summary="staged before the relay started"), make_alert()
    async with sessions() as session, session.begin():
        stage(session, [earlier])
    task = asyncio.create_task(relay.run())
    try:
        # Its first pass is over once this is out (a fixed sleep could end before it on a loaded
        # machine, and that pass would then publish the next event without any wake-up).
        await eventually(lambda: publisher.events, timeout_s=10, every_s=0.02, what="first pass")
        async with sessions() as session, session.begin():
            stage(session, [alert])
        relay.wake()
        # Well within the 30 s poll interval, and generous for a loaded machine.
        await eventually(
            lambda: len(publisher.events) == 2, timeout_s=10, every_s=0.02, what="published"
        )
        assert publisher.events == [earlier, alert]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_old_published_rows_are_pruned(sessions: Sessions) -> None:
    relay = OutboxRelay(sessions, RecordingPublisher(), retention=timedelta(days=1))
    async with sessions() as session, session.begin():
        stage(session, [make_alert(), make_alert(), make_alert()])
    await relay.publish_pending()
    assert await relay.prune() == 0
    async with sessions() as session, session.begin():
        rows = (await session.exec(select(OutboxMessage).limit(2))).all()
        for row in rows:
            row.published_at = datetime.now(UTC) - timedelta(days=2)
            session.add(row)
    assert await relay.prune() == 2


async def test_processed_ids_older_than_the_retention_are_forgotten_and_then_process_again(
    sessions: Sessions,
) -> None:
    old, recent = make_alert(), make_alert()
    async with sessions() as session, session.begin():
        assert await new_event_ids(session, [old.event_id]) == [old.event_id]
    await asyncio.sleep(0.05)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.05)
    async with sessions() as session, session.begin():
        assert await first_time(session, recent.event_id)
    # The task's first pass forgets what was processed before now - retention; the clock is set
    # so that the cutoff falls between the two events.
    task = asyncio.create_task(
        forget_periodically(
            sessions,
            forget_processed_before,
            timedelta(days=7),
            every_seconds=3600,
            clock=lambda: cutoff + timedelta(days=7),
        )
    )

    async def old_forgotten() -> bool:
        async with sessions() as session:
            return await session.get(ProcessedEvent, old.event_id) is None

    try:  # the task's first pass, well before its next (an hour later)
        await eventually(old_forgotten, timeout_s=10, every_s=0.02, what="first pass")
    finally:
        task.cancel()
    async with sessions() as session, session.begin():
        assert await first_time(session, old.event_id)  # forgotten: it would be handled again
        assert not await first_time(session, recent.event_id)  # kept


async def test_timestamps_come_back_timezone_aware(sessions: Sessions) -> None:
    alert = make_alert()
    async with sessions() as session, session.begin():
        assert await first_time(session, alert.event_id)
    async with sessions() as session:
        row = await session.get(ProcessedEvent, alert.event_id)
        assert row is not None
        assert row.processed_at.tzinfo is not None


class Tally(SQLModel, table=True):
    """A counter that transactions read, then write (as the stores do with their rows)."""

    __tablename__ = "test_tally"

    name: str = Field(primary_key=True)
    count: int = 0


async def test_a_read_does_not_wait_for_a_writer(sessions: Sessions) -> None:
    async with sessions() as writer, writer.begin():
        assert await first_time(writer, make_alert().event_id)  # holds the write lock
        started = time.monotonic()
        async with asyncio.timeout(5), sessions() as reader:
            assert (await reader.exec(select(ProcessedEvent))).all() == []  # not committed yet
        # A reader that waited for the writer would wait until the writer ends (after this
        # block), so past the timeout; 3 s leaves room for a connection on a loaded machine.
        assert time.monotonic() - started < 3.0


async def test_a_write_in_a_session_not_begun_for_writing_fails_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'reads.db'}")
    await create_tables(engine, [ProcessedEvent])
    sessions = session_factory(engine)
    try:
        async with sessions() as reader:
            reader.add(ProcessedEvent(event_id=make_alert().event_id))
            with pytest.raises(OperationalError, match="readonly database"):
                await reader.flush()
        async with sessions() as session, session.begin():  # the same pooled connection writes
            assert await first_time(session, make_alert().event_id)
    finally:
        await engine.dispose()


async def test_transactions_that_read_then_write_lose_no_update(database_url: str) -> None:
    # Two engines, as two processes would have; each transaction reads the count, then writes it
    # plus one. The write transaction's lock (BEGIN IMMEDIATE on SQLite, FOR UPDATE on
    # PostgreSQL) serialises them, so none overwrites another's increment.
    engines = [create_engine(database_url) for _ in range(2)]
    await create_tables(engines[0], [Tally])
    makers = [session_factory(engine) for engine in engines]
    async with makers[0]() as session, session.begin():
        session.add(Tally(name="n"))

    async def increment(sessions: Sessions, times: int) -> None:
        for _ in range(times):
            async with sessions() as session, session.begin():
                query = select(Tally).where(Tally.name == "n").with_for_update()
                row = (await session.exec(query)).one()
                await asyncio.sleep(0)  # let the other engine's transaction try to interleave
                row.count += 1
                session.add(row)

    try:
        await asyncio.gather(*(increment(sessions, 25) for sessions in makers))
        async with makers[1]() as session:
            assert (await session.exec(select(Tally.count))).one() == 50
    finally:
        for engine in engines:
            await engine.dispose()


class JsonNote(SQLModel, table=True):
    """A table with a JSON column, as the services' evidence, details and matchers are."""

    __tablename__ = "test_json_notes"

    id: int | None = Field(default=None, primary_key=True)
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
async def test_a_json_column_never_stores_nan_or_infinities(
    engine: AsyncEngine, number: float
) -> None:
    await create_tables(engine, [JsonNote])
    sessions = session_factory(engine)
    with pytest.raises((StatementError, ValueError), match="Out of range float values"):
        async with sessions() as session, session.begin():
            session.add(JsonNote(body={"figures": [1.0, {"psi": number}]}))
    async with sessions() as session, session.begin():
        session.add(JsonNote(body={"figures": [1.0, {"psi": None}]}))
    async with sessions() as session:
        rows = (await session.exec(select(JsonNote))).all()
    assert [row.body for row in rows] == [{"figures": [1.0, {"psi": None}]}]


async def test_a_writer_is_not_starved_by_other_writers_of_the_same_process(
    tmp_path: Path,
) -> None:
    """Two tasks write back to back; a third asks for twenty short writes meanwhile. Each gets
    the lock after at most the transaction holding it and the one queued before it (they queue
    in order), not whenever SQLite's busy handler happens to retry in a gap (without the queue:
    median 333 ms, worst 2.6 s; up to 640 busy transactions went ahead of one write). Counted in
    transactions, not seconds, so a loaded machine's slowness does not read as starvation."""
    engine = create_engine(f"sqlite:///{tmp_path / 'fair.db'}")
    await create_tables(engine, [ProcessedEvent])
    sessions = session_factory(engine)
    stop = asyncio.Event()
    holders = 0

    async def busy() -> None:
        nonlocal holders
        while not stop.is_set():
            async with sessions() as session, session.begin():
                await first_time(session, uuid4())  # SQLite's write lock is held from here
                holders += 1
                await asyncio.sleep(0.02)  # a transaction doing some work

    writers = [asyncio.create_task(busy()) for _ in range(2)]
    ahead = []
    try:
        await asyncio.sleep(0.2)
        for _ in range(20):
            asked = holders
            async with sessions() as session, session.begin():
                await first_time(session, uuid4())
                ahead.append(holders - asked)  # busy transactions that took the lock meanwhile
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await engine.dispose()
    # At most the transaction starting as it asked and the one queued before it.
    assert max(ahead) <= 2, ahead
