"""Figures of one window: classification or regression quality, low-confidence rate, latency
and throughput.

Pure: numpy only. Quality figures equal scikit-learn's metric functions, so they equal what a
data scientist computes offline on the same labelled predictions: each is computed here with
numpy as scikit-learn computes it (the counting figures from one ``bincount`` of the window, the
divisions and sums made as scikit-learn makes them), without its input checks, which cost more
than the figures, and without importing it, which costs a monitor process about 48 MB of
resident memory (scikit-learn brings pandas); ``tests/monitor/test_metrics.py`` and
``tests/monitor/test_regression.py`` compare the figures with scikit-learn's. A figure that is
undefined on a window (recall without a positive label, ROC AUC with one class, R² of one label)
is ``None``, never a made-up number, NaN or infinity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from contracts.registry import MACRO_METRICS, per_class_metric

__all__ = [
    "QUALITY_METRICS",
    "REGRESSION_QUALITY_METRICS",
    "Latency",
    "classification_metrics",
    "confusion",
    "latency_percentiles",
    "low_confidence_rate",
    "quality_metric",
    "regression_metric",
    "regression_metrics",
    "throughput_per_second",
]

QUALITY_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "precision_macro",
    "recall_macro",
    "f1_macro",
)
"""Metrics that need labels, in the order they are reported; each window also reports
``precision[CLASS]``, ``recall[CLASS]`` and ``f1[CLASS]`` for every class of the model."""


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probabilities: Sequence[Sequence[float]],
    *,
    classes: Sequence[str],
    positive_class: str,
) -> dict[str, float | None]:
    """Return accuracy, precision, recall, F1, ROC AUC, log loss, their macro averages and
    per-class figures of labelled predictions.

    Parameters
    ----------
    y_true, y_pred
        True and predicted class of each labelled prediction.
    probabilities
        One row per prediction: the predicted probability of each of ``classes``, in that order.
    classes
        Every class of the model; ``positive_class`` is one of them.

    Notes
    -----
    The figures of scikit-learn's ``accuracy_score``, ``precision_recall_fscore_support``,
    ``roc_auc_score`` and ``log_loss``. Precision, recall and F1 are about
    ``positive_class`` against the rest (``labels=[positive_class]``), which for two classes
    is the usual binary figure:
    :math:`P = TP / (TP + FP)`, :math:`R = TP / (TP + FN)`, :math:`F_1 = 2PR / (P + R)`.
    ROC AUC ranks the predicted probability of ``positive_class``; log loss is
    :math:`-\\frac{1}{n}\\sum_i \\log p_i(y_i)` with each row normalised to sum to one.
    ``precision[c]``, ``recall[c]`` and ``f1[c]`` are about class ``c`` against the rest; the
    ``_macro`` figures are their unweighted mean over the classes where each is defined (a class
    with neither labels nor predictions in the window has no recall to average).

    Examples
    --------
    >>> figures = classification_metrics(
    ...     ["m", "m", "b", "b"],
    ...     ["m", "b", "b", "b"],
    ...     [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]],
    ...     classes=["m", "b"],
    ...     positive_class="m",
    ... )
    >>> for name, value in figures.items():
    ...     print(name, round(value, 4))
    accuracy 0.75
    precision 1.0
    recall 0.5
    f1 0.6667
    roc_auc 1.0
    log_loss 0.4004
    precision_macro 0.8333
    recall_macro 0.75
    f1_macro 0.7333
    precision[m] 1.0
    recall[m] 0.5
    f1[m] 0.6667
    precision[b] 0.6667
    recall[b] 1.0
    f1[b] 0.8

    With no positive label, recall and ROC AUC are undefined:

    >>> figures = classification_metrics(
    ...     ["b"], ["b"], [[0.1, 0.9]], classes=["m", "b"], positive_class="m"
    ... )
    >>> figures["recall"], figures["roc_auc"], figures["accuracy"]
    (None, None, 1.0)
    """
    if not y_true:
        return dict.fromkeys(QUALITY_METRICS) | dict.fromkeys(_per_class_names(classes))
    window = _encode(y_true, y_pred, probabilities, classes, positive_class)
    precision, recall, f1 = _precision_recall_f1(window)
    figures: dict[str, float | None] = {
        "accuracy": _accuracy(window),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": _roc_auc(window),
        "log_loss": _log_loss(window),
    }
    return figures | _per_class(window, classes)


def quality_metric(
    name: str,
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probabilities: Sequence[Sequence[float]],
    *,
    classes: Sequence[str],
    positive_class: str,
) -> float | None:
    """Return one of :data:`QUALITY_METRICS`, as :func:`classification_metrics` computes it.

    Examples
    --------
    >>> quality_metric("recall", ["m", "m"], ["m", "b"], [[1, 0], [0, 1]], classes=["m", "b"],
    ...                positive_class="m")
    0.5
    """
    per_class = per_class_metric(name)
    if name not in QUALITY_METRICS and (per_class is None or per_class[1] not in classes):
        raise ValueError(f"unknown quality metric {name!r}; known: {', '.join(QUALITY_METRICS)}")
    if not y_true:
        return None
    window = _encode(y_true, y_pred, probabilities, classes, positive_class)
    if per_class is not None or name in MACRO_METRICS:
        return _per_class(window, classes)[name]
    if name == "accuracy":
        return _accuracy(window)
    if name == "roc_auc":
        return _roc_auc(window)
    if name == "log_loss":
        return _log_loss(window)
    precision, recall, f1 = _precision_recall_f1(window)
    return {"precision": precision, "recall": recall, "f1": f1}[name]


REGRESSION_QUALITY_METRICS = ("mae", "rmse", "r2")
"""What a regressor's window reports from its labelled predictions, in this order."""


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float | None]:
    """Return the mean absolute error, root mean squared error and R² of labelled predictions.

    Notes
    -----
    scikit-learn's ``mean_absolute_error`` :math:`\\frac{1}{n}\\sum_i |y_i - \\hat y_i|`,
    ``root_mean_squared_error`` :math:`\\sqrt{\\frac{1}{n}\\sum_i (y_i - \\hat y_i)^2}` and
    ``r2_score`` :math:`1 - \\sum_i (y_i - \\hat y_i)^2 / \\sum_i (y_i - \\bar y)^2`, computed
    with numpy in the same order of operations, so they are the same floats (without importing
    scikit-learn: see the module's docstring).
    R² is undefined (``None``) with fewer than two labels or labels that do not vary:
    scikit-learn would answer 0 or 1 there (or NaN with one label), a number no window earned.
    Like scikit-learn, true values or predictions that are NaN or infinite are refused
    (``ValueError``); events cannot carry them.
    A figure that overflows a float (errors near ``1e308``) is ``None`` too: events must stay
    finite, and such a window has no meaningful error to report.

    Examples
    --------
    >>> figures = regression_metrics([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0])
    >>> {name: round(value, 4) for name, value in figures.items()}
    {'mae': 0.5, 'rmse': 0.6124, 'r2': 0.9486}
    >>> regression_metrics([5.0], [4.0])
    {'mae': 1.0, 'rmse': 1.0, 'r2': None}
    >>> regression_metrics([], [])
    {'mae': None, 'rmse': None, 'r2': None}
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true values but {len(y_pred)} predictions")
    if not y_true:
        return dict.fromkeys(REGRESSION_QUALITY_METRICS)
    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    if not (np.isfinite(truth).all() and np.isfinite(predicted).all()):
        raise ValueError("true values and predictions must be finite")
    with np.errstate(over="ignore", invalid="ignore"):
        figures = {
            "mae": _finite(np.mean(np.abs(predicted - truth))),
            "rmse": _finite(np.sqrt(np.mean((truth - predicted) ** 2))),
            "r2": None,
        }
        variance = _finite(np.var(truth))
        if len(truth) >= 2 and variance is not None and variance > 0:
            figures["r2"] = _finite(_r2(truth, predicted))
    return figures


def _r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    """scikit-learn's ``r2_score`` of one output on labels that vary (the caller checks; its
    special cases are for labels that do not), sums taken as it takes them."""
    residual = np.sum((truth - predicted) ** 2)
    return float(1 - residual / np.sum((truth - np.mean(truth)) ** 2))


def regression_metric(name: str, y_true: Sequence[float], y_pred: Sequence[float]) -> float | None:
    """Return one of :data:`REGRESSION_QUALITY_METRICS`, as :func:`regression_metrics` does.

    >>> regression_metric("mae", [1.0, 2.0], [2.0, 4.0])
    1.5
    """
    if name not in REGRESSION_QUALITY_METRICS:
        known = ", ".join(REGRESSION_QUALITY_METRICS)
        raise ValueError(f"unknown regression metric {name!r}; known: {known}")
    return regression_metrics(y_true, y_pred)[name]


def _finite(value: Any) -> float | None:
    """The value as a float; ``None`` for NaN or an infinity."""
    number = float(value)
    return number if np.isfinite(number) else None


def confusion(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> list[list[int]]:
    """Return the confusion matrix: rows are true classes, columns predicted, both in ``classes``.

    Examples
    --------
    >>> confusion(["m", "m", "b"], ["m", "b", "b"], ["m", "b"])
    [[1, 1], [0, 1]]
    >>> confusion([], [], ["m", "b"])
    [[0, 0], [0, 0]]
    """
    if not y_true:
        return [[0] * len(classes) for _ in classes]
    window = _encode(y_true, y_pred, [], classes, classes[0])
    k = len(classes)
    matrix = np.bincount(window.truth * k + window.predicted, minlength=k * k).reshape(k, k)
    return matrix.tolist()


def low_confidence_rate(confidences: Sequence[float], threshold: float) -> float | None:
    """Return the share of predictions whose confidence is below ``threshold``.

    Notes
    -----
    :math:`\\frac{1}{n} \\left|\\{ i : c_i < t \\}\\right|`; ``None`` for no predictions.

    Examples
    --------
    >>> low_confidence_rate([0.9, 0.6, 0.75, 0.7], 0.75)
    0.5
    >>> low_confidence_rate([], 0.75) is None
    True
    """
    if not confidences:
        return None
    return float(np.mean(np.asarray(confidences) < threshold))


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds."""

    p50: float
    p95: float
    p99: float


