"""The outbox relay against the real broker, on SQLite and PostgreSQL: poison rows are set aside
and the rest goes on in order; a broker outage neither poisons rows nor locks the database; a
relay killed between publish and mark publishes again with the same event id."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, func, select

from contracts import Envelope, ModelRegistered, Topic
from services.runtime import (
    OUTBOX_TABLES,
    EmbeddedBroker,
    EventPublisher,
    KafkaSettings,
    OutboxMessage,
    OutboxPoison,
    OutboxRelay,
    ProcessedEvent,
    ServiceMetrics,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
    Sessions,
    create_engine,
    ensure_topics,
    first_time,
    kafka_broker,
    session_factory,
    stage,
)
from services.runtime.outbox import RELAY_TURN_LOCK
from tests.factories import MODEL, make_alert, make_version_record
from tests.kafka_tools import read_until_quiet

pytestmark = pytest.mark.integration


def registered(version: int, **record: Any) -> ModelRegistered:
    """A ``model.registered`` event."""
    return ModelRegistered(
        producer="retrainer",
        model=MODEL,
        record=make_version_record(version=version, **record),
    )


def unbuildable(version: int, recall: float) -> ModelRegistered:
    """A ``model.registered`` event whose recall is NaN or infinite. The contracts refuse to
    build one, so it is made by copying without validation (as a bug, or an older Vigil that
    accepted them, would have staged it); it serialises as ``null`` and so stages a row that
    can never be decoded again."""
    event = registered(version)
    record = event.record.model_copy(update={"metrics": {"recall": recall}})
    return event.model_copy(update={"record": record})


@pytest.fixture
def schema() -> list[type[SQLModel]]:
    return [ProcessedEvent, *OUTBOX_TABLES]


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[EventPublisher]:
    publisher = EventPublisher(kafka_broker(kafka_settings, client_id="test-relay"), kafka_settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


async def stage_each(sessions: Sessions, events: Iterable[Envelope]) -> None:
    """Stage every event in a transaction of its own, as separate handler calls would."""
    for event in events:
        async with sessions() as session, session.begin():
            stage(session, [event])


async def published_ids(kafka: KafkaSettings) -> list[str]:
    """The event ids on ``models``, in order, once nothing more arrives."""
    records = await read_until_quiet(kafka, Topic.MODELS, quiet_s=1.0)
    return [json.loads(record.value)["event_id"] for record in records]


async def poison_rows(sessions: Sessions) -> list[OutboxPoison]:
    async with sessions() as session:
        return list((await session.exec(select(OutboxPoison).order_by(col(OutboxPoison.id)))).all())


async def test_a_row_that_no_longer_validates_is_set_aside_and_the_rows_around_it_publish_in_order(
    sessions: Sessions,
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = ServiceMetrics("retrainer")
    relay = OutboxRelay(sessions, publisher, metrics=metrics)
    before, after = registered(1), registered(3)
    poison = unbuildable(2, float("nan"))
    await stage_each(sessions, [before, poison, after])

    with caplog.at_level(logging.ERROR, logger="services.runtime.outbox"):
        assert await relay.publish_pending() == 3
    published = await published_ids(kafka_settings)
    assert published == [str(before.event_id), str(after.event_id)]
    (aside,) = await poison_rows(sessions)
    assert (aside.event_id, aside.event_type, aside.reason) == (
        poison.event_id,
        "model.registered",
        "invalid",
    )
    assert "record.metrics.recall" in aside.failure
    assert json.loads(aside.payload)["record"]["metrics"] == {"recall": None}  # kept as staged
    assert (await relay.pending(), await relay.poisoned()) == (0, 1)
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert str(poison.event_id) in caplog.records[0].getMessage()
    assert "model.registered" in caplog.records[0].getMessage()

    # Later passes go on (nothing is stuck behind the set-aside row), and the metrics count it.
    later = registered(4)
    await stage_each(sessions, [later])
    assert await relay.publish_pending() == 1
    assert await published_ids(kafka_settings) == [*published, str(later.event_id)]
    await relay.observe()
    exposition = generate_latest(metrics.registry).decode()
    assert (
        'vigil_outbox_poisoned_total{event_type="model.registered",reason="invalid",'
        'service="retrainer"} 1.0'
    ) in exposition
    assert 'vigil_outbox_poisoned_rows{service="retrainer"} 1.0' in exposition
    assert 'vigil_outbox_pending_rows{service="retrainer"} 0.0' in exposition


async def test_a_row_of_an_unknown_type_is_set_aside(
    sessions: Sessions, publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    relay = OutboxRelay(sessions, publisher)
    good = registered(1)
    async with sessions() as session, session.begin():
        session.add(
            OutboxMessage(
                event_id=make_alert().event_id,
                event_type="model.vanished",
                topic="models",
                payload="{not json",
            )
        )
    await stage_each(sessions, [good])
    assert await relay.publish_pending() == 2
    assert await published_ids(kafka_settings) == [str(good.event_id)]
    (aside,) = await poison_rows(sessions)
    assert aside.failure == "unknown type 'model.vanished'"


async def test_an_event_the_broker_refuses_for_good_is_set_aside_and_the_others_publish(
    sessions: Sessions, publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    relay = OutboxRelay(sessions, publisher)
    before, after = registered(1), registered(3)
    huge = registered(2, parameters={"blob": "x" * 1_200_000})  # above the 1 MB request limit
    await stage_each(sessions, [before, huge, after])

    assert await relay.publish_pending() == 3
    published = await published_ids(kafka_settings)
    # A refusal makes the relay publish the batch again one event at a time: the events before
    # the refused one may appear twice, with the same event id (consumers discard the second).
    assert list(dict.fromkeys(published)) == [str(before.event_id), str(after.event_id)]
    (aside,) = await poison_rows(sessions)
    assert (aside.event_id, aside.reason) == (huge.event_id, "refused")
    assert "MessageSizeTooLarge" in aside.failure
    assert len(aside.payload) > 1_200_000
    assert await relay.pending() == 0


async def test_a_relay_killed_between_publish_and_mark_publishes_again_with_the_same_event_id(
    sessions: Sessions, publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    class KilledAfterPublishing:
        """Publishes for real, then dies before returning (as a process killed right after the
        broker acknowledged, before the relay marked the rows)."""

        async def publish(self, event: Envelope) -> None:
            await self.publish_many([event])

        async def publish_many(self, events: Iterable[Envelope]) -> None:
            await publisher.publish_many(events)
            raise asyncio.CancelledError

    event = registered(1)
    await stage_each(sessions, [event])
    with pytest.raises(asyncio.CancelledError):
        await OutboxRelay(sessions, KilledAfterPublishing()).publish_pending()
    assert await OutboxRelay(sessions, publisher).pending() == 1

    assert await OutboxRelay(sessions, publisher).publish_pending() == 1
    assert await published_ids(kafka_settings) == [str(event.event_id)] * 2
    assert await OutboxRelay(sessions, publisher).pending() == 0


@pytest.mark.slow
async def test_with_the_broker_unreachable_the_database_stays_usable_and_rows_wait_then_publish(
    sessions: Sessions, unique: str, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    await broker.start()
    assert broker.pid is not None
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"t{unique}.")
    await ensure_topics(kafka.bootstrap_servers, prefix=kafka.topic_prefix)
    publisher = EventPublisher(kafka_broker(kafka, client_id="test-relay"), kafka)
    await publisher.start()
    publishing = PublishingSignal(publisher)
    relay = OutboxRelay(sessions, publishing, poll_interval_s=0.1)
    running = asyncio.create_task(keep_relaying(relay))
    # A stopped (SIGSTOP) broker accepts connections and never answers: the worst case, where a
    # publish waits for the whole request timeout.
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        events = [registered(n) for n in range(1, 4)]
        await stage_each(sessions, events)
        relay.wake()
        # The relay is now waiting for the broker (awaited: on a loaded machine a fixed sleep
        # could end before the relay's pass began, and the checks below then proved nothing).
        await asyncio.wait_for(publishing.started.wait(), 30)
        await asyncio.sleep(1.0)

        # An API-style read and a short write, each on a connection of its own.
        started = time.monotonic()
        async with asyncio.timeout(5):
            async with sessions() as session:
                pending = (
                    await session.exec(
                        select(func.count()).where(col(OutboxMessage.published_at).is_(None))
                    )
                ).one()
        read_s = time.monotonic() - started
        started = time.monotonic()
        async with asyncio.timeout(5):
            async with sessions() as session, session.begin():
                assert await first_time(session, make_alert().event_id)
        write_s = time.monotonic() - started
        # Waiting for the stopped broker would last its 40 s request timeout (past the 5 s
        # above); 3 s leaves room for a new connection on a loaded machine.
        assert read_s < 3.0
        assert write_s < 3.0
        assert pending == 3
        assert await relay.poisoned() == 0  # an outage is not a reason to set anything aside
        age = await relay.oldest_pending_age()
        assert age is not None
        assert age.total_seconds() >= 1.0

        os.kill(broker.pid, signal.SIGCONT)
        async with asyncio.timeout(60):
            while True:
                if not await relay.pending():
                    break
                await asyncio.sleep(0.2)
        published = await published_ids(kafka)
        assert list(dict.fromkeys(published)) == [str(e.event_id) for e in events]
        assert await relay.poisoned() == 0
        assert await relay.oldest_pending_age() is None
    finally:
        os.kill(broker.pid, signal.SIGCONT)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await publisher.stop()
        await broker.stop()


class PublishingSignal:
    """A publisher that says when a batch is first handed to it, then publishes it."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher
        self.started = asyncio.Event()

    async def publish(self, event: Envelope) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        self.started.set()
        await self._publisher.publish_many(events)


