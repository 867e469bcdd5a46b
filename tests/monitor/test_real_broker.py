"""The monitor against the real broker: the issue's acceptance tests."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

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
from services.monitor.app import create_app
from services.monitor.settings import Settings
from services.runtime import KafkaSettings
from tests.factories import make_deployment, make_version_record
from tests.kafka_tools import write_raw
from tests.monitor.conftest import monitor_settings
from tests.monitor.doubles import FakeRegistry, FakeScorer, serving
from tests.monitor.real import (
    handled_all,
    last_label_time,
    producer,
    read_events,
)
from tests.monitor.streams import Phase, interleaved, scored_stream
from tests.polling import eventually

pytestmark = pytest.mark.integration


def settings_for(kafka: KafkaSettings, tmp_path: Path, unique: str, **overrides: Any) -> Settings:
    """Settings of a monitor with a consumer group of this test's own."""
    return monitor_settings(tmp_path, kafka, f"monitor-{unique}", **overrides)


def registry_of(*models: str) -> FakeRegistry:
    registry = FakeRegistry()
    for model in models:
        registry.add(make_version_record(model=model, version=1))
        registry.deploy(model, make_deployment(challenger=None, challenger_share=0.0))
    return registry


@asynccontextmanager
async def monitor(settings: Settings, registry: FakeRegistry) -> AsyncIterator[FastAPI]:
    app = create_app(settings, registry_transport=registry.transport())
    async with app.router.lifespan_context(app):
        yield app


