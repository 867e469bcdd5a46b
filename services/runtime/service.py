"""The machinery of one service process: broker, publisher, consumer, metrics, background tasks.

A service's ``create_app`` builds a :class:`ServiceRuntime`, registers handlers on its consumer,
and returns :meth:`ServiceRuntime.http_app` with its own routes added. Start-up order: the
service's resources (database, HTTP clients), then the broker and its consumer, then background
tasks; shutdown runs in reverse, and the broker stop waits for in-flight handlers so their offsets
are committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.runtime.body_limits import BodyLimits, LargerBody
from services.runtime.consumer import EventConsumer, RetryPolicy
from services.runtime.invalid_requests import answer_invalid_requests
from services.runtime.kafka import kafka_broker
from services.runtime.names import ServiceName
from services.runtime.observability import ServiceMetrics
from services.runtime.publisher import EventPublisher
from services.runtime.settings import ServiceSettings

__all__ = ["ServiceRuntime"]

log = logging.getLogger(__name__)

BackgroundTask = Callable[[], Awaitable[None]]


class ServiceRuntime:
    """Shared mechanics of a service process; one instance per process (or per test)."""

    def __init__(
        self,
        name: ServiceName,
        settings: ServiceSettings,
        *,
        group_id: str | None = None,
        retry: RetryPolicy | None = None,
        max_records: int = 500,
    ) -> None:
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
            retry=retry,
        )
        self._max_records = max_records
        self._background: list[tuple[str, BackgroundTask]] = []
        self._subscribed = False
        self.ready = False

    def add_background(self, name: str, run: BackgroundTask) -> None:
        """Run a coroutine for the life of the process, restarting it (with backoff) if it fails."""
        self._background.append((name, run))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Connect, consume and run background tasks until the block exits."""
        if self.consumer.topics and not self._subscribed:
            self.consumer.subscribe(self.broker, max_records=self._max_records)
            self._subscribed = True
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
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.broker.stop()  # in-flight handlers finish (and publish) first
            await self.publisher.stop()
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

        @app.get("/healthz", tags=["operations"])
        async def healthz() -> dict[str, str]:
            """Liveness: the process answers."""
            return {"status": "ok", "service": self.name.value}

        @app.get("/readyz", tags=["operations"])
        async def readyz(response: Response) -> dict[str, str]:
            """Readiness: connected to the broker and consuming."""
            if not self.ready:
                response.status_code = 503
                return {"status": "starting", "service": self.name.value}
            return {"status": "ready", "service": self.name.value}

        @app.get("/metrics", tags=["operations"], response_class=Response)
        async def metrics() -> Response:
            """Prometheus metrics of this process."""
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
