"""The monitor app wired on FastStream's in-memory broker: events in, figures, alerts and dead
letters out, through the same handlers, database and outbox as in production."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts import (
    AlertKind,
    AlertRaised,
    Envelope,
    LabelRecorded,
    MessageDeadLettered,
    MetricsComputed,
    ProbeCompleted,
    Topic,
)
from contracts.wire import decode
from services.monitor.app import create_app
from services.monitor.settings import Settings
from services.runtime import KafkaSettings, ServiceRuntime
from tests.factories import MODEL, make_deployment, make_version_record
from tests.monitor.conftest import monitor_settings
from tests.monitor.doubles import FakeRegistry, FakeScorer
from tests.monitor.streams import Phase, interleaved, scored_stream
from tests.polling import eventually

OUTPUTS = (Topic.METRICS, Topic.ALERTS, Topic.DEAD_LETTER)


@asynccontextmanager
async def in_memory_monitor(
    settings: Settings, registry: FakeRegistry, scorer: FakeScorer
) -> AsyncIterator[tuple[FastAPI, dict[Topic, list[Envelope]]]]:
    app = create_app(
        settings,
        registry_transport=registry.transport(),
        scorer_transport=httpx.ASGITransport(app=scorer.app()),
    )
    runtime: ServiceRuntime = app.state.runtime
    received: dict[Topic, list[Envelope]] = defaultdict(list)
    for topic in OUTPUTS:
        runtime.broker.subscriber(settings.kafka.topic_name(topic))(_collect(topic, received))
    async with TestKafkaBroker(runtime.broker), app.router.lifespan_context(app):
        yield app, received


def _collect(topic: Topic, into: dict[Topic, list[Envelope]]) -> Callable[[KafkaMessage], Any]:
    async def collect(message: KafkaMessage) -> None:
        into[topic].append(decode(topic, message.body))

    return collect


@pytest.fixture
def registry() -> FakeRegistry:
    return (
        FakeRegistry()
        .add(make_version_record(version=1))
        .deploy(MODEL, make_deployment(challenger=None, challenger_share=0.0))
    )


async def test_a_decaying_stream_gives_figures_and_one_alert_and_bad_events_are_dead_lettered(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    settings = monitor_settings(tmp_path, KafkaSettings(), "monitor")
    stream = scored_stream([Phase(400), Phase(400, recall=0.6)])
    bad_label = LabelRecorded(producer="x", model=MODEL, request_id="r-0", label="cyst")
    async with in_memory_monitor(settings, registry, FakeScorer()) as (app, received):
        runtime: ServiceRuntime = app.state.runtime
        await runtime.publisher.publish(stream[0].prediction)
        await runtime.publisher.publish(bad_label)
        for event in interleaved(stream, label_lag=20)[1:]:
            await runtime.publisher.publish(event)
        await eventually(lambda: len(received[Topic.ALERTS]) >= 2)
        status = await app.state.service.status()

    metrics = [e for e in received[Topic.METRICS] if isinstance(e, MetricsComputed)]
    assert len(metrics) >= 7
    alerts = [e for e in received[Topic.ALERTS] if isinstance(e, AlertRaised)]
    (alert,) = [a for a in alerts if a.kind is not AlertKind.DEAD_LETTERS]
    assert alert.fingerprint == f"{MODEL}:v1:metric_decay:recall"
    (dead_letters,) = [a for a in alerts if a.kind is AlertKind.DEAD_LETTERS]
    assert dead_letters.fingerprint == f"{MODEL}:v-:dead_letters:monitor/labels"
    assert dead_letters.evidence["count"] == 1
    (letter,) = received[Topic.DEAD_LETTER]
    assert isinstance(letter, MessageDeadLettered)
    assert "'cyst' is not a class" in letter.error
    assert status["pending_predictions"] == 0


async def test_the_probe_endpoint_runs_the_probe_and_publishes_it(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    settings = monitor_settings(tmp_path, KafkaSettings(), "monitor")
    async with (
        in_memory_monitor(settings, registry, FakeScorer()) as (app, received),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://monitor"
        ) as client,
    ):
        for _ in range(600):  # the deployments load in the background
            if (await client.get("/status")).json()["deployments"]:
                break
            await asyncio.sleep(0.05)
        answer = await client.post(f"/probes/{MODEL}")
        missing = await client.post("/probes/not-deployed")
        status = await client.get("/status")
    assert answer.status_code == 200
    assert ProbeCompleted.model_validate_json(answer.content).passed
    assert missing.status_code == 404
    assert status.json()["pending_predictions"] == 0
    assert [type(e).__name__ for e in received[Topic.METRICS]] == ["ProbeCompleted"]