async def test_recall_decay_raises_one_alert_episode_and_one_recovery_and_no_decay_raises_none(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    decaying = scored_stream(
        [Phase(800), Phase(600, recall=0.7), Phase(1000)],
        model="decaying",
        label_delay=timedelta(seconds=50),
    )
    healthy = scored_stream([Phase(2400)], model="healthy", label_delay=timedelta(seconds=50))
    events: list[Envelope] = []
    for a, b in zip(
        interleaved(decaying, label_lag=50), interleaved(healthy, label_lag=50), strict=True
    ):
        events += [a, b]
    settings = settings_for(kafka_settings, tmp_path, unique)
    async with (
        monitor(settings, registry_of("decaying", "healthy")) as app,
        producer(kafka_settings) as publish,
    ):
        await publish(events)
        status = await eventually(
            app.state.service.status,
            handled_all({m: last_label_time(events, m) for m in ("decaying", "healthy")}),
            what="every event handled",
            timeout_s=60,
            every_s=0.2,
        )

    alerts = await read_events(kafka_settings, Topic.ALERTS)
    assert [(type(a).__name__, getattr(a, "fingerprint", None)) for a in alerts] == [
        ("AlertRaised", "decaying:v1:metric_decay:recall"),
        ("AlertRecovered", "decaying:v1:metric_decay:recall"),
    ]
    raised = alerts[0]
    assert isinstance(raised, AlertRaised)
    assert raised.kind is AlertKind.METRIC_DECAY
    assert raised.evidence["threshold"] == 0.95
    assert raised.evidence["baseline"] == 0.97
    metrics = await read_events(kafka_settings, Topic.METRICS)
    for model in ("decaying", "healthy"):
        windows = [m for m in metrics if isinstance(m, MetricsComputed) and m.model == model]
        still_open = [w for w in status["open_windows"] if w["model"] == model]
        assert (
            sum(w.predictions for w in windows) + sum(w["predictions"] for w in still_open) == 2400
        )
        assert sum(w.labelled for w in windows) + sum(w["labelled"] for w in still_open) == 2400


async def test_late_labels_are_joined_and_counted_and_expired_predictions_reported(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    # One prediction a minute, windows of ten, a 30-minute time to live.
    stream = scored_stream([Phase(60)], spacing=timedelta(minutes=1))
    settings = settings_for(
        kafka_settings, tmp_path, unique, window_max_events=10, join_ttl_seconds=1800
    )
    predictions = [s.prediction for s in stream]
    async with (
        monitor(settings, registry_of("breast-cancer")) as app,
        producer(kafka_settings) as publish,
    ):
        service = app.state.service
        await publish(predictions[:40])
        await eventually(
            service.status,
            lambda s: s["pending_predictions"] == 31,
            what="40 handled",
            timeout_s=60,
            every_s=0.2,
        )
        await publish([s.label for s in stream[20:30]])  # four windows later
        await eventually(
            service.status,
            lambda s: s["pending_predictions"] == 21,
            what="joined",
            timeout_s=60,
            every_s=0.2,
        )
        await publish(predictions[40:])
        await eventually(
            service.status,
            lambda s: s["pending_predictions"] == 30,
            what="60 handled",
            timeout_s=60,
            every_s=0.2,
        )

    windows = [
        (m.predictions, m.labelled, m.expired_unjoined)
        for m in await read_events(kafka_settings, Topic.METRICS)
        if isinstance(m, MetricsComputed)
    ]
    assert windows == [
        (10, 0, 0),
        (10, 0, 0),
        (10, 0, 0),
        (10, 0, 9),  # predictions 0-8 passed the TTL while the fourth window was open
        (0, 10, 0),  # the late labels, joined with predictions 20-29
        (10, 0, 10),
        (10, 0, 1),
    ]


async def test_bad_events_are_dead_lettered_and_the_good_ones_handled(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    stream = scored_stream([Phase(3)])
    unregistered = stream[1].prediction.model_copy(update={"model_version": 5})
    wrong_class = LabelRecorded(producer="x", model="breast-cancer", request_id="r-0", label="cyst")
    settings = settings_for(kafka_settings, tmp_path, unique)
    async with (
        monitor(settings, registry_of("breast-cancer")) as app,
        producer(kafka_settings) as publish,
    ):
        await write_raw(kafka_settings, Topic.PREDICTIONS, [b"{not json"])
        await publish([stream[0].prediction, unregistered, stream[2].prediction])
        await eventually(
            app.state.service.status,
            lambda s: s["pending_predictions"] == 2,
            timeout_s=60,
            every_s=0.2,
        )
        await publish([wrong_class, stream[0].label])
        await eventually(
            app.state.service.status,
            lambda s: s["pending_predictions"] == 1,
            timeout_s=60,
            every_s=0.2,
        )

    letters = await read_events(kafka_settings, Topic.DEAD_LETTER)
    errors = sorted(d.error for d in letters if isinstance(d, MessageDeadLettered))
    assert len(errors) == 3
    assert errors[0].startswith("label 'cyst' is not a class of 'breast-cancer' version 1")
    assert errors[1] == "model 'breast-cancer' version 5 is not registered"
    assert errors[2].startswith("not JSON")


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    vigil = Path(sys.executable).parent / "vigil"
    process = await asyncio.create_subprocess_exec(
        str(vigil),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_probe_passes_against_a_running_scorer_then_fails_when_it_serves_a_broken_model(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    scorer = FakeScorer(version=1)
    registry = registry_of("breast-cancer")
    async with serving(scorer.app()) as scorer_url:
        settings = settings_for(
            kafka_settings, tmp_path, unique, scorer_url=scorer_url, probes_enabled=True
        )
        app = create_app(settings, registry_transport=registry.transport())
        async with serving(app) as monitor_url:
            env = os.environ | {"VIGIL_MONITOR_URL": monitor_url}

            # The scheduled probe runs as soon as the deployment is known.
            async def calls() -> int:
                return scorer.calls

            await eventually(
                calls, lambda n: n >= 1, what="the scheduled probe", timeout_s=60, every_s=0.2
            )
            scorer.mode = "wrong"
            failed_code, failed_output = await run_cli("probe", "breast-cancer", env=env)
            scorer.mode = "right"
            passed_code, passed_output = await run_cli("probe", "breast-cancer", env=env)
            async with httpx.AsyncClient() as client:
                missing = await client.post(f"{monitor_url}/probes/nothing-here")

    assert (failed_code, passed_code) == (1, 0), failed_output + passed_output
    assert "regression: accuracy 0.000" in failed_output
    assert "passed" in passed_output
    assert missing.status_code == 404
    probes = [
        e for e in await read_events(kafka_settings, Topic.METRICS) if isinstance(e, ProbeCompleted)
    ]
    assert [(p.passed, p.manual) for p in probes] == [(True, False), (False, True), (True, True)]
    alerts = await read_events(kafka_settings, Topic.ALERTS)
    assert [(type(a).__name__, getattr(a, "fingerprint", None)) for a in alerts] == [
        ("AlertRaised", "breast-cancer:v1:probe_failed:golden_set"),
        ("AlertRecovered", "breast-cancer:v1:probe_failed:golden_set"),
    ]
    assert isinstance(alerts[0], AlertRaised)
    assert alerts[0].evidence["failure"] == probes[1].failure
