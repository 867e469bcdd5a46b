"""The validation gate (pure): floors, paired-bootstrap non-inferiority, guards, no champion;
its metric functions checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from contracts import MetricDirection, MetricTarget
from services.retrainer.retraining.gate import (
    GatePolicy,
    judge,
    metric_value,
    with_measured_baselines,
)
from services.retrainer.retraining.training import Scores
from tests.factories import make_spec

POLICY = GatePolicy(resamples=500, seed=3)
SPEC = make_spec(
    metrics=[
        MetricTarget(metric="recall", baseline=0.9, threshold=0.8),
        MetricTarget(metric="precision", baseline=0.9, threshold=0.7),
    ]
)


def scores(truth: list[str], predicted: list[str], positive: list[float] | None = None) -> Scores:
    truth_array = np.array(truth)
    predicted_array = np.array(predicted)
    p = np.array(
        positive
        if positive is not None
        else [0.9 if label == "malignant" else 0.1 for label in predicted]
    )
    true_probability = np.where(truth_array == "malignant", p, 1 - p)
    return Scores(
        truth=truth_array,
        predicted=predicted_array,
        positive_probability=p,
        true_class_probability=true_probability,
        confidence=np.maximum(p, 1 - p),
    )


def labelled(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return list(np.where(rng.random(n) < 0.4, "malignant", "benign"))


def corrupt(truth: list[str], share: float, seed: int, only: str | None = None) -> list[str]:
    """Flip a share of the answers (only those whose truth is ``only``, when given)."""
    rng = np.random.default_rng(seed)
    flipped = []
    for label in truth:
        if (only is None or label == only) and rng.random() < share:
            flipped.append("benign" if label == "malignant" else "malignant")
        else:
            flipped.append(label)
    return flipped


def test_metric_values_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    truth = labelled(300, 1)
    positive = rng.random(300)
    predicted = ["malignant" if p > 0.5 else "benign" for p in positive]
    s = scores(truth, predicted, list(positive))
    y = np.array(truth) == "malignant"
    yhat = np.array(predicted) == "malignant"
    assert metric_value("recall", s, SPEC) == pytest.approx(recall_score(y, yhat))
    assert metric_value("precision", s, SPEC) == pytest.approx(precision_score(y, yhat))
    assert metric_value("f1", s, SPEC) == pytest.approx(f1_score(y, yhat))
    assert metric_value("accuracy", s, SPEC) == pytest.approx(accuracy_score(y, yhat))
    assert metric_value("roc_auc", s, SPEC) == pytest.approx(roc_auc_score(y, positive))
    probabilities = np.column_stack([1 - positive, positive])
    assert metric_value("log_loss", s, SPEC) == pytest.approx(log_loss(y, probabilities))
    assert metric_value("recall", scores(["benign"], ["benign"]), SPEC) is None


def test_a_candidate_as_good_as_the_champion_passes_and_the_record_holds_every_figure() -> None:
    truth = labelled(400)
    champion = scores(truth, corrupt(truth, 0.08, seed=1))
    candidate = scores(truth, corrupt(truth, 0.08, seed=2))
    verdict = judge(SPEC, candidate, champion, POLICY)
    assert verdict.passed, verdict.failures
    figures = verdict.figures
    assert figures["metrics"]["recall"]["threshold"] == 0.8
    assert figures["metrics"]["precision"]["role"] == "guard"
    interval = figures["non_inferiority"]
    assert interval["ci_low"] <= interval["difference"] <= interval["ci_high"]
    assert interval["ci_low"] > -POLICY.margin - 0.1
    assert (
        figures["mcnemar"]["candidate_only_right"] + figures["mcnemar"]["champion_only_right"] > 0
    )
    assert figures["policy"]["resamples"] == 500


def test_a_candidate_above_its_floor_but_clearly_worse_than_the_champion_fails() -> None:
    truth = labelled(600)
    champion = scores(truth, truth)
    candidate = scores(truth, corrupt(truth, 0.12, seed=4, only="malignant"))
    recall = metric_value("recall", candidate, SPEC)
    assert recall is not None
    assert recall > 0.8
    verdict = judge(SPEC, candidate, champion, POLICY)
    assert not verdict.passed  # … but not non-inferior
    assert any("worse than the champion's" in failure for failure in verdict.failures)


def test_a_candidate_below_its_floor_fails_even_against_a_worse_champion() -> None:
    truth = labelled(400)
    candidate = scores(truth, corrupt(truth, 0.3, seed=5, only="malignant"))
    champion = scores(truth, corrupt(truth, 0.5, seed=6, only="malignant"))
    verdict = judge(SPEC, candidate, champion, POLICY)
    assert [f for f in verdict.failures if "floor" in f] == [
        f"recall (key) {metric_value('recall', candidate, SPEC):.3f} below its floor 0.8"
    ]


def test_a_guard_metric_on_the_wrong_side_of_its_threshold_fails_the_gate() -> None:
    truth = labelled(400)
    everything_positive = scores(truth, ["malignant"] * len(truth))
    verdict = judge(SPEC, everything_positive, None, POLICY)
    assert verdict.figures["metrics"]["recall"]["candidate"] == 1.0
    assert any(failure.startswith("precision (guard)") for failure in verdict.failures)


def test_without_a_champion_the_verdict_says_so_and_gates_the_floors_only() -> None:
    truth = labelled(300)
    verdict = judge(SPEC, scores(truth, truth), None, POLICY)
    assert verdict.passed
    assert verdict.figures["no_champion"] is True
    assert verdict.figures["non_inferiority"] == {"skipped": "no champion to compare with"}
    assert "no champion" in verdict.summary


def test_the_bootstrap_is_reproducible_with_its_seed() -> None:
    truth = labelled(300)
    champion = scores(truth, corrupt(truth, 0.1, seed=1))
    candidate = scores(truth, corrupt(truth, 0.1, seed=2))
    first = judge(SPEC, candidate, champion, POLICY).figures["non_inferiority"]
    again = judge(SPEC, candidate, champion, POLICY).figures["non_inferiority"]
    other = judge(SPEC, candidate, champion, GatePolicy(resamples=500, seed=4)).figures
    assert first == again
    assert first["ci_low"] != other["non_inferiority"]["ci_low"]


def test_a_lower_is_better_key_metric_counts_a_rise_as_worse() -> None:
    spec = make_spec(
        key_metric="log_loss",
        metrics=[
            MetricTarget(
                metric="log_loss",
                baseline=0.2,
                threshold=0.6,
                direction=MetricDirection.LOWER_IS_BETTER,
            )
        ],
    )
    truth = labelled(400)
    sharp = scores(truth, truth, [0.95 if t == "malignant" else 0.05 for t in truth])
    blunt = scores(truth, truth, [0.6 if t == "malignant" else 0.4 for t in truth])
    assert judge(spec, sharp, blunt, POLICY).passed
    failed = judge(spec, blunt, sharp, POLICY)
    assert any("worse than the champion's" in failure for failure in failed.failures)


def test_live_figures_are_reported_only_with_enough_live_rows() -> None:
    truth = labelled(100)
    live = np.arange(100) >= 80
    few = judge(SPEC, scores(truth, truth), None, POLICY, live=live)
    assert few.figures["live"] == {
        "rows": 20,
        "note": "fewer than 30 held-out live rows: not reported",
    }
    many = judge(SPEC, scores(truth, truth), None, POLICY, live=np.arange(100) >= 50)
    assert many.figures["live"]["rows"] == 50
    assert many.figures["live"]["recall"]["candidate"] == 1.0


def test_measured_baselines_replace_the_old_ones_only_on_the_healthy_side() -> None:
    spec = with_measured_baselines(SPEC, {"recall": 0.93, "precision": 0.6})
    assert spec.target("recall").baseline == 0.93
    assert spec.target("precision").baseline == 0.9
