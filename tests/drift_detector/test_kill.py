"""A drift detector SIGKILLed while committing the batch that decided an alert, then started
again: the alert is on the alerts topic once (by event id) and its recovery follows; SIGKILLed
while committing the batch that completed the score reference: one reference is stored, from
the version's first traffic, and the scores' shift later is raised once and recovers. With
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    DriftReported,
    Envelope,
    PredictionMade,
    Topic,
)
from contracts.topics import EVENT_TYPES
from services.drift_detector.episode_store import DatabaseEpisodeStore
from services.runtime import EventPublisher, KafkaSettings, free_port
from services.runtime.database import create_engine, session_factory
from services.runtime.processes import die_with_parent
from tests.drift_detector.data import predictions, training_rows
from tests.kafka_tools import read_events, read_until_quiet
from tests.processes import kafka_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start(
    model: str, kill_at: str, kafka: KafkaSettings, database_url: str, folder: Path
) -> subprocess.Popen[bytes]:
    env = (
        os.environ
        | kafka_env(kafka)
        | {
            "VIGIL_STATE_DIR": str(folder / "state"),
            "VIGIL_DRIFT_DETECTOR_DATABASE_URL": database_url,
            "VIGIL_DRIFT_DETECTOR_HTTP_PORT": str(free_port()),
            "VIGIL_DRIFT_DETECTOR_WINDOW_SIZE": "500",
            "VIGIL_DRIFT_DETECTOR_MIN_WINDOW_ROWS": "100",
            "VIGIL_DRIFT_DETECTOR_SCORE_REFERENCE_ROWS": "300",
        }
    )
    with (folder / f"drift-detector-{kill_at}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.drift_detector.killable_process", model, kill_at],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a failed test leaves no detector behind
        )


async def killed_then_restarted(
    events: list[PredictionMade],
    kill_at: str,
    kafka: KafkaSettings,
    publisher: EventPublisher,
    database_url: str,
    folder: Path,
    *,
    alerts: int,
) -> tuple[list[Envelope], list[Any]]:
    """Publish the events to a detector that kills itself at ``kill_at``, start it again, and
    return the alerts (one per event id: killed after the commit, the first process may have
    published what the restarted relay publishes again) once ``alerts`` of them came, with the
    drift topic's records."""
    model = events[0].model
    killed = start(model, kill_at, kafka, database_url, folder)
    again: subprocess.Popen[bytes] | None = None
    try:
        for begin in range(0, len(events), 250):
            await publisher.publish_many(events[begin : begin + 250])
        assert await asyncio.to_thread(killed.wait, 120) == -9, "the detector was not killed"
        again = start(model, "never", kafka, database_url, folder)
        await read_events(kafka, Topic.ALERTS, count=alerts, timeout_s=120)
        records = await read_until_quiet(kafka, Topic.ALERTS, quiet_s=3.0)
        reports = await read_until_quiet(kafka, Topic.DRIFT, quiet_s=3.0)
    finally:
        for process in (killed, again):
            if process is not None and process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait)
    by_id = {
        alert.event_id: alert
        for alert in (
            EVENT_TYPES[json.loads(r.value)["type"]].model_validate_json(r.value) for r in records
        )
    }
    return list(by_id.values()), reports


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kill_at", ["before-commit", "after-commit"])
async def test_a_detector_killed_while_committing_an_alert_publishes_it_once_and_recovers(
    kafka_settings: KafkaSettings,
    publisher: EventPublisher,
    database_url: str,
    tmp_path: Path,
    unique: str,
    kill_at: str,
) -> None:
    model = f"m-{unique}"
    values, devices = training_rows(np.random.default_rng(11), 6000)
    values[1500:3000, 2] += 1.0  # drifted, then clean again for long enough to recover
    events = predictions(values, devices, model=model)
    alerts, reports = await killed_then_restarted(
        events, kill_at, kafka_settings, publisher, database_url, tmp_path, alerts=2
    )
    raised = [a for a in alerts if isinstance(a, AlertRaised)]
    recovered = [a for a in alerts if isinstance(a, AlertRecovered)]
    assert [a.fingerprint for a in raised] == [f"{model}:v1:data_drift:x2"]
    assert [a.fingerprint for a in recovered] == [raised[0].fingerprint]
    # The alert's report was committed with it, so it is on the drift topic too.
    report_ids = {str(DriftReported.model_validate_json(r.value).event_id) for r in reports}
    assert raised[0].evidence["report_event_id"] in report_ids


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kill_at", ["reference-before-commit", "reference-after-commit"])
async def test_a_detector_killed_while_storing_the_score_reference_stores_one_and_judges_by_it(
    kafka_settings: KafkaSettings,
    publisher: EventPublisher,
    database_url: str,
    tmp_path: Path,
    unique: str,
    kill_at: str,
) -> None:
    model = f"m-{unique}"
    values, devices = training_rows(np.random.default_rng(12), 6000)
    values[1500:3000, 0] += 1.5  # the score follows x0: it shifts, then comes back
    events = predictions(values, devices, model=model)
    alerts, _ = await killed_then_restarted(
        events, kill_at, kafka_settings, publisher, database_url, tmp_path, alerts=4
    )
    score_alerts = [
        type(a)
        for a in alerts
        if isinstance(a, AlertRaised | AlertRecovered) and a.kind is AlertKind.PREDICTION_DRIFT
    ]
    assert score_alerts == [AlertRaised, AlertRecovered]
    engine = create_engine(database_url)
    try:
        stored = await DatabaseEpisodeStore(session_factory(engine)).load(model, 1)
    finally:
        await engine.dispose()
    assert stored.score_reference is not None
    scores = [e.probabilities["yes"] for e in events]
    # 300 consecutive scores from before the shift: the first of the version, or, if the
    # process was killed before storing them, the first after the batches it had committed.
    start_at = scores.index(stored.score_reference[0])
    assert start_at + 300 <= 1500
    assert stored.score_reference == tuple(scores[start_at : start_at + 300])
