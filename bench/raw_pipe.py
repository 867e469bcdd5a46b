"""The baseline every Kafka benchmark compares with: a bare aiokafka producer and consumer moving
the same messages through the same broker, in the same run (this machine's absolute speed varies
too much to compare runs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.runtime.kafka import consumer_options
from services.runtime.settings import KafkaProfile

__all__ = ["RawPipe", "measure_raw_pipe"]


@dataclass(frozen=True)
class RawPipe:
    """How fast the bare pipe moved the messages."""

    messages: int
    produce_per_s: float
    consume_per_s: float

    @property
    def end_to_end_per_s(self) -> float:
        """Messages per second through produce then consume (harmonic, as the pipe runs both)."""
        return 1 / (1 / self.produce_per_s + 1 / self.consume_per_s)


async def measure_raw_pipe(
    bootstrap_servers: str, messages: Sequence[tuple[bytes, bytes]], *, topic: str, partitions: int
) -> RawPipe:
    """Produce ``(key, value)`` messages to a fresh topic, then consume them all; time both."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=10, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    produced = time.perf_counter() - started

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=f"{topic}-baseline",
        enable_auto_commit=False,
        **consumer_options(KafkaProfile.EMBEDDED),
    )
    await consumer.start()
    try:
        received = 0
        first = await consumer.getmany(timeout_ms=30_000, max_records=1)  # wait for the join
        received += sum(len(batch) for batch in first.values())
        started = time.perf_counter()
        while received < len(messages):
            batches = await consumer.getmany(timeout_ms=1_000, max_records=5_000)
            received += sum(len(batch) for batch in batches.values())
        consumed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return RawPipe(len(messages), len(messages) / produced, max(received - 1, 1) / consumed)
