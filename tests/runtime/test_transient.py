"""Transient failures in the consumer, without a broker: held, retried, never dead-lettered."""

from __future__ import annotations

import asyncio
import errno
import random

import pytest
from prometheus_client import generate_latest
from sqlalchemy import exc as sa

from contracts import AlertRaised, DeadLetterReason
from services.runtime import (
    EventConsumer,
    KafkaSettings,
    RetryPolicy,
    ServiceMetrics,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
    StillUnavailable,
)
from tests.factories import make_alert
from tests.runtime.test_consumer import InMemoryPublisher, records

FAST = RetryPolicy(first_delay_s=0, backoff_initial_s=0.001, backoff_max_s=0.005, hold_s=30)


def database_down() -> sa.OperationalError:
    return sa.OperationalError(
        "INSERT INTO incidents ...", {}, ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    )


def make_consumer(
    publisher: InMemoryPublisher, retry: RetryPolicy = FAST, metrics: ServiceMetrics | None = None
) -> EventConsumer:
    return EventConsumer(
        service="incident-log",
        group_id="incident-log",
        publisher=publisher,
        metrics=metrics or ServiceMetrics("incident-log"),
        kafka=KafkaSettings(),
        retry=retry,
        rng=random.Random(1),
    )


def sample(metrics: ServiceMetrics, line: str) -> float:
    for entry in generate_latest(metrics.registry).decode().splitlines():
        if entry.startswith(line + " "):
            return float(entry.split()[-1])
    raise AssertionError(f"{line} not exposed")


async def test_a_database_outage_holds_the_event_until_it_succeeds_once_and_nothing_is_lost() -> (
    None
):
    publisher = InMemoryPublisher()
    metrics = ServiceMetrics("incident-log")
    consumer = make_consumer(publisher, metrics=metrics)
    failures_left = 25
    handled: list[str] = []
    five_failed = asyncio.Event()

    async def on_alert(alert: AlertRaised) -> None:
        nonlocal failures_left
        if alert.summary == "during the outage" and failures_left:
            failures_left -= 1
            if failures_left == 20:
                five_failed.set()
            raise database_down()
        handled.append(alert.summary)

    consumer.on(AlertRaised, on_alert)
    batch = records(*(make_alert(summary=s) for s in ["before", "during the outage", "after"]))
    handling = asyncio.create_task(consumer.handle(batch))
    await asyncio.wait_for(five_failed.wait(), 5)
    # Blocked: the batch is not returned (so not committed), the next event waits its turn.
    assert not handling.done()
    assert handled == ["before"]
    blocked = consumer.blocked
    assert blocked is not None
    assert blocked.topic == "alerts"
    assert "OperationalError" in blocked.error
    assert "blocked on a transient failure since" in blocked.describe()
    assert sample(metrics, 'vigil_consumer_blocked{service="incident-log"}') == 1
    since = 'vigil_consumer_blocked_since_timestamp_seconds{service="incident-log"}'
    assert sample(metrics, since) == pytest.approx(blocked.since.timestamp())

    await asyncio.wait_for(handling, 10)
    assert handled == ["before", "during the outage", "after"]
    assert publisher.dead_letters == []
    assert consumer.blocked is None
    assert sample(metrics, 'vigil_consumer_blocked{service="incident-log"}') == 0
    assert sample(metrics, since) == 0
    transient = 'vigil_handler_transient_failures_total{service="incident-log",topic="alerts"}'
    assert sample(metrics, transient) == 25
    assert "vigil_handler_failures_total{" not in generate_latest(metrics.registry).decode()


async def test_a_poison_error_is_still_dead_lettered_after_the_short_retries() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    calls = 0

    async def on_alert(alert: AlertRaised) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("severity")

    consumer.on(AlertRaised, on_alert)
    await asyncio.wait_for(consumer.handle(records(make_alert())), 5)
    assert calls == FAST.attempts
    (letter,) = publisher.dead_letters
    assert letter.reason is DeadLetterReason.HANDLER_FAILED
    assert letter.error == "KeyError: 'severity'"
    assert consumer.blocked is None


async def test_a_poison_error_after_an_outage_ends_the_blocked_state_and_is_dead_lettered() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    calls = 0

    async def on_alert(alert: AlertRaised) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise database_down()
        raise TypeError("handler bug")

    consumer.on(AlertRaised, on_alert)
    await asyncio.wait_for(consumer.handle(records(make_alert())), 5)
    assert calls == 3 + FAST.attempts
    (letter,) = publisher.dead_letters
    assert letter.error == "TypeError: handler bug"
    assert consumer.blocked is None


