"""A regressor through the monitor on the real broker: value.predicted and value.recorded in,
metrics.computed windows with MAE, RMSE and R², an MAE alert and its recovery out; replayed events
counted once; NaN, infinities and truths of the wrong kind on the dead-letter topic."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from contracts import (
    AlertKind,
    AlertRaised,
    Envelope,
    LabelRecorded,
    MessageDeadLettered,
    MetricsComputed,
    Topic,
    ValueRecorded,
)
from services.runtime import KafkaSettings
from tests.factories import make_deployment
from tests.kafka_tools import write_raw
from tests.monitor.real import producer, read_events
from tests.monitor.regression_streams import (
    REGRESSOR,
    ValuePhase,
    interleaved_values,
    regressor_record,
    value_stream,
)
from tests.monitor.test_real_broker import monitor, registry_of, settings_for
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def test_an_mae_breach_alerts_once_recovers_once_and_replayed_events_count_once(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    stream = value_stream(
        [ValuePhase(600), ValuePhase(400, error=60.0), ValuePhase(600)],
        truth_delay=timedelta(seconds=50),
    )
    events = interleaved_values(stream, lag=50)
    registry = registry_of("breast-cancer").add(regressor_record())
    registry.deploy(REGRESSOR, make_deployment(challenger=None, challenger_share=0.0))
    last = max(s.truth.occurred_at for s in stream)
    settings = settings_for(kafka_settings, tmp_path, unique)
    async with monitor(settings, registry) as app, producer(kafka_settings) as publish:
        await publish(events)
        await publish(events[:400])  # a producer's retry: the same events again
        status = await eventually(
            app.state.service.status,
            lambda s: (
                s["pending_predictions"] == 0
                and s["pending_labels"] == 0
                and s["clocks"].get(REGRESSOR) == last.isoformat()
            ),
            what="every event handled",
            timeout_s=60,
            every_s=0.2,
        )

    alerts = await read_events(kafka_settings, Topic.ALERTS)
    # Errors of 60 where they were 20 also change their distribution: residual drift raises
    # and recovers beside the MAE, each once, though 400 events came twice.
    decay, residuals = (
        [
            type(a).__name__
            for a in alerts
            if getattr(a, "fingerprint", None) == f"{REGRESSOR}:v1:{signal}"
        ]
        for signal in ("metric_decay:mae", "residual_drift:residuals")
    )
    assert decay == ["AlertRaised", "AlertRecovered"], alerts
    assert residuals == ["AlertRaised", "AlertRecovered"], alerts
    assert len(alerts) == 4, alerts
    (drifted,) = [
        a for a in alerts if isinstance(a, AlertRaised) and a.kind is AlertKind.RESIDUAL_DRIFT
    ]
    assert drifted.evidence["reference_rows"] == 300
    assert cast(float, drifted.evidence["p_value"]) < 0.01
    # The MAE's alert (residual drift may be judged drifted a window earlier or later).
    (raised,) = [
        a for a in alerts if isinstance(a, AlertRaised) and a.kind is AlertKind.METRIC_DECAY
    ]
    assert (raised.evidence["threshold"], raised.evidence["direction"]) == (
        50.0,
        "lower_is_better",
    )
    windows = [
        m
        for m in await read_events(kafka_settings, Topic.METRICS)
        if isinstance(m, MetricsComputed) and m.model == REGRESSOR
    ]
    (still_open,) = status["open_windows"]
    # Each event once, though 400 of them were published twice.
    assert sum(w.predictions for w in windows) + still_open["predictions"] == 1600
    assert sum(w.labelled for w in windows) + still_open["labelled"] == 1600
    judged = [w for w in windows if w.labelled >= 20]
    assert judged
    for window in judged:
        assert (window.class_labels, window.confusion_matrix) == ([], [])
        assert set(window.metrics) >= {"mae", "rmse", "r2"}
        assert "low_confidence_rate" not in window.metrics
    assert max(w.metrics["mae"] or 0.0 for w in judged) == pytest.approx(60.0)
    assert min(w.metrics["mae"] or 99.0 for w in judged) == pytest.approx(20.0)
    pure = [w for w in judged if w.labelled == 100 and w.metrics["mae"] == pytest.approx(20.0)]
    assert pure
    assert all(w.breaching == [] for w in pure)
    assert all(w.metrics["rmse"] == pytest.approx(20.0) for w in pure)


def raw(event: Envelope, **fields: float | str) -> bytes:
    """The event's JSON with fields set to what JSON cannot carry but Python writes anyway
    (``NaN``, ``Infinity``), or to a literal number written as it is (``"1e999"``)."""
    body = event.model_dump(mode="json")
    literals = {name: v for name, v in fields.items() if isinstance(v, str)}
    body |= {name: v for name, v in fields.items() if not isinstance(v, str)}
    body |= {name: f"@{name}@" for name in literals}
    text = json.dumps(body)
    for name, literal in literals.items():
        text = text.replace(f'"@{name}@"', literal)
    return text.encode()


async def test_nan_infinities_and_truths_of_the_wrong_kind_are_dead_lettered_and_the_rest_scored(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    stream = value_stream([ValuePhase(3)])
    registry = registry_of("breast-cancer").add(regressor_record())
    a_class = LabelRecorded(
        producer="x", model=REGRESSOR, request_id=stream[0].prediction.request_id, label="benign"
    )
    a_number = ValueRecorded(producer="x", model="breast-cancer", request_id="r-0", value=3.0)
    settings = settings_for(kafka_settings, tmp_path, unique)
    async with monitor(settings, registry) as app, producer(kafka_settings) as publish:
        await write_raw(
            kafka_settings,
            Topic.PREDICTIONS,
            [
                raw(stream[1].prediction, predicted_value=float("nan")),
                raw(stream[2].prediction, predicted_value=float("inf")),
            ],
        )
        await write_raw(
            kafka_settings,
            Topic.LABELS,
            [
                raw(stream[1].truth, value=float("nan")),
                raw(stream[2].truth, value=float("-inf")),
                raw(stream[0].truth, value="1e999"),  # overflows to infinity when read
            ],
        )
        await publish([s.prediction for s in stream])
        await eventually(
            app.state.service.status,
            lambda s: s["pending_predictions"] == 3,
            timeout_s=60,
            every_s=0.2,
        )
        await publish([a_class, a_number, stream[0].truth])
        await eventually(
            app.state.service.status,
            lambda s: s["pending_predictions"] == 2,
            timeout_s=60,
            every_s=0.2,
        )

    letters = [
        d
        for d in await read_events(kafka_settings, Topic.DEAD_LETTER)
        if isinstance(d, MessageDeadLettered)
    ]
    errors = sorted(d.error for d in letters)
    assert len(errors) == 7, errors
    wrong_kind = [e for e in errors if "recorded for a" in e]
    assert wrong_kind == [
        f"label.recorded for a regression model: {REGRESSOR!r} version 1 predicts a number; "
        "send its truth as value.recorded",
        "value.recorded for a classifier: 'breast-cancer' version 1 predicts a class; send its "
        "truth as label.recorded",
    ]
    assert [e for e in errors if e not in wrong_kind] == [
        "predicted_value: Input should be a finite number (got inf)",
        "predicted_value: Input should be a finite number (got nan)",
        "value: Input should be a finite number (got -inf)",
        "value: Input should be a finite number (got inf)",  # 1e999
        "value: Input should be a finite number (got nan)",
    ]
