"""Multiclass models: per-class and macro figures in the monitor's windows, the same figures in
the retrainer's gate, and specs that watch them."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.metrics import precision_recall_fscore_support

from contracts import FeatureKind, FeatureSpec, MetricTarget, MonitoringSpec
from services.monitor.comparison import significance_test_for
from services.monitor.metrics import classification_metrics, quality_metric
from services.retrainer.retraining.gate import metric_value
from services.retrainer.retraining.training import Scores

CLASSES = ["class_0", "class_1", "class_2"]


def spec(*targets: MetricTarget, key: str = "recall_macro") -> MonitoringSpec:
    return MonitoringSpec(
        features=[FeatureSpec(name="alcohol", kind=FeatureKind.NUMERIC)],
        label="cultivar",
        classes=CLASSES,
        positive_class="class_0",
        key_metric=key,
        metrics=list(targets) or [MetricTarget(metric=key, baseline=0.9, threshold=0.8)],
    )


def window(n: int = 300) -> tuple[list[str], list[str], list[list[float]]]:
    rng = np.random.default_rng(7)
    truth = rng.choice(CLASSES, n, p=[0.5, 0.3, 0.2])
    right = rng.random(n) < 0.8
    predicted = np.where(right, truth, rng.choice(CLASSES, n))
    probabilities = [[1 / 3] * 3 for _ in range(n)]
    return list(truth), list(predicted), probabilities


def test_a_window_reports_macro_and_per_class_figures_as_scikit_learn_computes_them() -> None:
    truth, predicted, probabilities = window()
    figures = classification_metrics(
        truth, predicted, probabilities, classes=CLASSES, positive_class="class_0"
    )
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=CLASSES, average=None
    )
    for i, label in enumerate(CLASSES):
        assert figures[f"precision[{label}]"] == pytest.approx(precision[i])
        assert figures[f"recall[{label}]"] == pytest.approx(recall[i])
        assert figures[f"f1[{label}]"] == pytest.approx(f1[i])
    macro = precision_recall_fscore_support(truth, predicted, labels=CLASSES, average="macro")
    assert figures["precision_macro"] == pytest.approx(macro[0])
    assert figures["recall_macro"] == pytest.approx(macro[1])
    assert figures["f1_macro"] == pytest.approx(macro[2])
    assert figures["recall"] == pytest.approx(recall[0])  # the positive class, as before
    assert quality_metric(
        "recall[class_2]",
        truth,
        predicted,
        probabilities,
        classes=CLASSES,
        positive_class="class_0",
    ) == pytest.approx(recall[2])


def test_a_class_absent_from_a_window_is_left_out_of_the_macro_mean_not_counted_as_zero() -> None:
    truth, predicted = ["class_0", "class_1"], ["class_0", "class_0"]
    figures = classification_metrics(
        truth, predicted, [[1, 0, 0]] * 2, classes=CLASSES, positive_class="class_0"
    )
    assert figures["recall[class_2]"] is None
    assert figures["recall_macro"] == pytest.approx(0.5)  # mean of 1.0 and 0.0
    empty = classification_metrics([], [], [], classes=CLASSES, positive_class="class_0")
    assert empty["recall_macro"] is None
    assert empty["f1[class_1]"] is None


@pytest.mark.parametrize("metric", ["recall_macro", "precision_macro", "f1_macro", "f1[class_1]"])
def test_the_gate_measures_what_the_monitor_measures(metric: str) -> None:
    truth, predicted, probabilities = window()
    monitored = classification_metrics(
        truth, predicted, probabilities, classes=CLASSES, positive_class="class_0"
    )[metric]
    scores = Scores(
        truth=np.array(truth),
        predicted=np.array(predicted),
        positive_probability=np.zeros(len(truth)),
        true_class_probability=np.ones(len(truth)),
        confidence=np.ones(len(truth)),
    )
    assert metric_value(metric, scores, spec()) == pytest.approx(monitored)
    assert significance_test_for(metric, 99) == "permutation test (99 resamples)"


def test_a_spec_may_key_on_a_macro_or_one_class_but_not_an_unknown_class_or_metric() -> None:
    assert spec(key="recall_macro").key_metric == "recall_macro"
    per_class = MetricTarget(metric="recall[class_2]", baseline=0.9, threshold=0.7)
    assert spec(per_class, key="recall[class_2]").target("recall[class_2]") == per_class
    with pytest.raises(ValidationError, match="'class_9' is not one of classes"):
        spec(
            MetricTarget(metric="recall[class_9]", baseline=0.9, threshold=0.7),
            key="recall[class_9]",
        )
    with pytest.raises(ValidationError, match="unknown metric 'recall_micro'"):
        MetricTarget(metric="recall_micro", baseline=0.9, threshold=0.7)
