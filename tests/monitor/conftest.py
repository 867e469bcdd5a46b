"""Fixtures of the monitor's tests: its service on a real database, with test doubles of the
registry and the scorer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.monitor.domain import MonitorPolicy
from services.monitor.migrations import HISTORY
from services.monitor.service import MonitorService
from services.monitor.settings import Settings
from services.monitor.windows import WindowPolicy
from services.runtime import (
    KafkaSettings,
    OutboxRelay,
    RegistryClient,
    create_engine,
    session_factory,
)
from services.runtime.migrations import migrate
from tests.factories import MODEL, T0, make_deployment, make_version_record
from tests.monitor.doubles import FakeRegistry, FakeScorer
from tests.publishers import RecordingPublisher

ServiceMaker = Callable[..., Awaitable[tuple[MonitorService, RecordingPublisher]]]


def monitor_settings(
    tmp_path: Path, kafka: KafkaSettings, group: str, **overrides: Any
) -> Settings:
    """The monitor's settings for a test: windows of 100 events judged from 20, no probes, the
    registry and scorer at the doubles' addresses; ``overrides`` replace any of them."""
    fields: dict[str, Any] = {
        "kafka": kafka,
        "state_dir": tmp_path / "state",
        "consumer_group": group,
        "window_max_events": 100,
        "window_seconds": None,
        "min_labelled": 20,
        "min_predictions": 20,
        "probes_enabled": False,
        "registry_url": "http://registry",
        "scorer_url": "http://scorer",
    }
    return Settings(**(fields | overrides))


@pytest.fixture
def registry() -> FakeRegistry:
    """A registry knowing versions 1 and 2 of the model; v1 is deployed alone."""
    return (
        FakeRegistry()
        .add(make_version_record(version=1), make_version_record(version=2))
        .deploy(MODEL, make_deployment(challenger=None, challenger_share=0.0))
    )


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture
async def make_service(
    database_url: str, registry: FakeRegistry, scorer: FakeScorer
) -> AsyncIterator[ServiceMaker]:
    """Build monitor services on this test's database (several: a restart is a new one)."""
    async with AsyncExitStack() as stack:
        engine = create_engine(database_url)
        stack.push_async_callback(engine.dispose)
        await migrate(engine, HISTORY)
        sessions = session_factory(engine)

        async def make(
            *, clock: Callable[[], datetime] = lambda: T0 + timedelta(days=30), **policy: Any
        ) -> tuple[MonitorService, RecordingPublisher]:
            fields: dict[str, Any] = {
                "window": WindowPolicy(max_events=100, span=None),
                "min_labelled": 20,
                "min_predictions": 20,
                "comparison_min_samples": 100,
            }
            publisher = RecordingPublisher()
            registry_http = httpx.AsyncClient(transport=registry.transport())
            scorer_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=scorer.app()))
            stack.push_async_callback(registry_http.aclose)
            stack.push_async_callback(scorer_http.aclose)
            service = MonitorService(
                MonitorPolicy(**(fields | policy)),
                sessions=sessions,
                relay=OutboxRelay(sessions, publisher),
                registry=RegistryClient(registry_http, "http://registry"),
                scorer=scorer_http,
                scorer_url="http://scorer",
                clock=clock,
            )
            await service.start()
            return service, publisher

        yield make
