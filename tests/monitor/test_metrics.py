"""Window figures equal scikit-learn's own functions on the same labelled predictions."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from services.monitor.metrics import (
    classification_metrics,
    confusion,
    latency_percentiles,
    low_confidence_rate,
    quality_metric,
    throughput_per_second,
)
from tests.factories import T0

CLASSES = ["malignant", "benign"]


def seeded_window(seed: int, size: int) -> tuple[list[str], list[str], list[list[float]]]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(CLASSES, size=size, p=[0.4, 0.6])
    p_malignant = np.clip(np.where(truth == "malignant", 0.7, 0.3) + rng.normal(0, 0.2, size), 0, 1)
    predicted = np.where(p_malignant >= 0.5, "malignant", "benign")
    probabilities = [[float(p), float(1 - p)] for p in p_malignant]
    return list(truth), list(predicted), probabilities


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_figures_equal_scikit_learns_binary_metrics(seed: int) -> None:
    truth, predicted, probabilities = seeded_window(seed, 400)
    figures = classification_metrics(
        truth, predicted, probabilities, classes=CLASSES, positive_class="malignant"
    )
    p_malignant = [row[0] for row in probabilities]
    is_positive = [label == "malignant" for label in truth]
    binary = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
    assert figures["recall_macro"] == pytest.approx(recall_score(truth, predicted, average="macro"))
    assert figures["recall[benign]"] == pytest.approx(
        recall_score(truth, predicted, pos_label="benign")
    )
    assert {name: figures[name] for name in binary} == {
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision_score(truth, predicted, pos_label="malignant"),
        "recall": recall_score(truth, predicted, pos_label="malignant"),
        "f1": f1_score(truth, predicted, pos_label="malignant"),
        "roc_auc": roc_auc_score(is_positive, p_malignant),
        "log_loss": pytest.approx(
            log_loss(truth, [[1 - p, p] for p in p_malignant], labels=["benign", "malignant"])
        ),
    }
    assert (
        confusion(truth, predicted, CLASSES)
        == confusion_matrix(truth, predicted, labels=CLASSES).tolist()
    )


def test_multiclass_precision_and_recall_are_about_the_positive_class() -> None:
    truth = ["a", "b", "c", "a", "c", "a"]
    predicted = ["a", "c", "c", "b", "a", "a"]
    probabilities = [[0.6, 0.2, 0.2]] * len(truth)
    figures = classification_metrics(
        truth, predicted, probabilities, classes=["a", "b", "c"], positive_class="a"
    )
    assert figures["precision"] == precision_score(truth, predicted, labels=["a"], average="micro")
    assert figures["recall"] == recall_score(truth, predicted, labels=["a"], average="micro")
    assert figures["accuracy"] == accuracy_score(truth, predicted)


def test_undefined_figures_are_none_not_zero() -> None:
    only_negatives = classification_metrics(
        ["benign"] * 3,
        ["benign"] * 3,
        [[0.1, 0.9]] * 3,
        classes=CLASSES,
        positive_class="malignant",
    )
    assert only_negatives["recall"] is None
    assert only_negatives["precision"] is None
    assert only_negatives["roc_auc"] is None
    assert only_negatives["accuracy"] == 1.0
    empty = classification_metrics([], [], [], classes=CLASSES, positive_class="malignant")
    assert set(empty.values()) == {None}


def test_log_loss_normalises_rows_and_is_undefined_without_probabilities() -> None:
    truth = ["malignant", "benign"]
    rounded = [[0.7, 0.3000001], [0.2, 0.8]]
    assert quality_metric(
        "log_loss", truth, truth, rounded, classes=CLASSES, positive_class="malignant"
    ) == pytest.approx(log_loss(truth, [[0.3, 0.7], [0.8, 0.2]], labels=["benign", "malignant"]))
    missing = [[0.0, 0.0], [0.2, 0.8]]
    assert (
        quality_metric(
            "log_loss", truth, truth, missing, classes=CLASSES, positive_class="malignant"
        )
        is None
    )


def test_an_unknown_metric_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown quality metric 'auprc'"):
        quality_metric("auprc", ["a"], ["a"], [[1.0]], classes=["a"], positive_class="a")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(CLASSES), st.sampled_from(CLASSES), st.floats(0.01, 0.99)),
        min_size=1,
        max_size=60,
    )
)
def test_figures_equal_scikit_learn_on_any_window(rows: list[tuple[str, str, float]]) -> None:
    truth = [t for t, _, _ in rows]
    predicted = [p for _, p, _ in rows]
    probabilities = [[q, 1 - q] for _, _, q in rows]
    figures = classification_metrics(
        truth, predicted, probabilities, classes=CLASSES, positive_class="malignant"
    )
    assert figures["accuracy"] == accuracy_score(truth, predicted)
    if "malignant" in truth:
        assert figures["recall"] == recall_score(truth, predicted, pos_label="malignant")
    else:
        assert figures["recall"] is None
    if "malignant" in predicted:
        assert figures["precision"] == precision_score(truth, predicted, pos_label="malignant")
    else:
        assert figures["precision"] is None


def test_low_confidence_rate_counts_strictly_below_the_threshold() -> None:
    assert low_confidence_rate([0.75, 0.74, 0.2, 0.99], 0.75) == 0.5
    assert low_confidence_rate([], 0.75) is None


def test_latency_percentiles_equal_numpys() -> None:
    latencies = list(np.random.default_rng(3).exponential(5.0, size=1000))
    summary = latency_percentiles(latencies)
    assert summary is not None
    assert (summary.p50, summary.p95, summary.p99) == tuple(np.percentile(latencies, [50, 95, 99]))
    assert latency_percentiles([]) is None


def test_throughput_is_the_arrival_rate_between_first_and_last_prediction() -> None:
    assert throughput_per_second(101, T0, T0 + timedelta(seconds=50)) == 2.0
    assert throughput_per_second(5, T0, T0) is None
    assert throughput_per_second(0, None, None) is None


@pytest.mark.parametrize("seed", range(40))
def test_every_figure_equals_scikit_learn_with_tied_scores_and_three_classes(seed: int) -> None:
    """The figures are counted here, not by scikit-learn: they must still be its floats, ties
    in the scores (rounded probabilities) and classes absent from the window included."""
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    size = int(rng.integers(2, 300))
    truth = [classes[i] for i in rng.integers(0, 2 if seed % 4 == 0 else 3, size)]
    predicted = [classes[i] for i in rng.integers(0, 3, size)]
    raw = np.round(rng.random((size, 3)), 1 + seed % 2) + 0.01
    probabilities = (raw / raw.sum(axis=1, keepdims=True)).tolist()
    figures = classification_metrics(
        truth, predicted, probabilities, classes=classes, positive_class="a"
    )
    assert figures["accuracy"] == accuracy_score(truth, predicted)
    is_positive = [label == "a" for label in truth]
    if any(is_positive) and not all(is_positive):
        assert figures["roc_auc"] == roc_auc_score(is_positive, [row[0] for row in probabilities])
    else:
        assert figures["roc_auc"] is None
    assert figures["log_loss"] == pytest.approx(log_loss(truth, probabilities, labels=classes))
    for label in classes:
        in_window = label in truth or label in predicted
        expected = (
            f1_score(truth, predicted, labels=[label], average="micro") if in_window else None
        )
        assert figures[f"f1[{label}]"] == expected
    assert (
        confusion(truth, predicted, classes)
        == confusion_matrix(truth, predicted, labels=classes).tolist()
    )
