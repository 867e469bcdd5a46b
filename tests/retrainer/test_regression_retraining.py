"""Retraining a regression model: a clone of the champion fitted on float targets, judged on MAE,
RMSE and R² by the same paired bootstrap as a classifier (ADR 0022)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from services.retrainer.retraining.gate import GatePolicy, judge, metric_value
from services.retrainer.retraining.pipeline import Champion, PipelineInputs, Step, run_steps
from services.retrainer.retraining.recipes import CHAMPION, RecipeError, parse_recipe
from services.retrainer.retraining.step_store import DatabaseStepStore
from services.retrainer.retraining.training import ValueScores, fit
from services.retrainer.retraining.training_data import LabelledRows, parse_csv, to_csv
from services.runtime import load_model
from tests.content_tools import step_store
from tests.retrainer.regression_data import (
    FEATURES,
    SPEC,
    diabetes,
    hist_gradient_boosting,
    named_pipeline,
    rows,
)

POLICY = GatePolicy(resamples=400)


def inputs(
    store: DatabaseStepStore, data: LabelledRows, champion: Any, template: Any | None = None
) -> PipelineInputs:
    """A retrain of ``template`` (default: the champion itself) judged against ``champion``."""
    champion_sha = store.put_artifact(skops.io.dumps(champion))
    template_sha = (
        champion_sha if template is None else store.put_artifact(skops.io.dumps(template))
    )
    return PipelineInputs(
        snapshot_sha256=store.put_dataset(to_csv(data, SPEC)),
        live_from=data.live_from,
        spec=SPEC,
        recipe=parse_recipe({"max_iter": 60}, task=SPEC.task),
        code_version="tests",
        gate=POLICY,
        champion=Champion(1, champion_sha),
        estimator_sha256=template_sha,
    )


@pytest.mark.parametrize("make", [hist_gradient_boosting, named_pipeline])
def test_a_retrain_clones_the_regressor_with_its_parameters_and_reports_regression_metrics(
    make: Any, tmp_path: Path
) -> None:
    champion = make()
    store = step_store(tmp_path)
    given = inputs(store, rows(live_from=400), champion)
    assert given.recipe.estimator == CHAMPION
    result = run_steps(given, store)
    candidate = load_model(store.artifact(result.artifact_sha256))
    assert type(candidate) is type(champion)
    final = candidate.steps[-1][1] if isinstance(candidate, Pipeline) else candidate
    original = champion.steps[-1][1] if isinstance(champion, Pipeline) else champion
    assert type(final) is HistGradientBoostingRegressor
    assert final.get_params() == original.get_params() | {"random_state": 0}  # seeded
    if isinstance(candidate, Pipeline):
        assert list(candidate.feature_names_in_) == FEATURES
    evaluated = result.outputs[Step.EVALUATE]
    assert set(evaluated["metrics"]) == {"mae", "rmse", "r2"}
    assert 30 < evaluated["metrics"]["mae"] < 65
    assert evaluated["metrics"]["rmse"] >= evaluated["metrics"]["mae"]
    assert 0.2 < evaluated["metrics"]["r2"] < 0.8
    figures = evaluated["figures"]
    assert figures["key_metric"] == "mae"
    assert figures["non_inferiority"]["test"] == "paired bootstrap"
    assert figures["paired_errors"]["test"] == "Wilcoxon signed-rank on absolute errors"
    assert "mcnemar" not in figures
    assert figures["live"]["rows"] > 0  # held-out rows past live_from are reported apart
    elsewhere = step_store(tmp_path / "elsewhere")
    again = run_steps(inputs(elsewhere, rows(live_from=400), champion), elsewhere)
    assert again.artifact_sha256 == result.artifact_sha256  # same inputs, same bytes
    assert run_steps(given, store).cached == [Step.PREPARE, Step.SPLIT, Step.TRAIN, Step.EVALUATE]


def test_the_gate_passes_a_retrain_on_more_data_over_a_champion_trained_on_little(
    tmp_path: Path,
) -> None:
    frame, target = diabetes()
    stale = HistGradientBoostingRegressor(max_iter=60, learning_rate=0.05, max_depth=3)
    stale.fit(frame.to_numpy()[:30], target[:30])  # too few rows for a leaf of 20: no splits
    store = step_store(tmp_path)
    result = run_steps(inputs(store, rows(), stale), store)
    evaluated = result.outputs[Step.EVALUATE]
    assert evaluated["passed"], evaluated["summary"]
    mae = evaluated["figures"]["metrics"]["mae"]
    assert mae["candidate"] < mae["champion"]
    assert evaluated["figures"]["non_inferiority"]["ci_low"] > 0  # better, not only as good
    assert evaluated["failures"] == []


def test_the_gate_refuses_a_deliberately_bad_regressor(tmp_path: Path) -> None:
    store = step_store(tmp_path)
    bad = DummyRegressor(strategy="constant", constant=300.0).fit([[0.0] * 10] * 2, [300.0] * 2)
    result = run_steps(inputs(store, rows(), hist_gradient_boosting(), template=bad), store)
    evaluated = result.outputs[Step.EVALUATE]
    assert not evaluated["passed"]
    failures = " | ".join(evaluated["failures"])
    assert "mae (key)" in failures
    assert "above its ceiling 65.0" in failures
    assert "may be worse than the champion's" in failures
    assert evaluated["figures"]["non_inferiority"]["ci_high"] < 0


def _noisy(truth: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return truth + np.random.default_rng(seed).normal(0.0, scale, size=len(truth))


def test_judge_compares_mae_lower_is_better_with_a_margin_relative_to_the_champion() -> None:
    truth = diabetes()[1][:200]
    champion = ValueScores(truth, _noisy(truth, 40.0, 1))
    better = judge(SPEC, ValueScores(truth, _noisy(truth, 30.0, 2)), champion, POLICY)
    assert better.passed, better.summary
    worse = judge(SPEC, ValueScores(truth, _noisy(truth, 55.0, 3)), champion, POLICY)
    assert not worse.passed
    (failure,) = worse.failures  # under its ceiling: refused on non-inferiority alone
    assert failure.startswith("mae may be worse than the champion's by more than")
    margin = worse.figures["non_inferiority"]["margin"]
    assert margin == pytest.approx(0.02 * metric_value("mae", champion, SPEC))  # type: ignore[operator]
    same = judge(SPEC, champion, champion, POLICY)
    assert same.passed
    assert same.figures["paired_errors"]["p_value"] == 1.0


def test_the_summary_calls_the_threshold_of_an_error_its_ceiling() -> None:
    """The approver reads the summary: mae's threshold is the most it may reach, not a floor."""
    truth = diabetes()[1][:200]
    verdict = judge(SPEC, ValueScores(truth, _noisy(truth, 30.0, 2)), None, POLICY)
    assert f"(ceiling {SPEC.target('mae').threshold})" in verdict.summary, verdict.summary
    assert "floor" not in verdict.summary


