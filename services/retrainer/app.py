"""Composition root of the retrainer: the registry's database, stores, API and outbox relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from contracts.envelope import utc_now
from services.retrainer.api import install_registry_api
from services.retrainer.artifacts import ArtifactStore
from services.retrainer.datasets import DatasetStore
from services.retrainer.settings import Settings
from services.retrainer.store import RegistryStore
from services.retrainer.tables import REGISTRY_TABLES
from services.runtime import (
    OutboxMessage,
    OutboxRelay,
    ProcessedEvent,
    ServiceName,
    ServiceRuntime,
    create_engine,
    create_tables,
    serve,
    session_factory,
)

__all__ = ["create_app", "main"]


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """Build the retrainer's app: registry API over its database, events via the outbox."""
    runtime = ServiceRuntime(ServiceName.RETRAINER, settings)
    engine = create_engine(settings.database)
    sessions = session_factory(engine)
    relay = OutboxRelay(sessions, runtime.publisher)
    store = RegistryStore(sessions, producer=ServiceName.RETRAINER.value, after_commit=relay.wake)
    runtime.add_background("outbox", relay.run)

    @asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        await create_tables(engine, [*REGISTRY_TABLES, ProcessedEvent, OutboxMessage])
        try:
            yield
        finally:
            await engine.dispose()

    app = runtime.http_app(title="Vigil registry (retrainer)", resources=resources)
    install_registry_api(
        app,
        store=store,
        artifacts=ArtifactStore(settings.state_dir),
        datasets=DatasetStore(settings.state_dir),
        clock=clock,
    )
    return app


def main() -> None:
    """Run the retrainer with settings from the environment."""
    settings = Settings()
    serve(create_app(settings), settings, service=ServiceName.RETRAINER.value)