async def test_a_batch_handler_on_an_outage_retries_the_whole_batch_without_splitting_it() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    calls: list[list[str]] = []

    async def on_alerts(alerts: list[AlertRaised]) -> None:
        calls.append([alert.summary for alert in alerts])
        if len(calls) <= 4:
            raise TimeoutError("pool checkout timed out")

    consumer.on_batch(AlertRaised, on_alerts)
    await asyncio.wait_for(consumer.handle(records(*(make_alert(summary=s) for s in "abc"))), 5)
    assert calls == [["a", "b", "c"]] * 5
    assert publisher.dead_letters == []


async def test_a_batch_held_too_long_is_given_back_and_its_redelivery_repeats_nothing() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(
        publisher,
        RetryPolicy(first_delay_s=0, backoff_initial_s=0.01, backoff_max_s=0.02, hold_s=0.1),
    )
    handled: list[str] = []
    database_up = False

    async def on_alert(alert: AlertRaised) -> None:
        if alert.summary == "stuck" and not database_up:
            raise database_down()
        handled.append(alert.summary)

    consumer.on(AlertRaised, on_alert)
    batch = records(
        make_alert(summary="first"), b"{not json", make_alert(summary="stuck"), b"nor this"
    )
    with pytest.raises(StillUnavailable, match="blocked on a transient failure since"):
        await asyncio.wait_for(consumer.handle(batch), 5)
    blocked = consumer.blocked
    assert blocked is not None
    # Both bad records were dead-lettered in the first pass; the batch was not committed.
    assert [letter.offset for letter in publisher.dead_letters] == [1, 3]

    with pytest.raises(StillUnavailable):  # polled again, still down: the same outage
        await asyncio.wait_for(consumer.handle(batch), 5)
    again = consumer.blocked
    assert again is not None
    assert again.since == blocked.since
    assert again.failures > blocked.failures

    database_up = True
    await asyncio.wait_for(consumer.handle(batch), 5)
    assert handled == ["first", "stuck"]
    assert [letter.offset for letter in publisher.dead_letters] == [1, 3]
    assert consumer.blocked is None

    await consumer.handle(records(b"{not json"))  # committed since: a new record at offset 0
    assert [letter.offset for letter in publisher.dead_letters] == [1, 3, 0]


async def test_stopping_gives_a_held_batch_back_at_once() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(
        publisher, RetryPolicy(backoff_initial_s=20, backoff_max_s=20, hold_s=60)
    )

    failed = asyncio.Event()

    async def on_alert(alert: AlertRaised) -> None:
        failed.set()  # the consumer marks itself blocked before it next yields
        raise database_down()

    consumer.on(AlertRaised, on_alert)
    handling = asyncio.create_task(consumer.handle(records(make_alert())))
    await asyncio.wait_for(failed.wait(), 5)
    assert consumer.blocked is not None
    consumer.stop_waiting()
    with pytest.raises(StillUnavailable, match="stopping"):
        await asyncio.wait_for(handling, 2)
    assert publisher.dead_letters == []


async def test_readiness_names_the_failing_check_and_the_blocked_consumer() -> None:
    runtime = ServiceRuntime(
        ServiceName.INCIDENT_LOG,
        ServiceSettings(consumer_backoff_initial_s=0.001, consumer_backoff_max_s=0.001),
    )
    database_up = False

    async def database() -> None:
        if not database_up:
            raise database_down()

    async def hangs() -> None:
        await asyncio.sleep(3600)

    runtime.add_readiness_check("database", database)
    runtime.add_readiness_check("search", hangs)
    with pytest.raises(ValueError, match="already exists"):
        runtime.add_readiness_check("database", database)

    failed = asyncio.Event()

    async def on_alert(alert: AlertRaised) -> None:
        if not database_up:
            failed.set()
            raise database_down()

    runtime.consumer.on(AlertRaised, on_alert)
    handling = asyncio.create_task(runtime.consumer.handle(records(make_alert())))
    await asyncio.wait_for(failed.wait(), 5)

    checks = await asyncio.wait_for(runtime.readiness(), 3)
    assert checks["database"].startswith("OperationalError")
    assert checks["search"] == "no answer within 1 s"
    assert checks["consumer"].startswith("blocked on a transient failure since")

    database_up = True
    await asyncio.wait_for(handling, 5)
    checks = await runtime.readiness()
    assert (checks["database"], checks["consumer"]) == ("ok", "ok")