def latency_percentiles(latencies_ms: Sequence[float]) -> Latency | None:
    """Return the 50th, 95th and 99th latency percentiles; ``None`` for no predictions.

    Notes
    -----
    numpy's default (linear interpolation between closest ranks).

    Examples
    --------
    >>> latency_percentiles([float(n) for n in range(1, 101)])
    Latency(p50=50.5, p95=95.05, p99=99.01)
    """
    if not latencies_ms:
        return None
    p50, p95, p99 = np.percentile(np.asarray(latencies_ms, dtype=float), [50, 95, 99])
    return Latency(p50=float(p50), p95=float(p95), p99=float(p99))


def throughput_per_second(
    count: int, first: datetime | None, last: datetime | None
) -> float | None:
    """Return predictions per second of event time between the first and the last prediction.

    Notes
    -----
    :math:`(n - 1) / (t_{last} - t_{first})`: the arrival rate, exact for evenly spaced
    predictions. ``None`` with fewer than two predictions or no elapsed time.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> throughput_per_second(11, t0, t0 + timedelta(seconds=5))
    2.0
    >>> throughput_per_second(1, t0, t0) is None
    True
    """
    if count < 2 or first is None or last is None:
        return None
    seconds = (last - first).total_seconds()
    if seconds <= 0:
        return None
    return (count - 1) / seconds


