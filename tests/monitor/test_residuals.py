"""Residual drift (services/monitor/residuals.py) alone and inside the monitor: a regressor whose
errors become biased raises ``residual_drift`` after ``consecutive_windows`` windows and recovers
after as many clean ones; clean diabetes-like traffic raises nothing over 200 windows; the
evidence is finite whatever the numbers; the reference survives a restart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import timedelta
from itertools import groupby
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    Envelope,
    LabelRecorded,
    MetricsComputed,
    PredictionMade,
    ValuePredicted,
    ValueRecorded,
)
from services.monitor.domain import Monitor, MonitorPolicy, Snapshot, Step
from services.monitor.residuals import (
    ALPHA,
    EFFECT_FLOOR,
    ResidualReference,
    compare_residuals,
    residual,
)
from services.monitor.windows import WindowPolicy
from tests.factories import T0
from tests.monitor.regression_streams import (
    NOISE,
    REGRESSOR,
    diabetes_targets,
    honest,
    noisy_traffic,
    regressor_record,
    scored_value,
    twenty_percent_low,
)

NOW = T0 + timedelta(days=1)
FINGERPRINT = f"{REGRESSOR}:v1:residual_drift:residuals"


def watcher(**overrides: Any) -> Monitor:
    fields: dict[str, Any] = {
        "window": WindowPolicy(max_events=100, span=None),
        "min_labelled": 30,
        "residual_reference_rows": 300,
    }
    made = Monitor(MonitorPolicy(**(fields | overrides)))
    made.know(regressor_record(version=1))
    return made


def feed(target: Monitor, events: Sequence[Envelope]) -> Step:
    total = Step()
    for kind, run in groupby(events, key=type):
        batch = list(run)
        if kind in (PredictionMade, ValuePredicted):
            step = target.add_predictions(
                cast(list[PredictionMade | ValuePredicted], batch), now=NOW
            )
        else:
            step = target.add_labels(cast(list[LabelRecorded | ValueRecorded], batch), now=NOW)
        total.outputs += step.outputs
        total.refusals += step.refusals
    return total


def residual_alerts(step: Step) -> list[AlertRaised | AlertRecovered]:
    return [
        e
        for e in step.outputs
        if isinstance(e, AlertRaised | AlertRecovered) and e.kind is AlertKind.RESIDUAL_DRIFT
    ]


def closed_windows(step: Step) -> int:
    return sum(1 for e in step.outputs if isinstance(e, MetricsComputed))


# ---------------------------------------------------------------------- the test alone


def test_a_same_distribution_passes_and_a_bias_of_twenty_percent_drifts() -> None:
    rng = np.random.default_rng(1)
    truths = np.asarray(diabetes_targets())
    reference = rng.normal(0, NOISE, 300)  # truth - (truth + noise)
    window_truths = truths[rng.integers(len(truths), size=100)]
    clean = compare_residuals(list(reference), list(rng.normal(0, NOISE, 100)))
    biased = window_truths - 0.8 * (window_truths + rng.normal(0, NOISE, 100))
    drifted = compare_residuals(list(reference), list(biased))
    assert clean is not None
    assert drifted is not None
    assert not clean.drifted
    assert drifted.drifted
    assert drifted.p_value < ALPHA
    assert drifted.effect_size >= EFFECT_FLOOR
    assert drifted.window_median is not None
    assert drifted.window_median > 15.0


def test_a_huge_window_does_not_drift_on_a_negligible_shift() -> None:
    # 200 000 residuals 1 % of a standard deviation off: KS calls it significant, the effect
    # floor does not let it through.
    rng = np.random.default_rng(2)
    reference = rng.normal(0, NOISE, 200_000)
    window = rng.normal(0.01 * NOISE * 5, NOISE, 200_000)
    result = compare_residuals(list(reference), list(window))
    assert result is not None
    assert result.p_value < ALPHA
    assert result.effect_size < EFFECT_FLOOR
    assert not result.drifted


def test_ties_of_whole_number_residuals_do_not_make_a_false_alarm() -> None:
    # Whole-number truths and a model predicting few values: heavily tied residuals (where
    # scipy's Cramér-von Mises inflates its statistic, ADR 0008). KS stays at or below alpha.
    rng = np.random.default_rng(3)
    drifted = 0
    for _ in range(300):
        reference = rng.poisson(4, 300).astype(float)
        window = rng.poisson(4, 100).astype(float)
        result = compare_residuals(list(reference), list(window))
        assert result is not None
        drifted += result.drifted
    assert drifted <= 3  # alpha 0.01 of 300, and KS is conservative on ties


def test_numbers_near_the_float_limit_give_finite_evidence() -> None:
    assert residual(1e308, -1e308) is None
    assert residual(-1.7e308, 1.7e308) is None
    huge = [1e307 * (i % 7) for i in range(300)]
    result = compare_residuals(huge, [1.5e307 * (i % 7) for i in range(100)])
    assert result is not None
    evidence = result.evidence()
    json.dumps(evidence, allow_nan=False)
    assert all(math.isfinite(v) for v in evidence.values() if isinstance(v, float))
    assert result.drifted


def test_a_reference_without_spread_is_measured_in_the_targets_unit() -> None:
    same = compare_residuals([0.0] * 300, [0.0] * 100)
    moved = compare_residuals([0.0] * 300, [5.0] * 100)
    assert same is not None
    assert moved is not None
    assert (same.drifted, same.effect_size) == (False, 0.0)
    assert moved.drifted
    assert moved.effect_size == pytest.approx(5.0)
    json.dumps(moved.evidence(), allow_nan=False)


def test_empty_or_non_finite_samples_are_not_tested() -> None:
    assert compare_residuals([], [1.0, 2.0]) is None
    assert compare_residuals([1.0, 2.0], [1.0]) is None
    assert compare_residuals([1.0, 2.0], [math.nan, math.inf, 3.0]) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=60),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=60),
)
def test_any_finite_residuals_give_finite_json_evidence(a: list[float], b: list[float]) -> None:
    result = compare_residuals(a, b)
    assert result is not None
    json.dumps(result.evidence(), allow_nan=False)
    assert 0.0 <= result.p_value <= 1.0
    assert 0.0 <= result.effect_size < math.inf


def test_the_reference_gathers_its_first_rows_and_remembers_which_window_overlaps() -> None:
    reference = ResidualReference(rows=3)
    assert [reference.add(float(i), "champion") for i in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert reference.residuals == [0.0, 1.0, 2.0]
    assert not reference.judges("champion")  # its open window holds reference rows
    assert reference.judges("challenger")
    assert reference.window_closed("champion")
    assert reference.judges("champion")
    assert ResidualReference.from_dict(json.loads(json.dumps(reference.to_dict()))) == reference


# ---------------------------------------------------------------------- inside the monitor


def test_predictions_twenty_percent_low_raise_after_consecutive_windows_and_recover() -> None:
    rng = np.random.default_rng(4)
    monitor = watcher()
    before = feed(monitor, noisy_traffic(rng, 1_000, honest))
    assert residual_alerts(before) == []

    biased = feed(monitor, noisy_traffic(rng, 500, twenty_percent_low, start=1_000))
    (raised,) = residual_alerts(biased)
    assert isinstance(raised, AlertRaised)
    assert raised.fingerprint == FINGERPRINT
    # Raised on the second biased window (consecutive_windows 2), not the first.
    windows = [e for e in biased.outputs if isinstance(e, MetricsComputed | AlertRaised)]
    assert sum(isinstance(e, MetricsComputed) for e in windows[: windows.index(raised)]) == 2
    evidence = raised.evidence
    json.dumps(evidence, allow_nan=False)
    assert evidence["test"] == "ks_2samp"
    assert evidence["reference_rows"] == 300
    assert evidence["window_rows"] == 100
    assert cast(float, evidence["p_value"]) < ALPHA
    assert cast(float, evidence["effect_size"]) >= EFFECT_FLOOR
    assert cast(float, evidence["window_median_residual"]) > 20.0
    assert abs(cast(float, evidence["reference_median_residual"])) < 10.0
    assert evidence["windows"] == 2
    assert "residual_drift" not in raised.summary
    assert "300 labelled outcomes" in raised.summary

    after = feed(monitor, noisy_traffic(rng, 400, honest, start=1_500))
    (recovered,) = residual_alerts(after)
    assert isinstance(recovered, AlertRecovered)
    assert recovered.fingerprint == FINGERPRINT
    closing = [e for e in after.outputs if isinstance(e, MetricsComputed | AlertRecovered)]
    assert sum(isinstance(e, MetricsComputed) for e in closing[: closing.index(recovered)]) >= 2


def test_two_hundred_clean_windows_raise_nothing() -> None:
    rng = np.random.default_rng(5)
    monitor = watcher()
    step = feed(monitor, noisy_traffic(rng, 300 + 200 * 100, honest))
    assert step.refusals == []
    assert closed_windows(step) >= 200
    assert residual_alerts(step) == []


def test_windows_are_not_judged_before_the_reference_is_full_nor_against_their_own_rows() -> None:
    rng = np.random.default_rng(6)
    monitor = watcher(residual_reference_rows=250)
    # Biased from the start: the reference is biased too, so nothing has changed since.
    step = feed(monitor, noisy_traffic(rng, 1_500, twenty_percent_low))
    assert residual_alerts(step) == []
    # The third window (rows 201-300) held the last 50 reference rows: the first one judged
    # is the fourth. A shift now raises after two more.
    shifted = feed(monitor, noisy_traffic(rng, 300, honest, start=1_500))
    assert [type(a) for a in residual_alerts(shifted)] == [AlertRaised]


def test_a_window_with_too_few_labels_is_not_judged() -> None:
    rng = np.random.default_rng(7)
    monitor = watcher(min_labelled=1_000, window=WindowPolicy(max_events=100, span=None))
    feed(monitor, noisy_traffic(rng, 400, honest))
    step = feed(monitor, noisy_traffic(rng, 600, twenty_percent_low, start=400))
    assert closed_windows(step) >= 5
    assert residual_alerts(step) == []


def test_the_reference_and_the_episode_survive_a_restore() -> None:
    rng = np.random.default_rng(8)
    first = watcher()
    feed(first, noisy_traffic(rng, 120, honest))
    assert first.status()["residual_references"] == [
        {"model": REGRESSOR, "version": 1, "rows": 120, "needed": 300, "full": False}
    ]
    feed(first, noisy_traffic(rng, 230, honest, start=120))
    changes = first.drain_changes()
    (reference,) = changes.residual_references.values()
    assert reference.full
    second = watcher()
    second.restore(
        Snapshot(
            windows=[w for w in changes.windows.values() if w is not None],
            episodes=changes.episodes,
            clocks=changes.clocks,
            residual_references=changes.residual_references,
        )
    )
    step = feed(second, noisy_traffic(rng, 300, twenty_percent_low, start=350))
    assert [type(a) for a in residual_alerts(step)] == [AlertRaised]
    assert step.outputs
    assert residual_alerts(step)[0].evidence["reference_rows"] == 300


def test_truths_and_predictions_near_the_float_limit_keep_the_monitor_healthy() -> None:
    monitor = watcher()
    events: list[Envelope] = []
    for index in range(700):
        at = T0 + timedelta(seconds=index)
        sign = 1.0 if index % 2 else -1.0
        scored = scored_value(
            f"h-{index}",
            at,
            -sign * 1.7e308 if index >= 400 else 1e300 * (index % 5),
            sign * 1.7e308 if index >= 400 else 1e300 * (index % 3),
            features={},
        )
        events += [scored.prediction, scored.truth]
    step = feed(monitor, events)
    assert step.refusals == []
    for alert in residual_alerts(step):
        json.dumps(alert.evidence, allow_nan=False)
    # Past row 400 every residual overflows: those windows are not tested, not crashed on.
    assert monitor.status()["open_windows"]
