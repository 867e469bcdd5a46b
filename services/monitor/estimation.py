"""Label-free performance estimation: a window's classification metrics from its scores alone.

Confidence-based performance estimation (CBPE, as NannyML names it) for a binary task::

    reference (scores, labels) ──▶ isotonic calibration ──▶ p_i = P(y_i = positive | score_i)
    window (scores, predicted classes) ──▶ p_i ──▶ expected confusion matrix ─▶ estimate
                                            └─▶ S label vectors y ~ Bernoulli(p)
                                                  └─▶ metric of each ─▶ 2.5 / 97.5 % band

If the calibration fitted on the reference still holds on the window (the score means the same
probability: *covariate shift only*, no concept shift), the realised metric is a function of
labels drawn from those probabilities. The point estimate is CBPE's: each ratio of the expected
confusion-matrix cells (ROC AUC: the mean over the samples below). The band comes from
sampling: S label vectors drawn from the calibrated probabilities, each metric computed on each
with the window's predicted classes and scores, and the central 95 % of the samples kept. (The
sample mean as the point estimate was measured too: 0.3 % worse MAE than the plug-in on
``bench/estimation.py --quick``.)
The band is the spread a window of this size would show *if the calibration holds*; it does not
cover a calibration that no longer holds.

The calibration is piecewise linear (the isotonic fit's knots), so it is JSON and applied with
``numpy.interp``; its quality on the reference is measured out of fold (two-fold cross-fitting):
expected calibration error (ten equal-width bins) and Brier score, before and after calibrating.
When calibrating does not beat the raw scores out of fold, the raw scores are used as they are
(NannyML makes the same check).

Pure: numpy and SciPy. The isotonic fit is ``scipy.optimize.isotonic_regression``, the solver
scikit-learn's ``IsotonicRegression`` calls, with the steps around it made as it makes them: the
knots are the ones it fits (``tests/monitor/test_estimation.py`` compares them), without
importing scikit-learn, which costs a monitor process about 48 MB of resident memory. One class
(:class:`Calibration`) per model version, built once. Regression (direct loss estimation) and
multiclass (one calibration per class, one-vs-rest) would add estimators beside
:func:`estimate_binary`, not change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import isotonic_regression
from scipy.stats import rankdata

from services.runtime.calibration_quality import brier_score, expected_calibration_error

__all__ = [
    "ESTIMATED_METRICS",
    "Calibration",
    "CalibrationQuality",
    "Estimate",
    "Reference",
    "ReferenceTooSmall",
    "estimate_binary",
    "fit_calibration",
]

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
"""Metrics estimated from scores (log loss needs the labels themselves)."""

MIN_REFERENCE = 50
"""Labelled reference rows a calibration needs (with at least five of each class)."""

FloatArray = NDArray[np.float64]


class ReferenceTooSmall(ValueError):
    """The reference cannot support a calibration (too few rows, or too few of one class)."""


@dataclass(frozen=True)
class CalibrationQuality:
    """How well scores matched outcome rates on the reference, measured out of fold."""

    rows: int
    ece_raw: float
    """Expected calibration error of the model's own scores."""
    ece: float
    """Expected calibration error after calibrating (out of fold)."""
    brier: float
    """Brier score after calibrating (out of fold)."""
    brier_raw: float
    """Brier score of the model's own scores."""

    @property
    def calibrating_helps(self) -> bool:
        """Whether the fitted calibration beat the raw scores out of fold (on a small reference
        isotonic steps can be worse than scores that were fine already)."""
        return self.ece < self.ece_raw

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "ece_raw": self.ece_raw,
            "ece": self.ece,
            "brier_raw": self.brier_raw,
            "brier": self.brier,
            "calibrated": self.calibrating_helps,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationQuality:
        return cls(
            rows=int(data["rows"]),
            ece_raw=float(data["ece_raw"]),
            ece=float(data["ece"]),
            brier=float(data["brier"]),
            brier_raw=float(data["brier_raw"]),
        )


@dataclass(frozen=True)
class Calibration:
    """Maps a model's positive-class score to the probability that the label is positive."""

    knots_x: tuple[float, ...]
    knots_y: tuple[float, ...]
    quality: CalibrationQuality

    def __call__(self, scores: Sequence[float] | FloatArray) -> FloatArray:
        calibrated: FloatArray = np.interp(
            np.asarray(scores, dtype=float), self.knots_x, self.knots_y
        )
        return calibrated

    def to_dict(self) -> dict[str, Any]:
        return {
            "knots_x": list(self.knots_x),
            "knots_y": list(self.knots_y),
            "quality": self.quality.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            knots_x=tuple(float(x) for x in data["knots_x"]),
            knots_y=tuple(float(y) for y in data["knots_y"]),
            quality=CalibrationQuality.from_dict(data["quality"]),
        )


