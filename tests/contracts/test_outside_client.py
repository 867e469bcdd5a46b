"""Vigil's topics read by a client that is not Vigil's: confluent-kafka (librdkafka), validating
every event against the published JSON Schemas alone (``outside_client.py``, no Vigil imports)."""

from __future__ import annotations

import ast
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import TOPICS
from contracts.generate import ASYNCAPI_PATH, SCHEMAS_DIR
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.contracts import outside_client
from tests.contracts.outside_client import Received, consume, published_topics, validate
from tests.factories import sample_events

OUTSIDE_CLIENT = Path(outside_client.__file__)


def test_the_outside_client_imports_nothing_of_vigil() -> None:
    tree = ast.parse(OUTSIDE_CLIENT.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or ".").split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"confluent_kafka", "jsonschema", "yaml"}


def test_the_asyncapi_document_lists_every_topic_vigil_publishes() -> None:
    expected = {
        spec.topic.value: {event.model_fields["type"].default for event in spec.events}
        for spec in TOPICS.values()
        if spec.vigil_sends
    }
    assert published_topics(ASYNCAPI_PATH) == expected


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[EventPublisher]:
    publisher = EventPublisher(kafka_broker(kafka_settings, client_id="test-pub"), kafka_settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


@pytest.mark.integration
async def test_confluent_kafka_reads_one_event_of_every_type_vigil_publishes_and_validates_it(
    publisher: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    topics = published_topics(ASYNCAPI_PATH)
    prefixed = {kafka_settings.topic_prefix + topic: types for topic, types in topics.items()}
    events = sample_events()
    await publisher.publish_many(events)

    def every_type_seen(records: list[Received]) -> bool:
        seen = {(record.topic, record.value["type"]) for record in records}
        return all((topic, t) in seen for topic, types in prefixed.items() for t in types)

    records = await asyncio.to_thread(
        consume, kafka_settings.bootstrap_servers, prefixed, done=every_type_seen
    )
    assert records
    for record in records:
        validate(SCHEMAS_DIR, record.value)
        assert record.value["type"] in prefixed[record.topic]
        assert record.headers["ce_type"] == record.value["type"]
        assert record.headers["ce_id"] == record.value["event_id"]


def test_the_outside_validation_refuses_an_event_its_schema_does_not_allow() -> None:
    label = next(e for e in sample_events() if e.type == "label.recorded")
    value = label.model_dump(mode="json")
    validate(SCHEMAS_DIR, value)
    with pytest.raises(Exception, match="request_id"):
        validate(SCHEMAS_DIR, {k: v for k, v in value.items() if k != "request_id"})
