"""Label-free estimation inside the monitor, pure: estimates beside realised metrics on
``metrics.computed``, ``estimated_decay`` before labels, closed by labels that contradict it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import numpy as np

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    Envelope,
    LabelRecorded,
    MetricsComputed,
    MetricTarget,
    PredictionMade,
    ScoreCalibration,
    Variant,
)
from services.monitor.domain import Monitor, MonitorPolicy, Snapshot, Step
from services.monitor.estimation import Reference, fit_calibration
from services.monitor.windows import Window, WindowPolicy
from tests.factories import MODEL, T0, make_spec, make_version_record

NOW = T0 + timedelta(days=30)
POSITIVE, NEGATIVE = "malignant", "benign"
CUT = 0.3
"""The model predicts the positive class from this score up (a recall-first model)."""


def _scores(rng: np.random.Generator, n: int, shifted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores (P(positive | score) = score); the shift moves scores (covariate shift):
    more cases the model scores low, so fewer positives are caught."""
    score = rng.beta(1.2, 3.0, size=n) if shifted else rng.beta(2.0, 2.0, size=n)
    return score, rng.uniform(size=n) < score


def _baseline() -> float:
    score, truth = _scores(np.random.default_rng(99), 20_000, shifted=False)
    return float((truth & (score >= CUT)).sum() / truth.sum())


BASELINE = _baseline()
TARGET = MetricTarget(
    metric="recall", baseline=round(BASELINE, 3), threshold=round(BASELINE - 0.08, 3)
)


def _monitor(**overrides: Any) -> Monitor:
    fields: dict[str, Any] = {
        "window": WindowPolicy(max_events=100, span=None),
        "min_labelled": 20,
        "min_predictions": 20,
        "calibration_rows": 300,
    }
    monitor = Monitor(MonitorPolicy(**(fields | overrides)), seed=1)
    monitor.know(
        make_version_record(
            version=1,
            spec=make_spec(metrics=[TARGET], consecutive_windows=2),
            metrics={"recall": TARGET.baseline},
        )
    )
    return monitor


def _calibrated(monitor: Monitor) -> Monitor:
    monitor.calibrate(MODEL, 1, fit_calibration(*_scores(np.random.default_rng(7), 2000, False)))
    return monitor


def _stream(
    rng: np.random.Generator, n: int, *, shifted: bool, first: int = 0
) -> tuple[list[PredictionMade], list[LabelRecorded]]:
    score, truth = _scores(rng, n, shifted)
    predictions, labels = [], []
    for i, (s, positive) in enumerate(zip(score.tolist(), truth.tolist(), strict=True)):
        index = first + i
        predicted = POSITIVE if s >= CUT else NEGATIVE
        at = T0 + timedelta(seconds=index)
        predictions.append(
            PredictionMade(
                producer="scorer",
                occurred_at=at,
                model=MODEL,
                model_version=1,
                variant=Variant.CHAMPION,
                deployment_revision=1,
                request_id=f"r-{index}",
                features={"mean radius": 10.0, "mean texture": 1.0},
                predicted_class=predicted,
                probabilities={POSITIVE: s, NEGATIVE: 1 - s},
                confidence=max(s, 1 - s),
                latency_ms=2.0,
            )
        )
        labels.append(
            LabelRecorded(
                producer="labeller",
                occurred_at=at + timedelta(seconds=1),
                model=MODEL,
                request_id=f"r-{index}",
                label=POSITIVE if positive else NEGATIVE,
            )
        )
    return predictions, labels


def _alerts(step: Step, kind: AlertKind) -> list[AlertRaised | AlertRecovered]:
    return [
        e for e in step.outputs if isinstance(e, AlertRaised | AlertRecovered) and e.kind is kind
    ]


def _feed(monitor: Monitor, events: Sequence[Envelope]) -> Step:
    if events and isinstance(events[0], PredictionMade):
        return monitor.add_predictions(cast(list[PredictionMade], events), now=NOW)
    return monitor.add_labels(cast(list[LabelRecorded], events), now=NOW)