@dataclass(frozen=True)
class Estimate:
    """One metric estimated on one window: the expected value and its 95 % band."""

    value: float
    lower: float
    upper: float


@dataclass
class Reference:
    """A version's reference: labelled outcomes gathered until there are ``rows`` of them (then
    the calibration is fitted and the rows dropped), or a calibration given from elsewhere.

    A reference that cannot be calibrated yet (too few of one class) keeps gathering, up to ten
    times ``rows`` (the newest kept).
    """

    scores: list[float] = field(default_factory=list)
    positives: list[bool] = field(default_factory=list)
    calibration: Calibration | None = None

    def add(self, score: float, positive: bool, *, rows: int) -> bool:
        """Add a labelled outcome; return whether this fitted the calibration."""
        if self.calibration is not None:
            return False
        self.scores.append(score)
        self.positives.append(positive)
        if len(self.scores) > 10 * rows:
            del self.scores[0], self.positives[0]
        if len(self.scores) < rows:
            return False
        try:
            self.calibration = fit_calibration(self.scores, self.positives)
        except ReferenceTooSmall:
            return False
        self.scores, self.positives = [], []
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "positives": self.positives,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        calibration = data.get("calibration")
        return cls(
            scores=[float(x) for x in data["scores"]],
            positives=[bool(y) for y in data["positives"]],
            calibration=None if calibration is None else Calibration.from_dict(calibration),
        )


def fit_calibration(
    scores: Sequence[float] | FloatArray, positive: Sequence[bool] | NDArray[np.bool_]
) -> Calibration:
    """Fit the calibration of positive-class ``scores`` against ``positive`` labels.

    >>> rng = np.random.default_rng(0)
    >>> scores = rng.uniform(size=2000)
    >>> labels = rng.uniform(size=2000) < scores ** 2  # over-confident scores
    >>> calibration = fit_calibration(scores, labels)
    >>> round(float(calibration([0.5])[0]), 1), calibration.quality.ece < 0.05
    (0.3, True)
    """
    x = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("scores and labels must be two sequences of one length")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores must be finite")
    if len(x) < MIN_REFERENCE or min(int(y.sum()), int((~y).sum())) < 5:
        raise ReferenceTooSmall(
            f"a calibration needs {MIN_REFERENCE} labelled rows with five of each class, "
            f"got {len(x)} rows, {int(y.sum())} positive"
        )
    quality = _quality(x, y)
    if not quality.calibrating_helps:
        return Calibration((0.0, 1.0), (0.0, 1.0), quality)  # the scores as they are
    knots_x, knots_y = _isotonic(x, y)
    return Calibration(knots_x, knots_y, quality)


def estimate_binary(
    calibration: Calibration,
    scores: Sequence[float] | FloatArray,
    predicted_positive: Sequence[bool] | NDArray[np.bool_],
    *,
    rng: np.random.Generator,
    samples: int = 2000,
) -> dict[str, Estimate | None]:
    """Estimate accuracy, precision, recall, F1 and ROC AUC of a window from its scores.

    ``scores`` are the model's positive-class probabilities, ``predicted_positive`` whether it
    predicted the positive class. A metric is ``None`` when it is undefined in most samples
    (no predicted positives for precision, almost surely no positives for recall).

    >>> calibration = Calibration((0.0, 1.0), (0.0, 1.0), CalibrationQuality(100, 0, 0, 0, 0))
    >>> scores = np.linspace(0.01, 0.99, 200)
    >>> estimates = estimate_binary(
    ...     calibration, scores, scores >= 0.5, rng=np.random.default_rng(0)
    ... )
    >>> round(estimates["accuracy"].value, 2), round(estimates["recall"].value, 2)
    (0.75, 0.75)
    """
    if samples < 10:
        raise ValueError("samples must be at least 10")
    score = np.asarray(scores, dtype=float)
    predicted = np.asarray(predicted_positive, dtype=bool)
    if score.shape != predicted.shape or score.ndim != 1:
        raise ValueError("scores and predicted classes must be two sequences of one length")
    if len(score) == 0:
        return dict.fromkeys(ESTIMATED_METRICS)
    probability = calibration(score)
    labels = rng.uniform(size=(samples, len(score))) < probability  # S x n sampled truths
    tp = (labels & predicted).sum(axis=1).astype(float)
    fp = (~labels & predicted).sum(axis=1).astype(float)
    fn = (labels & ~predicted).sum(axis=1).astype(float)
    tn = (~labels & ~predicted).sum(axis=1).astype(float)
    positives = tp + fn
    negatives = fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        figures = {
            "accuracy": (tp + tn) / len(score),
            "precision": tp / (tp + fp),
            "recall": tp / positives,
            "f1": 2 * tp / (2 * tp + fp + fn),
            "roc_auc": _auc(score, labels, positives, negatives),
        }
    expected = _expected_figures(probability, predicted)
    return {name: _summarise(values, expected.get(name)) for name, values in figures.items()}


