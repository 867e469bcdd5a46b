"""Composition root of the runbook runner: catalogue, database, consumer (run requests, and
incident resolutions that make waiting runs pointless), worker, relay."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from contracts.envelope import utc_now
from contracts.incidents import IncidentResolved
from contracts.runbooks import RunbookRequest
from services.runbook_runner.admission import shown
from services.runbook_runner.catalog import load_catalog
from services.runbook_runner.environment import script_environment
from services.runbook_runner.migrations import HISTORY
from services.runbook_runner.service import Clock, Limits, Runner
from services.runbook_runner.settings import SERVICE, Settings
from services.runtime.consumer import Rejected
from services.runtime.database import create_engine, session_factory
from services.runtime.migrations import migrate
from services.runtime.readiness import database_check
from services.runtime.request_signing import verification_problem
from services.runtime.serve import serve
from services.runtime.service import ServiceRuntime

__all__ = ["create_app", "main", "vigil_environment"]


def vigil_environment(settings: Settings) -> dict[str, str]:
    """What Vigil gives every script: the service addresses, where the topics are (a replay
    reads the dead letters), and the runbook token."""
    given = {
        "VIGIL_INCIDENT_LOG_URL": settings.incident_log_url,
        "VIGIL_REGISTRY_URL": settings.registry_url,
        "VIGIL_SCORER_URL": settings.scorer_url,
        "VIGIL_MONITOR_URL": settings.monitor_url,
        "VIGIL_DRIFT_DETECTOR_URL": settings.drift_detector_url,
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "VIGIL_KAFKA_PROFILE": settings.kafka.profile.value,
        "VIGIL_KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
    }
    if settings.runbook_token is not None:
        given["VIGIL_RUNBOOK_TOKEN"] = settings.runbook_token.get_secret_value()
    return given


def create_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    """Build the runner; the catalogue and the signing keys are checked here, before anything
    starts."""
    catalog = load_catalog(settings.catalog_path)
    keys = settings.signing_keys()
    clock_skew = timedelta(seconds=settings.request_clock_skew_seconds)
    runtime = ServiceRuntime(SERVICE, settings)
    engine = create_engine(settings.resolved_database_url())
    sessions = session_factory(engine)
    runtime.add_readiness_check("database", database_check(engine))
    relay = runtime.outbox_relay(sessions)
    runtime.self_watch_once(engine)
    runner = Runner(
        sessions,
        catalog,
        Limits(
            instance=settings.resolved_instance(),
            work_dir=settings.resolved_work_dir(),
            python=sys.executable,
            max_concurrent_runs=settings.max_concurrent_runs,
            output_limit_bytes=settings.output_limit_bytes,
            kill_grace_s=settings.kill_grace_seconds,
            stop_grace_s=settings.stop_grace_seconds,
            poll_interval_s=settings.poll_interval_seconds,
            max_queue_age_s=settings.max_queue_age_seconds,
            lease_s=settings.run_lease_seconds,
        ),
        environment=script_environment(
            os.environ, settings.script_env_allowlist, vigil_environment(settings)
        ),
        clock=clock,
        committed=relay.wake,
        flush=relay.publish_pending if settings.run_outbox_relay else None,
    )

    async def on_request(request: RunbookRequest) -> None:
        """Run only what the incident log signed; anything else is dead-lettered, unrecorded
        (recording it would let a forger take a run id before the real request arrives)."""
        problem = verification_problem(request, keys, now=clock(), clock_skew=clock_skew)
        if problem is not None:
            raise Rejected(f"runbook request {shown(request.run_id)} not run: {problem}")
        await runner.accept(request)

    runtime.consumer.on(RunbookRequest, on_request)
    runtime.consumer.on(IncidentResolved, runner.on_incident_resolved)
    runtime.add_background("runs", runner.work)
    if settings.run_outbox_relay:
        runtime.add_background("outbox-relay", relay.run)

    @asynccontextmanager
    async def database() -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        await migrate(engine, HISTORY)
        await runner.recover()
        try:
            yield
        finally:
            await engine.dispose()

    app = runtime.http_app(title="Vigil runbook runner", resources=database)
    app.state.runtime = runtime  # tests drive the broker through it
    return app


def main() -> None:
    """Run the runbook runner in this process."""
    settings = Settings()
    serve(create_app(settings), settings, service=SERVICE.value)