def test_estimated_decay_is_raised_from_scores_alone_before_any_label() -> None:
    monitor = _calibrated(_monitor())
    rng = np.random.default_rng(3)
    healthy, _ = _stream(rng, 600, shifted=False)
    shifted, _ = _stream(rng, 600, shifted=True, first=600)
    before = _feed(monitor, healthy)
    assert _alerts(before, AlertKind.ESTIMATED_DECAY) == []
    after = _feed(monitor, shifted)

    raised = _alerts(after, AlertKind.ESTIMATED_DECAY)
    assert [type(a) for a in raised] == [AlertRaised]
    alert = raised[0]
    assert alert.fingerprint == f"{MODEL}:v1:estimated_decay:recall"
    evidence = cast(dict[str, Any], alert.evidence)
    estimate = evidence["estimated"]
    assert estimate["lower"] <= estimate["value"] <= estimate["upper"]
    assert estimate["value"] < TARGET.threshold
    assert evidence["calibration"]["reference_rows"] == 2000
    assert evidence["threshold"] == TARGET.threshold
    assert _alerts(after, AlertKind.METRIC_DECAY) == []  # no label has arrived

    windows = [e for e in before.outputs + after.outputs if isinstance(e, MetricsComputed)]
    assert len(windows) == 12
    for window in windows:
        assert window.labelled == 0
        assert window.metrics["recall"] is None  # realised: waiting for labels
        assert window.estimated is not None
        assert set(window.estimated) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
        assert window.calibration is not None
    assert windows[0].estimated is not None
    assert windows[0].estimated["recall"].value > TARGET.threshold


def test_no_estimated_decay_without_shift_over_many_windows() -> None:
    monitor = _calibrated(_monitor())
    rng = np.random.default_rng(5)
    predictions, _ = _stream(rng, 5000, shifted=False)
    step = _feed(monitor, predictions)
    assert len([e for e in step.outputs if isinstance(e, MetricsComputed)]) == 50
    assert _alerts(step, AlertKind.ESTIMATED_DECAY) == []


def test_labels_of_later_predictions_that_contradict_the_estimate_close_its_episode() -> None:
    monitor = _calibrated(_monitor())
    rng = np.random.default_rng(3)
    healthy, healthy_labels = _stream(rng, 300, shifted=False)
    shifted, _ = _stream(rng, 600, shifted=True, first=300)
    _feed(monitor, healthy)
    assert _alerts(_feed(monitor, shifted), AlertKind.ESTIMATED_DECAY)

    # Labels of predictions made before the alert say nothing about it.
    early = _feed(monitor, healthy_labels[:100])
    assert _alerts(early, AlertKind.ESTIMATED_DECAY) == []

    # Labels of the shifted predictions saying the model was right (concept shift: the scores
    # no longer mean what they did): the realised recall is the judge.
    right = [
        LabelRecorded(
            producer="labeller",
            occurred_at=p.occurred_at + timedelta(seconds=1),
            model=MODEL,
            request_id=p.request_id,
            label=p.predicted_class,
        )
        for p in shifted[-200:]
    ]
    closed = _feed(monitor, right[:100])
    recovered = _alerts(closed, AlertKind.ESTIMATED_DECAY)
    assert [type(a) for a in recovered] == [AlertRecovered]
    assert recovered[0].evidence["contradicted_by"] == "realised"
    assert f"{MODEL}:v1:estimated_decay:recall" not in monitor.status()["alerting"]

    # The estimate still reads low: it does not raise again until it has come back clear.
    more, _ = _stream(rng, 400, shifted=True, first=900)
    assert _alerts(_feed(monitor, more), AlertKind.ESTIMATED_DECAY) == []
    back, _ = _stream(rng, 300, shifted=False, first=1300)
    _feed(monitor, back)
    again, _ = _stream(rng, 400, shifted=True, first=1600)
    assert [type(a) for a in _alerts(_feed(monitor, again), AlertKind.ESTIMATED_DECAY)] == [
        AlertRaised
    ]


