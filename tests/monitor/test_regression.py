"""Regression models in the monitor, pure: MAE, RMSE and R² equal scikit-learn's, windows keep
and restore numbers, alerts on lower-is-better metrics, refused truths of the wrong kind, and
champion against challenger on the key metric."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from itertools import groupby
from typing import Any, TypeVar, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    ComparisonVerdict,
    Envelope,
    LabelRecorded,
    MetricDirection,
    MetricsComputed,
    MetricTarget,
    PredictionMade,
    ValuePredicted,
    ValueRecorded,
    Variant,
    VariantsCompared,
)
from services.monitor.comparison import (
    LOWER_IS_BETTER,
    Outcome,
    ValueOutcome,
    compare_values,
    outcome_from_dict,
    r2_of_rows,
    significance_test_for,
)
from services.monitor.domain import Monitor, MonitorPolicy, Step, watched_targets
from services.monitor.metrics import regression_metric, regression_metrics
from services.monitor.thresholds import Reading, read
from services.monitor.windows import Series, Window, WindowPolicy, Windows
from services.retrainer.rollout.canary import CanaryAction, Rollout, judge_canary
from tests.factories import MODEL, T0, make_deployment, make_version_record
from tests.monitor.regression_streams import (
    REGRESSOR,
    ValuePhase,
    diabetes_targets,
    interleaved_values,
    regressor_record,
    value_stream,
)
from tests.monitor.streams import Phase, scored_stream

NOW = T0 + timedelta(days=30)
E = TypeVar("E")


# ---------------------------------------------------------------------- metrics


def noisy_values(seed: int, size: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(np.asarray(diabetes_targets()), size=size)
    predicted = truth + rng.normal(0, 45, size)
    return [float(v) for v in truth], [float(v) for v in predicted]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_figures_equal_scikit_learns(seed: int) -> None:
    truth, predicted = noisy_values(seed, 300)
    figures = regression_metrics(truth, predicted)
    assert figures["mae"] == mean_absolute_error(truth, predicted)
    assert figures["rmse"] == root_mean_squared_error(truth, predicted)
    assert figures["r2"] == r2_score(truth, predicted)
    assert {name: regression_metric(name, truth, predicted) for name in figures} == figures


@pytest.mark.parametrize("seed", range(8))
def test_regression_figures_are_scikit_learns_floats_at_any_scale_and_size(seed: int) -> None:
    """The monitor computes the figures with numpy, not scikit-learn (whose import costs a
    monitor process about 48 MB): the same operations, so the same floats, not just close."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        size = int(rng.integers(2, 400))
        scale = float(rng.choice([1e-6, 1e-2, 1.0, 1e3, 1e9]))
        truth = rng.normal(0, scale, size)
        predicted = truth + rng.normal(0, scale * rng.uniform(0.01, 3), size)
        if rng.uniform() < 0.3:  # repeated values, integral targets
            truth = np.round(truth / scale * 3)
            predicted = np.round(predicted / scale * 3)
        if np.var(truth) == 0:
            continue
        figures = regression_metrics(truth.tolist(), predicted.tolist())
        assert figures == {
            "mae": mean_absolute_error(truth, predicted),
            "rmse": root_mean_squared_error(truth, predicted),
            "r2": r2_score(truth, predicted),
        }


