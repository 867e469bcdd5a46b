"""Label-free performance estimation for regressors: a window's MAE and RMSE from its features.

Direct loss estimation (DLE, as NannyML names it)::

    reference (features, predicted value, true value)
        ──▶ loss models: features + prediction ─▶ |error|,  features + prediction ─▶ error²
    window (features, predicted values) ──▶ predicted losses ──▶ MAE = mean |error|^,
                                                                  RMSE = sqrt(mean error²^)

If the loss models fitted on the reference still hold on the window (where the model errs, and
by how much, depends on the inputs as it did: *covariate shift only*), the window's realised
MAE is the mean of its rows' expected absolute errors plus the mean of their residuals. The band
is that residual mean's spread: the loss model's out-of-fold residual standard deviation on the
reference (two-fold cross-fitting), over the square root of the window's size, 1.96 either side
(for RMSE on the mean squared error, then the square root). It is the spread a window of this
size would show *if the loss models hold*; like CBPE's band, it does not cover concept shift.

Losses are fitted in units of the reference's largest absolute error, so a target near the float
limit neither overflows the squares nor the booster's gradients; the figures are scaled back at
the end and a figure that does not fit a float is ``None``.

Features: numbers and booleans as they are, text as categories (those seen in the reference,
at most :data:`MAX_CATEGORIES`; an unseen one is a missing value), a missing value as missing
(the booster handles it); a feature with mixed kinds or too many categories is left out and
named in :attr:`LossQuality.excluded`. The predicted value is always a feature.

Pure: numpy and scikit-learn's ``HistGradientBoostingRegressor`` (seeded, on one thread: on a
busy host OpenMP's threads made a fit of 300 rows five times slower, not faster). The fitted
boosters are not stored: the reference rows are, and the models are refitted from them
(deterministic) when a monitor restarts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from services.monitor.estimation import Estimate, ReferenceTooSmall

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

__all__ = [
    "ESTIMATED_LOSSES",
    "MAX_CATEGORIES",
    "MIN_LOSS_REFERENCE",
    "LossModel",
    "LossQuality",
    "LossReference",
    "estimate_losses",
    "fit_loss_model",
]

ESTIMATED_LOSSES = ("mae", "rmse")
"""Regression metrics estimated from features (R² needs the truths' variance)."""

MIN_LOSS_REFERENCE = 50
"""Labelled reference rows the loss models need."""

MAX_CATEGORIES = 250
"""Distinct values a text feature may take to be used (the booster's limit is 255 bins)."""

_Z = 1.96
_BOOSTER = {"max_iter": 50, "learning_rate": 0.1, "max_depth": 2, "l2_regularization": 1.0}
"""A small, shallow booster: a reference is a few hundred rows and a loss is a noisy target.
On ``bench/estimation.py --quick`` scikit-learn's defaults (50 rounds) missed the realised MAE
by 1.60 on average, this by 1.26 (the naive guess, the reference's own MAE: 1.46)."""
FloatArray = NDArray[np.float64]
FeatureRow = Mapping[str, float | int | str | bool | None]


@dataclass(frozen=True)
class LossQuality:
    """What the reference says about the loss models, measured out of fold."""

    rows: int
    mae: float | None
    """Realised MAE on the reference."""
    rmse: float | None
    """Realised RMSE on the reference (``None`` if it does not fit a float)."""
    mae_spread: float | None
    """Standard deviation of the absolute-error model's out-of-fold residuals."""
    mse_spread: float | None
    """Standard deviation of the squared-error model's out-of-fold residuals."""
    features: tuple[str, ...]
    excluded: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "mae": self.mae,
            "rmse": self.rmse,
            "mae_spread": self.mae_spread,
            "mse_spread": self.mse_spread,
            "features": list(self.features),
            "excluded": list(self.excluded),
        }


@dataclass(frozen=True)
class _Encoding:
    """How feature dicts become the booster's matrix: numeric columns, then categorical ones
    (codes into the reference's sorted categories), then the predicted value."""

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    def matrix(self, rows: Sequence[FeatureRow], predicted: FloatArray) -> FloatArray:
        out = np.full((len(rows), len(self.numeric) + len(self.categorical) + 1), np.nan)
        for j, name in enumerate(self.numeric):
            out[:, j] = [_number(row.get(name)) for row in rows]
        offset = len(self.numeric)
        for j, (name, categories) in enumerate(self.categorical):
            codes = {c: float(i) for i, c in enumerate(categories)}
            out[:, offset + j] = [_code(row.get(name), codes) for row in rows]
        out[:, -1] = predicted
        return out

    @property
    def categorical_mask(self) -> list[bool]:
        return [False] * len(self.numeric) + [True] * len(self.categorical) + [False]


