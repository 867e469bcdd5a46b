"""The drift detector's composition root: settings in, a FastAPI app (with its Kafka consumer)
out. What it does with predictions is :mod:`services.drift_detector.service`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from contracts.envelope import utc_now
from contracts.scoring import PredictionMade, ValuePredicted
from services.drift_detector.episode_store import DatabaseEpisodeStore, EpisodeStore
from services.drift_detector.migrations import HISTORY
from services.drift_detector.profiles import FileProfileStore, ProfileStore
from services.drift_detector.references import References
from services.drift_detector.service import Clock, VersionStreams, publish_committed
from services.drift_detector.settings import SERVICE, Settings
from services.runtime.database import create_engine, session_factory
from services.runtime.migrations import migrate
from services.runtime.readiness import database_check
from services.runtime.registry_client import RegistryClient
from services.runtime.serve import serve
from services.runtime.service import ServiceRuntime

__all__ = ["create_app", "main"]


def create_app(
    settings: Settings,
    *,
    registry: RegistryClient | None = None,
    profiles: ProfileStore | None = None,
    episodes: EpisodeStore | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """Build the drift detector (``registry`` and the stores may be given by tests)."""
    runtime = ServiceRuntime(SERVICE, settings)
    database_url = settings.resolved_database_url
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    runtime.add_readiness_check("database", database_check(engine))
    relay = runtime.outbox_relay(sessions)
    runtime.self_watch_once(engine)
    clients: dict[str, RegistryClient] = {}
    if registry is not None:
        clients["registry"] = registry

    def current_registry() -> RegistryClient:
        return clients["registry"]

    streams = VersionStreams(
        config=settings.tracker_config(),
        references=References(
            profiles or FileProfileStore(settings.state_dir), max_rows=settings.max_reference_rows
        ),
        episodes=episodes or DatabaseEpisodeStore(sessions),
        registry=current_registry,
        committed=partial(publish_committed, relay),
        clock=clock,
    )
    runtime.consumer.on_batch(PredictionMade, streams.on_predictions)
    runtime.add_background("outbox", relay.run)
    runtime.consumer.on_batch(ValuePredicted, streams.on_predictions)

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        url = make_url(database_url)
        if url.drivername.startswith("sqlite") and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            await migrate(engine, HISTORY)
            if "registry" in clients:
                yield
                return
            async with httpx.AsyncClient(timeout=30.0) as http:
                token = settings.service_token
                clients["registry"] = RegistryClient(
                    http, settings.registry_url, token=token.get_secret_value() if token else None
                )
                try:
                    yield
                finally:
                    clients.pop("registry", None)
        finally:
            await engine.dispose()

    app = runtime.http_app(title="Vigil drift detector", resources=resources)
    app.state.runtime = runtime  # tests drive the broker through it
    return app


def main() -> None:
    """Run the drift detector in this process."""
    settings = Settings()
    serve(create_app(settings), settings, service=SERVICE.value)
