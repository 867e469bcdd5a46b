"""Plain aiokafka helpers for tests: read a topic as an outside consumer would, write raw bytes."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import Topic
from services.runtime import KafkaSettings


async def read_topic(
    kafka: KafkaSettings, topic: Topic, *, count: int, timeout_s: float = 20.0
) -> list[Any]:
    """Read the first ``count`` records of a topic from every partition (no consumer group).

    Fails if fewer arrive within the timeout; returns as soon as ``count`` have arrived, so a
    caller checking that nothing more came should read with a higher count and expect a failure.
    """
    name = kafka.topic_name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()  # first use of the topic
            partitions = [
                TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(records) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{name}: {len(records)} of {count} records within {timeout_s} s"
                )
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()


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


async def read_until_quiet(
    kafka: KafkaSettings, topic: Topic, *, quiet_s: float = 1.5, timeout_s: float = 30.0
) -> list[Any]:
    """Read a topic from the beginning (every partition, no consumer group) until no record has
    arrived for ``quiet_s``: for checking that exactly the expected records, and no more, are
    there once the producer is known to be done."""
    name = kafka.topic_name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last_arrival = loop.time()
        while loop.time() - last_arrival < quiet_s:
            if loop.time() > deadline:
                raise AssertionError(f"{name}: still receiving records after {timeout_s} s")
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
                last_arrival = loop.time()
        return records
    finally:
        await consumer.stop()
