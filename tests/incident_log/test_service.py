"""The incident log as real processes on the real broker, with SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from contracts import AlertKind, IncidentOpened, Topic, alert_fingerprint
from contracts.wire import encode
from services.runtime import (
    EventPublisher,
    KafkaSettings,
    ServiceName,
    create_engine,
)
from tests.factories import MODEL, make_alert
from tests.kafka_tools import read_events, read_events_until_quiet, read_until_quiet, write_raw
from tests.polling import eventually
from tests.processes import ServiceProcess, kafka_env, process_maker

# Each test starts one or two served incident logs (60 s readiness deadline each) and waits on
# its own deadlines: 12-15 s alone, 45-60 s beside two other test workers on a slower machine,
# where the suite's 60 s default cut two of them short.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

ADMIN = "test-admin-token"
POLICY = Path(__file__).resolve().parents[2] / "runbooks" / "routing.yaml"


@pytest.fixture
def incident_log_process(
    kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    env = kafka_env(kafka_settings) | {
        "VIGIL_STATE_DIR": str(tmp_path / "state"),
        "VIGIL_INCIDENT_LOG_DATABASE_URL": database_url,
        "VIGIL_INCIDENT_LOG_POLICY_PATH": str(POLICY),
        "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": ADMIN,
    }
    with process_maker(env, tmp_path) as make:
        yield partial(make, ServiceName.INCIDENT_LOG)


async def incidents_via_api(process: ServiceProcess) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=process.url) as client:
        response = await client.get("/incidents", headers={"Authorization": f"Bearer {ADMIN}"})
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()
        return result


async def test_an_alert_on_kafka_becomes_an_incident_published_on_incidents(
    incident_log_process: Callable[..., ServiceProcess],
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
) -> None:
    service = incident_log_process()
    service.start()
    await service.wait_ready()
    alert = make_alert()
    await publisher.publish(alert)
    (record,) = await read_events(kafka_settings, Topic.INCIDENTS, count=1, timeout_s=30)
    opened = IncidentOpened.model_validate_json(record.value)
    assert opened.fingerprint == alert.fingerprint
    assert record.key == opened.incident_id.encode()
    (incident,) = await incidents_via_api(service)
    assert incident["id"] == opened.incident_id
    assert await service.stop() == 0


async def test_two_consumers_racing_on_one_fingerprint_open_one_incident(
    incident_log_process: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
) -> None:
    first, second = incident_log_process("first"), incident_log_process("second")
    first.start()
    second.start()
    await asyncio.gather(first.wait_ready(), second.wait_ready())
    await asyncio.sleep(3)  # both members joined the group and share the partitions
    copies = [make_alert(summary=f"copy {n}") for n in range(60)]
    # Same fingerprint on every partition, so both processes see it at the same time.
    await asyncio.gather(
        *(
            write_raw(
                kafka_settings,
                Topic.ALERTS,
                [alert.model_dump_json().encode() for alert in copies[partition::3]],
                partition=partition,
            )
            for partition in range(3)
        )
    )

    async def all_counted() -> bool:
        listed = await incidents_via_api(first)
        return sum(int(i["alert_count"]) for i in listed) == len(copies)  # type: ignore[call-overload]

    await eventually(all_counted, timeout_s=60, every_s=0.1)
    listed = await incidents_via_api(second)
    assert len(listed) == 1
    opened = {
        IncidentOpened.model_validate_json(record.value).event_id
        for record in await read_until_quiet(kafka_settings, Topic.INCIDENTS)
        if b"incident.opened" in record.value
    }
    # One opening. Two relays on one SQLite file may both publish it (ADR 0010: at least
    # once, the same event id, which consumers discard); on PostgreSQL one relay publishes.
    assert len(opened) == 1


async def test_killed_after_the_commit_and_before_the_publish_the_event_is_published_once(
    incident_log_process: Callable[..., ServiceProcess],
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
) -> None:
    silent = incident_log_process("no-relay", VIGIL_INCIDENT_LOG_RUN_OUTBOX_RELAY="false")
    silent.start()
    await silent.wait_ready()
    await publisher.publish(make_alert())

    async def committed() -> bool:
        return len(await incidents_via_api(silent)) == 1

    await eventually(committed, every_s=0.1)
    await silent.kill()
    assert await read_until_quiet(kafka_settings, Topic.INCIDENTS, quiet_s=1.0) == []

    relaying = incident_log_process("relay")
    relaying.start()
    await relaying.wait_ready()
    (record,) = await read_events(kafka_settings, Topic.INCIDENTS, count=1, timeout_s=30)
    assert b"incident.opened" in record.value
    assert len(await read_events_until_quiet(kafka_settings, Topic.INCIDENTS, quiet_s=2.0)) == 1
    assert len(await incidents_via_api(relaying)) == 1


async def test_an_alert_it_cannot_take_is_dead_lettered_and_opens_a_dead_letters_incident(
    incident_log_process: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
) -> None:
    service = incident_log_process()
    service.start()
    await service.wait_ready()
    broken = make_alert().model_dump_json().replace('"recall":0.81', '"recall":NaN')
    assert "NaN" in broken
    await write_raw(kafka_settings, Topic.ALERTS, [broken.encode()])
    fingerprint = (
        f"breast-cancer:v-:dead_letters:incident-log/{kafka_settings.topic_name(Topic.ALERTS)}"
    )

    async def opened() -> bool:
        return any(i["fingerprint"] == fingerprint for i in await incidents_via_api(service))

    await eventually(opened, every_s=0.1)
    (incident,) = await incidents_via_api(service)
    assert incident["model"] == "breast-cancer"
    assert await service.stop() == 0


async def test_killed_in_the_middle_of_a_backlog_every_alert_counts_once(
    incident_log_process: Callable[..., ServiceProcess],
    kafka_settings: KafkaSettings,
    database_url: str,
) -> None:
    """A backlog of alerts handled in big polls, one transaction each; SIGKILL while one is
    open, restart: every alert is counted once, every incident opened once."""
    versions = 30
    alerts = [
        make_alert(
            model_version=1 + n % versions,
            fingerprint=alert_fingerprint(MODEL, 1 + n % versions, AlertKind.METRIC_DECAY, "r"),
            summary=f"alert {n}",
        )
        for n in range(8_000)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(kafka_settings.topic_name(Topic.ALERTS), encode(alert))
            for alert in alerts
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    engine = create_engine(database_url)

    async def count(query: str) -> int:
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(text(query))).scalar_one())
        except DBAPIError:  # the tables are not there yet
            return 0

    # Polls of 250 (32 transactions): with the default 2,000 the whole backlog took four, and on
    # a loaded machine this test saw the first count only once all four were committed.
    first = incident_log_process("first", VIGIL_INCIDENT_LOG_CONSUMER_MAX_RECORDS="250")
    first.start()
    try:
        await eventually(
            lambda: _above(count("SELECT count(*) FROM alerts"), 0), timeout_s=60, every_s=0.05
        )
        await first.kill()
        assert await count("SELECT count(*) FROM alerts") < len(alerts)  # killed mid-backlog

        second = incident_log_process("second")
        second.start()
        await second.wait_ready()
        await eventually(
            lambda: _above(count("SELECT count(*) FROM alerts"), len(alerts) - 1),
            timeout_s=120,
            every_s=0.1,
        )
        assert await count("SELECT count(*) FROM incidents") == versions
        assert await count("SELECT sum(alert_count) FROM incidents") == len(alerts)
        assert await count("SELECT sum(occurrences) FROM signals") == len(alerts)
        assert await count("SELECT count(*) FROM timeline WHERE action = 'opened'") == versions
        assert (
            await count("SELECT count(*) FROM outbox WHERE event_type = 'incident.opened'")
            == versions
        )
        assert await count("SELECT count(*) FROM processed_events") == len(alerts)
        assert await second.stop() == 0
    finally:
        await engine.dispose()


async def _above(counted: Awaitable[int], floor: int) -> bool:
    return await counted > floor