@dataclass(frozen=True)
class LossModel:
    """A version's fitted loss models (absolute and squared error, in units of ``scale``)."""

    encoding: _Encoding
    absolute: HistGradientBoostingRegressor
    squared: HistGradientBoostingRegressor
    scale: float
    quality: LossQuality


@dataclass
class LossReference:
    """A regressor's reference: its first ``rows`` labelled outcomes with their features. The
    rows are kept (they are what a restart refits the loss models from)."""

    features: list[dict[str, Any]] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    true: list[float] = field(default_factory=list)
    complete: bool = False
    _model: LossModel | None = field(default=None, repr=False, compare=False)

    def add(self, features: FeatureRow, predicted: float, true: float, *, rows: int) -> bool:
        """Add a labelled outcome; return whether this completed the reference (and fitted)."""
        if self.complete:
            return False
        self.features.append(dict(features))
        self.predicted.append(predicted)
        self.true.append(true)
        if len(self.true) < rows:
            return False
        self.complete = True
        self._model = None
        return self.model is not None

    @property
    def model(self) -> LossModel | None:
        """The loss models, fitted on first use once the reference is complete; ``None`` before,
        or when the reference cannot support them."""
        if not self.complete:
            return None
        if self._model is None:
            try:
                self._model = fit_loss_model(self.features, self.predicted, self.true)
            except ValueError:  # ReferenceTooSmall among them: no estimate, never a failed batch
                return None
        return self._model

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "loss",
            "features": self.features,
            "predicted": self.predicted,
            "true": self.true,
            "complete": self.complete,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LossReference:
        return cls(
            features=[dict(row) for row in data["features"]],
            predicted=[float(x) for x in data["predicted"]],
            true=[float(y) for y in data["true"]],
            complete=bool(data["complete"]),
        )


def fit_loss_model(
    features: Sequence[FeatureRow],
    predicted: Sequence[float] | FloatArray,
    true: Sequence[float] | FloatArray,
) -> LossModel:
    """Fit the absolute- and squared-error models on a reference.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(-1, 1, size=600)
    >>> truth = x + rng.normal(scale=0.1 + np.abs(x))  # errors grow with |x|
    >>> model = fit_loss_model([{"x": v} for v in x], x, truth)
    >>> near = estimate_losses(model, [{"x": 0.05}] * 100, np.full(100, 0.05))["mae"]
    >>> far = estimate_losses(model, [{"x": 0.95}] * 100, np.full(100, 0.95))["mae"]
    >>> near.value < 0.4 < far.value
    True
    """
    y_pred = np.asarray(predicted, dtype=float)
    y_true = np.asarray(true, dtype=float)
    if y_pred.shape != y_true.shape or y_pred.ndim != 1 or len(features) != len(y_pred):
        raise ValueError(
            "features, predicted and true values must be three sequences of one length"
        )
    if not (np.all(np.isfinite(y_pred)) and np.all(np.isfinite(y_true))):
        raise ValueError("predicted and true values must be finite")
    if len(y_pred) < MIN_LOSS_REFERENCE:
        raise ReferenceTooSmall(
            f"loss models need {MIN_LOSS_REFERENCE} labelled rows, got {len(y_pred)}"
        )
    absolute = _absolute_errors(y_pred, y_true)
    scale = float(absolute.max()) or 1.0
    if not math.isfinite(scale):
        raise ReferenceTooSmall("the reference's errors do not fit a float")
    scaled = absolute / scale
    squared = scaled**2
    encoding, excluded = _encode(features)
    x = encoding.matrix(features, y_pred)
    with threadpool_limits(limits=1, user_api="openmp"):
        mae_spread = _out_of_fold_spread(x, scaled, encoding)
        mse_spread = _out_of_fold_spread(x, squared, encoding)
        absolute_model = _booster(encoding).fit(x, scaled)
        squared_model = _booster(encoding).fit(x, squared)
    quality = LossQuality(
        rows=len(y_pred),
        mae=_finite(float(scaled.mean()) * scale),
        rmse=_finite(math.sqrt(float(squared.mean())) * scale),
        mae_spread=_finite(mae_spread * scale),
        mse_spread=_finite(mse_spread * scale * scale),
        features=encoding.numeric + tuple(name for name, _ in encoding.categorical),
        excluded=excluded,
    )
    return LossModel(
        encoding=encoding,
        absolute=absolute_model,
        squared=squared_model,
        scale=scale,
        quality=quality,
    )


