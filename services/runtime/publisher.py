"""Publishing contract events with their documented key and headers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from faststream.kafka import KafkaBroker

from contracts.envelope import Envelope
from contracts.topics import topic_of
from contracts.wire import correlation_of, encode, headers_for, key_for
from services.runtime.settings import KafkaSettings

__all__ = ["EventPublisher", "Publisher"]


class Publisher(Protocol):
    """Anything that can publish contract events (the real one, or a test's fake)."""

    async def publish(self, event: Envelope) -> None: ...

    async def publish_many(self, events: Iterable[Envelope]) -> None: ...


class EventPublisher:
    """Sends events to their topic; :meth:`publish_many` pipelines a batch and awaits it once.

    Both methods return only after the broker acknowledged every event (``acks=all``), so a
    caller may commit its input offsets afterwards without losing output.
    """

    def __init__(self, broker: KafkaBroker, kafka: KafkaSettings) -> None:
        self._broker = broker
        self._kafka = kafka

    async def publish(self, event: Envelope) -> None:
        """Publish one event and wait for the broker's acknowledgement."""
        await self._broker.publish(
            encode(event),
            self._kafka.topic_name(topic_of(type(event))),
            key=key_for(event),
            headers=headers_for(event),
            correlation_id=correlation_of(event),
        )

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        """Publish events in order without waiting per event, then wait for all acknowledgements."""
        pending = []
        for event in events:
            sent = await self._broker.publish(
                encode(event),
                self._kafka.topic_name(topic_of(type(event))),
                key=key_for(event),
                headers=headers_for(event),
                correlation_id=correlation_of(event),
                no_confirm=True,
            )
            if isinstance(sent, asyncio.Future):  # the in-memory test broker delivers at once
                pending.append(sent)
        if pending:
            await asyncio.gather(*pending)
