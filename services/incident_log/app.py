"""Composition root of the incident log: database, policy, consumer, timers, relay, HTTP API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from contracts.alerts import AlertRaised, AlertRecovered
from contracts.envelope import utc_now
from contracts.monitoring import MetricsComputed
from contracts.registry import (
    CandidateEvaluated,
    ModelApproved,
    ModelPromoted,
    ModelRegistered,
    ModelRejected,
    ModelRolledBack,
    PromotionExpired,
    PromotionRequested,
    RetrainFinished,
    RetrainStarted,
)
from contracts.retraining import RetrainAnswered, RetrainRequest
from contracts.runbooks import RunbookFinished, RunbookRequest, RunbookStarted
from services.incident_log.api import install_incident_api
from services.incident_log.approval_api import install_approval_api
from services.incident_log.approvals import load_approval_policy
from services.incident_log.auth import install_authentication
from services.incident_log.changes import ChangeFeed
from services.incident_log.console import (
    PREFIX,
    SignInRequired,
    build_console,
    sign_in_redirect,
    static_files,
)
from services.incident_log.migrations import HISTORY
from services.incident_log.paging.api import install_paging_api
from services.incident_log.paging.channels import Channels, SmtpSettings
from services.incident_log.paging.dispatcher import Dispatcher, PagingConfig
from services.incident_log.paging.health import paging_probe
from services.incident_log.review_api import install_review_api
from services.incident_log.routing import load_policy
from services.incident_log.runbook_choices import load_catalog_view
from services.incident_log.service import Clock, IncidentLog
from services.incident_log.settings import SERVICE, Settings
from services.incident_log.token_api import install_token_api
from services.incident_log.tokens import ProvisionedToken, provision_tokens
from services.runtime.database import create_engine, session_factory
from services.runtime.idempotency import forgetting_processed_ids
from services.runtime.migrations import migrate
from services.runtime.readiness import database_check
from services.runtime.request_signing import SigningKeys, sign
from services.runtime.serve import serve
from services.runtime.service import ServiceRuntime

__all__ = ["create_app", "main", "runbook_signer"]

logger = logging.getLogger(__name__)

_TIMER_BATCH = 100


def create_app(settings: Settings, *, clock: Clock = utc_now) -> FastAPI:
    """Build the incident log; the routing policy is validated here, before anything starts."""
    policy = load_policy(settings.policy_path)
    # Under a backlog, bigger polls cut the CPU an alert costs (ADR 0016); without one, polls
    # are small whatever the cap.
    runtime = ServiceRuntime(SERVICE, settings, max_records=settings.consumer_max_records)
    engine = create_engine(settings.resolved_database_url())
    sessions = session_factory(engine)
    runtime.add_readiness_check("database", database_check(engine))
    relay = runtime.outbox_relay(sessions)
    runtime.self_watch_once(engine)
    feed = ChangeFeed()
    pager_http = httpx.AsyncClient(timeout=settings.page_attempt_timeout_seconds)
    dispatcher = Dispatcher(
        sessions,
        Channels(pager_http, smtp_settings(settings)),
        paging_config(settings),
        clock=clock,
        committed=relay.wake,
    )

    def committed() -> None:
        relay.wake()
        dispatcher.wake()
        feed.notify()

    log = IncidentLog(
        sessions,
        policy,
        clock=clock,
        committed=committed,
        sign=runbook_signer(settings),
        approvals=load_approval_policy(
            settings.catalog_path, timedelta(seconds=settings.runbook_approval_timeout_seconds)
        ),
    )
    provisioned = [
        ProvisionedToken(
            name=entry.name,
            token_sha256=entry.digest(),
            role=entry.role,
            scopes=frozenset(entry.scopes) if entry.scopes is not None else None,
        )
        for entry in settings.service_tokens
    ]
    if runtime.self_watch is not None:
        runtime.self_watch.add_probe(paging_probe(sessions))

    runtime.consumer.on_batch(AlertRaised, log.on_alerts)
    runtime.consumer.on_batch(AlertRecovered, log.on_recoveries)
    runtime.consumer.on(RetrainRequest, log.on_retrain_request)
    runtime.consumer.on(RunbookStarted, log.on_runbook_result)
    runtime.consumer.on(RunbookFinished, log.on_runbook_result)

    # Retraining and registry steps go on the timeline of the incident that caused them.
    runtime.consumer.on(RetrainAnswered, log.on_model_news)
    runtime.consumer.on(RetrainStarted, log.on_model_news)
    runtime.consumer.on(RetrainFinished, log.on_model_news)
    runtime.consumer.on(ModelRegistered, log.on_model_news)
    runtime.consumer.on(CandidateEvaluated, log.on_model_news)
    runtime.consumer.on(PromotionRequested, log.on_model_news)
    runtime.consumer.on(PromotionExpired, log.on_model_news)
    runtime.consumer.on(ModelApproved, log.on_model_news)
    runtime.consumer.on(ModelRejected, log.on_model_news)
    runtime.consumer.on(ModelPromoted, log.on_model_news)
    runtime.consumer.on(ModelRolledBack, log.on_model_news)
    runtime.consumer.on_batch(MetricsComputed, log.on_metrics)

    async def fire_timers() -> None:
        while True:
            while await log.fire_due_timers(limit=_TIMER_BATCH) == _TIMER_BATCH:
                pass
            while await log.lapse_retrains(limit=_TIMER_BATCH) == _TIMER_BATCH:
                pass
            while await log.expire_approvals(limit=_TIMER_BATCH) == _TIMER_BATCH:
                pass
            await asyncio.sleep(settings.timer_interval_s)

    runtime.add_background("timers", fire_timers)
    runtime.add_background(
        "forget-processed-ids",
        forgetting_processed_ids(sessions, settings.processed_ids_retention_seconds, clock),
    )
    if settings.run_outbox_relay:
        runtime.add_background("outbox-relay", relay.run)
    if settings.run_pager:
        runtime.add_background("pager", dispatcher.run)

    @asynccontextmanager
    async def database() -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        await migrate(engine, HISTORY)
        await provision_tokens(sessions, provisioned, log.now())
        try:
            yield
        finally:
            await pager_http.aclose()
            await engine.dispose()

    app = runtime.http_app(title="Vigil incident log", resources=database)
    app.state.runtime = runtime  # tests drive the broker through it
    admin_sha256 = settings.admin_sha256()
    install_authentication(app, sessions, admin_sha256=admin_sha256, clock=log.now)
    install_incident_api(app, log, sessions, catalog=load_catalog_view(settings.catalog_path))
    install_token_api(app, sessions, clock=log.now)

    def own_api() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://incident-log", timeout=30
        )

    def registry() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=settings.registry_url, timeout=10)

    def monitor() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=settings.monitor_url, timeout=5)

    install_review_api(app, log, sessions)
    install_approval_api(app, log, sessions)
    install_paging_api(app, sessions, log, committed=committed)
    app.include_router(
        build_console(
            own_api,
            feed,
            registry=registry,
            monitor=monitor,
            public_url=settings.public_url,
        )
    )
    app.mount(f"{PREFIX}/static", static_files(), name="console-static")
    app.add_exception_handler(SignInRequired, sign_in_redirect)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/")

    return app


def runbook_signer(settings: Settings) -> Callable[[RunbookRequest], RunbookRequest] | None:
    """What signs the runbook requests the incident log publishes (none without a key: the
    runner then refuses every request, which the log says at start)."""
    if settings.runbook_signing_key is None or not settings.runbook_signing_key.get_secret_value():
        logger.warning(
            "VIGIL_RUNBOOK_SIGNING_KEY is not set: runbook requests go out unsigned, and the "
            "runbook runner will refuse them"
        )
        return None
    keys = SigningKeys.parse(settings.runbook_signing_key.get_secret_value())
    valid_for = timedelta(seconds=settings.runbook_request_validity_seconds)
    return lambda request: sign(request, keys, valid_for=valid_for)


def paging_config(settings: Settings) -> PagingConfig:
    """How the dispatcher pages, from the settings."""
    return PagingConfig(
        public_url=settings.public_url,
        retry_base=timedelta(seconds=settings.page_retry_base_seconds),
        retry_cap=timedelta(seconds=settings.page_retry_cap_seconds),
        give_up_after=timedelta(seconds=settings.page_give_up_after_seconds),
        attempt_timeout=timedelta(seconds=settings.page_attempt_timeout_seconds),
        pages_per_window=settings.pages_per_window,
        rate_window=timedelta(seconds=settings.page_rate_window_seconds),
        link_ttl=timedelta(hours=settings.ack_link_ttl_hours),
    )


def smtp_settings(settings: Settings) -> SmtpSettings | None:
    """The SMTP relay, if one is configured."""
    if settings.smtp_host is None:
        return None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        username=settings.smtp_username,
        password=password,
        starttls=settings.smtp_starttls,
    )


def main() -> None:
    """Run the incident log in this process."""
    settings = Settings()
    serve(create_app(settings), settings, service=SERVICE.value)
