"""A monitor process judging a regressor, killed mid-stream (SIGKILL) and started again, loses
nothing and counts nothing twice: waiting predicted and true values, open windows of numbers and
the MAE alert episode come back from its database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from contracts import AlertRaised, AlertRecovered, Envelope, MetricsComputed, Topic
from services.runtime import KafkaSettings
from tests.factories import make_deployment
from tests.monitor.doubles import FakeRegistry
from tests.monitor.real import killed_mid_stream, read_events
from tests.monitor.regression_streams import (
    REGRESSOR,
    ValuePhase,
    interleaved_values,
    regressor_record,
    value_stream,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_monitor_killed_mid_stream_resumes_a_regressor_without_loss_or_double_counting(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    stream = value_stream(
        [ValuePhase(1000), ValuePhase(700, error=60.0), ValuePhase(1300)],
        truth_delay=timedelta(seconds=50),
    )
    events: list[Envelope] = interleaved_values(stream, lag=50)
    registry = FakeRegistry().add(regressor_record())
    registry.deploy(REGRESSOR, make_deployment(challenger=None, challenger_share=0.0))
    status = await killed_mid_stream(
        kafka_settings,
        tmp_path,
        f"monitor-{unique}",
        registry,
        events,
        model=REGRESSOR,
        last=max(s.truth.occurred_at for s in stream),
    )

    windows = [
        m
        for m in await read_events(kafka_settings, Topic.METRICS)
        if isinstance(m, MetricsComputed)
    ]
    (still_open,) = status["open_windows"] or [{"predictions": 0, "labelled": 0}]
    assert sum(w.predictions for w in windows) + still_open["predictions"] == 3000
    assert sum(w.labelled for w in windows) + still_open["labelled"] == 3000
    for window in windows:
        mae = window.metrics["mae"]
        assert mae is None or 20.0 - 1e-9 <= mae <= 60.0 + 1e-9  # no pair lost its partner
    alerts = [
        (type(a).__name__, a.fingerprint)
        for a in await read_events(kafka_settings, Topic.ALERTS)
        if isinstance(a, AlertRaised | AlertRecovered)
    ]
    # The MAE and the residuals' distribution (errors of 60 instead of 20: residual drift, its
    # reference restored after the kill) each raise once and recover once.
    for subject in ("metric_decay:mae", "residual_drift:residuals"):
        fingerprint = f"{REGRESSOR}:v1:{subject}"
        assert [kind for kind, f in alerts if f == fingerprint] == [
            "AlertRaised",
            "AlertRecovered",
        ], alerts
    assert len(alerts) == 4, alerts