async def keep_relaying(relay: OutboxRelay) -> None:
    """Run the relay, restarting it after a failed pass (as the service runtime does)."""
    while True:
        try:
            await relay.run()
        except Exception:  # the broker is down: the pass failed, the rows stay pending
            await asyncio.sleep(0.2)


async def test_two_relays_on_one_database_lose_nothing_and_keep_the_order(
    database_url: str, engine: AsyncEngine, kafka_settings: KafkaSettings
) -> None:
    # Two relays as two replicas would run them: each with its engine and its producer.
    events = [registered(n) for n in range(1, 61)]
    await stage_each(session_factory(engine), events)
    engines = [create_engine(database_url) for _ in range(2)]
    publishers = [
        EventPublisher(kafka_broker(kafka_settings, client_id=f"relay-{n}"), kafka_settings)
        for n in range(2)
    ]
    for publisher in publishers:
        await publisher.start()
    relays = [
        OutboxRelay(session_factory(e), p, batch_size=7)
        for e, p in zip(engines, publishers, strict=True)
    ]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.pending():
            await relay.publish_pending()

    try:
        await asyncio.gather(*(drain(relay) for relay in relays))
    finally:
        for publisher in publishers:
            await publisher.stop()
        for each in engines:
            await each.dispose()
    published = await published_ids(kafka_settings)
    assert list(dict.fromkeys(published)) == [str(event.event_id) for event in events]
    if database_url.startswith("postgresql"):
        assert len(published) == len(events)  # one relay at a time: each event once


