"""Direct loss estimation (``services/monitor/loss_estimation.py``): a regressor's window MAE and
RMSE estimated from features and predictions track the realised ones under covariate shift, the
band holds them when nothing shifted, and undefined or huge cases give ``None`` or finite
figures, never NaN."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor

from services.monitor.estimation import ReferenceTooSmall
from services.monitor.loss_estimation import (
    LossReference,
    estimate_losses,
    fit_loss_model,
)


def heteroscedastic(
    rng: np.random.Generator, size: int, *, low: float, high: float
) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """A model whose error grows with ``x`` (sd 2 + 30·x), on ``x`` drawn from [low, high]."""
    x = rng.uniform(low, high, size=size)
    z = rng.normal(size=size)
    predicted = 100 + 50 * z
    true = predicted + rng.normal(scale=2 + 30 * x)
    return [{"x": float(a), "z": float(b)} for a, b in zip(x, z, strict=True)], predicted, true


def realised(predicted: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    error = true - predicted
    return float(np.abs(error).mean()), float(np.sqrt((error**2).mean()))


def test_the_estimate_tracks_the_realised_mae_and_rmse_under_covariate_shift() -> None:
    rng = np.random.default_rng(0)
    model = fit_loss_model(*heteroscedastic(rng, 600, low=0.0, high=1.0))
    gaps, rmse_estimates = [], []
    for low, high in [(0.0, 0.2), (0.4, 0.6), (0.8, 1.0)]:
        features, predicted, true = heteroscedastic(rng, 500, low=low, high=high)
        estimates = estimate_losses(model, features, predicted)
        mae, rmse = realised(predicted, true)
        assert estimates["mae"] is not None
        assert estimates["rmse"] is not None
        gaps.append(abs(estimates["mae"].value - mae) / mae)
        rmse_estimates.append(estimates["rmse"].value)
        if rmse > 10:
            assert abs(estimates["rmse"].value - rmse) / rmse < 0.15
        else:  # squared losses are dominated by the largest: coarser where errors are small
            assert abs(estimates["rmse"].value - rmse) / rmse < 0.8
    # the shift multiplies the MAE by about six; the estimate follows within 25 %
    assert max(gaps) < 0.25
    assert rmse_estimates == sorted(rmse_estimates)


def test_without_shift_the_band_holds_the_realised_mae_in_most_windows() -> None:
    rng = np.random.default_rng(1)
    model = fit_loss_model(*heteroscedastic(rng, 400, low=0.0, high=1.0))
    inside = 0
    for _ in range(40):
        features, predicted, true = heteroscedastic(rng, 200, low=0.0, high=1.0)
        estimate = estimate_losses(model, features, predicted)["mae"]
        assert estimate is not None
        assert estimate.lower <= estimate.value <= estimate.upper
        inside += estimate.lower <= realised(predicted, true)[0] <= estimate.upper
    assert inside >= 34  # a 95 % band, estimated on 400 rows: at least 85 % of 40 windows


def test_a_diabetes_regressor_gets_its_estimate_from_named_features() -> None:
    data = load_diabetes(as_frame=True)
    frame, target = data.frame.drop(columns="target"), data.target.to_numpy()
    fitted = HistGradientBoostingRegressor(random_state=0).fit(frame[:200], target[:200])
    predicted = fitted.predict(frame)
    rows = frame.to_dict(orient="records")
    model = fit_loss_model(rows[200:350], predicted[200:350], target[200:350])
    assert model.quality.features == tuple(sorted(frame.columns))
    estimate = estimate_losses(model, rows[350:], predicted[350:])["mae"]
    mae = realised(predicted[350:], target[350:])[0]
    assert estimate is not None
    assert abs(estimate.value - mae) / mae < 0.25


def test_text_features_are_categories_and_mixed_ones_are_left_out() -> None:
    rng = np.random.default_rng(2)
    region = rng.choice(["north", "south"], size=600)
    predicted = rng.normal(100, 10, size=600)
    true = predicted + rng.normal(scale=np.where(region == "south", 40.0, 2.0))
    rows = [
        {"region": r, "mixed": "a" if i % 2 else 1.0, "nothing": None} for i, r in enumerate(region)
    ]
    model = fit_loss_model(rows, predicted, true)
    assert model.quality.features == ("region",)
    assert model.quality.excluded == ("mixed", "nothing")
    south = estimate_losses(model, [{"region": "south"}] * 50, np.full(50, 100.0))["mae"]
    north = estimate_losses(model, [{"region": "north"}] * 50, np.full(50, 100.0))["mae"]
    unseen = estimate_losses(model, [{"region": "east"}] * 50, np.full(50, 100.0))["mae"]
    assert south is not None
    assert north is not None
    assert unseen is not None
    assert south.value > 5 * north.value
    assert math.isfinite(unseen.value)  # an unseen category is a missing value, not an error


def test_undefined_cases_give_none_or_a_refusal_never_nan() -> None:
    rng = np.random.default_rng(3)
    model = fit_loss_model(*heteroscedastic(rng, 100, low=0.0, high=1.0))
    assert estimate_losses(model, [], []) == {"mae": None, "rmse": None}
    with pytest.raises(ReferenceTooSmall):
        fit_loss_model(*heteroscedastic(rng, 49, low=0.0, high=1.0))
    with pytest.raises(ValueError, match="finite"):
        fit_loss_model([{}] * 60, [float("nan")] * 60, [1.0] * 60)
    with pytest.raises(ValueError, match="one length"):
        estimate_losses(model, [{}], [1.0, 2.0])
    # a perfect model: zero losses, a zero-width band
    perfect = fit_loss_model([{"x": float(i)} for i in range(60)], [1.0] * 60, [1.0] * 60)
    zero = estimate_losses(perfect, [{"x": 3.0}], [1.0])["mae"]
    assert zero is not None
    assert (zero.value, zero.lower, zero.upper) == (0.0, 0.0, 0.0)


def test_huge_values_give_finite_figures_or_none() -> None:
    rng = np.random.default_rng(4)
    features, predicted, true = heteroscedastic(rng, 200, low=0.0, high=1.0)
    big = 1e300
    model = fit_loss_model(features, predicted * big, true * big)
    estimates = estimate_losses(model, features, predicted * big)
    for name in ("mae", "rmse"):
        estimate = estimates[name]
        assert estimate is not None
        assert all(math.isfinite(v) for v in (estimate.value, estimate.lower, estimate.upper))
    assert model.quality.rmse is not None
    assert math.isfinite(model.quality.rmse)
    # errors that do not fit a float cannot be a reference
    with pytest.raises(ReferenceTooSmall, match="fit a float"):
        fit_loss_model([{}] * 60, [-1.7e308] * 60, [1.7e308] * 60)
    # huge feature values are binned like any other
    wide = [{"x": row["x"] * 1e300, "z": row["z"]} for row in features]
    assert estimate_losses(fit_loss_model(wide, predicted, true), wide, predicted)["mae"]


def test_a_reference_gathers_completes_and_refits_the_same_after_a_restart() -> None:
    rng = np.random.default_rng(5)
    features, predicted, true = heteroscedastic(rng, 120, low=0.0, high=1.0)
    reference = LossReference()
    for i in range(99):
        assert reference.add(features[i], predicted[i], true[i], rows=100) is False
    assert reference.model is None
    assert reference.add(features[99], predicted[99], true[99], rows=100) is True
    assert reference.add(features[100], predicted[100], true[100], rows=100) is False
    assert len(reference.true) == 100
    restored = LossReference.from_dict(reference.to_dict())
    assert restored.model is not None
    assert reference.model is not None
    window = features[100:], predicted[100:]
    assert estimate_losses(restored.model, *window) == estimate_losses(reference.model, *window)