@dataclass(frozen=True)
class _Encoded:
    """A window with classes as their index in ``classes``: integers are counted with one
    ``bincount``, and the figures do not depend on the spelling."""

    truth: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    positive: int
    classes: int


def _encode(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probabilities: Sequence[Sequence[float]],
    classes: Sequence[str],
    positive_class: str,
) -> _Encoded:
    index = {label: position for position, label in enumerate(classes)}
    try:
        truth = np.fromiter((index[label] for label in y_true), dtype=np.int64, count=len(y_true))
        predicted = np.fromiter(
            (index[label] for label in y_pred), dtype=np.int64, count=len(y_pred)
        )
    except KeyError as error:
        raise ValueError(f"class {error.args[0]!r} is not one of {list(classes)}") from None
    return _Encoded(
        truth=truth,
        predicted=predicted,
        probabilities=np.asarray(probabilities, dtype=float),
        positive=index[positive_class],
        classes=len(classes),
    )


def _accuracy(window: _Encoded) -> float:
    return float(np.count_nonzero(window.truth == window.predicted) / len(window.truth))


def _counts(window: _Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: true positives, predictions and labels, from one ``bincount`` of the pairs.

    scikit-learn's ``precision_recall_fscore_support`` builds the same counts but validates its
    inputs first (target type, label sets, array checks): about 7 ms a window, most of a window's
    metrics. The divisions below are the ones it makes, in the same order, so the figures are
    the same floats (``tests/monitor/test_metrics.py`` compares them)."""
    k = window.classes
    pairs = np.bincount(window.truth * k + window.predicted, minlength=k * k).reshape(k, k)
    return np.diagonal(pairs).copy(), pairs.sum(axis=0), pairs.sum(axis=1)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` as floats, NaN where the denominator is zero (undefined)."""
    out = np.full(len(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _precision_recall_f1_of(
    tp: np.ndarray, predicted: np.ndarray, true: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 (``2 TP / (labels + predictions)``, as scikit-learn writes it)."""
    tp_float = tp.astype(float)
    f1 = _divide(2.0 * tp_float, 1.0 * true.astype(float) + predicted.astype(float))
    return _divide(tp_float, predicted.astype(float)), _divide(tp_float, true.astype(float)), f1


def _precision_recall_f1(window: _Encoded) -> tuple[float | None, float | None, float | None]:
    tp, predicted, true = (part[window.positive : window.positive + 1] for part in _counts(window))
    precision, recall, f1 = _precision_recall_f1_of(tp, predicted, true)
    return _defined(precision), _defined(recall), _defined(f1)


def _per_class_names(classes: Sequence[str]) -> list[str]:
    return [f"{metric}[{label}]" for label in classes for metric in ("precision", "recall", "f1")]


def _per_class(window: _Encoded, classes: Sequence[str]) -> dict[str, float | None]:
    """Precision, recall and F1 of each class against the rest, and their macro means."""
    per_class = _precision_recall_f1_of(*_counts(window))
    figures: dict[str, float | None] = {}
    for metric, values in zip(("precision", "recall", "f1"), per_class, strict=True):
        defined = values[~np.isnan(values)]
        figures[f"{metric}_macro"] = float(defined.mean()) if len(defined) else None
    for position, label in enumerate(classes):
        for metric, values in zip(("precision", "recall", "f1"), per_class, strict=True):
            figures[f"{metric}[{label}]"] = _defined(values[position : position + 1])
    return figures


def _defined(values: np.ndarray) -> float | None:
    value = float(values[0])
    return None if np.isnan(value) else value


def _roc_auc(window: _Encoded) -> float | None:
    """The area under the ROC curve of the positive class's probability, built as scikit-learn's
    ``roc_curve`` builds it (counts at each distinct score, collinear points dropped, a (0, 0)
    corner) and summed by the same trapezoid rule, without its input checks (about 15 ms a
    window under a profiler, more than every other figure together)."""
    is_positive = window.truth == window.positive
    if is_positive.all() or not is_positive.any():
        return None  # one class only: the ranking is undefined
    order = np.argsort(-window.probabilities[:, window.positive], kind="stable")
    scores = window.probabilities[order, window.positive]
    thresholds = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tps = np.cumsum(is_positive[order].astype(float))[thresholds]
    fps = 1 + thresholds.astype(float) - tps
    if len(fps) > 2:
        corners = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps = fps[corners], tps[corners]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def _log_loss(window: _Encoded) -> float | None:
    totals = window.probabilities.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        return None  # a prediction without probabilities has no likelihood
    # The scorer's probabilities sum to one up to rounding: normalised, then clipped to
    # [eps, 1 - eps] as scikit-learn's ``log_loss`` does (its input checks cost more than this).
    eps = np.finfo(float).eps
    normalised = np.clip(window.probabilities / totals, eps, 1 - eps)
    return float(-np.log(normalised[np.arange(len(window.truth)), window.truth]).mean())
