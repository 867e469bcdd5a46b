"""The machinery of one service process: broker, publisher, consumer, metrics, background tasks.

A service's ``create_app`` builds a :class:`ServiceRuntime`, registers handlers on its consumer,
and returns :meth:`ServiceRuntime.http_app` with its own routes added. Start-up order: the
service's resources (database, HTTP clients), then the broker and its consumer, then background
tasks; shutdown runs in reverse, and the broker stop waits for in-flight handlers so their offsets
are committed (a batch held on an unavailable dependency is given back uncommitted at once).

``/readyz`` answers 200 only when the service consumes, every readiness check a service added
(:mod:`services.runtime.readiness`, e.g. its database) passes, and the consumer is not blocked on
a transient failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.topics import Topic
from services.runtime.body_limits import BodyLimits, LargerBody
from services.runtime.consumer import EventConsumer, RetryPolicy
from services.runtime.database import Sessions
from services.runtime.dead_letter_alerts import DeadLetterAlerts
from services.runtime.documented_responses import document_common_responses
from services.runtime.invalid_requests import answer_invalid_requests
from services.runtime.kafka import kafka_broker
from services.runtime.leases import Lease, PartitionLease
from services.runtime.names import ServiceName
from services.runtime.observability import ServiceMetrics
from services.runtime.outbox import OutboxRelay
from services.runtime.publisher import EventPublisher
from services.runtime.readiness import Check, run_checks
from services.runtime.self_watch import (
    ConsumerLag,
    SelfWatch,
    consumer_lag_probe,
    outbox_probes,
)
from services.runtime.settings import ServiceSettings

__all__ = ["ServiceRuntime"]

log = logging.getLogger(__name__)

BackgroundTask = Callable[[], Awaitable[None]]
ScrapeHook = Callable[[], Awaitable[None]]

_CHECK_TIMEOUT_S = 1.0  # below the supervisor's 2 s /readyz timeout


class ServiceRuntime:
    """Shared mechanics of a service process; one instance per process (or per test)."""

    def __init__(
        self,
        name: ServiceName,
        settings: ServiceSettings,
        *,
        group_id: str | None = None,
        retry: RetryPolicy | None = None,
        transient: Iterable[type[BaseException]] = (),
        max_records: int = 500,
    ) -> None:
        """``transient`` names a service's own exception types that mean "a dependency is
        unavailable" (see :mod:`services.runtime.failures`)."""
        self.name = name
        self.settings = settings
        self.broker = kafka_broker(settings.kafka, client_id=f"vigil-{name.value}")
        self.publisher = EventPublisher(
            self.broker, settings.kafka, client_id=f"vigil-{name.value}"
        )
        self.metrics = ServiceMetrics(name.value)
        self.consumer = EventConsumer(
            service=name.value,
            group_id=settings.kafka.group_name(group_id or name.group_id),
            publisher=self.publisher,
            metrics=self.metrics,
            kafka=settings.kafka,
            retry=retry
            or RetryPolicy(
                backoff_initial_s=settings.consumer_backoff_initial_s,
                backoff_max_s=settings.consumer_backoff_max_s,
                hold_s=settings.consumer_hold_s,
            ),
            transient=transient,
            alerts=DeadLetterAlerts(
                service=name.value,
                alerts_topic=settings.kafka.topic_name(Topic.ALERTS),
                interval_s=settings.dead_letter_alert_interval_s,
            ),
        )
        self._max_records = max_records
        self._background: list[tuple[str, BackgroundTask]] = [
            ("dead-letter-alerts", self.consumer.keep_alerting)
        ]
        self.self_watch: SelfWatch | None = None
        self._lag: ConsumerLag | None = None
        if settings.self_watch_interval_s > 0:
            self.self_watch = SelfWatch(
                producer=name.value,
                publisher=self.publisher,
                interval_s=settings.self_watch_interval_s,
            )
            self._background.append(("self-watch", self.self_watch.run))
            self._lag = ConsumerLag(
                settings.kafka, settings.kafka.group_name(group_id or name.group_id)
            )
            self.self_watch.add_probe(
                consumer_lag_probe(
                    self._lag,
                    self._watched_topics,
                    service=name.value,
                    threshold=settings.consumer_lag_alert_records,
                    after_s=settings.consumer_lag_alert_after_s,
                ),
                raise_after=self.self_watch.checks_for(settings.consumer_lag_alert_after_s),
            )
        self._before_scrape: list[ScrapeHook] = []
        self._subscriber: object | None = None
        self._checks: dict[str, Check] = {}
        self.ready = False

    def self_watch_once(self, engine: AsyncEngine) -> None:
        """Replicas sharing ``engine``'s database: one of them publishes the self-watch's
        alerts, the holder of the ``<service>-self-watch`` lease (the others follow)."""
        if self.self_watch is not None:
            self.self_watch.publish_under(Lease(engine, f"{self.name.value}-self-watch"))

    def self_watch_where_assigned(self, topic: Topic) -> None:
        """Replicas with no database: one of them publishes the self-watch's alerts, the one
        its consumer group assigned partition 0 of ``topic`` (a topic the consumer reads)."""
        if self.self_watch is not None:
            self.self_watch.publish_under(
                self.partition_lease(f"{self.name.value}-self-watch", topic)
            )

    def partition_lease(self, name: str, topic: Topic, partition: int = 0) -> PartitionLease:
        """A lease held by the replica assigned ``partition`` of ``topic`` (see
        :class:`~services.runtime.leases.PartitionLease`)."""
        if topic not in self.consumer.topics:
            raise ValueError(f"the consumer does not read {topic.value}: no handler for it")
        return PartitionLease(
            name, self.assignment, self.settings.kafka.topic_name(topic), partition
        )

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions the group assigned this replica's consumer now (none before it joins,
        while the group rebalances, or on FastStream's in-memory test broker)."""
        consumer = getattr(self._subscriber, "consumer", None)
        if not isinstance(consumer, AIOKafkaConsumer):
            return frozenset()
        return frozenset(consumer.assignment())

    def add_background(self, name: str, run: BackgroundTask) -> None:
        """Run a coroutine for the life of the process, restarting it (with backoff) if it fails."""
        self._background.append((name, run))

    def before_scrape(self, refresh: ScrapeHook) -> None:
        """Run ``refresh`` before each ``/metrics`` scrape (gauges read from a database)."""
        self._before_scrape.append(refresh)

    def outbox_relay(self, sessions: Sessions) -> OutboxRelay:
        """Build the relay of the service's outbox, publishing with the service's publisher and
        reporting on ``/metrics`` (the caller decides where it runs)."""
        relay = OutboxRelay(sessions, self.publisher, metrics=self.metrics)
        self.before_scrape(relay.observe)
        if self.self_watch is not None:
            for probe in outbox_probes(
                relay, service=self.name.value, max_age_s=self.settings.outbox_age_alert_s
            ):
                self.self_watch.add_probe(probe)
        return relay

    def _watched_topics(self) -> list[Topic]:
        """The topics whose lag the self-watch measures: the consumer's, once it is connected
        to a real broker (FastStream's in-memory test broker has no offsets to ask about)."""
        return self.consumer.topics if self.publisher.connected else []

    def add_readiness_check(self, name: str, check: Check) -> None:
        """Make ``/readyz`` depend on a check (see :mod:`services.runtime.readiness`)."""
        if name in self._checks or name == "consumer":
            raise ValueError(f"readiness check {name!r} already exists")
        self._checks[name] = check

    async def readiness(self) -> dict[str, str]:
        """Name → ``"ok"`` or what is wrong, for each check and for the consumer."""
        results = await run_checks(self._checks, timeout_s=_CHECK_TIMEOUT_S)
        blocked = self.consumer.blocked
        results["consumer"] = "ok" if blocked is None else blocked.describe()
        return results

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Connect, consume and run background tasks until the block exits."""
        if self.consumer.topics and self._subscriber is None:
            self._subscriber = self.consumer.subscribe(self.broker, max_records=self._max_records)
        self.consumer.stop_waiting(stop=False)
        await self.broker.start()
        await self.publisher.start()
        tasks = [
            asyncio.create_task(_keep_running(name, run), name=f"{self.name.value}:{name}")
            for name, run in self._background
        ]
        self.ready = True
        log.info("%s started", self.name.value)
        try:
            yield
        finally:
            self.ready = False
            self.consumer.stop_waiting()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.broker.stop()  # in-flight handlers finish (and publish) first
            await self.publisher.stop()
            if self._lag is not None:
                await self._lag.close()
            log.info("%s stopped", self.name.value)

    def http_app(
        self,
        *,
        title: str,
        resources: Callable[[], AbstractAsyncContextManager[None]] | None = None,
        larger_bodies: Sequence[LargerBody] = (),
    ) -> FastAPI:
        """Build the service's HTTP app: ``/healthz``, ``/readyz``, ``/metrics``; its lifespan
        opens ``resources`` and then runs the service. Bodies are bounded by the settings'
        ``http_max_*`` (:mod:`.body_limits`), except the routes of ``larger_bodies``."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with AsyncExitStack() as stack:
                if resources is not None:
                    await stack.enter_async_context(resources())
                await stack.enter_async_context(self.running())
                yield

        app = FastAPI(title=title, lifespan=lifespan)
        app.add_middleware(
            BodyLimits,
            max_bytes=self.settings.http_max_body_bytes,
            max_json_depth=self.settings.http_max_json_depth,
            larger=larger_bodies,
        )
        answer_invalid_requests(app)
        document_common_responses(app)

        @app.get("/healthz", tags=["operations"])
        async def healthz() -> dict[str, str]:
            """Liveness: the process answers."""
            return {"status": "ok", "service": self.name.value}

        @app.get("/readyz", tags=["operations"])
        async def readyz(response: Response) -> dict[str, object]:
            """Readiness: consuming, dependencies answering, no event held on a transient
            failure."""
            if not self.ready:
                response.status_code = 503
                return {"status": "starting", "service": self.name.value}
            checks = await self.readiness()
            if any(result != "ok" for result in checks.values()):
                response.status_code = 503
                return {"status": "not ready", "service": self.name.value, "checks": checks}
            return {"status": "ready", "service": self.name.value, "checks": checks}

        @app.get("/metrics", tags=["operations"], response_class=Response)
        async def metrics() -> Response:
            """Prometheus metrics of this process."""
            for refresh in self._before_scrape:
                try:
                    await refresh()
                except Exception:  # stale gauges beat a failed scrape
                    log.warning("refreshing metrics before a scrape failed", exc_info=True)
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return app


async def _keep_running(name: str, run: BackgroundTask) -> None:
    delay = 0.5
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed; restarting in %.1f s", name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
