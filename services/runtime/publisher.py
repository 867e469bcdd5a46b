"""Publishing contract events with their documented key and headers.

Every path that publishes a Vigil event (handlers directly, the outbox relay, dead letters,
self-watch alerts) goes through :class:`EventPublisher`, and its headers come from one place:
:func:`contracts.wire.kafka_headers` (Vigil's own and the CloudEvents Kafka binding's).

Failures come in two kinds: :class:`EventRefused` when the broker (or the client, before sending)
refuses one record for what it is, so sending it again can never succeed (it is too large, or
corrupt); any other exception (unreachable broker, timeout, unknown topic) is transient and the
caller retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream.kafka import KafkaBroker
from faststream.kafka.testing import FakeProducer

from contracts.envelope import Envelope
from contracts.topics import topic_of
from contracts.wire import correlation_of, encode, headers_for, kafka_headers, key_for
from services.runtime.kafka import producer_options
from services.runtime.settings import KafkaSettings

__all__ = ["EventPublisher", "EventRefused", "Publisher"]

# Errors about the record itself, never about the broker's state: retrying cannot help.
_REFUSALS = (
    CorruptRecordException,
    InvalidMessageError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)


class EventRefused(Exception):
    """The broker refuses this event for good (for example: larger than the largest record)."""

    def __init__(self, event: Envelope, reason: str) -> None:
        super().__init__(f"{event.type} {event.event_id} refused: {reason}")
        self.event = event
        self.reason = reason


class Publisher(Protocol):
    """Anything that can publish contract events (the real one, or a test's fake)."""

    async def publish(self, event: Envelope) -> None: ...

    async def publish_many(self, events: Iterable[Envelope]) -> None: ...


class EventPublisher:
    """Sends events to their topic; :meth:`publish_many` pipelines a batch and awaits it once.

    Both methods return only after the broker acknowledged every event (``acks=all``), so a
    caller may commit its input offsets afterwards without losing output.

    Once :meth:`start` ran, events go through an aiokafka producer of the publisher's own:
    FastStream adds about 40 µs of middleware per message, which a scorer publishing thousands a
    second cannot afford. Before that (as with FastStream's in-memory test broker), they go
    through the FastStream broker.
    """

    def __init__(
        self, broker: KafkaBroker, kafka: KafkaSettings, *, client_id: str = "vigil"
    ) -> None:
        self._broker = broker
        self._kafka = kafka
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self._batch_bytes: int = producer_options(kafka.profile)["max_batch_size"]

    async def start(self) -> None:
        """Connect the publisher's own producer (not under FastStream's in-memory test broker)."""
        if isinstance(self._broker.config.producer, FakeProducer):
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=self._client_id,
            partitioner=self._partitioner,  # the one _publish_in_batches picks partitions with
            **producer_options(self._kafka.profile),
        )
        await producer.start()
        self._producer = producer

    @property
    def connected(self) -> bool:
        """Whether events go to a real broker through the publisher's own producer."""
        return self._producer is not None

    async def stop(self) -> None:
        """Flush and close the publisher's own producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, event: Envelope) -> None:
        """Publish one event and wait for the broker's acknowledgement."""
        await self.publish_many([event])

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        """Publish events in order without waiting per event, then wait for all acknowledgements.

        Raises :class:`EventRefused` naming the first event the broker refused for good (the
        others may or may not be published); anything else it raises is transient.
        """
        if self._producer is not None:
            await self._publish_in_batches(self._producer, events)
            return
        pending: list[asyncio.Future[object]] = []
        sent: list[Envelope] = []
        for event in events:
            result = await self._broker.publish(
                encode(event),
                self._kafka.topic_name(topic_of(type(event))),
                key=key_for(event),
                headers=headers_for(event),
                correlation_id=correlation_of(event),
                no_confirm=True,
            )
            if isinstance(result, asyncio.Future):  # the in-memory test broker delivers at once
                pending.append(result)
                sent.append(event)
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        for event, outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, _REFUSALS):
                raise EventRefused(event, _describe(outcome)) from outcome
            if isinstance(outcome, BaseException):
                raise outcome

    async def _publish_in_batches(
        self, producer: AIOKafkaProducer, events: Iterable[Envelope]
    ) -> None:
        """Fill one record batch per partition and hand it over whole (``send_batch``): a
        record costs a C append, not ``send``'s Python per record (docs/adr/0016-hot-path.md,
        "The publisher"). The partition is the one ``send`` picks (the same partitioner), so
        each key keeps its partition and its order. A record too large to share a batch goes
        alone through ``send``, which refuses it as before."""
        handed_over: list[tuple[_Batch, asyncio.Future[object]]] = []
        filling: dict[tuple[str, int], _Batch] = {}
        partitions: dict[tuple[str, bytes], int] = {}

        async def hand_over(batch: _Batch) -> None:
            assert batch.builder is not None
            future = await producer.send_batch(
                batch.builder, batch.topic, partition=batch.partition
            )
            handed_over.append((batch, future))

        for position, event in enumerate(events):
            topic = self._kafka.topic_name(topic_of(type(event)))
            value, key, headers = encode(event), key_for(event), kafka_headers(event)
            partition = partitions.get((topic, key))
            if partition is None:
                every = list(await producer.partitions_for(topic))
                partition = partitions[(topic, key)] = self._partitioner(key, every, every)
            slot = (topic, partition)
            if _record_bytes(value, key, headers) > self._batch_bytes:
                if slot in filling:
                    await hand_over(filling.pop(slot))
                try:
                    future = await producer.send(topic, value, key=key, headers=headers)
                except _REFUSALS as error:  # the events before it still go out, as they came
                    for earlier in filling.values():
                        await hand_over(earlier)
                    await asyncio.gather(*(f for _, f in handed_over), return_exceptions=True)
                    raise EventRefused(event, _describe(error)) from error
                handed_over.append((_Batch(topic, partition, position, None, [event]), future))
                continue
            current = filling.get(slot)
            if current is not None and current.append(event, value, key, headers):
                continue
            if current is not None:  # full: hand it over and start the next
                await hand_over(current)
            current = filling[slot] = _Batch(topic, partition, position, producer.create_batch())
            if not current.append(event, value, key, headers):  # an empty batch takes any
                raise RuntimeError(f"an empty record batch refused {event.event_id}")
        for remaining in filling.values():
            await hand_over(remaining)

        outcomes = await asyncio.gather(*(f for _, f in handed_over), return_exceptions=True)
        answered = zip((batch for batch, _ in handed_over), outcomes, strict=True)
        for batch, outcome in sorted(answered, key=lambda pair: pair[0].position):
            if not isinstance(outcome, _REFUSALS):
                if isinstance(outcome, BaseException):
                    raise outcome
                continue
            if len(batch.events) == 1:
                raise EventRefused(batch.events[0], _describe(outcome)) from outcome
            # The broker refused a batch as a whole: send its events one by one, so only the
            # one it refuses is named (and the others published).
            await self._publish_one_by_one(producer, batch)

    async def _publish_one_by_one(self, producer: AIOKafkaProducer, batch: _Batch) -> None:
        for event in batch.events:
            try:
                future = await producer.send(
                    batch.topic, encode(event), key=key_for(event), headers=kafka_headers(event)
                )
                await future
            except _REFUSALS as error:
                raise EventRefused(event, _describe(error)) from error


@dataclass
class _Batch:
    """Events bound for one partition, handed to the producer together (``builder``), or one
    event sent alone (no builder)."""

    topic: str
    partition: int
    position: int  # of its first event in the published sequence
    builder: BatchBuilder | None
    events: list[Envelope] = field(default_factory=list)

    def append(
        self, event: Envelope, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> bool:
        """Add a record; false if the batch is full."""
        assert self.builder is not None
        if self.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            return False
        self.events.append(event)
        return True


def _record_bytes(value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> int:
    """An upper bound of a record's size in a batch (varint lengths and fields included)."""
    return len(value) + len(key) + sum(len(name) + len(data) + 10 for name, data in headers) + 64


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