def _expected_figures(probability: FloatArray, predicted: NDArray[np.bool_]) -> dict[str, float]:
    """The ratios of the expected confusion-matrix cells (CBPE's point estimate)."""
    tp = float((probability * predicted).sum())
    fp = float(((1 - probability) * predicted).sum())
    fn = float((probability * ~predicted).sum())
    tn = float(((1 - probability) * ~predicted).sum())
    figures = {"accuracy": (tp + tn) / len(probability)}
    if tp + fp > 0:
        figures["precision"] = tp / (tp + fp)
    if tp + fn > 0:
        figures["recall"] = tp / (tp + fn)
    if 2 * tp + fp + fn > 0:
        figures["f1"] = 2 * tp / (2 * tp + fp + fn)
    return figures


def _auc(
    score: FloatArray, labels: NDArray[np.bool_], positives: FloatArray, negatives: FloatArray
) -> FloatArray:
    """ROC AUC of the fixed scores against each sampled label vector (Mann-Whitney, ties
    averaged): one rank computation for all samples."""
    ranks = rankdata(score)
    positive_rank_sum = labels.astype(float) @ ranks
    auc: FloatArray = (positive_rank_sum - positives * (positives + 1) / 2) / (
        positives * negatives
    )
    return auc


def _summarise(values: FloatArray, point: float | None) -> Estimate | None:
    """The point estimate (the samples' mean where there is no plug-in) and the band."""
    defined = values[np.isfinite(values)]
    if len(defined) < len(values) / 2:
        return None
    if point is None:
        point = float(defined.mean())
    low, high = np.quantile(defined, [0.025, 0.975])
    return Estimate(point, float(min(low, point)), float(max(high, point)))


def _isotonic(x: FloatArray, y: NDArray[np.bool_]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The knots (``X_thresholds_``, ``y_thresholds_``) of scikit-learn's
    ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")`` fitted on ``(x, y)``, built as
    it builds them: tied scores merged into one point (the share of positives among them,
    weighted by their count), the weighted isotonic fit, clipped to [0, 1], and only the knots
    the interpolation needs (the inner points of a constant run dropped). ``numpy.interp`` over
    them, which holds the end values beyond the outer knots, is its ``predict``."""
    order = np.argsort(x, kind="stable")
    x_sorted = x[order]
    starts = _tie_starts(x_sorted)
    counts = np.diff(np.r_[starts, len(x_sorted)]).astype(float)
    shares = np.add.reduceat(y[order].astype(float), starts) / counts
    fitted = np.clip(isotonic_regression(shares, weights=counts, increasing=True).x, 0.0, 1.0)
    keep = np.ones(len(fitted), dtype=bool)
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return tuple(x_sorted[starts][keep].tolist()), tuple(fitted[keep].tolist())


def _tie_starts(x_sorted: FloatArray) -> NDArray[np.intp]:
    """Where each group of tied scores starts in sorted scores, tied as scikit-learn ties them:
    a score joins its group while it is less than ``finfo(float).resolution`` (1e-15) above the
    group's first score, so scores one rounding apart (0.1 + 0.2 and 0.3) are one point."""
    resolution = float(np.finfo(float).resolution)
    starts = np.ones(len(x_sorted), dtype=bool)
    starts[1:] = np.diff(x_sorted) >= resolution  # a step this large always starts a group
    first = 0.0
    previous = -2
    for index in np.flatnonzero(~starts).tolist():  # near ties: rare, decided one by one
        if index - 1 != previous:  # the score before it starts its group
            first = float(x_sorted[index - 1])
        if x_sorted[index] - first >= resolution:
            starts[index] = True
            first = float(x_sorted[index])
        previous = index
    return np.flatnonzero(starts)


def _quality(x: FloatArray, y: NDArray[np.bool_]) -> CalibrationQuality:
    """Two-fold cross-fitted calibration error, so the figure is not flattered by fitting and
    judging on the same rows."""
    order = np.random.default_rng(0).permutation(len(x))
    folds = (order[::2], order[1::2])
    calibrated = np.empty(len(x))
    for fit_on, judge_on in (folds, folds[::-1]):
        knots_x, knots_y = _isotonic(x[fit_on], y[fit_on])
        calibrated[judge_on] = np.interp(x[judge_on], knots_x, knots_y)
    truth = y.astype(float)
    raw = np.clip(x, 0.0, 1.0)
    return CalibrationQuality(
        rows=len(x),
        ece_raw=expected_calibration_error(raw, truth),
        ece=expected_calibration_error(calibrated, truth),
        brier=brier_score(calibrated, truth),
        brier_raw=brier_score(raw, truth),
    )
