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
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
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

    async def start(self) -> None:
        """Connect the publisher's own producer (not under FastStream's in-memory test broker)."""
        if isinstance(self._broker.config.producer, FakeProducer):
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=self._client_id,
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
        pending: list[asyncio.Future[object]] = []
        sent: list[Envelope] = []
        producer = self._producer
        for event in events:
            topic = self._kafka.topic_name(topic_of(type(event)))
            if producer is not None:
                try:
                    future = await producer.send(
                        topic, encode(event), key=key_for(event), headers=kafka_headers(event)
                    )
                except _REFUSALS as error:
                    await asyncio.gather(*pending, return_exceptions=True)
                    raise EventRefused(event, _describe(error)) from error
                pending.append(future)
                sent.append(event)
                continue
            result = await self._broker.publish(
                encode(event),
                topic,
                key=key_for(event),
                headers=headers_for(event),
                correlation_id=correlation_of(event),
                no_confirm=True,
            )
            if isinstance(result, asyncio.Future):  # the in-memory test broker delivers at once
                pending.append(result)
                sent.append(event)
        if not pending:
            return
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        for event, outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, _REFUSALS):
                raise EventRefused(event, _describe(outcome)) from outcome
            if isinstance(outcome, BaseException):
                raise outcome


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
