"""The runtime's delivery rules against the real broker: round trip, dead letters, idempotency."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import generate_latest

from contracts import TOPICS, Envelope, MessageDeadLettered, Topic
from contracts.wire import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_PRODUCER,
    HEADER_SCHEMA_VERSION,
)
from services.runtime import KafkaSettings, ServiceName, ServiceRuntime, ServiceSettings
from tests.factories import make_alert, sample_events
from tests.kafka_tools import read_topic, write_raw

pytestmark = pytest.mark.integration


def make_runtime(kafka: KafkaSettings, unique: str) -> ServiceRuntime:
    return ServiceRuntime(
        ServiceName.SCORER, ServiceSettings(kafka=kafka), group_id=f"test-{unique}"
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
        await asyncio.sleep(1.0)

    assert [event.event_id for event in received] == [alert.event_id, other.event_id]


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