def test_a_version_without_reference_is_calibrated_on_its_first_labelled_outcomes() -> None:
    monitor = _monitor()
    rng = np.random.default_rng(8)
    predictions, labels = _stream(rng, 500, shifted=False)
    first = _feed(monitor, predictions[:300])
    assert all(
        e.estimated is None and e.calibration is None
        for e in first.outputs
        if isinstance(e, MetricsComputed)
    )
    _feed(monitor, labels[:300])
    assert monitor.calibration(MODEL, 1) is not None
    later = _feed(monitor, predictions[300:])
    windows = [e for e in later.outputs if isinstance(e, MetricsComputed)]
    assert windows
    assert all(w.estimated is not None for w in windows)
    assert all(w.calibration is not None and w.calibration.reference_rows == 300 for w in windows)


def test_the_reference_survives_a_restart() -> None:
    monitor = _monitor()
    rng = np.random.default_rng(8)
    predictions, labels = _stream(rng, 400, shifted=False)
    _feed(monitor, predictions)
    _feed(monitor, labels[:150])
    gathering = monitor.drain_changes().references[(MODEL, 1)]
    assert isinstance(gathering, Reference)
    assert len(gathering.scores) == 150
    _feed(monitor, labels[150:300])
    calibrated = monitor.drain_changes().references[(MODEL, 1)]
    assert isinstance(calibrated, Reference)
    assert calibrated.calibration is not None
    assert calibrated.scores == []

    restarted = _monitor()
    restarted.restore(Snapshot(references={(MODEL, 1): calibrated}))
    assert restarted.calibration(MODEL, 1) == calibrated.calibration


def test_a_multiclass_version_gets_no_estimate() -> None:
    monitor = Monitor(MonitorPolicy(window=WindowPolicy(max_events=50, span=None)))
    monitor.know(
        make_version_record(
            version=1,
            spec=make_spec(
                classes=["malignant", "benign", "unclear"],
                metrics=[MetricTarget(metric="accuracy", baseline=0.9, threshold=0.8)],
                key_metric="accuracy",
            ),
        )
    )
    rng = np.random.default_rng(2)
    predictions, _ = _stream(rng, 100, shifted=False)
    step = _feed(monitor, predictions)
    windows = [e for e in step.outputs if isinstance(e, MetricsComputed)]
    assert len(windows) == 2
    assert all(w.estimated is None for w in windows)


def test_windows_saved_before_estimation_existed_still_load() -> None:
    saved = {
        "series": [MODEL, 1, "champion"],
        "start": T0.isoformat(),
        "end": T0.isoformat(),
        "closes_at": None,
        "confidences": [0.9],
        "latencies_ms": [1.0],
        "first_prediction_at": T0.isoformat(),
        "last_prediction_at": T0.isoformat(),
        "y_true": [],
        "y_pred": [],
        "probabilities": [],
        "expired_unjoined": 0,
        "label_mismatches": 0,
    }
    window = Window.from_dict(saved)
    assert window.positive_scores == []
    assert window.first_labelled_prediction_at is None
    assert Window.from_dict(window.to_dict()) == window


def test_the_calibration_measured_at_registration_is_shown_beside_the_reference() -> None:
    registered = ScoreCalibration(rows=143, ece=0.21, brier=0.19, measured_on="evaluation_data")
    monitor = _monitor()
    monitor.know(
        make_version_record(
            version=1,
            spec=make_spec(metrics=[TARGET], consecutive_windows=2),
            metrics={"recall": TARGET.baseline},
            calibration=registered,
        )
    )
    _calibrated(monitor)
    (shown,) = monitor.status()["calibrations"]
    assert shown["registered"] == registered.model_dump()
    rng = np.random.default_rng(3)
    _feed(monitor, _stream(rng, 600, shifted=False)[0])
    raised = _alerts(
        _feed(monitor, _stream(rng, 600, shifted=True, first=600)[0]), AlertKind.ESTIMATED_DECAY
    )
    assert raised
    assert raised[0].evidence["registered_calibration"] == registered.model_dump()
