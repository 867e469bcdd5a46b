"""Champion against challenger on live labels: which is better on the key metric, if either.

The verdict is ``insufficient_data`` until *both* sides have ``min_samples`` observations that the
key metric is made of (for recall, labels of the positive class; for precision, positive
predictions; otherwise labelled predictions): a promotion or rollback is never decided on a
handful of labels. Past that, the test depends on what the metric is:

- **accuracy, precision, recall, low-confidence rate** are proportions of independent
  observations, so a **two-proportion z-test** (pooled standard error) is the standard, exact
  enough once each side has ``min_samples`` observations, and needs only counts;
- **log loss** is a mean of per-label losses with unequal variances and sample sizes between the
  sides, so **Welch's t-test** on the per-label losses;
- **F1, ROC AUC, and the per-class and macro metrics** (``recall[class_2]``, ``recall_macro``)
  are not means of per-label quantities, so a **permutation test** of the
  difference (labels reassigned between the sides at random, ``resamples`` times, with the
  caller's random generator), which assumes nothing about their distribution. The published
  values come from scikit-learn; the resamples are evaluated in one vectorised pass
  (:func:`positive_class_metric`, :func:`class_metric`), checked against scikit-learn and the
  windows' figures by the tests.

A regressor's sides (:func:`compare_values`) are compared on its key metric the same way, as
independent samples (a canary's sides score different requests):

- **MAE** is a mean of per-request absolute errors and **RMSE** the root of a mean of
  per-request squared errors, so, like log loss, **Welch's t-test** on those per-request errors
  (absolute for MAE, squared for RMSE: the square root keeps the order of the means);
- **R²** is not a mean of per-request quantities, so the **permutation test**
  (:func:`r2_of_rows` evaluates the resamples in one pass, checked against scikit-learn).

MAE and RMSE are lower-is-better: a challenger with the smaller significant error is better.

The comparison is repeated as labels accumulate, which inflates the chance of a false verdict
over the life of a challenger; ``alpha`` and ``min_samples`` are the levers (see ADR 0006).
Pure: no I/O; randomness comes in as a generator.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from contracts.monitoring import ComparisonVerdict
from contracts.registry import per_class_metric
from services.monitor.metrics import (
    QUALITY_METRICS,
    REGRESSION_QUALITY_METRICS,
    low_confidence_rate,
    quality_metric,
    regression_metric,
)

__all__ = [
    "LOWER_IS_BETTER",
    "Comparison",
    "Outcome",
    "ValueOutcome",
    "class_metric",
    "compare_values",
    "compare_variants",
    "outcome_from_dict",
    "positive_class_metric",
    "r2_of_rows",
    "significance_test_for",
]

LOWER_IS_BETTER = frozenset({"log_loss", "low_confidence_rate", "mae", "rmse"})
"""Metrics where the smaller value is the better one."""

_PROPORTIONS = frozenset({"accuracy", "precision", "recall", "low_confidence_rate"})
_VECTORISED_POSITIVE_CLASS = frozenset({"f1", "roc_auc"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """One labelled prediction of one side; ``probabilities`` follow the model's classes."""

    y_true: str
    y_pred: str
    probabilities: tuple[float, ...]
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "y_true": self.y_true,
            "y_pred": self.y_pred,
            "probabilities": list(self.probabilities),
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            y_true=data["y_true"],
            y_pred=data["y_pred"],
            probabilities=tuple(data["probabilities"]),
            confidence=float(data["confidence"]),
        )


@dataclass(frozen=True, slots=True)
class ValueOutcome:
    """One labelled prediction of one side of a regressor: the true and the predicted number."""

    y_true: float
    y_pred: float

    def to_dict(self) -> dict[str, Any]:
        return {"value_true": self.y_true, "value_pred": self.y_pred}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValueOutcome:
        return cls(y_true=float(data["value_true"]), y_pred=float(data["value_pred"]))


def outcome_from_dict(data: dict[str, Any]) -> Outcome | ValueOutcome:
    """Rebuild a stored outcome of either kind (see the ``to_dict`` of each)."""
    if "value_true" in data:
        return ValueOutcome.from_dict(data)
    return Outcome.from_dict(data)


@dataclass(frozen=True)
class Comparison:
    """The outcome of one comparison, as published in ``variants.compared``."""

    metric: str
    test: str
    champion_value: float | None
    challenger_value: float | None
    champion_samples: int
    challenger_samples: int
    p_value: float | None
    verdict: ComparisonVerdict


