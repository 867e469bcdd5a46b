"""Direct loss estimation wired into the monitor: a regressor's windows carry estimated MAE and
RMSE once its first labelled outcomes made a reference, ``estimated_decay`` is raised on the key
metric (lower is better) before labels arrive, realised labels can overrule it, and the
reference survives a restart."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    Envelope,
    MetricsComputed,
    ValuePredicted,
    ValueRecorded,
)
from services.monitor.domain import Monitor, Snapshot
from services.monitor.join import PendingPrediction
from services.monitor.loss_estimation import LossReference
from tests.factories import T0
from tests.monitor.regression_streams import REGRESSOR, regressor_record, scored_value
from tests.monitor.test_regression import feed, policy

FINGERPRINT = f"{REGRESSOR}:v1:estimated_decay:mae"


class Traffic:
    """A regressor whose error grows with the feature ``x`` (sd 5 + 80·x): on ``x`` in [0, 1]
    its MAE is about 36 (threshold 50); on [0.9, 1] about 65. (Trees do not extrapolate: a
    shift must stay within the reference's range for the estimate to follow it.)"""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.index = 0

    def phase(
        self, count: int, *, low: float, high: float, noise: float = 80.0
    ) -> tuple[list[ValuePredicted], list[ValueRecorded]]:
        predictions, truths = [], []
        for _ in range(count):
            x = float(self.rng.uniform(low, high))
            z = float(self.rng.normal())
            predicted = 150.0 + 60.0 * z
            at = T0 + timedelta(seconds=self.index)
            scored = scored_value(
                f"d-{self.index}",
                at,
                predicted,
                predicted + float(self.rng.normal(scale=5.0 + noise * x)),
                features={"x": x, "z": z, "site": "a" if self.index % 3 else "b"},
                truth_delay=timedelta(minutes=10),
                latency_ms=2.0,
            )
            predictions.append(scored.prediction)
            truths.append(scored.truth)
            self.index += 1
        return predictions, truths


def monitor(**overrides: Any) -> Monitor:
    made = Monitor(policy(**overrides))
    made.know(regressor_record(version=1))
    return made


def with_reference(traffic: Traffic, watcher: Monitor) -> list[Envelope]:
    """Feed 300 labelled outcomes of unshifted traffic (the reference); return the outputs."""
    predictions, truths = traffic.phase(300, low=0.0, high=1.0)
    events: list[Envelope] = []
    for start in range(0, 300, 50):
        events += [*predictions[start : start + 50], *truths[start : start + 50]]
    return feed(watcher, events).outputs


def estimated_alerts(outputs: list[Envelope]) -> list[AlertRaised | AlertRecovered]:
    return [
        e
        for e in outputs
        if isinstance(e, AlertRaised | AlertRecovered) and e.kind is AlertKind.ESTIMATED_DECAY
    ]


def test_a_regressor_gets_estimates_and_an_estimated_decay_before_any_label() -> None:
    traffic, watcher = Traffic(0), monitor()
    before = with_reference(traffic, watcher)
    assert estimated_alerts(before) == []
    shifted, truths = traffic.phase(400, low=0.9, high=1.0)

    outputs = feed(watcher, shifted).outputs
    windows = [e for e in outputs if isinstance(e, MetricsComputed)]
    assert windows
    assert all(w.labelled == 0 for w in windows)
    for window in windows:
        assert window.estimated is not None
        assert set(window.estimated) == {"mae", "rmse"}
        assert window.metrics["mae"] is None  # no labels yet: nothing realised
        assert window.estimated["mae"].value > 55.0
        assert window.estimated["mae"].lower <= window.estimated["mae"].value
        assert window.calibration is None
    (raised,) = estimated_alerts(outputs)
    assert isinstance(raised, AlertRaised)
    assert raised.fingerprint == FINGERPRINT
    assert "above threshold 50.0" in raised.summary
    assert raised.evidence["direction"] == "lower_is_better"
    assert str(raised.evidence["method"]).startswith("dle")
    reference = raised.evidence["loss_reference"]
    assert isinstance(reference, dict)
    assert reference["rows"] == 300
    assert reference["features"] == ["x", "z", "site"]  # numbers, then categories

    # The labels confirm it: the realised MAE is breached too, the estimate is not contradicted.
    after = feed(watcher, truths).outputs
    assert estimated_alerts(after) == []
    assert any(
        isinstance(e, AlertRaised)
        and e.kind is AlertKind.METRIC_DECAY
        and e.evidence["metric"] == "mae"
        for e in after
    )


def test_no_estimated_decay_without_shift_and_the_band_holds_the_realised_mae() -> None:
    traffic, watcher = Traffic(1), monitor()
    with_reference(traffic, watcher)
    predictions, truths = traffic.phase(2000, low=0.0, high=1.0)
    outputs = feed(watcher, predictions).outputs
    estimates = [e.estimated for e in outputs if isinstance(e, MetricsComputed)]
    assert len(estimates) == 20
    assert estimated_alerts(outputs) == []
    realised = [
        float(np.mean([abs(t.value - p.predicted_value) for p, t in zip(ps, ts, strict=True)]))
        for ps, ts in ((predictions[i : i + 100], truths[i : i + 100]) for i in range(0, 2000, 100))
    ]
    inside = sum(
        e is not None and e["mae"].lower <= mae <= e["mae"].upper
        for e, mae in zip(estimates, realised, strict=True)
    )
    assert inside >= 16  # a 95 % band: most of 20 windows


def test_labels_that_contradict_the_estimate_close_its_episode() -> None:
    traffic, watcher = Traffic(2), monitor()
    with_reference(traffic, watcher)
    # a concept change the other way: inputs that used to mean large errors now do not
    shifted, truths = traffic.phase(400, low=0.9, high=1.0, noise=0.0)
    (raised,) = estimated_alerts(feed(watcher, shifted).outputs)
    assert isinstance(raised, AlertRaised)
    (recovered,) = estimated_alerts(feed(watcher, truths).outputs)
    assert isinstance(recovered, AlertRecovered)
    assert recovered.evidence["contradicted_by"] == "realised"
    assert "not above threshold 50.0" in recovered.summary


def test_the_reference_survives_a_restart_and_gives_the_same_estimates() -> None:
    traffic, watcher = Traffic(3), monitor()
    predictions, truths = traffic.phase(300, low=0.0, high=1.0)
    feed(watcher, predictions)
    feed(watcher, truths[:150])
    gathering = watcher.drain_changes()
    reference = gathering.references[(REGRESSOR, 1)]
    assert isinstance(reference, LossReference)
    assert (len(reference.true), reference.complete) == (150, False)
    # a waiting prediction keeps its features while the reference gathers
    waiting = [p for p in gathering.join.added if isinstance(p, PendingPrediction)]
    assert waiting
    assert all(p.features is not None for p in waiting)
    feed(watcher, truths[150:])
    complete = watcher.drain_changes().references[(REGRESSOR, 1)]
    assert isinstance(complete, LossReference)
    assert complete.complete

    restarted = monitor()
    restarted.restore(
        Snapshot(references={(REGRESSOR, 1): LossReference.from_dict(complete.to_dict())})
    )
    later, _ = traffic.phase(200, low=0.5, high=1.0)
    expected = [e for e in feed(watcher, later).outputs if isinstance(e, MetricsComputed)]
    replayed = [e for e in feed(restarted, later).outputs if isinstance(e, MetricsComputed)]
    assert [e.estimated for e in replayed] == [e.estimated for e in expected]
    assert all(e.estimated for e in replayed)
    # once complete, a new prediction no longer carries its features into the join
    more, _ = traffic.phase(10, low=0.0, high=1.0)
    restarted.drain_changes()
    feed(restarted, more)
    added = restarted.drain_changes().join.added
    assert len(added) == 10
    assert all(isinstance(p, PendingPrediction) and p.features is None for p in added)
    status = restarted.status()
    assert status["loss_references"][0]["complete"] is True
    assert status["loss_references"][0]["reference_rows"] == 300


def test_with_estimation_off_a_regressor_keeps_no_features_and_gets_no_estimate() -> None:
    traffic, watcher = Traffic(4), monitor(estimation=False)
    outputs = with_reference(traffic, watcher)
    shifted, _ = traffic.phase(400, low=0.9, high=1.0)
    outputs += feed(watcher, shifted).outputs
    windows = [e for e in outputs if isinstance(e, MetricsComputed)]
    assert windows
    assert all(w.estimated is None for w in windows)
    assert estimated_alerts(outputs) == []
    changes = watcher.drain_changes()
    assert changes.references == {}
    assert all(p.features is None for p in changes.join.added if isinstance(p, PendingPrediction))
    assert all(w is None or w.features == [] for w in changes.windows.values())
