"""A monitor process killed mid-stream (SIGKILL) and started again loses nothing and counts
nothing twice: waiting joins, open windows and alert episodes come back from its database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from contracts import AlertRaised, AlertRecovered, Envelope, MetricsComputed, Topic
from services.runtime import KafkaSettings
from tests.factories import make_deployment, make_version_record
from tests.monitor.doubles import FakeRegistry
from tests.monitor.real import killed_mid_stream, last_label_time, read_events
from tests.monitor.streams import Phase, interleaved, scored_stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "restarted"


async def test_a_monitor_killed_mid_stream_resumes_without_loss_or_double_counting(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    stream = scored_stream(
        [Phase(1000), Phase(700, recall=0.7), Phase(1300)],
        model=MODEL,
        label_delay=timedelta(seconds=50),
    )
    events: list[Envelope] = interleaved(stream, label_lag=50)
    registry = FakeRegistry().add(make_version_record(model=MODEL, version=1))
    registry.deploy(MODEL, make_deployment(challenger=None, challenger_share=0.0))
    status = await killed_mid_stream(
        kafka_settings,
        tmp_path,
        f"monitor-{unique}",
        registry,
        events,
        model=MODEL,
        last=last_label_time(events, MODEL),
    )

    windows = [
        m
        for m in await read_events(kafka_settings, Topic.METRICS)
        if isinstance(m, MetricsComputed)
    ]
    (still_open,) = status["open_windows"] or [{"predictions": 0, "labelled": 0}]
    assert sum(w.predictions for w in windows) + still_open["predictions"] == 3000
    assert sum(w.labelled for w in windows) + still_open["labelled"] == 3000
    alerts = [
        (type(a).__name__, a.fingerprint)
        for a in await read_events(kafka_settings, Topic.ALERTS)
        if isinstance(a, AlertRaised | AlertRecovered)
    ]
    fingerprint = f"{MODEL}:v1:metric_decay:recall"
    assert alerts == [("AlertRaised", fingerprint), ("AlertRecovered", fingerprint)]