def test_regression_figures_of_edge_windows_equal_scikit_learns_where_defined() -> None:
    perfect = regression_metrics([1.0, 2.0, 4.0], [1.0, 2.0, 4.0])
    assert perfect == {"mae": 0.0, "rmse": 0.0, "r2": 1.0}
    assert r2_score([1.0, 2.0, 4.0], [1.0, 2.0, 4.0]) == 1.0
    inverted = regression_metrics([1.0, 2.0], [2.0, 1.0])
    assert inverted["r2"] == r2_score([1.0, 2.0], [2.0, 1.0]) == -3.0
    # One label, or labels that do not vary: the errors as scikit-learn gives them, R² None
    # (scikit-learn: NaN with one label, 1 or 0 on constant labels).
    for truth, predicted in (([5.0], [4.0]), ([3.0, 3.0], [3.0, 3.0]), ([3.0, 3.0], [1.0, 6.0])):
        figures = regression_metrics(truth, predicted)
        assert figures["mae"] == mean_absolute_error(truth, predicted)
        assert figures["rmse"] == root_mean_squared_error(truth, predicted)
        assert figures["r2"] is None
    tiny = regression_metrics([0.0, 5e-324], [5e-324, 0.0])  # variance underflows to zero
    assert tiny["r2"] is None
    assert tiny["mae"] == mean_absolute_error([0.0, 5e-324], [5e-324, 0.0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused_as_scikit_learn_refuses_them(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        regression_metrics([1.0, bad], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        regression_metrics([1.0, 2.0], [bad, 2.0])
    with pytest.raises(ValueError, match="Input contains"):
        mean_absolute_error([1.0, bad], [1.0, 2.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        ),
        max_size=40,
    )
)
def test_regression_figures_are_finite_or_none_and_agree_with_scikit_learn(
    pairs: list[tuple[float, float]],
) -> None:
    truth = [t for t, _ in pairs]
    predicted = [p for _, p in pairs]
    figures = regression_metrics(truth, predicted)
    assert all(v is None or np.isfinite(v) for v in figures.values())
    if not pairs:
        assert figures == {"mae": None, "rmse": None, "r2": None}
        return
    assert figures["mae"] == mean_absolute_error(truth, predicted)
    assert figures["rmse"] == root_mean_squared_error(truth, predicted)
    if len(pairs) < 2 or np.var(truth) == 0:
        assert figures["r2"] is None
    else:
        assert figures["r2"] == r2_score(truth, predicted)


def test_r2_is_none_not_nan_or_a_made_up_number_when_undefined() -> None:
    assert regression_metrics([150.0], [140.0])["r2"] is None  # scikit-learn: nan, and warns
    assert regression_metrics([150.0, 150.0, 150.0], [140.0, 150.0, 160.0])["r2"] is None
    assert r2_score([150.0, 150.0, 150.0], [140.0, 150.0, 160.0]) == 0.0  # what it would say


def test_figures_that_overflow_a_float_are_none_not_infinite() -> None:
    figures = regression_metrics([1e308, -1e308], [-1e308, 1e308])
    assert figures == {"mae": None, "rmse": None, "r2": None}
    with pytest.raises(ValueError, match="2 true values but 1 predictions"):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="unknown regression metric 'accuracy'"):
        regression_metric("accuracy", [1.0], [1.0])


# ---------------------------------------------------------------------- thresholds


def test_lower_is_better_targets_breach_above_and_recover_below_the_hysteresis_level() -> None:
    mae = MetricTarget(
        metric="mae", baseline=42.0, threshold=50.0, direction=MetricDirection.LOWER_IS_BETTER
    )
    readings = [read(v, mae, 0.5) for v in (60.0, 50.5, 48.0, 46.0, None)]
    assert readings == [
        Reading.BREACHED,
        Reading.BREACHED,
        Reading.BORDERLINE,  # not past the recovery level, 46
        Reading.CLEAR,
        Reading.NO_EVIDENCE,
    ]


def test_a_regressor_has_no_confidence_rule() -> None:
    assert [t.metric for t in watched_targets(regressor_record())] == ["mae", "rmse", "r2"]
    assert "low_confidence_rate" in [t.metric for t in watched_targets(make_version_record())]


# ---------------------------------------------------------------------- windows


def test_a_window_counts_numbers_and_survives_its_round_trip_through_storage() -> None:
    windows = Windows(WindowPolicy(max_events=3, span=None))
    series = Series(REGRESSOR, 1, "champion")
    assert windows.add_prediction(series, T0, None, 2.0) is None
    assert windows.add_value_outcome(series, T0, y_true=151.0, y_pred=140.5) is None
    (open_window,) = windows.open_windows()
    assert (open_window.predictions, open_window.labelled, open_window.confidences) == (1, 1, [])
    restored = Window.from_dict(open_window.to_dict())
    assert restored == open_window
    windows.add_value_outcome(series, T0, y_true=75.0, y_pred=80.0)
    closed = windows.add_value_outcome(series, T0, y_true=200.0, y_pred=190.0)
    assert closed is not None
    assert (closed.window.values_true, closed.window.values_pred) == (
        [151.0, 75.0, 200.0],
        [140.5, 80.0, 190.0],
    )


def test_a_window_saved_before_regression_existed_still_loads() -> None:
    state = Windows(WindowPolicy(max_events=5, span=None))
    series = Series(MODEL, 1, "champion")
    state.add_prediction(series, T0, 0.9, 2.0)
    (window,) = state.open_windows()
    old = {k: v for k, v in window.to_dict().items() if k not in ("values_true", "values_pred")}
    assert Window.from_dict(old) == window


# ---------------------------------------------------------------------- the monitor


def policy(**overrides: Any) -> MonitorPolicy:
    fields: dict[str, Any] = {
        "window": WindowPolicy(max_events=100, span=None),
        "min_labelled": 20,
        "min_predictions": 20,
        "comparison_min_samples": 100,
        "comparison_resamples": 199,
    }
    return MonitorPolicy(**(fields | overrides))


def monitor(**overrides: Any) -> Monitor:
    made = Monitor(policy(**overrides))
    made.know(regressor_record(version=1))
    made.know(regressor_record(version=2))
    made.know(make_version_record(version=1))
    return made


def feed(target: Monitor, events: Sequence[Envelope]) -> Step:
    """Hand events over as the consumer would: runs of one type, in order."""
    total = Step()
    for kind, run in groupby(events, key=type):
        batch = list(run)
        if kind in (PredictionMade, ValuePredicted):
            predictions = cast(list[PredictionMade | ValuePredicted], batch)
            step = target.add_predictions(predictions, now=NOW)
        else:
            step = target.add_labels(cast(list[LabelRecorded | ValueRecorded], batch), now=NOW)
        total.outputs += step.outputs
        total.refusals += step.refusals
    return total


def of_type(step: Step, kind: type[E]) -> list[E]:
    return [event for event in step.outputs if isinstance(event, kind)]


def test_an_mae_breach_raises_one_alert_and_its_end_one_recovery() -> None:
    # Windows of 100: 300 predictions 20 off, 300 predictions 60 off, 400 predictions 20 off.
    stream = value_stream([ValuePhase(300), ValuePhase(300, error=60.0), ValuePhase(400)])
    watcher = monitor()
    step = feed(watcher, interleaved_values(stream, lag=30))

    def watcher_status(_: Step) -> dict[str, int]:
        (window,) = watcher.status()["open_windows"]
        return {"labelled": window["labelled"], "predictions": window["predictions"]}

    assert step.refusals == []
    alerts = [e for e in step.outputs if isinstance(e, AlertRaised | AlertRecovered)]
    # Errors of 60 instead of 20 are also a change in their distribution: residual drift
    # (tests/monitor/test_residuals.py) raises and recovers beside the MAE.
    assert [(type(a).__name__, a.kind, a.fingerprint) for a in alerts] == [
        ("AlertRaised", AlertKind.METRIC_DECAY, f"{REGRESSOR}:v1:metric_decay:mae"),
        ("AlertRaised", AlertKind.RESIDUAL_DRIFT, f"{REGRESSOR}:v1:residual_drift:residuals"),
        ("AlertRecovered", AlertKind.METRIC_DECAY, f"{REGRESSOR}:v1:metric_decay:mae"),
        ("AlertRecovered", AlertKind.RESIDUAL_DRIFT, f"{REGRESSOR}:v1:residual_drift:residuals"),
    ]
    raised = alerts[0]
    assert isinstance(raised, AlertRaised)
    assert raised.evidence["direction"] == "lower_is_better"
    assert raised.evidence["values"] == [60.0, 60.0]
    assert "above threshold 50.0" in raised.summary

    windows = [w for w in of_type(step, MetricsComputed) if w.labelled]
    for window in windows:
        assert window.class_labels == []
        assert window.confusion_matrix == []
        # The loss estimate (from the 300th label on) is blind to this shift: the inputs are
        # alike, only the errors grew (a concept shift), so no estimated_decay above.
        assert window.estimated is None or set(window.estimated) == {"mae", "rmse"}
        assert window.calibration is None
        assert "low_confidence_rate" not in window.metrics
        assert "accuracy" not in window.metrics
        assert set(window.metrics) == {
            "mae",
            "rmse",
            "r2",
            "expired_labels",
            "label_class_mismatches",
        }
        # Each labelled pair is 20 or 60 off: with a share s of 60s, MAE is 20 + 40 s and
        # RMSE the root of 400 + 3200 s (a window may straddle two phases).
        mae = window.metrics["mae"]
        assert mae is not None
        assert 20.0 - 1e-9 <= mae <= 60.0 + 1e-9
        share = (mae - 20.0) / 40.0
        assert window.metrics["rmse"] == pytest.approx(np.sqrt(400.0 + 3200.0 * share))
    assert [w.breaching for w in windows].count(["mae"]) >= 2
    still_open = watcher_status(step)
    assert sum(w.labelled for w in windows) + still_open["labelled"] == 1000
    assert (
        sum(w.predictions for w in of_type(step, MetricsComputed)) + still_open["predictions"]
        == 1000
    )


def test_window_figures_equal_scikit_learn_on_the_windows_labelled_pairs() -> None:
    rng = np.random.default_rng(7)
    stream = value_stream([ValuePhase(100, error=30.0)])
    # Shuffle the truths' arrival: a window's figures follow the pairs, not their order.
    order = rng.permutation(100)
    step = feed(monitor(), [*(s.prediction for s in stream), *(stream[i].truth for i in order)])
    (window,) = [w for w in of_type(step, MetricsComputed) if w.labelled]
    truth = [stream[i].truth.value for i in order]
    predicted = [stream[i].prediction.predicted_value for i in order]
    assert window.metrics["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert window.metrics["rmse"] == pytest.approx(root_mean_squared_error(truth, predicted))
    assert window.metrics["r2"] == pytest.approx(r2_score(truth, predicted))


def test_truths_of_the_wrong_kind_are_refused_with_a_reason_and_the_rest_is_scored() -> None:
    watcher = monitor()
    values = value_stream([ValuePhase(3)])
    classes = scored_stream([Phase(2)])
    a_class_for_the_regressor = LabelRecorded(
        producer="x", model=REGRESSOR, request_id=values[0].prediction.request_id, label="benign"
    )
    a_number_for_the_classifier = ValueRecorded(
        producer="x", model=MODEL, request_id=classes[0].prediction.request_id, value=1.0
    )
    early_class = LabelRecorded(producer="x", model=REGRESSOR, request_id="not-yet", label="a")
    step = feed(
        watcher,
        [
            *(s.prediction for s in values),
            *(s.prediction for s in classes),
            a_class_for_the_regressor,
            a_number_for_the_classifier,
            early_class,
            values[0].truth,
            classes[0].label,
        ],
    )
    reasons = {r.event_id: r.reason for r in step.refusals}
    assert reasons == {
        a_class_for_the_regressor.event_id: (
            f"label.recorded for a regression model: {REGRESSOR!r} version 1 predicts a number;"
            " send its truth as value.recorded"
        ),
        a_number_for_the_classifier.event_id: (
            f"value.recorded for a classifier: {MODEL!r} version 1 predicts a class; send its "
            "truth as label.recorded"
        ),
        early_class.event_id: (
            f"label.recorded for a regression model: {REGRESSOR!r} version 1 predicts a number;"
            " send its truth as value.recorded"
        ),
    }
    status = watcher.status()
    assert (status["pending_predictions"], status["pending_labels"]) == (3, 0)


def test_predictions_of_the_wrong_kind_are_refused() -> None:
    watcher = monitor()
    as_class = scored_stream([Phase(1)], model=REGRESSOR)[0].prediction
    as_value = value_stream([ValuePhase(1)], model=MODEL)[0].prediction
    step = feed(watcher, [as_class, as_value])
    assert sorted(r.reason for r in step.refusals) == [
        f"prediction.made for a regression model: {REGRESSOR!r} version 1 predicts a number",
        f"value.predicted for a classifier: {MODEL!r} version 1 predicts a class",
    ]


def test_a_class_that_waited_for_an_unknown_model_is_counted_as_a_mismatch_not_scored() -> None:
    watcher = Monitor(policy(window=WindowPolicy(max_events=3, span=None)))
    early = LabelRecorded(
        producer="x", occurred_at=T0, model=REGRESSOR, request_id="v-0", label="benign"
    )
    assert feed(watcher, [early]).refusals == []  # nothing known of the model yet: it waits
    watcher.know(regressor_record(version=1))
    stream = value_stream([ValuePhase(3)])
    step = feed(
        watcher,
        [stream[0].prediction, stream[1].prediction, stream[1].truth, stream[2].prediction],
    )
    assert step.refusals == []
    (window,) = of_type(step, MetricsComputed)
    assert window.metrics["label_class_mismatches"] == 1.0
    assert (window.predictions, window.labelled) == (3, 1)
    assert window.metrics["mae"] == pytest.approx(20.0)
    assert window.metrics["r2"] is None


def test_a_replayed_prediction_or_value_is_refused_as_a_duplicate_not_counted_twice() -> None:
    watcher = monitor()
    stream = value_stream([ValuePhase(2)])
    first = feed(watcher, [stream[0].prediction, stream[0].prediction, stream[1].truth])
    second = feed(watcher, [stream[1].truth])
    assert [r.reason.split(":")[0] for r in first.refusals + second.refusals] == [
        "duplicate prediction",
        "duplicate label",
    ]
    assert watcher.status()["open_windows"][0]["predictions"] == 1


def test_a_worse_regression_challenger_is_reported_on_its_key_metric_and_alerted_once() -> None:
    watcher = monitor()
    watcher.apply_deployment(REGRESSOR, make_deployment(), at=T0, now=NOW)
    champion = value_stream([ValuePhase(300, error=20.0)], prefix="c")
    challenger = value_stream(
        [ValuePhase(300, error=45.0)], version=2, variant=Variant.CHALLENGER, prefix="d", offset=7
    )
    events: list[Envelope] = []
    for a, b in zip(
        interleaved_values(champion, lag=10), interleaved_values(challenger, lag=10), strict=True
    ):
        events += [a, b]
    step = feed(watcher, events)
    comparisons = of_type(step, VariantsCompared)
    assert comparisons, "no comparison published"
    assert {c.metric for c in comparisons} == {"mae"}
    last = comparisons[-1]
    assert last.verdict is ComparisonVerdict.CHALLENGER_WORSE
    assert last.champion_value == pytest.approx(20.0)
    assert last.challenger_value == pytest.approx(45.0)
    assert last.test == "Welch's t-test on per-label absolute error"
    assert last.champion_samples >= 100
    assert last.challenger_samples >= 100
    assert last.p_value is not None
    assert last.p_value < 0.05
    early = [c for c in comparisons if min(c.champion_samples, c.challenger_samples) < 100]
    assert {c.verdict for c in early} <= {ComparisonVerdict.INSUFFICIENT_DATA}
    worse = [a for a in of_type(step, AlertRaised) if a.kind is AlertKind.CHALLENGER_WORSE]
    assert [a.fingerprint for a in worse] == [f"{REGRESSOR}:v2:challenger_worse:mae"]
    # What the retrainer's canary makes of it: the worse canary is rolled back, while an
    # early comparison only makes it wait.
    decide = partial(judge_canary, candidate_version=2, champion_version=1, min_labels=100)
    assert decide(last, rollout=Rollout.CANARY).action is CanaryAction.ROLL_BACK
    assert early
    assert decide(early[0], rollout=Rollout.CANARY).action is CanaryAction.WAIT


# ---------------------------------------------------------------------- comparison


def outcomes(errors: Sequence[float] | np.ndarray, offset: int = 0) -> list[ValueOutcome]:
    targets = diabetes_targets()
    return [
        ValueOutcome(truth, truth + float(e))
        for i, e in enumerate(errors)
        for truth in [targets[(i + offset) % len(targets)]]
    ]


@pytest.mark.parametrize(
    ("metric", "champion_error", "challenger_error", "verdict"),
    [
        ("mae", 40.0, 20.0, ComparisonVerdict.CHALLENGER_BETTER),
        ("mae", 20.0, 40.0, ComparisonVerdict.CHALLENGER_WORSE),
        ("rmse", 40.0, 20.0, ComparisonVerdict.CHALLENGER_BETTER),
        ("rmse", 20.0, 40.0, ComparisonVerdict.CHALLENGER_WORSE),
        ("r2", 60.0, 20.0, ComparisonVerdict.CHALLENGER_BETTER),
        ("r2", 20.0, 60.0, ComparisonVerdict.CHALLENGER_WORSE),
        ("mae", 30.0, 30.0, ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE),
    ],
)
def test_lower_and_higher_is_better_verdicts_on_each_regression_metric(
    metric: str, champion_error: float, challenger_error: float, verdict: ComparisonVerdict
) -> None:
    rng = np.random.default_rng(3)
    champion = outcomes(champion_error * rng.choice([-1.0, 1.0], 300) * rng.uniform(0.5, 1.5, 300))
    challenger = outcomes(
        challenger_error * rng.choice([-1.0, 1.0], 300) * rng.uniform(0.5, 1.5, 300), offset=100
    )
    result = compare_values(
        champion,
        challenger,
        metric=metric,
        min_samples=100,
        alpha=0.05,
        rng=np.random.default_rng(0),
        resamples=199,
    )
    assert result.verdict is verdict, result
    assert result.champion_value == pytest.approx(
        regression_metric(metric, [o.y_true for o in champion], [o.y_pred for o in champion])
    )
    assert (metric in LOWER_IS_BETTER) == (metric != "r2")
    assert result.test == significance_test_for(metric, 199)


def test_no_verdict_below_min_samples_or_on_an_undefined_value() -> None:
    few = compare_values(
        outcomes([10.0] * 50),
        outcomes([90.0] * 50),
        metric="mae",
        min_samples=100,
        alpha=0.05,
        rng=np.random.default_rng(0),
    )
    assert (few.verdict, few.p_value) == (ComparisonVerdict.INSUFFICIENT_DATA, None)
    constant = [ValueOutcome(100.0, 100.0 + e) for e in (1.0, -1.0) * 100]
    undefined = compare_values(
        constant, constant, metric="r2", min_samples=100, alpha=0.05, rng=np.random.default_rng(0)
    )
    assert undefined.champion_value is None
    assert undefined.verdict is ComparisonVerdict.INSUFFICIENT_DATA


def test_errors_too_large_for_a_float_give_no_verdict_and_no_crash() -> None:
    huge = [ValueOutcome(0.0, sign * 1e200) for sign in (1.0, -3.0) * 100]
    result = compare_values(
        huge,
        outcomes([10.0] * 200),
        metric="rmse",
        min_samples=100,
        alpha=0.05,
        rng=np.random.default_rng(0),
    )
    assert (result.verdict, result.p_value) == (ComparisonVerdict.INSUFFICIENT_DATA, None)
    result = compare_values(
        huge,
        outcomes([10.0] * 200),
        metric="mae",
        min_samples=100,
        alpha=0.05,
        rng=np.random.default_rng(0),
    )
    assert result.p_value is None or np.isfinite(result.p_value)


def test_huge_predicted_values_close_a_window_with_undefined_figures_not_a_crash() -> None:
    watcher = monitor(window=WindowPolicy(max_events=2, span=None))
    stream = value_stream([ValuePhase(2)])
    huge = [
        s.prediction.model_copy(update={"predicted_value": sign * 1.7e308})
        for s, sign in zip(stream, (1.0, -1.0), strict=True)
    ]
    step = feed(watcher, [*huge, *(s.truth for s in stream)])
    assert step.refusals == []
    labelled = [w for w in of_type(step, MetricsComputed) if w.labelled]
    assert [w.metrics["mae"] for w in labelled] == [None]
    assert labelled[0].metrics["rmse"] is None


def test_the_vectorised_r2_equals_scikit_learns_on_every_resample() -> None:
    rng = np.random.default_rng(5)
    truth, predicted = (np.asarray(v) for v in noisy_values(5, 60))
    rows = np.stack([rng.choice(60, size=40, replace=False) for _ in range(20)])
    assert r2_of_rows(truth, predicted, rows) == pytest.approx(
        [r2_score(truth[row], predicted[row]) for row in rows]
    )


def test_stored_outcomes_of_either_kind_come_back_as_they_were() -> None:
    value = ValueOutcome(151.0, 140.25)
    assert outcome_from_dict(value.to_dict()) == value
    classified = Outcome("malignant", "benign", (0.4, 0.6), 0.6)
    assert outcome_from_dict(classified.to_dict()) == classified
