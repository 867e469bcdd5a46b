"""A registry (the retrainer's API and store, without a broker) on a test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from services.retrainer.api import install_registry_api
from services.retrainer.artifacts import ArtifactStore
from services.retrainer.datasets import DatasetStore
from services.retrainer.store import RegistryStore
from services.retrainer.tables import REGISTRY_TABLES
from services.runtime import (
    OutboxMessage,
    OutboxRelay,
    ProcessedEvent,
    Publisher,
    Sessions,
    create_engine,
    create_tables,
    session_factory,
)
from tests.factories import T0
from tests.model_builders import TrainedModel, registration_form


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Registry:
    app: FastAPI
    store: RegistryStore
    sessions: Sessions
    clock: FakeClock

    def relay(self, publisher: Publisher) -> OutboxRelay:
        return OutboxRelay(self.sessions, publisher)


@asynccontextmanager
async def registry(database_url: str, state_dir: Path) -> AsyncIterator[Registry]:
    engine = create_engine(database_url)
    await create_tables(engine, [*REGISTRY_TABLES, ProcessedEvent, OutboxMessage])
    sessions = session_factory(engine)
    store = RegistryStore(sessions, producer="retrainer")
    clock = FakeClock()
    app = FastAPI()
    install_registry_api(
        app,
        store=store,
        artifacts=ArtifactStore(state_dir),
        datasets=DatasetStore(state_dir),
        clock=clock,
    )
    try:
        yield Registry(app, store, sessions, clock)
    finally:
        await engine.dispose()


async def register(
    http: httpx.AsyncClient, model: str, trained: TrainedModel, **overrides: object
) -> httpx.Response:
    data, files = registration_form(trained, **overrides)
    return await http.post(f"/models/{model}/versions", data=data, files=files)


async def deploy(
    http: httpx.AsyncClient,
    model: str,
    champion: int,
    challenger: int | None = None,
    share: float = 0.0,
    mode: str = "canary",
) -> httpx.Response:
    body = {
        "champion": champion,
        "challenger": challenger,
        "challenger_share": share,
        "mode": mode,
        "actor": "ana",
        "reason": "test",
    }
    return await http.put(f"/models/{model}/deployment", json=body)