def significance_test_for(metric: str, resamples: int) -> str:
    """Return the name of the significance test used for a metric.

    >>> significance_test_for("recall", 999)
    'two-proportion z-test'
    >>> significance_test_for("roc_auc", 999)
    'permutation test (999 resamples)'
    """
    if metric in _PROPORTIONS:
        return "two-proportion z-test"
    if metric == "log_loss":
        return "Welch's t-test on per-label log loss"
    if metric == "mae":
        return "Welch's t-test on per-label absolute error"
    if metric == "rmse":
        return "Welch's t-test on per-label squared error"
    if metric in QUALITY_METRICS or metric == "r2" or per_class_metric(metric) is not None:
        return f"permutation test ({resamples} resamples)"
    raise ValueError(f"no significance test for metric {metric!r}")


def compare_variants(
    champion: Sequence[Outcome],
    challenger: Sequence[Outcome],
    *,
    metric: str,
    classes: Sequence[str],
    positive_class: str,
    low_confidence_threshold: float,
    min_samples: int,
    alpha: float,
    rng: np.random.Generator,
    resamples: int = 999,
) -> Comparison:
    """Compare challenger with champion on ``metric``; refuse a verdict below ``min_samples``.

    Examples
    --------
    >>> right = Outcome("m", "m", (0.9, 0.1), 0.9)
    >>> wrong = Outcome("m", "b", (0.4, 0.6), 0.6)
    >>> result = compare_variants(
    ...     [right] * 90 + [wrong] * 10, [right] * 60 + [wrong] * 40, metric="recall",
    ...     classes=["m", "b"], positive_class="m", low_confidence_threshold=0.75,
    ...     min_samples=50, alpha=0.05, rng=np.random.default_rng(0),
    ... )
    >>> result.verdict.value, result.champion_value, result.challenger_value
    ('challenger_worse', 0.9, 0.6)
    >>> compare_variants(
    ...     [right] * 10, [wrong] * 10, metric="recall", classes=["m", "b"],
    ...     positive_class="m", low_confidence_threshold=0.75, min_samples=50, alpha=0.05,
    ...     rng=np.random.default_rng(0),
    ... ).verdict.value
    'insufficient_data'
    """
    if min_samples < 1:
        raise ValueError("min_samples must be at least 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    test = significance_test_for(metric, resamples)

    def value_of(outcomes: Sequence[Outcome]) -> float | None:
        return _value(metric, outcomes, classes, positive_class, low_confidence_threshold)

    champion_value, challenger_value = value_of(champion), value_of(challenger)
    champion_samples = _samples(metric, champion, positive_class)
    challenger_samples = _samples(metric, challenger, positive_class)
    if (
        champion_samples < min_samples
        or challenger_samples < min_samples
        or champion_value is None
        or challenger_value is None
    ):
        return Comparison(
            metric,
            test,
            champion_value,
            challenger_value,
            champion_samples,
            challenger_samples,
            None,
            ComparisonVerdict.INSUFFICIENT_DATA,
        )
    if metric in _PROPORTIONS:
        p_value = _two_proportion_z_test(
            _successes(metric, champion, positive_class, low_confidence_threshold),
            champion_samples,
            _successes(metric, challenger, positive_class, low_confidence_threshold),
            challenger_samples,
        )
    elif metric == "log_loss":
        p_value = _welch(
            _per_label_log_loss(champion, classes), _per_label_log_loss(challenger, classes)
        )
    else:
        p_value = _permutation(
            metric, champion, challenger, classes, positive_class, rng, resamples
        )
    verdict = ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE
    if p_value < alpha and challenger_value != champion_value:
        challenger_better = (challenger_value > champion_value) != (metric in LOWER_IS_BETTER)
        verdict = (
            ComparisonVerdict.CHALLENGER_BETTER
            if challenger_better
            else ComparisonVerdict.CHALLENGER_WORSE
        )
    return Comparison(
        metric,
        test,
        champion_value,
        challenger_value,
        champion_samples,
        challenger_samples,
        p_value,
        verdict,
    )


def compare_values(
    champion: Sequence[ValueOutcome],
    challenger: Sequence[ValueOutcome],
    *,
    metric: str,
    min_samples: int,
    alpha: float,
    rng: np.random.Generator,
    resamples: int = 999,
) -> Comparison:
    """Compare a regressor's challenger with its champion on ``metric`` (``mae``, ``rmse`` or
    ``r2``); refuse a verdict below ``min_samples`` labelled predictions on either side.

    Examples
    --------
    >>> close = [ValueOutcome(100.0, 100.0 + d) for d in (-4.0, 3.0, -2.0, 5.0)] * 25
    >>> far = [ValueOutcome(100.0, 100.0 + d) for d in (-14.0, 13.0, -12.0, 15.0)] * 25
    >>> result = compare_values(close, far, metric="mae", min_samples=50, alpha=0.05,
    ...                         rng=np.random.default_rng(0))
    >>> result.verdict.value, result.champion_value, result.challenger_value
    ('challenger_worse', 3.5, 13.5)
    """
    if min_samples < 1:
        raise ValueError("min_samples must be at least 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if metric not in REGRESSION_QUALITY_METRICS:
        raise ValueError(f"no significance test for regression metric {metric!r}")
    test = significance_test_for(metric, resamples)

    def value_of(outcomes: Sequence[ValueOutcome]) -> float | None:
        return regression_metric(metric, [o.y_true for o in outcomes], [o.y_pred for o in outcomes])

    champion_value, challenger_value = value_of(champion), value_of(challenger)
    if (
        len(champion) < min_samples
        or len(challenger) < min_samples
        or champion_value is None
        or challenger_value is None
    ):
        p_value = None
    elif metric == "r2":
        p_value = _permutation_r2(champion, challenger, rng, resamples)
    else:
        power = 1 if metric == "mae" else 2
        with np.errstate(over="ignore", invalid="ignore"):
            p_value = _welch(_errors(champion, power), _errors(challenger, power))
    if p_value is not None and not np.isfinite(p_value):
        p_value = None  # errors too large for a float's variance: no test, no verdict
    verdict = ComparisonVerdict.INSUFFICIENT_DATA
    if p_value is not None:
        verdict = _verdict(metric, p_value, alpha, champion_value, challenger_value)
    return Comparison(
        metric,
        test,
        champion_value,
        challenger_value,
        len(champion),
        len(challenger),
        p_value,
        verdict,
    )


def _verdict(
    metric: str,
    p_value: float,
    alpha: float,
    champion_value: float | None,
    challenger_value: float | None,
) -> ComparisonVerdict:
    if (
        champion_value is None
        or challenger_value is None
        or p_value >= alpha
        or challenger_value == champion_value
    ):
        return ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE
    challenger_better = (challenger_value > champion_value) != (metric in LOWER_IS_BETTER)
    if challenger_better:
        return ComparisonVerdict.CHALLENGER_BETTER
    return ComparisonVerdict.CHALLENGER_WORSE


def _errors(outcomes: Sequence[ValueOutcome], power: int) -> np.ndarray:
    truth = np.asarray([o.y_true for o in outcomes], dtype=float)
    predicted = np.asarray([o.y_pred for o in outcomes], dtype=float)
    return np.asarray(np.abs(truth - predicted) ** power)


def _permutation_r2(
    champion: Sequence[ValueOutcome],
    challenger: Sequence[ValueOutcome],
    rng: np.random.Generator,
    resamples: int,
) -> float:
    pool = [*champion, *challenger]
    truth = np.asarray([o.y_true for o in pool], dtype=float)
    predicted = np.asarray([o.y_pred for o in pool], dtype=float)

    def statistic(rows: np.ndarray) -> np.ndarray:
        return np.asarray(r2_of_rows(truth, predicted, rows), dtype=float)

    return _permutation_pvalue(statistic, len(champion), len(pool), resamples, rng)


def r2_of_rows(truth: np.ndarray, predicted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Return R² for each row of sample indices at once (the permutation test's resamples).

    :math:`1 - \\sum (y - \\hat y)^2 / \\sum (y - \\bar y)^2`, as scikit-learn's
    ``r2_score`` (the tests check it); ``nan`` where the true values do not vary.

    >>> r2_of_rows(np.array([3.0, -0.5, 2.0, 7.0]), np.array([2.5, 0.0, 2.0, 8.0]),
    ...            np.array([[0, 1, 2, 3], [2, 2, 2, 2]])).round(4)
    array([0.9486,    nan])
    """
    y, p = truth[rows], predicted[rows]
    residual = ((y - p) ** 2).sum(axis=-1)
    total = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(total > 0, 1 - residual / total, np.nan), dtype=float)


def _value(
    metric: str,
    outcomes: Sequence[Outcome],
    classes: Sequence[str],
    positive_class: str,
    low_confidence_threshold: float,
) -> float | None:
    if metric == "low_confidence_rate":
        return low_confidence_rate([o.confidence for o in outcomes], low_confidence_threshold)
    return quality_metric(
        metric,
        [o.y_true for o in outcomes],
        [o.y_pred for o in outcomes],
        [o.probabilities for o in outcomes],
        classes=classes,
        positive_class=positive_class,
    )


def _samples(metric: str, outcomes: Sequence[Outcome], positive_class: str) -> int:
    """Observations the metric is made of: its denominator for proportions."""
    if metric == "recall":
        return sum(o.y_true == positive_class for o in outcomes)
    if metric == "precision":
        return sum(o.y_pred == positive_class for o in outcomes)
    return len(outcomes)


def _successes(
    metric: str, outcomes: Sequence[Outcome], positive_class: str, low_confidence_threshold: float
) -> int:
    if metric == "accuracy":
        return sum(o.y_true == o.y_pred for o in outcomes)
    if metric == "recall":
        return sum(o.y_true == positive_class and o.y_pred == positive_class for o in outcomes)
    if metric == "precision":
        return sum(o.y_pred == positive_class and o.y_true == positive_class for o in outcomes)
    return sum(o.confidence < low_confidence_threshold for o in outcomes)


def _two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> float:
    pooled = (x1 + x2) / (n1 + n2)
    standard_error = float(np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)))
    if standard_error == 0:
        return 1.0  # both sides all successes (or all failures): no difference to find
    z = (x2 / n2 - x1 / n1) / standard_error
    return float(2 * stats.norm.sf(abs(z)))


def _per_label_log_loss(outcomes: Sequence[Outcome], classes: Sequence[str]) -> np.ndarray:
    index = {label: column for column, label in enumerate(classes)}
    rows = np.asarray([o.probabilities for o in outcomes], dtype=float)
    rows = rows / rows.sum(axis=1, keepdims=True)
    truth = rows[np.arange(len(outcomes)), [index[o.y_true] for o in outcomes]]
    eps = np.finfo(float).eps
    return np.asarray(-np.log(np.clip(truth, eps, 1.0)))


def _welch(first: np.ndarray, second: np.ndarray) -> float:
    if _constant(first) and _constant(second):
        return 1.0 if np.isclose(np.mean(first), np.mean(second), rtol=1e-9) else 0.0
    with warnings.catch_warnings():
        # A side that is constant up to rounding (every prediction off by the same amount)
        # makes scipy warn of lost precision; its variance is zero then, which the test handles.
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        return float(stats.ttest_ind(first, second, equal_var=False).pvalue)


def _constant(values: np.ndarray) -> bool:
    """Whether the values are equal up to rounding (a spread of a billionth of their size)."""
    return bool(np.ptp(values) <= 1e-9 * max(1.0, float(np.max(np.abs(values)))))


def _permutation(
    metric: str,
    champion: Sequence[Outcome],
    challenger: Sequence[Outcome],
    classes: Sequence[str],
    positive_class: str,
    rng: np.random.Generator,
    resamples: int,
) -> float:
    pool = [*champion, *challenger]
    if metric in _VECTORISED_POSITIVE_CLASS:
        column = list(classes).index(positive_class)
        truth = np.asarray([o.y_true == positive_class for o in pool])
        predicted = np.asarray([o.y_pred == positive_class for o in pool])
        scores = np.asarray([o.probabilities[column] for o in pool], dtype=float)

        def statistic(rows: np.ndarray) -> np.ndarray:
            return positive_class_metric(metric, truth, predicted, scores, rows)

    else:
        index = {label: position for position, label in enumerate(classes)}
        true_classes = np.asarray([index[o.y_true] for o in pool])
        predicted_classes = np.asarray([index[o.y_pred] for o in pool])
        per_class = per_class_metric(metric)
        if per_class is not None:
            kind, labels = per_class[0], [index[per_class[1]]]
        else:
            kind, labels = metric.removesuffix("_macro"), list(range(len(classes)))

        def statistic(rows: np.ndarray) -> np.ndarray:
            return class_metric(kind, true_classes, predicted_classes, labels, rows)

    return _permutation_pvalue(statistic, len(champion), len(pool), resamples, rng)


def _permutation_pvalue(
    statistic: Callable[[np.ndarray], np.ndarray],
    champions: int,
    total: int,
    resamples: int,
    rng: np.random.Generator,
) -> float:
    """Two-sided p-value of the challenger's statistic minus the champion's, permuting which
    rows of the pool (the champion's first, ``champions`` of them) belong to which side."""

    def difference(first: np.ndarray, second: np.ndarray, axis: int) -> np.ndarray:
        return np.asarray(statistic(second) - statistic(first), dtype=float)

    result = stats.permutation_test(
        (np.arange(champions), np.arange(champions, total)),
        difference,
        permutation_type="independent",
        vectorized=True,
        n_resamples=resamples,
        batch=100,
        alternative="two-sided",
        rng=rng,
    )
    return float(result.pvalue)


def positive_class_metric(
    metric: str,
    truth: np.ndarray,
    predicted: np.ndarray,
    scores: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray:
    """Return F1 or ROC AUC of the positive class for each row of sample indices at once.

    The permutation test needs the metric for hundreds of resamples; scikit-learn computes one
    sample per call, so this evaluates the same definitions on a whole batch of resamples with
    numpy (the tests check it equals scikit-learn's ``f1_score`` and ``roc_auc_score``).

    Notes
    -----
    :math:`F_1 = 2TP / (2TP + FP + FN)`; ROC AUC is the Mann-Whitney statistic
    :math:`(R_+ - n_+(n_+ + 1)/2) / (n_+ n_-)` with average ranks for ties. Undefined values
    (no positive at all; one class only) are ``nan``.

    Examples
    --------
    >>> truth = np.array([True, True, False, False])
    >>> predicted = np.array([True, False, False, True])
    >>> scores = np.array([0.9, 0.4, 0.2, 0.6])
    >>> positive_class_metric("f1", truth, predicted, scores, np.array([[0, 1, 2, 3]]))
    array([0.5])
    >>> positive_class_metric("roc_auc", truth, predicted, scores, np.array([[0, 1, 2, 3]]))
    array([0.75])
    """
    t = truth[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "f1":
            p = predicted[rows]
            true_positives = (t & p).sum(axis=-1)
            denominator = 2 * true_positives + (~t & p).sum(axis=-1) + (t & ~p).sum(axis=-1)
            f1 = np.where(denominator > 0, 2 * true_positives / denominator, np.nan)
            return np.asarray(f1, dtype=float)
        if metric == "roc_auc":
            ranks = stats.rankdata(scores[rows], axis=-1)
            positives = t.sum(axis=-1)
            negatives = t.shape[-1] - positives
            u = (ranks * t).sum(axis=-1) - positives * (positives + 1) / 2
            auc = np.where(positives * negatives > 0, u / (positives * negatives), np.nan)
            return np.asarray(auc, dtype=float)
    raise ValueError(f"no vectorised form of {metric!r}")


def class_metric(
    kind: str,
    truth: np.ndarray,
    predicted: np.ndarray,
    labels: Sequence[int],
    rows: np.ndarray,
) -> np.ndarray:
    """Return precision, recall or F1 (``kind``) of each of ``labels`` against the rest,
    averaged over the labels where it is defined, for each row of sample indices at once.

    With one label this is a per-class metric (``recall[class_1]``), with every class the macro
    mean (``recall_macro``), as :func:`~services.monitor.metrics.classification_metrics` defines
    them (the tests check both against it). ``truth`` and ``predicted`` hold class indices. A
    label is left out where its denominator is zero; none left is ``nan``.

    Examples
    --------
    >>> truth, predicted = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2])
    >>> class_metric("recall", truth, predicted, [0, 1, 2], np.array([[0, 1, 2, 3]]))
    array([0.66666667])
    >>> class_metric("precision", truth, predicted, [1], np.array([[0, 1, 2, 3]]))
    array([nan])
    """
    wanted = np.asarray(labels)
    t = truth[rows][..., None] == wanted
    p = predicted[rows][..., None] == wanted
    true_positives = (t & p).sum(axis=-2)
    false_positives = (~t & p).sum(axis=-2)
    false_negatives = (t & ~p).sum(axis=-2)
    numerator, denominator = {
        "precision": (true_positives, true_positives + false_positives),
        "recall": (true_positives, true_positives + false_negatives),
        "f1": (2 * true_positives, 2 * true_positives + false_positives + false_negatives),
    }[kind]
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(denominator > 0, numerator / denominator, np.nan)
        defined = denominator > 0
        counted = defined.sum(axis=-1)
        mean = np.where(counted > 0, np.where(defined, values, 0).sum(axis=-1) / counted, np.nan)
    return np.asarray(mean, dtype=float)
