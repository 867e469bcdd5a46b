"""Composition root of the scorer: Kafka batches and ``POST /predict`` over one scoring service,
and ``POST /labels`` onto the ``labels`` topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI

from contracts.registry import ModelDeployed, ModelPromoted, ModelRolledBack
from contracts.scoring import ScoringRequest
from contracts.topics import Topic
from services.runtime import (
    RegistryClient,
    RegistryError,
    Rejection,
    ServiceName,
    ServiceRuntime,
    serve,
)
from services.runtime.identity import IdentityProvider
from services.scorer.api import install_scoring_api
from services.scorer.labels import install_labels_api
from services.scorer.request_ids import ANONYMOUS, refusal_of_reserved
from services.scorer.scoring import Item
from services.scorer.service import ScoringService
from services.scorer.settings import Settings

__all__ = ["create_app", "main"]

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    registry_http: httpx.AsyncClient | None = None,
    identity_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the scorer's app. ``registry_http`` replaces the HTTP client to the registry;
    ``identity_transport`` stands in for the identity provider (the incident log) in tests."""
    runtime = ServiceRuntime(ServiceName.SCORER, settings, max_records=settings.max_records)
    http = registry_http or httpx.AsyncClient(timeout=30.0)
    identity_http = httpx.AsyncClient(transport=identity_transport, timeout=10.0)
    identities = IdentityProvider(
        identity_http, settings.incident_log_url, ttl_seconds=settings.identity_cache_seconds
    )
    service = ScoringService(
        registry=RegistryClient(http, settings.registry_url),
        publisher=runtime.publisher,
        unknown_model_recheck_s=settings.unknown_model_recheck_seconds,
        trusted_types=settings.trusted_types,
    )

    async def on_requests(requests: list[ScoringRequest]) -> Sequence[Rejection]:
        reserved: list[Rejection] = []
        accepted: list[ScoringRequest] = []
        for request in requests:
            why = refusal_of_reserved(request.request_id, ANONYMOUS)
            if why is None:
                accepted.append(request)
            else:
                reserved.append(Rejection(request.event_id, why))
        items = [Item(r.model, r.request_id, r.entity_id, r.features, r.event_id) for r in accepted]
        outcome = await service.score(items, correlation_ids=[r.correlation_id for r in accepted])
        return reserved + [
            Rejection(accepted[refusal.index].event_id, refusal.message)
            for refusal in outcome.result.refused
        ]

    async def on_deployment(event: ModelDeployed | ModelPromoted | ModelRolledBack) -> None:
        await service.apply(event.model, event.deployment)

    runtime.consumer.on_batch(ScoringRequest, on_requests)
    runtime.consumer.on(ModelDeployed, on_deployment)
    runtime.consumer.on(ModelPromoted, on_deployment)
    runtime.consumer.on(ModelRolledBack, on_deployment)
    # No database to lease on: the replica assigned partition 0 of the requests publishes.
    runtime.self_watch_where_assigned(Topic.SCORING_REQUESTS)

    async def keep_in_step() -> None:
        while True:
            await asyncio.sleep(settings.registry_sync_seconds)
            await service.sync()

    runtime.add_background("registry-sync", keep_in_step)

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        try:
            await _first_sync(service, settings.registry_wait_seconds)
            yield
        finally:
            await identity_http.aclose()
            if registry_http is None:
                await http.aclose()

    app = runtime.http_app(title="Vigil scorer", resources=resources)
    probe_token = settings.probe_token.get_secret_value() if settings.probe_token else None
    install_scoring_api(app, service, probe_token=probe_token)
    install_labels_api(app, service, runtime.publisher, identities, clock=lambda: datetime.now(UTC))
    app.state.runtime = runtime  # tests drive the broker and read the book through these
    app.state.scoring = service
    return app


async def _first_sync(service: ScoringService, wait_s: float) -> None:
    """Load what the registry deploys before consuming, so no request meets an empty scorer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.2
    while True:
        try:
            await service.sync()
            return
        except RegistryError as error:
            if loop.time() + delay > deadline:
                raise
            log.warning("registry not ready (%s); retrying in %.1f s", error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def main() -> None:
    """Run the scorer with settings from the environment."""
    settings = Settings()
    serve(create_app(settings), settings, service=ServiceName.SCORER.value)
