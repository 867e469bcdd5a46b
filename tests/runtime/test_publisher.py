"""The publisher's own producer (services/runtime/publisher.py) on the real broker: each key
to the partition a plain ``send`` picks, in order, with its documented headers, beyond one
record batch; a record larger than a batch in its place; one above the request limit refused
by name; and many callers publishing to one partition at once (a scorer answering concurrent
requests) all served, as they share the producer's batches (docs/adr/0016-hot-path.md, "The
publisher: a record batch per partition, tried and dropped")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from contracts import AlertRaised, Topic
from contracts.wire import kafka_headers, key_for
from services.runtime import EventPublisher, KafkaSettings
from services.runtime.kafka import kafka_broker
from services.runtime.publisher import EventRefused
from tests.factories import make_alert
from tests.kafka_tools import read_topic

MODELS = ("model-a", "model-b", "model-c")


@pytest.fixture
async def started(kafka_settings: KafkaSettings) -> AsyncIterator[EventPublisher]:
    """A publisher with its own producer, as every service runs it."""
    broker = kafka_broker(kafka_settings, client_id="test-publisher")
    await broker.connect()
    publisher = EventPublisher(broker, kafka_settings)
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.stop()
        await broker.stop()


def alert(model: str, n: int, size: int = 2_000) -> AlertRaised:
    return make_alert(model=model, summary=f"{model} #{n}", evidence={"padding": "x" * size})


async def partition_send_picks(kafka: KafkaSettings, key: bytes) -> int:
    """The partition a plain aiokafka ``send`` puts a key's record in."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        sent = await producer.send_and_wait(kafka.topic_name(Topic.ALERTS), b"probe", key=key)
    finally:
        await producer.stop()
    return int(sent.partition)


async def test_events_beyond_one_batch_keep_their_keys_partition_their_order_and_headers(
    started: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    # 3 models x 400 events of ~2.3 KB: about 900 KB a model, several 256 KB batches each.
    events = [alert(model, n) for n in range(400) for model in MODELS]
    before_ms = time.time() * 1000
    await started.publish_many(events)

    ours = await read_topic(kafka_settings, Topic.ALERTS, count=len(events))
    assert len(ours) == len(events)
    expected = {str(e.event_id): e for e in events}
    for model in MODELS:
        key = model.encode()
        partition = await partition_send_picks(kafka_settings, key)
        of_model = [r for r in ours if r.key == key]
        assert {r.partition for r in of_model} == {partition}
        assert [r.offset for r in of_model] == sorted(r.offset for r in of_model)
        published = [AlertRaised.model_validate_json(r.value) for r in of_model]
        assert published == [e for e in events if e.model == model]
    for record in ours:
        event = expected[str(AlertRaised.model_validate_json(record.value).event_id)]
        assert list(record.headers) == kafka_headers(event)
        assert record.key == key_for(event)
        assert before_ms - 5_000 <= record.timestamp <= time.time() * 1000 + 5_000


async def test_a_record_larger_than_a_batch_keeps_its_place(
    started: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    large = alert("model-a", 1, size=400_000)  # above a 256 KB batch, below the 1 MB request
    events = [alert("model-a", 0), large, alert("model-a", 2)]
    await started.publish_many(events)

    records = await read_topic(kafka_settings, Topic.ALERTS, count=3)
    published = [AlertRaised.model_validate_json(r.value) for r in records]
    assert published == events
    assert len({r.partition for r in records}) == 1


async def test_a_record_above_the_request_limit_is_refused_by_name_after_those_before_it(
    started: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    huge = alert("model-a", 1, size=1_200_000)
    before = [alert("model-a", 0), alert("model-b", 0)]
    with pytest.raises(EventRefused) as refused:
        await started.publish_many([*before, huge, alert("model-a", 2)])
    assert refused.value.event.event_id == huge.event_id
    assert "MessageSizeTooLarge" in refused.value.reason
    records = await read_topic(kafka_settings, Topic.ALERTS, count=2)
    assert sorted(AlertRaised.model_validate_json(r.value).summary for r in records) == sorted(
        e.summary for e in before
    )


async def test_many_callers_publishing_to_one_partition_at_once_are_all_served(
    started: EventPublisher, kafka_settings: KafkaSettings
) -> None:
    events = [alert("model-a", n, size=100) for n in range(300)]
    outcomes = await asyncio.gather(
        *(started.publish(event) for event in events), return_exceptions=True
    )

    # With a record batch of its own per call, handed over one after another, 134 of 300 such
    # callers timed out (KafkaTimeoutError) on the embedded broker.
    assert [o for o in outcomes if o is not None] == []
    records = await read_topic(kafka_settings, Topic.ALERTS, count=len(events))
    assert sorted(AlertRaised.model_validate_json(r.value).event_id for r in records) == sorted(
        e.event_id for e in events
    )
