"""A small real regressor for tests: a ``HistGradientBoostingRegressor`` on scikit-learn's
diabetes data (disease progression a year on, 25 to 346), saved as a skops file, with its datasets
as CSV and registration metadata (no metrics: the registry measures MAE, RMSE and R²)."""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from contracts import (
    FeatureKind,
    FeatureSpec,
    MetricDirection,
    MetricTarget,
    ModelTask,
    MonitoringSpec,
)
from tests.model_builders import TrainedModel

DIABETES = load_diabetes(as_frame=True)
FEATURES = [str(name) for name in DIABETES.feature_names]
TARGET = "progression"


def regression_targets(
    *, mae: tuple[float, float], rmse: tuple[float, float], r2: tuple[float, float]
) -> list[MetricTarget]:
    """The three figures a regressor is watched on, each as (baseline, threshold): MAE and RMSE
    (lower is better), R² (higher is better)."""
    lower = MetricDirection.LOWER_IS_BETTER
    return [
        MetricTarget(metric="mae", baseline=mae[0], threshold=mae[1], direction=lower),
        MetricTarget(metric="rmse", baseline=rmse[0], threshold=rmse[1], direction=lower),
        MetricTarget(metric="r2", baseline=r2[0], threshold=r2[1]),
    ]


def diabetes_spec(**overrides: Any) -> MonitoringSpec:
    """A regression spec over the ten diabetes features, watching MAE (key), RMSE and R²."""
    fields: dict[str, Any] = {
        "task": ModelTask.REGRESSION,
        "features": [FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in FEATURES],
        "label": TARGET,
        "key_metric": "mae",
        "metrics": regression_targets(mae=(45.0, 60.0), rmse=(55.0, 75.0), r2=(0.4, 0.2)),
    }
    return MonitoringSpec(**(fields | overrides))


def diabetes_csv(frame: pd.DataFrame, target: pd.Series) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES, TARGET])
    for values, value in zip(frame[FEATURES].itertuples(index=False), target, strict=True):
        writer.writerow([*(repr(float(v)) for v in values), repr(float(value))])
    return out.getvalue().encode()


@cache
def train_regressor(*, named: bool = True) -> TrainedModel:
    """Fit on three rows in four, hold out the fourth. ``named``: a ``Pipeline`` whose
    ``ColumnTransformer`` selects the columns by name, fitted on a DataFrame (the scorer must
    hand it one); else the bare regressor fitted on an array (the scorer's fast path)."""
    picked = np.arange(len(DIABETES.target)) % 4 != 0
    frame, target = DIABETES.data, DIABETES.target
    regressor = HistGradientBoostingRegressor(max_iter=30, random_state=0)
    if named:
        model: Any = Pipeline(
            [
                ("columns", ColumnTransformer([("scaled", StandardScaler(), FEATURES)])),
                ("boosting", regressor),
            ]
        ).fit(frame[picked], target[picked])
    else:
        model = regressor.fit(frame[picked].to_numpy(), target[picked].to_numpy())
    return TrainedModel(
        artifact=skops.io.dumps(model),
        training_csv=diabetes_csv(frame[picked], target[picked]),
        evaluation_csv=diabetes_csv(frame[~picked], target[~picked]),
        estimator=model,
    )


def regression_metadata(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "sklearn_version": sklearn.__version__,
        "dataset_name": "diabetes",
        "dataset_version": "1",
        "evaluation_dataset_name": "diabetes",
        "evaluation_dataset_version": "1-test",
        "parameters": {},
        "code_version": "vigil-tests",
        "spec": diabetes_spec().model_dump(mode="json"),
        "reason": "test regressor",
    }
    return fields | overrides


def regression_form(
    model: TrainedModel, **overrides: Any
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """The multipart fields of ``POST /models/{model}/versions`` for a regressor."""
    return (
        {"metadata": json.dumps(regression_metadata(**overrides))},
        {
            "artifact": ("model.skops", model.artifact),
            "training_data": ("train.csv", model.training_csv),
            "evaluation_data": ("test.csv", model.evaluation_csv),
        },
    )
