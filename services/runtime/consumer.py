"""Consuming events: the one place delivery rules live.

A service has one :class:`EventConsumer`: one consumer-group membership over all the topics it
reads (one group join instead of one per topic). For every polled batch it

1. decodes each record against its topic's contract; what fails goes to ``dead-letter`` with the
   error, the source topic / partition / offset and the original bytes;
2. skips event types the service has no handler for, and events whose ``event_id`` it already
   handled;
3. calls the handlers in record order (batch handlers get runs of consecutive events of their
   type). A call that fails is sorted by :class:`~services.runtime.failures.FailureClassifier`:

   - *poison* (a bug, an event that cannot be acted on): retried briefly
     (:attr:`RetryPolicy.attempts`), then dead-lettered; a :class:`Rejected` event at once;
   - *transient* (the database, the broker or another service unavailable): never dead-lettered.
     The consumer holds the batch and retries the same call with capped exponential backoff and
     jitter until it succeeds; meanwhile :attr:`EventConsumer.blocked` says since when (``/readyz``
     answers 503, ``vigil_consumer_blocked`` is 1). A batch held for :attr:`RetryPolicy.hold_s`
     is given back uncommitted (:class:`StillUnavailable`, which rewinds the partitions) and polled
     again, so the group does not evict a member that stopped polling; what was already handled or
     dead-lettered in it is not repeated;
4. returns, and only then are the offsets committed. If dead-lettering itself fails, the batch is
   not committed and is redelivered: nothing is lost;
5. raises a ``dead_letters`` alert per source topic for what it dead-lettered, rate-limited
   (:mod:`services.runtime.dead_letter_alerts`), after the batch and from
   :meth:`EventConsumer.keep_alerting`. An alert that cannot be published is logged and retried
   later; it never fails the batch (the dead letter is the record that must not be lost).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple, Protocol, TypeVar, cast
from uuid import UUID

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.dead_letter import DeadLetterReason, MessageDeadLettered
from contracts.envelope import Envelope, utc_now
from contracts.topics import Topic, topic_of
from contracts.wire import DecodeError, decode_many
from services.runtime.dead_letter_alerts import DeadLetterAlerts
from services.runtime.failures import FailureClassifier
from services.runtime.idempotency import SeenEvents
from services.runtime.kafka import consumer_options, idle_fetch_max_wait_ms
from services.runtime.observability import ServiceMetrics
from services.runtime.publisher import Publisher
from services.runtime.settings import KafkaSettings
from services.runtime.waiting import wait_at_most

__all__ = [
    "Blocked",
    "EventConsumer",
    "Record",
    "Rejected",
    "Rejection",
    "RetryPolicy",
    "StillUnavailable",
]

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


class StillUnavailable(Exception):
    """Raised out of :meth:`EventConsumer.handle` when a batch held on a transient failure is
    given back to the broker uncommitted (after :attr:`RetryPolicy.hold_s`, or at shutdown): the
    subscriber rewinds its partitions and the batch is polled again."""


@dataclass(frozen=True)
class RetryPolicy:
    """How failing handler calls are retried.

    Poison failures: ``attempts`` calls, ``first_delay_s`` apart and doubling, then dead letter.
    Transient failures: retried until they succeed, ``backoff_initial_s`` apart and doubling up to
    ``backoff_max_s``, each delay jittered; a batch is held at most ``hold_s`` at a time.
    """

    attempts: int = 3
    first_delay_s: float = 0.05
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    hold_s: float = 60.0

    def __post_init__(self) -> None:
        delays = (self.first_delay_s, self.backoff_initial_s, self.backoff_max_s, self.hold_s)
        if self.attempts < 1 or not all(math.isfinite(d) and d >= 0 for d in delays):
            raise ValueError(f"invalid retry policy: {self}")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s or self.hold_s <= 0:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s and hold_s > 0")

    def backoff_s(self, failures: int, rng: random.Random) -> float:
        """Delay after the ``failures``-th transient failure in a row: exponential, capped, and
        "equal jitter" (between half and all of it), so replicas blocked on one database do not
        retry in lockstep yet never hammer it."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** min(failures - 1, 64))
        return ceiling / 2 + rng.random() * ceiling / 2


