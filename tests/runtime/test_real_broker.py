"""The runtime's delivery rules against the real broker: round trip, dead letters, idempotency."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.protocol.fetch import FetchRequest
from prometheus_client import generate_latest

from contracts import (
    TOPICS,
    AlertKind,
    AlertRaised,
    Envelope,
    LabelRecorded,
    MessageDeadLettered,
    Topic,
)
from contracts.wire import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_PRODUCER,
    HEADER_SCHEMA_VERSION,
    decode,
)
from services.runtime import (
    KafkaSettings,
    Rejected,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
)
from services.runtime.kafka import consumer_options, idle_fetch_max_wait_ms
from tests.factories import make_alert, sample_events
from tests.kafka_tools import read_topic, read_until, read_until_quiet, write_raw
from tests.polling import eventually

pytestmark = pytest.mark.integration


def make_runtime(
    kafka: KafkaSettings, unique: str, *, alert_interval_s: float = 60.0
) -> ServiceRuntime:
    return ServiceRuntime(
        ServiceName.SCORER,
        ServiceSettings(kafka=kafka, dead_letter_alert_interval_s=alert_interval_s),
        group_id=f"test-{unique}",
    )


def collect_into(
    sink: list[Envelope], done: asyncio.Event, expected: int
) -> Callable[[Envelope], Awaitable[None]]:
    async def handler(event: Envelope) -> None:
        sink.append(event)
        if len(sink) >= expected:
            done.set()

    return handler


async def test_every_event_type_round_trips_with_documented_key_and_headers(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    events = sample_events()
    runtime = make_runtime(kafka_settings, unique)
    received: list[Envelope] = []
    done = asyncio.Event()
    for event_type in {type(event) for event in events}:
        runtime.consumer.on(event_type, collect_into(received, done, len(events)))

    async with runtime.running():
        await runtime.publisher.publish_many(events)
        await asyncio.wait_for(done.wait(), 30)

    by_id = {event.event_id: event for event in received}
    assert len(received) == len(events)
    exposition = generate_latest(runtime.metrics.registry).decode()
    alerts_topic = kafka_settings.topic_name(Topic.ALERTS)
    handled = f'vigil_messages_handled_total{{service="scorer",topic="{alerts_topic}"}} 2.0'
    assert handled in exposition
    assert "vigil_consumer_lag{" in exposition
    assert "vigil_handler_seconds_bucket{" in exposition
    for sent in events:
        assert by_id[sent.event_id] == sent, sent.type

    for spec in TOPICS.values():
        expected = [event for event in events if type(event) in spec.events]
        records = await read_topic(kafka_settings, spec.topic, count=len(expected))
        for record in records:
            event = next(
                e
                for e in expected
                if str(e.event_id) == dict(record.headers)[HEADER_EVENT_ID].decode()
            )
            headers = {name: value.decode() for name, value in record.headers}
            assert record.key == str(getattr(event, spec.key_field)).encode()
            assert headers["content-type"] == "application/json"
            assert headers[HEADER_EVENT_TYPE] == event.type
            assert headers[HEADER_SCHEMA_VERSION] == "1"
            assert headers[HEADER_PRODUCER] == event.producer
            assert headers["correlation_id"] == (event.correlation_id or str(event.event_id))


def _bad_messages(event: Envelope, key_field: str) -> list[tuple[bytes, str]]:
    """Three broken versions of a valid event, with a fragment of the error each must produce."""
    document = json.loads(event.model_dump_json())
    missing = {k: v for k, v in document.items() if k != key_field}
    wrong_type = document | {key_field: [[1]]}
    return [
        (b"\x00not json{", "not JSON"),
        (json.dumps(missing).encode(), f"{key_field}: Field required"),
        (json.dumps(wrong_type).encode(), f"{key_field}: Input should be"),
    ]


async def test_bad_messages_on_every_subscribed_topic_are_dead_lettered_and_the_next_is_handled(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    samples = {type(event): event for event in sample_events()}
    subscribed = [spec for spec in TOPICS.values() if spec.topic is not Topic.DEAD_LETTER]
    runtime = make_runtime(kafka_settings, unique)
    handled: dict[str, list[Envelope]] = defaultdict(list)
    done = asyncio.Event()

    async def handler(event: Envelope) -> None:
        if isinstance(event, AlertRaised) and event.kind is AlertKind.DEAD_LETTERS:
            return  # the runtime's own alert about these dead letters (tested below)
        handled[event.type].append(event)
        if len(handled) == len(subscribed):
            done.set()

    sent: dict[Topic, list[tuple[int, bytes, str]]] = {}
    valid: dict[Topic, Envelope] = {}
    for spec in subscribed:
        event = samples[spec.events[0]]
        runtime.consumer.on(spec.events[0], handler)
        bad = _bad_messages(event, spec.key_field)
        offsets = await write_raw(
            kafka_settings,
            spec.topic,
            [value for value, _ in bad] + [event.model_dump_json().encode()],
        )
        sent[spec.topic] = [
            (offset, value, fragment)
            for offset, (value, fragment) in zip(offsets, bad, strict=False)
        ]
        valid[spec.topic] = event

    async with runtime.running():
        await asyncio.wait_for(done.wait(), 30)

    records = await read_topic(kafka_settings, Topic.DEAD_LETTER, count=3 * len(subscribed))
    letters = [MessageDeadLettered.model_validate_json(record.value) for record in records]
    for spec in subscribed:
        assert [e.event_id for e in handled[spec.events[0].model_fields["type"].default]] == [
            valid[spec.topic].event_id
        ]
        mine = sorted(
            (
                letter
                for letter in letters
                if letter.original_topic == kafka_settings.topic_name(spec.topic)
            ),
            key=lambda letter: letter.offset,
        )
        assert len(mine) == 3, spec.topic
        for letter, (offset, value, fragment) in zip(mine, sent[spec.topic], strict=True):
            assert letter.partition == 0
            assert letter.offset == offset
            assert base64.b64decode(letter.original_value_b64) == value
            assert fragment in letter.error, letter.error
            assert letter.consumer_group == kafka_settings.group_name(f"test-{unique}")
    dead_keys = {record.key for record in records}
    assert dead_keys == {kafka_settings.topic_name(spec.topic).encode() for spec in subscribed}


async def test_the_same_event_id_delivered_twice_is_handled_once(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    alert = make_alert()
    other = make_alert(summary="another alert")
    last = make_alert(summary="the last alert")
    runtime = make_runtime(kafka_settings, unique)
    received: list[Envelope] = []
    done = asyncio.Event()
    runtime.consumer.on(type(alert), collect_into(received, done, 2))

    async with runtime.running():
        await runtime.publisher.publish(alert)
        await runtime.publisher.publish(alert)
        await runtime.publisher.publish(other)
        await asyncio.wait_for(done.wait(), 30)
        await runtime.publisher.publish(alert)  # again, after the others were handled
        # One key, one partition: once the last alert is handled, the copy before it was
        # taken or skipped (a fixed sleep passed unseen when the consumer lagged behind it).
        await runtime.publisher.publish(last)
        await eventually(lambda: len(received) >= 3, timeout_s=30, what="the last alert")

    assert [event.event_id for event in received] == [alert.event_id, other.event_id, last.event_id]


async def test_an_idle_consumer_fetches_with_the_idle_wait_and_hears_of_the_next_event(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    """aiokafka's real fetcher, not a fake: once a poll found nothing, the fetch requests it sends
    carry the idle wait; the next event is handled, and the requests carry the short wait again.
    Read from the requests themselves, so an aiokafka that kept the wait elsewhere fails here."""
    idle_wait = idle_fetch_max_wait_ms(kafka_settings.profile)
    if idle_wait is None:
        pytest.skip("the production profile keeps its fetch wait when idle")
    busy_wait = consumer_options(kafka_settings.profile)["fetch_max_wait_ms"]
    runtime = make_runtime(kafka_settings, unique)
    handled = asyncio.Event()

    async def handler(event: AlertRaised) -> None:
        handled.set()

    runtime.consumer.on(AlertRaised, handler)
    waits: list[int] = []  # the wait of each fetch request sent, in order
    async with runtime.running():
        consumer: Any = getattr(runtime._subscriber, "consumer", None)
        client = consumer._client
        send = client.send

        async def recording_send(node_id: int, request: Any, **options: Any) -> Any:
            if isinstance(request, FetchRequest):
                waits.append(request._max_wait_ms)
            return await send(node_id, request, **options)

        client.send = recording_send
        await eventually(lambda: idle_wait in waits, timeout_s=30, what="an idle fetch")
        waits.clear()
        await runtime.publisher.publish(make_alert())
        await asyncio.wait_for(handled.wait(), 30)
        await eventually(lambda: busy_wait in waits, timeout_s=30, what="a short fetch again")


async def test_a_plain_kafka_consumer_reads_events_as_json(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    alert = make_alert()
    runtime = make_runtime(kafka_settings, unique)
    async with runtime.running():
        await runtime.publisher.publish(alert)

    consumer = AIOKafkaConsumer(
        kafka_settings.topic_name(Topic.ALERTS),
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id=f"outsider-{unique}",
        auto_offset_reset="earliest",
        session_timeout_ms=2_000,
        heartbeat_interval_ms=300,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    document = json.loads(record.value)
    assert document["type"] == "alert.raised"
    assert document["event_id"] == str(alert.event_id)
    assert document["fingerprint"] == alert.fingerprint
    assert document["evidence"] == alert.evidence
    assert record.key == alert.model.encode()


def _label(n: int) -> LabelRecorded:
    return LabelRecorded(producer="client", model="breast-cancer", request_id=f"req-{n}", label=1)


def _dead_letters_alerts(records: list[Any]) -> list[AlertRaised]:
    events = [decode(Topic.ALERTS, record.value) for record in records]
    return [e for e in events if isinstance(e, AlertRaised) and e.kind is AlertKind.DEAD_LETTERS]


def _counts(records: list[Any]) -> list[int]:
    return [int(cast(int, alert.evidence["count"])) for alert in _dead_letters_alerts(records)]


async def test_a_dead_letter_raises_one_dead_letters_alert_and_a_burst_one_with_its_count(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    runtime = make_runtime(kafka_settings, unique)
    handled: list[LabelRecorded] = []

    async def on_label(label: LabelRecorded) -> None:
        handled.append(label)

    runtime.consumer.on(LabelRecorded, on_label)
    named = json.dumps({"type": "label.recorded", "model": "breast-cancer"}).encode()
    await write_raw(kafka_settings, Topic.LABELS, [named, _label(0).model_dump_json().encode()])
    labels = kafka_settings.topic_name(Topic.LABELS)

    async with runtime.running():
        records = await read_until(
            kafka_settings, Topic.ALERTS, lambda rs: bool(_dead_letters_alerts(rs))
        )
        (first,) = _dead_letters_alerts(records)
        assert first.model == "breast-cancer"
        assert first.producer == "scorer"
        assert first.fingerprint == f"breast-cancer:v-:dead_letters:scorer/{labels}"
        assert first.evidence["count"] == 1
        assert first.evidence["topic"] == labels

        # 50 bad records in a burst, inside the interval: no alert yet, the consumer goes on.
        await write_raw(
            kafka_settings,
            Topic.LABELS,
            [b"\x00junk %d" % n for n in range(50)] + [_label(1).model_dump_json().encode()],
        )
        await eventually(lambda: len(handled) == 2)
        assert len(_dead_letters_alerts(await read_until_quiet(kafka_settings, Topic.ALERTS))) == 1

    letters = await read_topic(kafka_settings, Topic.DEAD_LETTER, count=51)
    assert len(letters) == 51
    assert [label.request_id for label in handled] == ["req-0", "req-1"]


async def test_a_burst_of_fifty_dead_letters_raises_one_alert_counting_fifty(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    runtime = make_runtime(kafka_settings, unique, alert_interval_s=2.0)
    handled: list[LabelRecorded] = []

    async def on_label(label: LabelRecorded) -> None:
        handled.append(label)

    runtime.consumer.on(LabelRecorded, on_label)
    await write_raw(
        kafka_settings,
        Topic.LABELS,
        [b"\x00junk %d" % n for n in range(50)] + [_label(0).model_dump_json().encode()],
    )
    async with runtime.running():
        await eventually(lambda: len(handled) == 1)
        records = await read_until(
            kafka_settings,
            Topic.ALERTS,
            lambda rs: sum(_counts(rs)) >= 50,
        )
        # Whether the broker hands the burst over in one poll or several, the rate limit makes
        # one alert of the first poll and at most one more (after the interval) of the rest.
        counts = _counts(records)
        assert sum(counts) == 50
        assert len(counts) <= 2
        assert counts[0] >= 1
        alert = _dead_letters_alerts(records)[0]
        assert alert.model == "vigil"
        assert alert.evidence["reasons"] == {"undecodable": counts[0]}

        await write_raw(kafka_settings, Topic.LABELS, [_label(1).model_dump_json().encode()])
        await eventually(lambda: len(handled) == 2)  # and it keeps consuming


async def test_a_consumer_of_alerts_that_dead_letters_its_own_alert_raises_no_more(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    runtime = make_runtime(kafka_settings, unique, alert_interval_s=0.2)

    async def refuse(alert: AlertRaised) -> None:
        raise Rejected(f"cannot take {alert.kind}")

    runtime.consumer.on(AlertRaised, refuse)
    await write_raw(kafka_settings, Topic.ALERTS, [make_alert().model_dump_json().encode()])
    async with runtime.running():
        await read_topic(kafka_settings, Topic.DEAD_LETTER, count=2)
        await asyncio.sleep(2.0)  # ten intervals: room for a loop to show
        alerts = await read_until_quiet(kafka_settings, Topic.ALERTS)
        letters = await read_until_quiet(kafka_settings, Topic.DEAD_LETTER)

    assert len(alerts) == 2  # the refused alert and the one dead_letters alert about it
    assert len(_dead_letters_alerts(alerts)) == 1
    assert len(letters) == 2


async def test_replicas_of_a_group_get_the_same_partitions_of_predictions_and_labels(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    """A model's predictions and labels share a key and a partition number; the group must
    give both to one replica (the monitor joins them in its memory). The monitor also reads
    ``models`` (three partitions), which put round robin out of step between the two."""
    topics = [kafka_settings.topic_name(Topic.PREDICTIONS), kafka_settings.topic_name(Topic.LABELS)]
    members = [
        AIOKafkaConsumer(
            *topics,
            kafka_settings.topic_name(Topic.MODELS),
            bootstrap_servers=kafka_settings.bootstrap_servers,
            group_id=f"co-partitioned-{unique}",
            enable_auto_commit=False,
            **consumer_options(kafka_settings.profile),
        )
        for _ in range(2)
    ]
    for member in members:
        await member.start()
    try:
        async with asyncio.timeout(30):
            while True:
                await asyncio.gather(*(member.getmany(timeout_ms=100) for member in members))
                assigned = [member.assignment() for member in members]
                expected = 2 * TOPICS[Topic.LABELS].partitions + TOPICS[Topic.MODELS].partitions
                if all(assigned) and sum(map(len, assigned)) == expected:
                    break
        for assignment in assigned:
            numbers = {
                topic: sorted(tp.partition for tp in assignment if tp.topic == topic)
                for topic in topics
            }
            assert numbers[topics[0]] == numbers[topics[1]] != []
    finally:
        for member in members:
            await member.stop()
