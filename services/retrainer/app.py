"""Composition root of the retrainer: the registry (database, stores, API, outbox relay) and
governed retraining (labelled live data, triggers, the worker, approvals, the canary)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from contracts.alerts import AlertRaised
from contracts.envelope import utc_now
from contracts.feedback import LabelRecorded, ValueRecorded
from contracts.monitoring import VariantsCompared
from contracts.retraining import RetrainRequest
from contracts.scoring import PredictionMade, ValuePredicted
from services.retrainer.callers import install_callers
from services.retrainer.content import blocking_engine
from services.retrainer.file_import import import_state_files
from services.retrainer.migrations import HISTORY
from services.retrainer.registry.api import REGISTRATION_PATH, install_registry_api
from services.retrainer.registry.artifacts import ArtifactStore
from services.retrainer.registry.datasets import DatasetStore
from services.retrainer.registry.store import RegistryStore
from services.retrainer.retraining.api import install_retraining_api
from services.retrainer.retraining.live_examples import LiveExamples
from services.retrainer.retraining.runs import AskRefused, RetrainRuns, UnknownModel
from services.retrainer.retraining.schedules import run_schedules
from services.retrainer.retraining.triggers import RetrainAsk, ask_for_alert
from services.retrainer.retraining.worker import RetrainWorker, code_version
from services.retrainer.rollout.api import install_rollout_api
from services.retrainer.rollout.governance import Governance
from services.retrainer.settings import Settings
from services.runtime import (
    LargerBody,
    ServiceName,
    ServiceRuntime,
    create_engine,
    serve,
    session_factory,
)
from services.runtime.idempotency import forgetting_processed_ids
from services.runtime.identity import IdentityProvider
from services.runtime.leases import Lease
from services.runtime.migrations import migrate
from services.runtime.readiness import database_check

__all__ = ["create_app", "main"]

log = logging.getLogger(__name__)

_PRUNE_EVERY_S = 600.0


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    identity_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the retrainer. Tests pass a transport standing in for the identity provider."""
    runtime = ServiceRuntime(ServiceName.RETRAINER, settings, group_id=settings.consumer_group)
    producer = ServiceName.RETRAINER.value
    engine = create_engine(settings.database)
    sessions = session_factory(engine)
    content = blocking_engine(settings.database)
    runtime.add_readiness_check("database", database_check(engine))
    relay = runtime.outbox_relay(sessions)
    runtime.self_watch_once(engine)
    store = RegistryStore(sessions, producer=producer, after_commit=relay.wake)
    live = LiveExamples(
        sessions,
        dialect=engine.dialect.name,
        max_per_model=settings.max_live_examples,
        unlabelled_ttl=settings.unlabelled_ttl,
    )
    governance = Governance(
        sessions,
        store,
        producer=producer,
        clock=clock,
        promotion_ttl=settings.promotion_ttl,
        canary_share=settings.canary_share,
        canary_min_labels=settings.canary_min_labels,
        after_commit=relay.wake,
    )
    runs = RetrainRuns(
        sessions,
        store,
        producer=producer,
        cooldown=settings.cooldown,
        lease=settings.lease,
        clock=clock,
        after_commit=relay.wake,
        on_queued=lambda: worker.wake(),
    )
    worker = RetrainWorker(
        sessions=sessions,
        runs=runs,
        governance=governance,
        registry=store,
        live=live,
        content=content,
        gate=settings.gate_policy(),
        code=code_version(),
        clock=clock,
        poll_seconds=settings.worker_poll_seconds,
        lease_seconds=settings.lease_seconds,
        trusted_types=settings.trusted_types,
        after_commit=relay.wake,
    )
    identity_http = httpx.AsyncClient(transport=identity_transport, timeout=10.0)
    identities = IdentityProvider(
        identity_http, settings.incident_log_url, ttl_seconds=settings.identity_cache_seconds
    )

    async def on_predictions(events: list[PredictionMade] | list[ValuePredicted]) -> None:
        await live.add_predictions(events, clock())

    async def on_labels(events: list[LabelRecorded] | list[ValueRecorded]) -> None:
        await live.add_labels(events, clock())

    async def on_retrain_request(request: RetrainRequest) -> None:
        ask = RetrainAsk(
            model=request.model,
            cause=request.cause,
            trigger=request.trigger,
            requested_by=request.requested_by,
            reason=request.reason,
            at=request.occurred_at,
            incident_id=request.incident_id,
            parameters=request.parameters,
            via=request.via,
        )
        try:
            await runs.ask(ask, event_id=request.event_id)
        except (UnknownModel, AskRefused) as error:
            # Answered and recorded as refused: the asker hears it on ``models``.
            log.info("retrain ask %s refused: %s", request.event_id, error)

    async def on_comparison(comparison: VariantsCompared) -> None:
        await governance.on_comparison(comparison)

    alert_policy = settings.alert_policy()

    async def on_alerts(alerts: list[AlertRaised]) -> None:
        for alert in alerts:
            ask = ask_for_alert(alert, alert_policy)
            if ask is None:
                continue
            try:
                await runs.ask(ask, event_id=alert.event_id)
            except (UnknownModel, AskRefused) as error:
                log.info("retrain on alert %s refused: %s", alert.event_id, error)

    runtime.consumer.on_batch(PredictionMade, on_predictions)
    runtime.consumer.on_batch(LabelRecorded, on_labels)
    runtime.consumer.on_batch(ValuePredicted, on_predictions)
    runtime.consumer.on_batch(ValueRecorded, on_labels)
    runtime.consumer.on(RetrainRequest, on_retrain_request)
    runtime.consumer.on(VariantsCompared, on_comparison)
    if alert_policy.enabled:
        runtime.consumer.on_batch(AlertRaised, on_alerts)

    async def governance_tick() -> None:
        while True:
            await governance.expire_due()
            await governance.reconcile_canaries()
            await asyncio.sleep(settings.governance_interval_seconds)

    async def prune_live_examples() -> None:
        while True:
            await live.prune(clock())
            await asyncio.sleep(_PRUNE_EVERY_S)

    runtime.add_background("outbox", relay.run)
    runtime.add_background("worker", worker.run_forever)
    schedules = Lease(engine, "retrainer-schedules")
    runtime.add_background(
        "schedules",
        run_schedules(store, runs, clock, settings.schedule_interval_seconds, schedules),
    )
    runtime.add_background("governance", governance_tick)
    runtime.add_background("prune-live-examples", prune_live_examples)
    runtime.add_background(
        "forget-processed-ids",
        forgetting_processed_ids(sessions, settings.processed_ids_retention_seconds, clock),
    )

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        url = make_url(settings.database)
        if url.drivername.startswith("sqlite") and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        await migrate(engine, HISTORY)
        await asyncio.to_thread(import_state_files, settings.state_dir, content)
        try:
            yield
        finally:
            await identity_http.aclose()
            await engine.dispose()
            await asyncio.to_thread(content.dispose)

    app = runtime.http_app(
        title="Vigil registry and retrainer",
        resources=resources,
        larger_bodies=[LargerBody("POST", REGISTRATION_PATH, settings.max_upload_bytes)],
    )
    install_callers(app, identities)
    install_registry_api(
        app,
        store=store,
        artifacts=ArtifactStore(content),
        trusted_types=settings.trusted_types,
        datasets=DatasetStore(content),
        clock=clock,
    )
    install_rollout_api(app, governance=governance)
    install_retraining_api(app, runs=runs, governance=governance, live=live, clock=clock)
    app.state.runtime = runtime
    app.state.worker = worker
    app.state.runs = runs
    app.state.governance = governance
    app.state.live = live
    return app


def main() -> None:
    """Run the retrainer with settings from the environment."""
    settings = Settings()
    serve(create_app(settings), settings, service=ServiceName.RETRAINER.value)
