"""Fixtures of the retraining tests: the retrainer on the in-memory broker, or on the real broker
with the real incident log as identity provider (one process per test module)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.runtime import KafkaSettings, ensure_topics
from tests.processes import issue_tokens, running_incident_log
from tests.registry_tools import Registry, registry
from tests.retrainer.retrainer_harness import Retrainer, in_memory_retrainer, real_retrainer

PEOPLE = {"ana": "l2", "bo": "l2", "cy": "l2", "lee": "l1"}
"""People with incident-log tokens: ana asks for retrains, bo approves, lee is level one."""

_ADMIN = "retrainer-tests-admin"


@pytest.fixture(scope="module")
async def identity_provider(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The real incident log as a process; returns its URL and a token per person."""
    folder = tmp_path_factory.mktemp("incident-log")
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"il{uuid.uuid4().hex[:8]}."
    )
    await ensure_topics(kafka_bootstrap, prefix=kafka.topic_prefix)
    async with running_incident_log(
        kafka, folder, admin_token=_ADMIN, group_wait_seconds=None
    ) as process:
        yield process.url, await issue_tokens(process.url, _ADMIN, PEOPLE)


@pytest.fixture(params=["memory", pytest.param("real", marks=pytest.mark.integration)])
def mode(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``memory``: FastStream's in-memory broker and an identity double; ``real``: the real
    broker, loopback HTTP and the real incident log."""
    if request.param == "memory":
        return {"mode": "memory"}
    return {
        "mode": "real",
        "kafka": request.getfixturevalue("kafka_settings"),
        "identity": request.getfixturevalue("identity_provider"),
    }


@pytest.fixture
def retrainer_settings() -> dict[str, Any]:
    """Settings a test module overrides for its retrainer (none by default)."""
    return {}


@pytest.fixture
async def retrainer(
    mode: dict[str, Any], tmp_path: Path, database_url: str, retrainer_settings: dict[str, Any]
) -> AsyncIterator[Retrainer]:
    """A running retrainer with breast-cancer v1 registered and deployed as champion."""
    if mode["mode"] == "memory":
        people = {f"token-{name}": (name, role) for name, role in PEOPLE.items()}
        async with in_memory_retrainer(
            tmp_path, database_url, people, **retrainer_settings
        ) as running:
            yield running
        return
    url, tokens = mode["identity"]
    async with real_retrainer(
        tmp_path, mode["kafka"], database_url, url, tokens, **retrainer_settings
    ) as running:
        yield running


@pytest.fixture
async def reg(database_url: str) -> AsyncIterator[Registry]:
    """The registry's API alone on the test's database, without broker or retraining."""
    async with registry(database_url) as built:
        yield built


@pytest.fixture
async def http(reg: Registry) -> AsyncIterator[httpx.AsyncClient]:
    """A client that calls the registry's API in process."""
    transport = httpx.ASGITransport(app=reg.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        yield client
