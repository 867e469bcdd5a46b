"""The event consumer's delivery rules without a broker: decode, dedupe, retry, dead-letter."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio
import pytest
from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker

from contracts import (
    AlertRaised,
    DeadLetterReason,
    Envelope,
    LabelRecorded,
    MessageDeadLettered,
    Topic,
)
from contracts.wire import encode, key_for
from services.runtime import (
    EventConsumer,
    KafkaProfile,
    KafkaSettings,
    Rejected,
    Rejection,
    RetryPolicy,
    ServiceMetrics,
)
from tests.factories import make_alert


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = b"k"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class InMemoryPublisher:
    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.fail = False

    async def publish(self, event: Envelope) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.published.append(event)

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        for event in events:
            await self.publish(event)

    @property
    def dead_letters(self) -> list[MessageDeadLettered]:
        return [e for e in self.published if isinstance(e, MessageDeadLettered)]


def make_consumer(publisher: InMemoryPublisher, prefix: str = "") -> EventConsumer:
    return EventConsumer(
        service="monitor",
        group_id="monitor",
        publisher=publisher,
        metrics=ServiceMetrics("monitor"),
        kafka=KafkaSettings(topic_prefix=prefix),
        retry=RetryPolicy(attempts=3, first_delay_s=0, backoff_initial_s=0.001, backoff_max_s=0.01),
    )


def records(*events: Envelope | bytes, topic: str = "alerts") -> list[FakeRecord]:
    return [
        FakeRecord(
            topic=topic,
            partition=0,
            offset=offset,
            value=item if isinstance(item, bytes) else encode(item),
            key=None if isinstance(item, bytes) else key_for(item),
        )
        for offset, item in enumerate(events)
    ]


def kept_alerts(consumer: EventConsumer) -> list[AlertRaised]:
    """Give ``consumer`` an alert handler that only keeps what it is handed; return that list."""
    kept: list[AlertRaised] = []

    async def on_alert(alert: AlertRaised) -> None:
        kept.append(alert)

    consumer.on(AlertRaised, on_alert)
    return kept


async def test_handlers_receive_decoded_events_in_record_order() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    seen = kept_alerts(consumer)
    alerts = [make_alert(summary=f"alert {n}") for n in range(3)]
    await consumer.handle(records(*alerts))
    assert seen == alerts
    assert consumer.topics == [Topic.ALERTS]


async def test_invalid_and_undecodable_records_are_dead_lettered_with_their_bytes() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    handled = kept_alerts(consumer)
    bad_json = b"{not json"
    wrong = json.dumps(json.loads(encode(make_alert())) | {"severity": "urgent"}).encode()
    good = make_alert()
    await consumer.handle(records(bad_json, wrong, good))

    assert handled == [good]
    first, second = publisher.dead_letters
    assert (first.reason, first.offset) == (DeadLetterReason.UNDECODABLE, 0)
    assert "not JSON" in first.error
    assert base64.b64decode(first.original_value_b64) == bad_json
    assert (second.reason, second.offset) == (DeadLetterReason.INVALID, 1)
    assert "severity" in second.error
    assert second.original_topic == "alerts"
    assert second.consumer_group == "monitor"


async def test_records_on_a_topic_outside_the_prefix_are_dead_lettered() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher, prefix="prod.")

    async def on_alert(alert: AlertRaised) -> None:
        raise AssertionError("must not be called")

    consumer.on(AlertRaised, on_alert)
    await consumer.handle(records(make_alert(), topic="staging.alerts"))
    (letter,) = publisher.dead_letters
    assert "outside prefix" in letter.error or "no Vigil contract" in letter.error


async def test_a_redelivered_event_id_is_handled_once() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    handled = kept_alerts(consumer)
    alert = make_alert()
    await consumer.handle(records(alert, alert))
    await consumer.handle(records(alert))
    assert handled == [alert]


async def test_event_types_without_a_handler_are_skipped_silently() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)

    async def on_label(label: LabelRecorded) -> None:
        raise AssertionError("no labels here")

    consumer.on(LabelRecorded, on_label)
    recovered = json.loads(encode(make_alert())) | {"type": "alert.recovered"}
    await consumer.handle(records(json.dumps(recovered).encode()))
    assert publisher.published == []


async def test_a_failing_handler_is_retried_then_dead_lettered_and_the_next_event_handled() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    attempts: dict[str, int] = {}
    handled: list[str] = []

    async def on_alert(alert: AlertRaised) -> None:
        attempts[alert.summary] = attempts.get(alert.summary, 0) + 1
        if alert.summary == "poison":
            raise RuntimeError("cannot handle this one")
        handled.append(alert.summary)

    consumer.on(AlertRaised, on_alert)
    await consumer.handle(records(make_alert(summary="poison"), make_alert(summary="fine")))
    assert attempts == {"poison": 3, "fine": 1}
    assert handled == ["fine"]
    (letter,) = publisher.dead_letters
    assert letter.reason is DeadLetterReason.HANDLER_FAILED
    assert letter.error == "RuntimeError: cannot handle this one"


async def test_a_transient_failure_succeeds_on_retry_without_a_dead_letter() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    calls = 0

    async def on_alert(alert: AlertRaised) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database restarting")

    consumer.on(AlertRaised, on_alert)
    await consumer.handle(records(make_alert()))
    assert calls == 2
    assert publisher.dead_letters == []


async def test_a_batch_handler_gets_runs_and_a_poison_event_cannot_sink_its_batch() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    batches: list[list[str]] = []

    async def on_alerts(alerts: list[AlertRaised]) -> None:
        if any(alert.summary == "poison" for alert in alerts):
            raise ValueError("bad alert in batch")
        batches.append([alert.summary for alert in alerts])

    consumer.on_batch(AlertRaised, on_alerts)
    await consumer.handle(records(*(make_alert(summary=s) for s in ["a", "poison", "b"])))
    assert batches == [["a"], ["b"]]
    (letter,) = publisher.dead_letters
    assert letter.offset == 1

    batches.clear()
    await consumer.handle(records(*(make_alert(summary=s) for s in ["c", "d"])))
    assert batches == [["c", "d"]]


async def test_when_the_dead_letter_cannot_be_written_the_batch_fails_so_it_is_redelivered() -> (
    None
):
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)

    async def on_alert(alert: AlertRaised) -> None:
        pass

    consumer.on(AlertRaised, on_alert)
    publisher.fail = True
    with pytest.raises(ConnectionError):
        await consumer.handle(records(b"garbage"))


def test_a_type_can_have_one_handler_only() -> None:
    consumer = make_consumer(InMemoryPublisher())

    async def on_alert(alert: AlertRaised) -> None:
        pass

    consumer.on(AlertRaised, on_alert)
    with pytest.raises(ValueError, match="already has a handler"):
        consumer.on(AlertRaised, on_alert)


async def test_a_rejected_event_is_dead_lettered_as_invalid_without_retries() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    calls = 0

    async def on_alert(alert: AlertRaised) -> None:
        nonlocal calls
        calls += 1
        raise Rejected(f"unknown model {alert.model!r}")

    consumer.on(AlertRaised, on_alert)
    await consumer.handle(records(make_alert()))
    assert calls == 1
    (letter,) = publisher.dead_letters
    assert letter.reason is DeadLetterReason.INVALID
    assert letter.error == "unknown model 'breast-cancer'"


async def test_a_batch_handler_can_refuse_single_events_of_its_batch() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    accepted: list[str] = []

    async def on_alerts(alerts: list[AlertRaised]) -> list[Rejection]:
        refused = [
            Rejection(a.event_id, f"no good: {a.summary}") for a in alerts if "bad" in a.summary
        ]
        accepted.extend(a.summary for a in alerts if "bad" not in a.summary)
        return refused

    consumer.on_batch(AlertRaised, on_alerts)
    await consumer.handle(records(*(make_alert(summary=s) for s in ["a", "bad one", "b"])))
    assert accepted == ["a", "b"]
    (letter,) = publisher.dead_letters
    assert (letter.offset, letter.reason, letter.error) == (
        1,
        DeadLetterReason.INVALID,
        "no good: bad one",
    )


async def test_a_dead_lettered_event_replayed_after_a_fix_is_handled() -> None:
    publisher = InMemoryPublisher()
    consumer = make_consumer(publisher)
    broken = True
    handled: list[AlertRaised] = []

    async def on_alert(alert: AlertRaised) -> None:
        if broken:
            raise RuntimeError("bug")
        handled.append(alert)

    consumer.on(AlertRaised, on_alert)
    alert = make_alert()
    await consumer.handle(records(alert))
    assert len(publisher.dead_letters) == 1
    broken = False
    await consumer.handle(records(alert))  # the replay: same event id
    assert handled == [alert]


class RebalancedConsumer:
    """An aiokafka consumer as a handled batch finds it after a rebalance: partition 0 revoked
    (``highwater`` asserts on it, as aiokafka does), partition 1 still assigned."""

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("alerts", 1)}

    def highwater(self, partition: TopicPartition) -> int:
        assert partition in self.assignment(), "Partition is not assigned"
        return 10


def test_lag_is_reported_only_for_partitions_still_assigned_after_the_batch() -> None:
    consumer = make_consumer(InMemoryPublisher())
    batch = [*records(make_alert()), FakeRecord("alerts", 1, 4, b"{}")]
    consumer._report_lag(batch, RebalancedConsumer())  # the revoked partition is skipped
    lag = consumer._metrics.lag.labels("monitor", "alerts", "1")._value.get()
    assert lag == 5


class FakeFetcher:
    """aiokafka's fetcher as far as the consumer touches it: the wait of its next fetch."""

    def __init__(self, wait_ms: int) -> None:
        self._fetch_max_wait_ms = wait_ms


