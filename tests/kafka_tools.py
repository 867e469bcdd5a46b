"""Plain aiokafka helpers for tests: a topic namespace of one's own, read a topic as an outside
consumer would, write raw bytes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import Topic
from services.runtime import KafkaSettings, ensure_topics


async def own_namespace(bootstrap: str, tag: str) -> KafkaSettings:
    """Client settings in a fresh topic namespace (``tag`` and a random suffix), its topics
    created: for a fixture that outlives one test's ``kafka_settings``."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{tag}{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, prefix=kafka.topic_prefix)
    return kafka


@asynccontextmanager
async def _from_the_beginning(
    kafka: KafkaSettings, topic: Topic
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer on every partition of a topic, at the first offset (no consumer group)."""
    name = kafka.topic_name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # the topic may be new to this client
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        yield consumer
    finally:
        await consumer.stop()


async def read_until(
    kafka: KafkaSettings,
    topic: Topic,
    done: Callable[[list[Any]], bool],
    *,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Read a topic from the beginning until ``done(records)`` holds; fail after ``timeout_s``."""
    async with _from_the_beginning(kafka, topic) as consumer:
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done(records):
            if loop.time() > deadline:
                raise AssertionError(
                    f"{kafka.topic_name(topic)}: condition not met with {len(records)} records"
                )
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
        return records


async def read_topic(
    kafka: KafkaSettings, topic: Topic, *, count: int, timeout_s: float = 20.0
) -> list[Any]:
    """Read a topic from the beginning until at least ``count`` records came (fewer within the
    timeout fails).

    Returns as soon as ``count`` have arrived, so a caller checking that nothing more came should
    use ``read_until_quiet``.
    """
    return await read_until(kafka, topic, lambda rs: len(rs) >= count, timeout_s=timeout_s)


def distinct_events(records: list[Any], *, identical_only: bool = False) -> list[Any]:
    """The records whose event id no earlier record carries, in order.

    Delivery is at least once: an outbox relay whose acknowledgement came late, or whose process
    died before marking a row, publishes the row again with the same ``event_id`` (ADR 0010).
    Consumers discard the copies; a test counting what was published counts what they keep.

    ``identical_only`` leaves out only byte-identical copies (what a relay republishes), for
    events whose id is derived from their input (the drift detector's): a decision taken twice
    carries the same id there but a new ``occurred_at``, and must still be counted twice.
    """
    seen: set[str | bytes] = set()
    kept = []
    for record in records:
        key = record.value if identical_only else json.loads(record.value)["event_id"]
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept


async def read_events(
    kafka: KafkaSettings,
    topic: Topic,
    *,
    count: int,
    timeout_s: float = 20.0,
    identical_only: bool = False,
) -> list[Any]:
    """Read a topic from the beginning until at least ``count`` distinct events came, and return
    those events, copies left out (:func:`distinct_events`); fewer within the timeout fails.

    Like :func:`read_topic` it returns as soon as ``count`` have arrived, and may return more.
    """
    records = await read_until(
        kafka,
        topic,
        lambda rs: len(distinct_events(rs, identical_only=identical_only)) >= count,
        timeout_s=timeout_s,
    )
    return distinct_events(records, identical_only=identical_only)


async def read_until_quiet(
    kafka: KafkaSettings, topic: Topic, *, quiet_s: float = 1.5, timeout_s: float = 30.0
) -> list[Any]:
    """Read a topic from the beginning until no record has arrived for ``quiet_s``: for checking
    that exactly the expected records, and no more, are there once the producer is known to be
    done."""
    async with _from_the_beginning(kafka, topic) as consumer:
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last_arrival = loop.time()
        while loop.time() - last_arrival < quiet_s:
            if loop.time() > deadline:
                raise AssertionError(
                    f"{kafka.topic_name(topic)}: still receiving records after {timeout_s} s"
                )
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
                last_arrival = loop.time()
        return records


async def read_events_until_quiet(
    kafka: KafkaSettings,
    topic: Topic,
    *,
    quiet_s: float = 1.5,
    timeout_s: float = 30.0,
    identical_only: bool = False,
) -> list[Any]:
    """The distinct events of a topic (:func:`distinct_events`) once no record has arrived for
    ``quiet_s``: for checking that exactly the expected events, and no more, were published."""
    records = await read_until_quiet(kafka, topic, quiet_s=quiet_s, timeout_s=timeout_s)
    return distinct_events(records, identical_only=identical_only)


async def write_raw(
    kafka: KafkaSettings,
    topic: Topic,
    values: list[bytes],
    *,
    key: bytes | None = b"raw",
    partition: int | None = 0,
) -> list[int]:
    """Write raw values in order to one partition of a topic; return their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        offsets = []
        for value in values:
            metadata = await producer.send_and_wait(
                kafka.topic_name(topic), value, key=key, partition=partition
            )
            offsets.append(metadata.offset)
        return offsets
    finally:
        await producer.stop()