def estimate_losses(
    model: LossModel,
    features: Sequence[FeatureRow],
    predicted: Sequence[float] | FloatArray,
) -> dict[str, Estimate | None]:
    """Estimate a window's MAE and RMSE from its features and predicted values (``None`` for an
    empty window or a figure that does not fit a float)."""
    y_pred = np.asarray(predicted, dtype=float)
    if y_pred.ndim != 1 or len(features) != len(y_pred):
        raise ValueError("features and predicted values must be two sequences of one length")
    if len(y_pred) == 0 or not np.all(np.isfinite(y_pred)):
        return dict.fromkeys(ESTIMATED_LOSSES)
    x = model.encoding.matrix(features, y_pred)
    n = len(y_pred)
    scale = model.scale
    with threadpool_limits(limits=1, user_api="openmp"):
        absolute = float(np.clip(model.absolute.predict(x), 0.0, None).mean())
        squared = float(np.clip(model.squared.predict(x), 0.0, None).mean())
    quality = model.quality
    mae_half = _Z * (quality.mae_spread or 0.0) / scale / math.sqrt(n)
    mse_half = _Z * (quality.mse_spread or 0.0) / scale / scale / math.sqrt(n)
    return {
        "mae": _estimate(
            absolute * scale, max(absolute - mae_half, 0.0) * scale, (absolute + mae_half) * scale
        ),
        "rmse": _estimate(
            math.sqrt(squared) * scale,
            math.sqrt(max(squared - mse_half, 0.0)) * scale,
            math.sqrt(squared + mse_half) * scale,
        ),
    }


def _estimate(value: float, lower: float, upper: float) -> Estimate | None:
    if not all(math.isfinite(v) for v in (value, lower, upper)):
        return None
    return Estimate(value, min(lower, value), max(upper, value))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _absolute_errors(y_pred: FloatArray, y_true: FloatArray) -> FloatArray:
    """|true - predicted|, without overflowing for values of opposite signs near the limit."""
    with np.errstate(over="ignore"):
        absolute = np.abs(y_true - y_pred)
    if not np.all(np.isfinite(absolute)):
        raise ReferenceTooSmall("the reference's errors do not fit a float")
    result: FloatArray = absolute
    return result


def _booster(encoding: _Encoding) -> HistGradientBoostingRegressor:
    # Imported here: scikit-learn's ensembles cost a monitor that watches no regressor ~11 MB.
    from sklearn.ensemble import HistGradientBoostingRegressor

    mask = encoding.categorical_mask
    return HistGradientBoostingRegressor(
        **_BOOSTER,
        random_state=0,
        early_stopping=False,
        categorical_features=mask if any(mask) else None,
    )


def _out_of_fold_spread(x: FloatArray, loss: FloatArray, encoding: _Encoding) -> float:
    """Standard deviation of (loss - predicted loss), each row predicted by a model fitted on
    the other half, so the band is not narrowed by fitting and judging on the same rows."""
    order = np.random.default_rng(0).permutation(len(loss))
    folds = (order[::2], order[1::2])
    fitted = np.empty(len(loss))
    for fit_on, judge_on in (folds, folds[::-1]):
        booster = _booster(encoding).fit(x[fit_on], loss[fit_on])
        fitted[judge_on] = np.clip(booster.predict(x[judge_on]), 0.0, None)
    return float(np.std(loss - fitted, ddof=1))


def _encode(rows: Sequence[FeatureRow]) -> tuple[_Encoding, tuple[str, ...]]:
    kinds: dict[str, set[str]] = {}
    texts: dict[str, set[str]] = {}
    for row in rows:
        for name, value in row.items():
            if value is None:
                kinds.setdefault(name, set())
            elif isinstance(value, str):
                kinds.setdefault(name, set()).add("text")
                texts.setdefault(name, set()).add(value)
            else:
                kinds.setdefault(name, set()).add("number")
    numeric, categorical, excluded = [], [], []
    for name in sorted(kinds):
        if kinds[name] == {"number"}:
            numeric.append(name)
        elif kinds[name] == {"text"} and len(texts[name]) <= MAX_CATEGORIES:
            categorical.append((name, tuple(sorted(texts[name]))))
        else:  # mixed kinds, too many categories, or never given
            excluded.append(name)
    return _Encoding(tuple(numeric), tuple(categorical)), tuple(excluded)


def _number(value: object) -> float:
    if isinstance(value, bool | int | float) and not isinstance(value, str):
        number = float(value)
        return number if math.isfinite(number) else math.nan
    return math.nan


def _code(value: object, codes: Mapping[str, float]) -> float:
    return codes.get(value, math.nan) if isinstance(value, str) else math.nan