class IdleThenBusyConsumer:
    """An aiokafka consumer whose first polls find nothing; it counts the polls and notes the
    fetch wait each one started with."""

    def __init__(self, empty_polls: int, records: list[FakeRecord]) -> None:
        self.empty_polls = empty_polls
        self.records = records
        self.polls: list[tuple[int, int]] = []  # (timeout_ms, max_records) of each poll
        self._fetcher = FakeFetcher(wait_ms=20)
        self.fetch_waits: list[int | None] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[object, list[FakeRecord]]:
        self.polls.append((timeout_ms, max_records))
        self.fetch_waits.append(getattr(self._fetcher, "_fetch_max_wait_ms", None))
        if len(self.polls) <= self.empty_polls:
            return {}
        return {TopicPartition("alerts", 0): self.records}


async def test_an_empty_poll_is_followed_by_the_next_poll_not_by_a_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FastStream's own loop sleeps for the poll timeout after an empty poll, so an event that
    arrives meanwhile waits; the subscriber the consumer registers polls again at once. Run
    through FastStream's consume loop, so a FastStream that stopped calling the replaced poll
    fails here."""
    consumer = make_consumer(InMemoryPublisher())

    async def handle(event: AlertRaised) -> None: ...

    consumer.on(AlertRaised, handle)
    subscriber = consumer.subscribe(KafkaBroker("127.0.0.1:9"), max_records=123)
    record = FakeRecord("alerts", 0, 7, encode(make_alert()))
    kafka = IdleThenBusyConsumer(empty_polls=3, records=[record])
    handed: list[object] = []

    async def consume_one(message: object) -> None:
        handed.append(message)
        subscriber.running = False  # stopping: the loop ends without another poll

    async def no_pause(seconds: float) -> None:
        raise AssertionError(f"paused {seconds} s after an empty poll")

    monkeypatch.setattr(anyio, "sleep", no_pause)  # what FastStream's loop pauses with
    subscriber.consume_one = consume_one
    subscriber.running = True
    await asyncio.wait_for(subscriber._run_consume_loop(kafka), 5)

    assert handed == [(record,)]  # the first poll with records, after three empty ones
    assert [max_records for _, max_records in kafka.polls] == [123] * 4


async def run_polls(consumer: EventConsumer, kafka: IdleThenBusyConsumer, batches: int) -> None:
    """Run FastStream's consume loop over ``kafka`` until ``batches`` batches were handed on."""
    subscriber = consumer.subscribe(KafkaBroker("127.0.0.1:9"))
    handed: list[object] = []

    async def consume_one(message: object) -> None:
        handed.append(message)
        if len(handed) == batches:
            subscriber.running = False

    subscriber.consume_one = consume_one
    subscriber.running = True
    await asyncio.wait_for(subscriber._run_consume_loop(kafka), 5)


