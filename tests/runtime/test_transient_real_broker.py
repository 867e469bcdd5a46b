"""Transient failures on the real broker: the held event's offset is not committed, a batch held
too long is given back and polled again, and nothing is dead-lettered or handled twice."""

from __future__ import annotations

import asyncio
import errno

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import exc as sa

from contracts import AlertKind, AlertRaised, MessageDeadLettered, Topic
from services.runtime import KafkaSettings, ServiceName, ServiceRuntime, ServiceSettings
from tests.factories import make_alert
from tests.kafka_tools import read_until_quiet, write_raw
from tests.polling import eventually

pytestmark = pytest.mark.integration


def make_runtime(kafka: KafkaSettings, unique: str, **settings: float) -> ServiceRuntime:
    return ServiceRuntime(
        ServiceName.INCIDENT_LOG,
        ServiceSettings(kafka=kafka, **settings),  # type: ignore[arg-type]
        group_id=f"test-{unique}",
    )


def database_down() -> sa.OperationalError:
    return sa.OperationalError("SELECT 1", {}, ConnectionRefusedError(errno.ECONNREFUSED, "down"))


async def committed_offset(kafka: KafkaSettings, group: str) -> int:
    """The group's committed offset on partition 0 of the alerts topic (-1: none yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        partition = TopicPartition(kafka.topic_name(Topic.ALERTS), 0)
        offsets = await admin.list_consumer_group_offsets(group, partitions=[partition])
        found = offsets.get(partition)
        return -1 if found is None else found.offset
    finally:
        await admin.close()


async def test_while_a_handler_waits_out_an_outage_its_offset_is_not_committed(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    runtime = make_runtime(
        kafka_settings, unique, consumer_backoff_initial_s=0.05, consumer_backoff_max_s=0.2
    )
    group = kafka_settings.group_name(f"test-{unique}")
    database_up = False
    handled: list[str] = []

    async def on_alert(alert: AlertRaised) -> None:
        if alert.summary == "during" and not database_up:
            raise database_down()
        handled.append(alert.summary)

    runtime.consumer.on(AlertRaised, on_alert)
    alerts = [make_alert(summary=s) for s in ["before", "during", "after"]]
    offsets = await write_raw(
        kafka_settings, Topic.ALERTS, [alert.model_dump_json().encode() for alert in alerts]
    )

    async with runtime.running():
        await eventually(lambda: runtime.consumer.blocked is not None, timeout_s=20, every_s=0.02)
        await asyncio.sleep(1.5)  # well past a commit, had the batch been returned
        assert handled == ["before"]
        assert await committed_offset(kafka_settings, group) <= offsets[1]
        checks = await runtime.readiness()
        assert checks["consumer"].startswith("blocked on a transient failure since")

        database_up = True
        await eventually(lambda: len(handled) == 3, timeout_s=20, every_s=0.02)
        assert (await runtime.readiness())["consumer"] == "ok"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await committed_offset(kafka_settings, group) != offsets[-1] + 1:
            assert loop.time() < deadline, "offsets never committed after the outage"
            await asyncio.sleep(0.1)

    assert handled == ["before", "during", "after"]
    assert await read_until_quiet(kafka_settings, Topic.DEAD_LETTER, quiet_s=1.0) == []


@pytest.mark.timeout(60)
async def test_a_batch_held_past_the_hold_time_is_polled_again_and_repeats_nothing(
    kafka_settings: KafkaSettings, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = make_runtime(
        kafka_settings,
        unique,
        consumer_backoff_initial_s=0.05,
        consumer_backoff_max_s=0.1,
        consumer_hold_s=0.3,
    )
    database_up = False
    attempts: dict[str, int] = {}
    handled: list[str] = []

    async def on_alert(alert: AlertRaised) -> None:
        if alert.kind is AlertKind.DEAD_LETTERS:
            return  # the runtime's own alert about the "{not json" record
        attempts[alert.summary] = attempts.get(alert.summary, 0) + 1
        if alert.summary == "during" and not database_up:
            raise database_down()
        handled.append(alert.summary)

    runtime.consumer.on(AlertRaised, on_alert)
    await write_raw(
        kafka_settings,
        Topic.ALERTS,
        [
            make_alert(summary="before").model_dump_json().encode(),
            b"{not json",
            make_alert(summary="during").model_dump_json().encode(),
            make_alert(summary="after").model_dump_json().encode(),
        ],
    )

    async with runtime.running():
        await eventually(lambda: attempts.get("during", 0) >= 1, timeout_s=20, every_s=0.02)

        def given_back() -> int:
            return sum("gives its batch back" in r.getMessage() for r in caplog.records)

        # Several holds of 0.3 s: the batch went back and came again (each round also waits for
        # a fetch from the broker, seconds on a loaded machine: polled for, not slept for).
        await eventually(given_back, lambda n: n >= 2, timeout_s=30, every_s=0.05)
        assert handled == ["before"]
        assert runtime.consumer.blocked is not None
        database_up = True
        await eventually(lambda: len(handled) == 3, timeout_s=20, every_s=0.02)

    assert handled == ["before", "during", "after"]
    assert (attempts["before"], attempts["after"]) == (1, 1)
    letters = [
        MessageDeadLettered.model_validate_json(record.value)
        for record in await read_until_quiet(kafka_settings, Topic.DEAD_LETTER, quiet_s=1.0)
    ]
    assert [letter.offset for letter in letters] == [1]


async def test_stopping_while_blocked_gives_the_batch_back_at_once_uncommitted(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    runtime = make_runtime(
        kafka_settings, unique, consumer_backoff_initial_s=30, consumer_backoff_max_s=30
    )
    group = kafka_settings.group_name(f"test-{unique}")

    async def on_alert(alert: AlertRaised) -> None:
        raise database_down()

    runtime.consumer.on(AlertRaised, on_alert)
    (offset,) = await write_raw(
        kafka_settings, Topic.ALERTS, [make_alert().model_dump_json().encode()]
    )
    loop = asyncio.get_running_loop()
    async with runtime.running():
        await eventually(lambda: runtime.consumer.blocked is not None, timeout_s=20, every_s=0.02)
        stopping = loop.time()
    assert loop.time() - stopping < 10  # not the 30 s backoff, nor the broker's graceful timeout
    assert await committed_offset(kafka_settings, group) <= offset
    assert await read_until_quiet(kafka_settings, Topic.DEAD_LETTER, quiet_s=1.0) == []