RELAY_TURN = (
    RELAY_TURN_LOCK >> 32,
    RELAY_TURN_LOCK & 0xFFFFFFFF,
)  # how pg_locks shows a bigint key


async def pending(sessions: Sessions) -> int:
    async with sessions() as session:
        query = select(func.count()).where(col(OutboxMessage.published_at).is_(None))
        return int((await session.exec(query)).one())


async def turn_holder(sessions: Sessions) -> str | None:
    """The ``application_name`` of the relay holding the relay's turn now, if any."""
    async with sessions() as session:
        connection = await session.connection()
        holder = await connection.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.classid = :high AND l.objid = :low"
                " AND l.database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"  # not other tests' relays
            ),
            {"high": RELAY_TURN[0], "low": RELAY_TURN[1]},
        )
        return holder.scalar_one_or_none()


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_two_relay_processes_fail_over_when_the_turn_holder_is_killed_and_keep_key_order(
    database_url: str, engine: AsyncEngine, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: one relay")
    sessions = session_factory(engine)
    models = [f"scale-{n}" for n in range(4)]
    names = ["relay-a", "relay-b"]
    relays: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        url = make_url(database_url).update_query_dict({"application_name": name})
        with (tmp_path / f"{name}.log").open("ab") as log:
            relays[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.runtime.relay_process",
                    url.render_as_string(hide_password=False),
                    kafka_settings.bootstrap_servers,
                    kafka_settings.topic_prefix,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    staged: list[ModelRegistered] = []

    async def stage_traffic(count: int) -> None:
        # Each model's versions in order, in transactions of their own, while the relays run.
        for _ in range(count):
            model = models[len(staged) % len(models)]
            version = len(staged) // len(models) + 1
            event = ModelRegistered(
                producer="retrainer",
                model=model,
                record=make_version_record(model=model, version=version),
            )
            await stage_each(sessions, [event])
            staged.append(event)
            await asyncio.sleep(0.005)

    async def kill_the_holder() -> str:
        async with asyncio.timeout(30):
            while True:
                if (holder := await turn_holder(sessions)) in relays:
                    break
                await asyncio.sleep(0.001)
        relays[holder].send_signal(signal.SIGKILL)  # mid-pass: it holds the turn now
        relays[holder].wait()
        return holder

    async def relaying(name: str) -> None:
        async with asyncio.timeout(180):  # a busy machine takes a while to import Vigil
            while True:
                if b"relaying" in (tmp_path / f"{name}.log").read_bytes():
                    break
                await asyncio.sleep(0.2)

    for name in names:
        start(name)
    try:
        await asyncio.gather(*(relaying(name) for name in names))
        await stage_traffic(60)
        killed = await kill_the_holder()
        await stage_traffic(60)  # the other relay alone publishes these
        start(killed)  # the killed replica comes back as a stand-by
        await relaying(killed)
        await stage_traffic(30)
        killed_again = await kill_the_holder()
        await stage_traffic(60)
        async with asyncio.timeout(60):
            while True:
                if not await pending(sessions):
                    break
                await asyncio.sleep(0.2)
    finally:
        for process in relays.values():
            process.kill()
            process.wait()
    assert killed_again in names
    records = await read_until_quiet(kafka_settings, Topic.MODELS, quiet_s=2.0)
    published = [json.loads(record.value)["event_id"] for record in records]
    expected = [str(event.event_id) for event in staged]
    assert sorted(set(published)) == sorted(expected)  # nothing lost, nothing invented
    # At least once: only a batch being published when its relay was killed goes out again, with
    # the same event ids (consumers discard them); two kills, at most two batches of 5.
    assert len(published) - len(expected) <= 10
    for model in models:
        on_key = [json.loads(r.value)["event_id"] for r in records if r.key == model.encode()]
        in_order = [str(e.event_id) for e in staged if e.model == model]
        assert list(dict.fromkeys(on_key)) == in_order, f"{model}: order broken"


async def test_a_service_reports_poison_and_pending_rows_on_its_metrics_endpoint(
    sessions: Sessions, kafka_settings: KafkaSettings
) -> None:
    runtime = ServiceRuntime(ServiceName.RETRAINER, ServiceSettings(kafka=kafka_settings))
    relay = runtime.outbox_relay(sessions)
    await stage_each(sessions, [unbuildable(1, float("inf"))])
    assert await relay.publish_pending() == 1  # set aside; nothing to publish
    await stage_each(sessions, [registered(2)])  # pending: the relay does not run here
    await asyncio.sleep(0.05)

    app = runtime.http_app(title="retrainer")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://retrainer"
    ) as client:
        exposition = (await client.get("/metrics")).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("vigil_outbox")
    }
    assert samples['vigil_outbox_poisoned_rows{service="retrainer"}'] == 1
    assert samples['vigil_outbox_pending_rows{service="retrainer"}'] == 1
    assert samples['vigil_outbox_oldest_pending_seconds{service="retrainer"}'] >= 0.05
    counted = 'vigil_outbox_poisoned_total{event_type="model.registered",reason="invalid",'
    assert samples[counted + 'service="retrainer"}'] == 1