@dataclass(frozen=True)
class Blocked:
    """The consumer holds an event because something it depends on is unavailable."""

    since: datetime
    topic: str
    failures: int
    error: str

    def describe(self) -> str:
        """One line for ``/readyz`` and logs."""
        return (
            f"blocked on a transient failure since {self.since.isoformat()} "
            f"({self.failures} failed attempts on {self.topic}; last: {self.error})"
        )


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


class _Delivery(NamedTuple):  # one per record: a tuple is the cheapest to build
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
        transient: Iterable[type[BaseException]] = (),
        rng: random.Random | None = None,
        alerts: DeadLetterAlerts | None = None,
    ) -> None:
        """``alerts``: where dead letters are counted to raise ``dead_letters`` alerts (none are
        raised without it)."""
        self._service = service
        self._group_id = group_id
        self._publisher = publisher
        self._metrics = metrics
        self._kafka = kafka
        self._seen = seen if seen is not None else SeenEvents()
        self._retry = retry or RetryPolicy()
        self._failures = FailureClassifier(transient)
        self._rng = rng or random.Random()
        self._routes: dict[type[Envelope], _Route] = {}
        self._blocked: Blocked | None = None
        self._held_until: float | None = None
        self._stopping = asyncio.Event()
        # Records dead-lettered in a batch not committed yet: a batch given back and polled
        # again must not dead-letter them twice.
        self._lettered: set[tuple[str, int, int]] = set()
        self._alerts = alerts
        self._alerting = asyncio.Lock()
        metrics.consumer_blocked.labels(service).set(0)
        metrics.consumer_blocked_since.labels(service).set(0)

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy in force."""
        return self._retry

    @property
    def blocked(self) -> Blocked | None:
        """Set while a handler call fails transiently and is being retried; ``None`` otherwise."""
        return self._blocked

    def stop_waiting(self, stop: bool = True) -> None:
        """At shutdown: give back a batch held on a transient failure now, uncommitted, and hold
        none until called with ``stop=False``."""
        if stop:
            self._stopping.set()
        else:
            self._stopping.clear()

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

        async def parse(records: Sequence[Record]) -> KafkaMessage:
            return _unread_message(subscriber, records)

        subscriber = broker.subscriber(
            *[self._kafka.topic_name(topic) for topic in self.topics],
            group_id=self._group_id,
            batch=True,
            max_records=max_records,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            parser=parse,
            decoder=_leave_undecoded,
            title=f"{self._service}",
            **consumer_options(self._kafka.profile),
        )

        async def on_records(message: KafkaMessage) -> None:
            records = cast(Sequence[Record], message.raw_message)
            await self.handle(records)
            self._report_lag(records, getattr(message, "consumer", None))

        subscriber(on_records)
        _poll_without_pausing(subscriber, max_records, idle_fetch_max_wait_ms(self._kafka.profile))
        return subscriber

    async def handle(self, records: Sequence[Record]) -> None:
        """Handle one polled batch of records; return when every record is handled or set aside.

        Raises :class:`StillUnavailable` to give a batch held on a transient failure back
        uncommitted; any exception leaves the batch uncommitted, to be polled again.
        """
        self._held_until = None
        await self._handle(records)
        self._lettered.clear()  # the batch is committed next: its offsets will not come again
        await self.raise_dead_letter_alerts()

    async def raise_dead_letter_alerts(self) -> None:
        """Publish the ``dead_letters`` alerts that are due; one that fails is logged and given
        back, never raised: the consumer must go on."""
        if self._alerts is None or self._alerting.locked():
            # Already under way: an in-memory broker delivers the alert to this very consumer
            # while it is being published, and waiting here would wait for itself.
            return
        async with self._alerting:
            for pending in self._alerts.take_due():
                try:
                    await self._publisher.publish(pending.alert)
                except Exception as error:
                    self._alerts.give_back(pending)
                    log.warning(
                        "could not raise the dead_letters alert about %s (retried later): %s",
                        pending.topic,
                        _describe(error),
                    )
                else:
                    log.warning("raised: %s", pending.alert.summary)

    async def keep_alerting(self) -> None:
        """Raise the alerts held back by the rate limit once they are due, even if no batch
        comes to trigger them (a background task of the service)."""
        if self._alerts is None:
            return
        period = min(1.0, self._alerts.interval_s / 4)
        while True:
            await asyncio.sleep(period)
            await self.raise_dead_letter_alerts()

    async def _handle(self, records: Sequence[Record]) -> None:
        deliveries: list[_Delivery] = []
        in_batch: set[int] = set()  # ``UUID.int``: hashing an int is cheaper than a UUID
        routes, seen = self._routes, self._seen
        for topic, chunk in _by_topic(records):
            for record, event in zip(chunk, await self._decode(topic, chunk), strict=True):
                if event is None or type(event) not in routes:
                    continue
                event_id = event.event_id
                if event_id.int in in_batch or event_id in seen:
                    self._metrics.duplicates.labels(self._service, topic).inc()
                    continue
                in_batch.add(event_id.int)
                deliveries.append(_Delivery(record, event))

        for route, run in _runs(deliveries, routes):
            if route.batch:
                await self._handle_batch(route.handler, run)
            else:
                for delivery in run:
                    await self._handle_one(route.handler, delivery)

    async def _decode(self, topic: str, records: Sequence[Record]) -> list[Envelope | None]:
        """Decode the records of one topic in one validation; dead-letter those that fail."""
        try:
            logical = self._kafka.logical_topic(topic)
        except ValueError:
            for record in records:
                await self._dead_letter(
                    record, DeadLetterReason.INVALID, f"topic {topic!r} has no Vigil contract"
                )
            return [None] * len(records)
        events: list[Envelope | None] = []
        for record, decoded in zip(
            records, decode_many(logical, [record.value for record in records]), strict=True
        ):
            if isinstance(decoded, DecodeError):
                reason = (
                    DeadLetterReason.UNDECODABLE
                    if decoded.undecodable
                    else DeadLetterReason.INVALID
                )
                await self._dead_letter(record, reason, str(decoded))
                events.append(None)
            else:
                events.append(decoded)
        return events

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
        self._seen.add_many(
            delivery.event.event_id
            for delivery in run
            if not refused or delivery.event.event_id not in refused
        )

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
        if not refused:
            return
        for delivery in run:
            if delivery.event.event_id in refused:
                await self._dead_letter(
                    delivery.record, DeadLetterReason.INVALID, refused[delivery.event.event_id]
                )

    async def _attempt(self, handler: _Handler, argument: object, run: list[_Delivery]) -> _Outcome:
        topic = run[0].record.topic
        delay = self._retry.first_delay_s
        poison_failures = 0
        while True:
            started = time.perf_counter()
            try:
                rejections = await handler(argument)
            except Rejected as rejected:
                self._unblock()
                return _Outcome(rejected=str(rejected) or "rejected by the handler")
            except Exception as error:  # a handler bug must not stop the consumer
                if self._failures.is_transient(error):
                    await self._wait_out(topic, error)
                    continue
                self._unblock()
                poison_failures += 1
                self._metrics.failed.labels(self._service, topic).inc()
                log.warning(
                    "handler failed on %s (attempt %d of %d): %s",
                    topic,
                    poison_failures,
                    self._retry.attempts,
                    _describe(error),
                    exc_info=poison_failures == self._retry.attempts,
                )
                if poison_failures >= self._retry.attempts:
                    return _Outcome(error=error)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            self._unblock()
            self._metrics.handler_seconds.labels(self._service, topic).observe(
                time.perf_counter() - started
            )
            refused = list(rejections or ())
            self._metrics.handled.labels(self._service, topic).inc(len(run) - len(refused))
            return _Outcome(rejections=refused)

    async def _wait_out(self, topic: str, error: Exception) -> None:
        """Record a transient failure and sleep the backoff before the same call is retried;
        raise :class:`StillUnavailable` when the batch has been held long enough."""
        self._metrics.transient_failures.labels(self._service, topic).inc()
        previous = self._blocked
        self._blocked = Blocked(
            since=previous.since if previous else utc_now(),
            topic=topic,
            failures=previous.failures + 1 if previous else 1,
            error=_describe(error).splitlines()[0][:500],
        )
        if previous is None:
            self._metrics.consumer_blocked.labels(self._service).set(1)
            self._metrics.consumer_blocked_since.labels(self._service).set(
                self._blocked.since.timestamp()
            )
            log.warning(
                "%s holds its batch and retries until it succeeds: %s",
                self._service,
                self._blocked.describe(),
            )
        else:
            log.info("still unavailable on %s: %s", topic, self._blocked.error)
        now = time.monotonic()
        if self._held_until is None:
            self._held_until = now + self._retry.hold_s
        remaining = self._held_until - now
        if remaining > 0 and not self._stopping.is_set():
            pause = min(self._retry.backoff_s(self._blocked.failures, self._rng), remaining)
            if not await wait_at_most(self._stopping, pause):
                return
        why = "stopping" if self._stopping.is_set() else f"held {self._retry.hold_s:g} s"
        log.warning("%s gives its batch back uncommitted (%s), to poll it again", topic, why)
        raise StillUnavailable(f"{why}; {self._blocked.describe()}") from error

    def _unblock(self) -> None:
        """The dependency answered (the call succeeded, or failed for another reason)."""
        blocked, self._blocked = self._blocked, None
        if blocked is None:
            return
        self._metrics.consumer_blocked.labels(self._service).set(0)
        self._metrics.consumer_blocked_since.labels(self._service).set(0)
        log.warning(
            "%s resumes after %.1f s blocked (%d failed attempts)",
            self._service,
            (utc_now() - blocked.since).total_seconds(),
            blocked.failures,
        )

    async def _dead_letter(self, record: Record, reason: DeadLetterReason, error: str) -> None:
        coordinates = (record.topic, record.partition, record.offset)
        if coordinates in self._lettered:
            return
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
        self._lettered.add(coordinates)
        if self._alerts is not None:
            self._alerts.note(record.topic, record.value, reason, error)
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
        assignment = getattr(consumer, "assignment", None)
        if highwater is None or assignment is None:
            return
        last: dict[tuple[str, int], int] = {}
        for record in records:
            last[(record.topic, record.partition)] = record.offset
        assigned = assignment()
        for (topic, partition), offset in last.items():
            if TopicPartition(topic, partition) not in assigned:
                # Revoked while the batch was handled (a held batch can outlast a rebalance):
                # aiokafka asserts on it, which failed the handled batch; its new owner reports.
                continue
            mark = highwater(TopicPartition(topic, partition))
            if mark is not None:
                self._metrics.lag.labels(self._service, topic, str(partition)).set(
                    max(0, mark - offset - 1)
                )


_IDLE_POLL_MS = 1_000  # how long one poll waits for records when there are none


def _poll_without_pausing(
    subscriber: Any, max_records: int, idle_fetch_wait_ms: int | None = None
) -> None:
    """Make a FastStream batch subscriber poll again at once when a poll found nothing.

    FastStream's loop sleeps for the poll's timeout after every empty poll (200 ms by default),
    and a record that arrives meanwhile waits the sleep out: an idle service handled its next
    event up to 200 ms late (``bench/scorer.py``'s sparse phase: 210-222 ms at worst).
    Here a poll waits up to :data:`_IDLE_POLL_MS` and returns as soon as records arrive; an
    empty one is followed by the next poll, not a sleep, until the subscriber stops.

    With ``idle_fetch_wait_ms``, a consumer that found nothing for a whole poll fetches with that
    wait until records come again (:class:`_FetchPace`).
    """
    paces: weakref.WeakKeyDictionary[Any, _FetchPace] = weakref.WeakKeyDictionary()

    async def get_msg(consumer: Any) -> tuple[Record, ...]:
        pace = paces.get(consumer)
        if pace is None:
            pace = paces[consumer] = _FetchPace(consumer, idle_fetch_wait_ms)
        while subscriber.running:
            polled = await consumer.getmany(timeout_ms=_IDLE_POLL_MS, max_records=max_records)
            if polled:
                pace.busy()
                return tuple(chain.from_iterable(polled.values()))
            pace.idle()
        return ()

    subscriber.get_msg = get_msg


class _FetchPace:
    """An idle consumer's fetches, made rarer on a broker that answers them by polling.

    The embedded broker (Tansu) does not wake a waiting fetch when records arrive; it looks again
    at intervals within the fetch's wait, so services fetch with a short wait (20 ms) to hear of
    a record soon. Every such fetch costs the broker and the client CPU whether or not anything
    came: the idle demo stack spent most of a core on them (docs/adr/0016-hot-path.md). Once a
    whole poll found nothing, the consumer fetches with the idle wait; the first records found
    set the short wait again. aiokafka has no public setter for the wait, so this writes its
    fetcher's attribute, read when each fetch request is built; if that attribute is ever
    missing, the wait stays as configured (logged once) rather than failing the consumer.
    """

    def __init__(self, consumer: Any, idle_wait_ms: int | None) -> None:
        fetcher = getattr(consumer, "_fetcher", None)
        self._fetcher = fetcher if hasattr(fetcher, "_fetch_max_wait_ms") else None
        if self._fetcher is None and idle_wait_ms is not None:
            log.warning("cannot slow an idle consumer's fetches: aiokafka's fetcher has changed")
        self._busy_wait_ms = getattr(self._fetcher, "_fetch_max_wait_ms", None)
        self._idle_wait_ms = idle_wait_ms

    def idle(self) -> None:
        """A whole poll found nothing: fetch with the idle wait."""
        if self._fetcher is not None and self._idle_wait_ms is not None:
            self._fetcher._fetch_max_wait_ms = self._idle_wait_ms

    def busy(self) -> None:
        """Records came: fetch with the configured wait again."""
        if self._fetcher is not None and self._idle_wait_ms is not None:
            self._fetcher._fetch_max_wait_ms = self._busy_wait_ms


def _unread_message(subscriber: Any, records: Sequence[Record]) -> KafkaMessage:
    """Wrap a polled batch for FastStream without reading it.

    FastStream's batch parser decodes every record's headers into a dict of strings (about a
    tenth of the runtime's CPU per record at saturation, docs/adr/0016-hot-path.md) for a message
    whose headers the consumer never reads: it reads ``raw_message`` and the dead letter keeps
    each record's own headers. The message is built as FastStream's parser builds it
    (same class, so acknowledgement commits through the same consumer), with empty headers.
    """
    parser = subscriber.parser
    first, last = records[0], records[-1]
    message_id = f"{first.offset}-{last.offset}-{getattr(first, 'timestamp', 0)}"
    return cast(
        KafkaMessage,
        parser.msg_class(
            body=[record.value or b"" for record in records],
            raw_message=records,
            message_id=message_id,
            correlation_id=message_id,
            consumer=parser._consumer,
        ),
    )


async def _leave_undecoded(message: object) -> None:
    """FastStream's own decoder would JSON-decode every record of a batch; the consumer decodes
    them itself against the contracts, so FastStream's work would be thrown away."""
    return None


def _by_topic(records: Sequence[Record]) -> list[tuple[str, list[Record]]]:
    """Split a batch into runs of consecutive records of one topic (a fetch holds its records
    partition by partition), keeping their order."""
    chunks: list[tuple[str, list[Record]]] = []
    for record in records:
        if chunks and chunks[-1][0] == record.topic:
            chunks[-1][1].append(record)
        else:
            chunks.append((record.topic, [record]))
    return chunks


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
