"""A regressor's stream for the drift detector: the diabetes data, a gradient-boosted model's
``value.predicted`` events, and its training CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from functools import cache

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor

from contracts import ValuePredicted, Variant
from contracts.drift import FeatureKind
from contracts.registry import (
    FeatureSpec,
    MetricDirection,
    MetricTarget,
    ModelTask,
    MonitoringSpec,
)
from tests.factories import T0


@cache
def _diabetes() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    data = load_diabetes()
    return tuple(data.feature_names), data.data, data.target.astype(np.float64)


FEATURES = list(_diabetes()[0])


def regression_spec() -> MonitoringSpec:
    return MonitoringSpec(
        task=ModelTask.REGRESSION,
        features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in FEATURES],
        label="progression",
        key_metric="mae",
        metrics=[
            MetricTarget(
                metric="mae",
                baseline=45.0,
                threshold=60.0,
                direction=MetricDirection.LOWER_IS_BETTER,
            )
        ],
    )


def diabetes_csv() -> bytes:
    """Every diabetes row, as the registry serves a regressor's training data."""
    _, features, target = _diabetes()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES, "progression"])
    for row, value in zip(features, target, strict=True):
        writer.writerow([*(repr(float(v)) for v in row), repr(float(value))])
    return out.getvalue().encode()


@cache
def _model() -> HistGradientBoostingRegressor:
    _, features, target = _diabetes()
    return HistGradientBoostingRegressor(max_iter=60, max_depth=3, random_state=0).fit(
        features, target
    )


def live_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Rows drawn from the training data: a stream without drift."""
    _, features, _ = _diabetes()
    return features[rng.integers(0, len(features), size=rows)].copy()


def value_predictions(values: np.ndarray, *, model: str, version: int = 1) -> list[ValuePredicted]:
    """One ``value.predicted`` per row, one second apart, predicted by the fitted regressor."""
    predicted = _model().predict(values)
    return [
        ValuePredicted(
            producer="scorer",
            model=model,
            model_version=version,
            variant=Variant.CHAMPION,
            deployment_revision=1,
            request_id=f"req-{i}",
            occurred_at=T0 + timedelta(seconds=i),
            features={name: float(row[j]) for j, name in enumerate(FEATURES)},
            predicted_value=float(value),
            latency_ms=1.0,
        )
        for i, (row, value) in enumerate(zip(values, predicted, strict=True))
    ]
