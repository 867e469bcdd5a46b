"""The monitor's composition root: settings in, a FastAPI app (with its Kafka consumer) out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from contracts.envelope import utc_now
from contracts.feedback import LabelRecorded, ValueRecorded
from contracts.registry import ModelDeployed, ModelPromoted, ModelRegistered, ModelRolledBack
from contracts.scoring import PredictionMade, ValuePredicted
from services.monitor.api import install_monitor_api
from services.monitor.migrations import HISTORY
from services.monitor.service import MonitorService
from services.monitor.settings import Settings
from services.runtime import (
    HandledIds,
    RegistryClient,
    ServiceName,
    ServiceRuntime,
    create_engine,
    serve,
    session_factory,
)
from services.runtime.idempotency import forget_periodically
from services.runtime.leases import Lease
from services.runtime.migrations import migrate
from services.runtime.readiness import database_check

__all__ = ["create_app", "main"]


def create_app(
    settings: Settings,
    *,
    registry_transport: httpx.AsyncBaseTransport | None = None,
    scorer_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Build the monitor. Tests pass transports standing in for the registry and the scorer."""
    runtime = ServiceRuntime(
        ServiceName.MONITOR,
        settings,
        group_id=settings.consumer_group,
        max_records=settings.consumer_max_records,
    )
    database_url = settings.resolved_database_url
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    runtime.add_readiness_check("database", database_check(engine))
    relay = runtime.outbox_relay(sessions)
    runtime.self_watch_once(engine)
    registry_http = httpx.AsyncClient(transport=registry_transport, timeout=10.0)
    scorer_http = httpx.AsyncClient(transport=scorer_transport)
    service = MonitorService(
        settings.policy(),
        sessions=sessions,
        relay=relay,
        registry=RegistryClient(registry_http, settings.registry_url),
        scorer=scorer_http,
        scorer_url=settings.scorer_url,
        probe_token=settings.probe_token.get_secret_value() if settings.probe_token else None,
        clock=clock,
        seed=settings.seed,
        handled_memory=settings.handled_memory,
    )

    runtime.consumer.on_batch(PredictionMade, service.on_predictions)
    runtime.consumer.on_batch(LabelRecorded, service.on_labels)
    runtime.consumer.on_batch(ValuePredicted, service.on_predictions)
    runtime.consumer.on_batch(ValueRecorded, service.on_labels)
    runtime.consumer.on(ModelRegistered, service.on_registered)
    runtime.consumer.on(ModelDeployed, service.on_deployment_changed)
    runtime.consumer.on(ModelPromoted, service.on_deployment_changed)
    runtime.consumer.on(ModelRolledBack, service.on_deployment_changed)
    runtime.add_background("outbox", relay.run)
    runtime.add_background("deployments", service.load_deployments)
    runtime.add_background(
        "forget-handled-ids",
        partial(
            forget_periodically,
            sessions,
            HandledIds.forget_before,
            timedelta(seconds=settings.handled_retention_seconds),
            clock=clock,
        ),
    )
    if settings.probes_enabled:
        probes = Lease(engine, "monitor-probes")
        runtime.add_background(
            "probes", partial(service.run_probes, settings.probe_tick_seconds, probes)
        )

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        url = make_url(database_url)
        if url.drivername.startswith("sqlite") and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            await migrate(engine, HISTORY)
            await service.start()
            yield
        finally:
            await registry_http.aclose()
            await scorer_http.aclose()
            await engine.dispose()

    app = runtime.http_app(title="Vigil monitor", resources=resources)
    install_monitor_api(app, service)
    app.state.runtime = runtime
    app.state.service = service
    return app


def main() -> None:
    """Run the monitor with settings from the environment until SIGTERM."""
    settings = Settings()
    serve(create_app(settings), settings, service=ServiceName.MONITOR.value)