async def test_an_idle_consumer_fetches_with_the_idle_wait_until_records_come() -> None:
    """The embedded broker answers short fetches by polling, which costs CPU while nothing comes:
    after a whole poll found nothing, fetches wait 100 ms; the first records set 20 ms again."""
    consumer = make_consumer(InMemoryPublisher())

    async def handle(event: AlertRaised) -> None: ...

    consumer.on(AlertRaised, handle)
    kafka = IdleThenBusyConsumer(empty_polls=2, records=[FakeRecord("alerts", 0, 7, b"{}")])
    await run_polls(consumer, kafka, batches=2)

    # Busy at first; idle after the first empty poll; busy again from the poll that found records.
    assert kafka.fetch_waits == [20, 100, 100, 20]
    assert kafka._fetcher._fetch_max_wait_ms == 20


async def test_a_consumer_of_the_production_profile_keeps_its_fetch_wait_when_idle() -> None:
    """Kafka wakes a waiting fetch when records arrive: an idle fetch costs nothing there."""
    consumer = EventConsumer(
        service="monitor",
        group_id="monitor",
        publisher=InMemoryPublisher(),
        metrics=ServiceMetrics("monitor"),
        kafka=KafkaSettings(profile=KafkaProfile.PRODUCTION),
    )

    async def handle(event: AlertRaised) -> None: ...

    consumer.on(AlertRaised, handle)
    kafka = IdleThenBusyConsumer(empty_polls=2, records=[FakeRecord("alerts", 0, 7, b"{}")])
    await run_polls(consumer, kafka, batches=1)

    assert kafka.fetch_waits == [20, 20, 20]


async def test_a_consumer_whose_fetcher_has_no_wait_to_set_polls_as_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If aiokafka's fetcher ever loses the attribute, the wait stays as configured, said once."""
    consumer = make_consumer(InMemoryPublisher())

    async def handle(event: AlertRaised) -> None: ...

    consumer.on(AlertRaised, handle)
    kafka = IdleThenBusyConsumer(empty_polls=2, records=[FakeRecord("alerts", 0, 7, b"{}")])
    del kafka._fetcher._fetch_max_wait_ms
    await run_polls(consumer, kafka, batches=2)

    assert kafka.fetch_waits == [None, None, None, None]
    assert caplog.text.count("cannot slow an idle consumer's fetches") == 1