def test_r2_is_undefined_on_constant_truths_and_the_gate_says_so() -> None:
    truth = np.full(60, 150.0)
    scores = ValueScores(truth, _noisy(truth, 5.0, 4))
    assert metric_value("r2", scores, SPEC) is None
    verdict = judge(SPEC, scores, None, POLICY)
    assert "r2 (guard) is undefined on the held-out rows" in verdict.failures
    with pytest.raises(ValueError, match="not a regression metric"):
        metric_value("recall", scores, SPEC)


def test_a_regression_recipe_only_clones_its_champion() -> None:
    assert parse_recipe({"estimator": "logistic_regression"}, task=SPEC.task).estimator == CHAMPION
    with pytest.raises(RecipeError, match="a regression model is retrained as a clone"):
        parse_recipe({}, {"estimator": "gaussian_nb"}, task=SPEC.task)
    assert parse_recipe({}, {"seed": 4}, task=SPEC.task).seed == 4
    with pytest.raises(RecipeError, match="retrained as it is"):
        parse_recipe({}, {"max_iter": 4}, task=SPEC.task)


def test_fitting_a_regressor_refuses_a_classifier_champion_and_constant_targets() -> None:
    recipe = parse_recipe({}, task=SPEC.task)
    data = rows()
    with pytest.raises(ValueError, match="is a classifier"):
        fit(recipe, SPEC, data, LogisticRegression())
    flat = LabelledRows(data.rows[:20], ("151.0",) * 20, 20)
    with pytest.raises(ValueError, match="1 distinct value"):
        fit(recipe, SPEC, flat, hist_gradient_boosting())


def test_a_regression_csv_keeps_finite_numbers_and_leaves_out_the_rest() -> None:
    header = ",".join([*FEATURES, "progression"])
    cells = ",".join(["0.01"] * len(FEATURES))
    content = "\n".join(
        [header, *(f"{cells},{label}" for label in ["151", "75.5", "nan", "inf", "high", ""])]
    ).encode()
    parsed, dropped = parse_csv(content, SPEC)
    assert parsed.labels == ("151.0", "75.5")
    assert dropped == 4
    assert to_csv(parsed, SPEC).decode().splitlines()[1].endswith(",151.0")


def test_a_true_value_near_the_float_limit_is_refused_by_the_gate_not_a_crash(
    tmp_path: Path,
) -> None:
    data = rows(live_from=400)
    labels = list(data.labels)
    labels[420] = repr(1e300)  # a live truth someone typed wrong, still a finite number
    poisoned = LabelledRows(data.rows, tuple(labels), data.live_from)
    store = step_store(tmp_path)
    result = run_steps(inputs(store, poisoned, hist_gradient_boosting()), store)
    evaluated = result.outputs[Step.EVALUATE]
    assert not evaluated["passed"]
    assert "rmse (guard) is undefined on the held-out rows" in evaluated["failures"]
    assert set(evaluated["metrics"]) <= {"mae", "rmse", "r2"}
    assert all(np.isfinite(value) for value in evaluated["metrics"].values())
