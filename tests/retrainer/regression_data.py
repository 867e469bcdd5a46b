"""The diabetes data scikit-learn ships, as a regression model's rows, spec and champions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from contracts.drift import FeatureKind
from contracts.registry import (
    FeatureSpec,
    ModelTask,
    MonitoringSpec,
)
from services.retrainer.retraining.training_data import LabelledRows
from tests.regression_builders import regression_targets

LABEL = "progression"


def diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    """The ten (already scaled) features and the disease progression a year later (25 to 346)."""
    data = load_diabetes(as_frame=True)
    return data.data, data.target.to_numpy(dtype=np.float64)


FEATURES = list(diabetes()[0].columns)

SPEC = MonitoringSpec(
    task=ModelTask.REGRESSION,
    features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in FEATURES],
    label=LABEL,
    key_metric="mae",
    metrics=regression_targets(mae=(52.0, 65.0), rmse=(62.0, 80.0), r2=(0.44, 0.1)),
)
"""Mean absolute error under 65 (a mean predictor's is about 65), RMSE and R² as guards."""


def rows(live_from: int | None = None) -> LabelledRows:
    """Every diabetes row; rows from ``live_from`` on count as labelled live traffic."""
    frame, target = diabetes()
    return LabelledRows(
        tuple(tuple(float(v) for v in values) for values in frame.itertuples(index=False)),
        tuple(repr(float(value)) for value in target),
        len(target) if live_from is None else live_from,
    )


def hist_gradient_boosting(**parameters: Any) -> HistGradientBoostingRegressor:
    """The champion family of issue 17, fitted on three quarters of the rows as a matrix."""
    frame, target = diabetes()
    picked = np.arange(len(target)) % 4 != 0
    options = {"max_iter": 60, "learning_rate": 0.05, "max_depth": 3} | parameters
    model = HistGradientBoostingRegressor(**options)
    return model.fit(frame.to_numpy()[picked], target[picked])


def named_pipeline() -> Pipeline:
    """A scaler and a gradient-boosted regressor fitted on a DataFrame (named columns)."""
    frame, target = diabetes()
    picked = np.arange(len(target)) % 4 != 0
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            ("boost", HistGradientBoostingRegressor(max_iter=60, learning_rate=0.05, max_depth=3)),
        ]
    )
    return model.fit(frame[picked], target[picked])
