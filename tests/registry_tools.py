"""A registry (the retrainer's API and store, without a broker) on a test database, with an
identity provider double that knows a writer (ana, l2) and a level-one reader (lee, l1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine

from services.retrainer.callers import install_callers
from services.retrainer.content import blocking_engine
from services.retrainer.migrations import HISTORY
from services.retrainer.registry.api import install_registry_api
from services.retrainer.registry.artifacts import ArtifactStore
from services.retrainer.registry.datasets import DatasetStore
from services.retrainer.registry.store import RegistryStore
from services.runtime import (
    DEFAULT_TRUSTED_TYPES,
    OutboxRelay,
    Publisher,
    Sessions,
    create_engine,
    session_factory,
)
from services.runtime.identity import IdentityProvider
from services.runtime.migrations import migrate
from tests.clock import FakeClock
from tests.factories import T0
from tests.model_builders import TrainedModel, registration_form, train

PEOPLE = {"token-ana": ("ana", "l2"), "token-lee": ("lee", "l1")}
"""Tokens the identity double knows: ana may change the registry, lee may not."""


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of a token."""
    return {"Authorization": f"Bearer {token}"}


AS_ANA = bearer("token-ana")
AS_LEE = bearer("token-lee")


def identity_double(
    people: dict[str, tuple[str, str]], *, acting_for_others: frozenset[str] = frozenset()
) -> httpx.MockTransport:
    """An identity provider answering ``/whoami`` for tokens → (name, role); the names in
    ``acting_for_others`` may act for others (as the runbook runner's token may)."""

    def answer(request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if request.url.path != "/whoami" or token not in people:
            return httpx.Response(401, json={"detail": "unknown or revoked token"})
        name, role = people[token]
        return httpx.Response(
            200, json={"name": name, "role": role, "acts_for_others": name in acting_for_others}
        )

    return httpx.MockTransport(answer)

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Registry:
    app: FastAPI
    store: RegistryStore
    sessions: Sessions
    clock: FakeClock[datetime]
    content: Engine
    """A blocking engine on the registry's database, for its content tables."""

    def relay(self, publisher: Publisher) -> OutboxRelay:
        return OutboxRelay(self.sessions, publisher)


@asynccontextmanager
async def registry(
    database_url: str, *, trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES
) -> AsyncIterator[Registry]:
    engine = create_engine(database_url)
    await migrate(engine, HISTORY)
    sessions = session_factory(engine)
    content = blocking_engine(database_url)
    store = RegistryStore(sessions, producer="retrainer")
    clock = FakeClock(T0)
    app = FastAPI()
    identity_http = httpx.AsyncClient(transport=identity_double(PEOPLE))
    install_callers(app, IdentityProvider(identity_http, "http://identity", ttl_seconds=0))
    install_registry_api(
        app,
        store=store,
        artifacts=ArtifactStore(content),
        datasets=DatasetStore(content),
        clock=clock,
        trusted_types=trusted_types,
    )
    try:
        yield Registry(app, store, sessions, clock, content)
    finally:
        await identity_http.aclose()
        await engine.dispose()
        content.dispose()


async def register(
    http: httpx.AsyncClient,
    model: str,
    trained: TrainedModel,
    *,
    headers: dict[str, str] = AS_ANA,
    **overrides: object,
) -> httpx.Response:
    """Register a version as ``headers``' owner (ana by default)."""
    data, files = registration_form(trained, **overrides)
    return await http.post(f"/models/{model}/versions", data=data, files=files, headers=headers)


async def deploy(
    http: httpx.AsyncClient,
    model: str,
    champion: int,
    challenger: int | None = None,
    share: float = 0.0,
    mode: str = "canary",
    *,
    headers: dict[str, str] = AS_ANA,
) -> httpx.Response:
    """Deploy as ``headers``' owner (ana by default)."""
    body = {
        "champion": champion,
        "challenger": challenger,
        "challenger_share": share,
        "mode": mode,
        "reason": "test",
    }
    return await http.put(f"/models/{model}/deployment", json=body, headers=headers)


@asynccontextmanager
async def one_version_deployed(
    database_url: str, model: str
) -> AsyncIterator[tuple[Registry, httpx.AsyncClient]]:
    """A registry with v1 of ``model`` (``train()``) registered and deployed alone, and a client
    that calls it in process at ``http://registry``: what a scorer under test serves from."""
    async with (
        registry(database_url) as reg,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=reg.app), base_url="http://registry"
        ) as registry_http,
    ):
        assert (await register(registry_http, model, train())).status_code == 201
        assert (await deploy(registry_http, model, 1)).status_code == 200
        yield reg, registry_http
