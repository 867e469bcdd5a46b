"""Every event Vigil publishes is a CloudEvent on the real broker (Kafka binding, binary mode),
whichever path published it: a handler's direct publish, the outbox relay, or a dead letter.

The headers are parsed by the CloudEvents SDK (``cloudevents.core.bindings.kafka``), not by Vigil,
and checked against the event in the value; Vigil's own ``vigil-*`` headers stay beside them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from contracts import TOPICS, LabelRecorded, Topic
from services.runtime import (
    OUTBOX_TABLES,
    EventPublisher,
    KafkaSettings,
    OutboxRelay,
    ProcessedEvent,
    ServiceMetrics,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
    kafka_broker,
    session_factory,
    stage,
)
from tests.factories import sample_events
from tests.kafka_tools import read_topic, write_raw

pytestmark = pytest.mark.integration


def assert_cloudevent(record: Any) -> dict[str, Any]:
    """Parse a record as a CloudEvent and check its attributes against the event in the value;
    return the value."""
    headers = dict(record.headers)
    assert len(headers) == len(record.headers), "a header is repeated"
    message = KafkaMessage(headers=headers, key=record.key, value=record.value)
    cloudevent = from_binary(message, JSONFormat())
    value: dict[str, Any] = json.loads(record.value)
    attributes = cloudevent.get_attributes()
    assert attributes["specversion"] == "1.0"
    assert attributes["id"] == value["event_id"]
    assert attributes["type"] == value["type"]
    assert attributes["source"] == f"/vigil/{value['producer']}"
    assert attributes["time"] == datetime.fromisoformat(value["occurred_at"])
    assert attributes["datacontenttype"] == "application/json"
    assert cloudevent.get_data() == value
    text = {name: raw.decode() for name, raw in headers.items()}
    assert text["vigil-event-id"] == value["event_id"]
    assert text["vigil-event-type"] == value["type"]
    assert text["vigil-producer"] == value["producer"]
    assert text["vigil-schema-version"] == str(value["schema_version"])
    assert text["correlation_id"] == (value["correlation_id"] or value["event_id"])
    return value


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[EventPublisher]:
    publisher = EventPublisher(kafka_broker(kafka_settings, client_id="test-ce"), kafka_settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


async def test_a_direct_publish_of_every_event_type_is_a_cloudevent(
    publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    events = sample_events()
    await publisher.publish_many(events)
    seen = set()
    for spec in TOPICS.values():
        expected = sum(type(event) in spec.events for event in events)
        for record in await read_topic(kafka_settings, spec.topic, count=expected):
            seen.add(assert_cloudevent(record)["event_id"])
    assert seen == {str(event.event_id) for event in events}


@pytest.fixture
def schema() -> list[type[SQLModel]]:
    return [ProcessedEvent, *OUTBOX_TABLES]


async def test_events_the_outbox_relay_publishes_are_cloudevents(
    engine: AsyncEngine, publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    sessions = session_factory(engine)
    events = [e for e in sample_events() if type(e) in TOPICS[Topic.INCIDENTS].events]
    async with sessions() as session, session.begin():
        stage(session, events)
    relay = OutboxRelay(sessions, publisher, metrics=ServiceMetrics("incident-log"))
    assert await relay.publish_pending() == len(events)
    records = await read_topic(kafka_settings, Topic.INCIDENTS, count=len(events))
    assert [assert_cloudevent(record)["event_id"] for record in records] == [
        str(event.event_id) for event in events
    ]


async def test_a_dead_letter_is_a_cloudevent(kafka_settings: KafkaSettings, unique: str) -> None:
    runtime = ServiceRuntime(
        ServiceName.MONITOR, ServiceSettings(kafka=kafka_settings), group_id=f"test-{unique}"
    )
    handled = asyncio.Event()

    async def on_labels(events: list[LabelRecorded]) -> None:
        handled.set()

    runtime.consumer.on_batch(LabelRecorded, on_labels)
    label = next(e for e in sample_events() if isinstance(e, LabelRecorded))
    await write_raw(
        kafka_settings, Topic.LABELS, [b"\x00not json", label.model_dump_json().encode()]
    )
    async with runtime.running():
        await asyncio.wait_for(handled.wait(), 30)
    (record,) = await read_topic(kafka_settings, Topic.DEAD_LETTER, count=1)
    value = assert_cloudevent(record)
    assert value["type"] == "message.dead_lettered"
    assert value["producer"] == "monitor"
