"""Consuming events: the one place delivery rules live.

A service has one :class:`EventConsumer`: one consumer-group membership over all the topics it
reads (one group join instead of one per topic). For every polled batch it

1. decodes each record against its topic's contract; what fails goes to ``dead-letter`` with the
   error, the source topic / partition / offset and the original bytes;
2. skips event types the service has no handler for, and events whose ``event_id`` it already
   handled;
3. calls the handlers in record order (batch handlers get runs of consecutive events of their
   type), retrying a failing call, then dead-lettering what still fails;
4. returns, and only then are the offsets committed. If dead-lettering itself fails, the batch is
   not committed and is redelivered: nothing is lost.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.dead_letter import DeadLetterReason, MessageDeadLettered
from contracts.envelope import Envelope
from contracts.topics import Topic, topic_of
from contracts.wire import DecodeError, decode
from services.runtime.idempotency import SeenEvents
from services.runtime.kafka import consumer_options
from services.runtime.observability import ServiceMetrics
from services.runtime.publisher import Publisher
from services.runtime.settings import KafkaSettings

__all__ = ["EventConsumer", "Record", "Rejected", "Rejection", "RetryPolicy"]

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Envelope)
_Handler = Callable[[Any], Awaitable["Sequence[Rejection] | None"]]


class Rejected(Exception):  # reads as a verdict: `raise Rejected("unknown model")`
    """Raised by a handler for an event that is valid JSON but cannot be acted on (an unknown
    model, features that do not match the model's schema, ...): the event is dead-lettered at once
    as ``invalid`` with this message, without retries. Raise it before making any effect."""


@dataclass(frozen=True)
class Rejection:
    """Returned by a batch handler for each event of the batch it refuses (see :class:`Rejected`);
    the other events of the batch count as handled."""

    event_id: UUID
    error: str


class Record(Protocol):
    """What the consumer reads of a Kafka record (aiokafka's ``ConsumerRecord`` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing handler call is retried before its events are dead-lettered."""

    attempts: int = 3
    first_delay_s: float = 0.05


@dataclass(frozen=True)
class _Route:
    handler: _Handler
    batch: bool


@dataclass(frozen=True)
class _Outcome:
    error: Exception | None = None
    rejected: str | None = None
    rejections: Sequence[Rejection] = ()

    @property
    def failed(self) -> bool:
        return self.error is not None or self.rejected is not None


@dataclass(frozen=True)
class _Delivery:
    record: Record
    event: Envelope


class EventConsumer:
    """Decode, de-duplicate, dispatch and dead-letter for one service's consumer group."""

    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        publisher: Publisher,
        metrics: ServiceMetrics,
        kafka: KafkaSettings,
        seen: SeenEvents | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._service = service
        self._group_id = group_id
        self._publisher = publisher
        self._metrics = metrics
        self._kafka = kafka
        self._seen = seen if seen is not None else SeenEvents()
        self._retry = retry or RetryPolicy()
        self._routes: dict[type[Envelope], _Route] = {}

    @property
    def topics(self) -> list[Topic]:
        """Topics carrying at least one event type with a handler, in a stable order."""
        return sorted({topic_of(event_type) for event_type in self._routes})

    def on(self, event_type: type[E], handler: Callable[[E], Awaitable[None]]) -> None:
        """Handle each event of a type, one at a time."""
        self._add(event_type, _Route(cast(_Handler, handler), batch=False))

    def on_batch(
        self,
        event_type: type[E],
        handler: Callable[[list[E]], Awaitable[Sequence[Rejection] | None]],
    ) -> None:
        """Handle events of a type in lists (runs of consecutive events of one polled batch).

        The handler may return a :class:`Rejection` for each event it refuses.
        """
        self._add(event_type, _Route(cast(_Handler, handler), batch=True))

    def _add(self, event_type: type[Envelope], route: _Route) -> None:
        topic_of(event_type)  # refuses a type that no topic carries
        if event_type in self._routes:
            raise ValueError(f"{event_type.__name__} already has a handler")
        self._routes[event_type] = route

    def subscribe(self, broker: KafkaBroker, *, max_records: int = 500) -> Any:
        """Register the consumer on a broker as one batch subscriber over all its topics."""
        if not self._routes:
            raise ValueError("no handlers registered")
        subscriber = broker.subscriber(
            *[self._kafka.topic_name(topic) for topic in self.topics],
            group_id=self._group_id,
            batch=True,
            max_records=max_records,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_leave_undecoded,
            title=f"{self._service}",
            **consumer_options(self._kafka.profile),
        )

        async def on_records(message: KafkaMessage) -> None:
            records = cast(Sequence[Record], message.raw_message)
            await self.handle(records)
            self._report_lag(records, getattr(message, "consumer", None))

        subscriber(on_records)
        return subscriber

    async def handle(self, records: Sequence[Record]) -> None:
        """Handle one polled batch of records; return when every record is handled or set aside."""
        deliveries: list[_Delivery] = []
        in_batch: set[UUID] = set()
        for record in records:
            event = await self._decode(record)
            if event is None or type(event) not in self._routes:
                continue
            if event.event_id in self._seen or event.event_id in in_batch:
                self._metrics.duplicates.labels(self._service, record.topic).inc()
                continue
            in_batch.add(event.event_id)
            deliveries.append(_Delivery(record, event))

        for route, run in _runs(deliveries, self._routes):
            if route.batch:
                await self._handle_batch(route.handler, run)
            else:
                for delivery in run:
                    await self._handle_one(route.handler, delivery)

    async def _decode(self, record: Record) -> Envelope | None:
        try:
            topic = self._kafka.logical_topic(record.topic)
            return decode(topic, record.value)
        except DecodeError as error:
            reason = DeadLetterReason.UNDECODABLE if error.undecodable else DeadLetterReason.INVALID
            await self._dead_letter(record, reason, str(error))
        except ValueError:
            await self._dead_letter(
                record, DeadLetterReason.INVALID, f"topic {record.topic!r} has no Vigil contract"
            )
        return None

    async def _handle_one(self, handler: _Handler, delivery: _Delivery) -> None:
        outcome = await self._attempt(handler, delivery.event, [delivery])
        await self._settle(outcome, [delivery])
        self._remember(outcome, [delivery])

    async def _handle_batch(self, handler: _Handler, run: list[_Delivery]) -> None:
        outcome = await self._attempt(handler, [d.event for d in run], run)
        if outcome.failed and len(run) > 1:
            # Find the poison: hand each event on its own, so one bad event cannot sink the rest.
            for delivery in run:
                single = await self._attempt(handler, [delivery.event], [delivery])
                await self._settle(single, [delivery])
                self._remember(single, [delivery])
            return
        await self._settle(outcome, run)
        self._remember(outcome, run)

    def _remember(self, outcome: _Outcome, run: list[_Delivery]) -> None:
        """Remember what was handled, never what was set aside: a dead letter replayed after a
        fix must be handled, not skipped as a repeat."""
        if outcome.failed:
            return
        refused = {rejection.event_id for rejection in outcome.rejections}
        for delivery in run:
            if delivery.event.event_id not in refused:
                self._seen.add(delivery.event.event_id)

    async def _settle(self, outcome: _Outcome, run: list[_Delivery]) -> None:
        """Dead-letter what an attempt refused or could not handle."""
        if outcome.rejected is not None:
            for delivery in run:
                await self._dead_letter(delivery.record, DeadLetterReason.INVALID, outcome.rejected)
        elif outcome.error is not None:
            for delivery in run:
                await self._dead_letter(
                    delivery.record, DeadLetterReason.HANDLER_FAILED, _describe(outcome.error)
                )
        refused = {rejection.event_id: rejection.error for rejection in outcome.rejections}
        for delivery in run:
            if delivery.event.event_id in refused:
                await self._dead_letter(
                    delivery.record, DeadLetterReason.INVALID, refused[delivery.event.event_id]
                )

    async def _attempt(self, handler: _Handler, argument: object, run: list[_Delivery]) -> _Outcome:
        topic = run[0].record.topic
        delay = self._retry.first_delay_s
        last_error: Exception | None = None
        for attempt in range(1, self._retry.attempts + 1):
            started = time.perf_counter()
            try:
                rejections = await handler(argument)
            except Rejected as rejected:
                return _Outcome(rejected=str(rejected) or "rejected by the handler")
            except Exception as error:  # a handler bug must not stop the consumer
                last_error = error
                self._metrics.failed.labels(self._service, topic).inc()
                log.warning(
                    "handler failed on %s (attempt %d of %d): %s",
                    topic,
                    attempt,
                    self._retry.attempts,
                    _describe(error),
                    exc_info=attempt == self._retry.attempts,
                )
                if attempt < self._retry.attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
                continue
            self._metrics.handler_seconds.labels(self._service, topic).observe(
                time.perf_counter() - started
            )
            refused = list(rejections or ())
            self._metrics.handled.labels(self._service, topic).inc(len(run) - len(refused))
            return _Outcome(rejections=refused)
        return _Outcome(error=last_error)

    async def _dead_letter(self, record: Record, reason: DeadLetterReason, error: str) -> None:
        await self._publisher.publish(
            MessageDeadLettered(
                producer=self._service,
                original_topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                consumer_group=self._group_id,
                reason=reason,
                error=error[:4000] or reason.value,
                original_key_b64=_b64(record.key),
                original_value_b64=_b64(record.value) or "",
                original_headers={
                    name: value.decode("utf-8", "replace") for name, value in record.headers or ()
                },
            )
        )
        self._metrics.dead_lettered.labels(self._service, record.topic, reason.value).inc()
        log.warning(
            "dead-lettered %s[%d]@%d (%s): %s",
            record.topic,
            record.partition,
            record.offset,
            reason.value,
            error,
        )

    def _report_lag(self, records: Sequence[Record], consumer: object) -> None:
        highwater = getattr(consumer, "highwater", None)
        if highwater is None:
            return
        last: dict[tuple[str, int], int] = {}
        for record in records:
            last[(record.topic, record.partition)] = record.offset
        for (topic, partition), offset in last.items():
            mark = highwater(TopicPartition(topic, partition))
            if mark is not None:
                self._metrics.lag.labels(self._service, topic, str(partition)).set(
                    max(0, mark - offset - 1)
                )


async def _leave_undecoded(message: object) -> None:
    """FastStream's own decoder would JSON-decode every record of a batch; the consumer decodes
    them itself against the contracts, so FastStream's work would be thrown away."""
    return None


def _runs(
    deliveries: list[_Delivery], routes: dict[type[Envelope], _Route]
) -> list[tuple[_Route, list[_Delivery]]]:
    """Group deliveries into runs of consecutive events that go to the same route."""
    runs: list[tuple[_Route, list[_Delivery]]] = []
    for delivery in deliveries:
        route = routes[type(delivery.event)]
        if runs and runs[-1][0] is route:
            runs[-1][1].append(delivery)
        else:
            runs.append((route, [delivery]))
    return runs


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()
