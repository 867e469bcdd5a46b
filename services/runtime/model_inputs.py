"""Shaping checked feature rows as a model's input: a NumPy matrix, or a pandas DataFrame with the
spec's column names when the estimator was fitted on one.

A scikit-learn estimator fitted on a DataFrame remembers the column names (``feature_names_in_``)
and a ``ColumnTransformer`` may select columns by those names, so such a model must be handed a
DataFrame. One fitted on an array has no names and takes the matrix as it is: the fast path, which
the scorer keeps for every array-fitted model. The scorer and the retrainer shape inputs here so
a model is scored, trained and checked on the same kind of input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from contracts.drift import FeatureKind
from contracts.registry import MonitoringSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["as_model_input", "named_frame", "takes_named_columns"]


def takes_named_columns(estimator: Any) -> bool:
    """Whether an estimator was fitted on a DataFrame (it knows its columns by name)."""
    return getattr(estimator, "feature_names_in_", None) is not None


def as_model_input(estimator: Any, spec: MonitoringSpec, matrix: np.ndarray) -> Any:
    """Return ``matrix`` (rows in spec column order) as ``estimator`` takes it: unchanged for an
    array-fitted model, else a DataFrame named after the spec's features, numeric columns as
    floats (missing → NaN) and categorical ones as objects (missing → ``None``)."""
    if not takes_named_columns(estimator):
        return matrix
    return named_frame(spec, matrix)


def named_frame(spec: MonitoringSpec, matrix: np.ndarray) -> pd.DataFrame:
    """Return ``matrix`` as a DataFrame with the spec's feature names and per-kind dtypes."""
    import pandas as pd  # here, not at the top: every service imports the runtime, few score

    names = [feature.name for feature in spec.features]
    if matrix.dtype == np.float64:
        return pd.DataFrame(matrix, columns=names, copy=False)
    columns: dict[str, np.ndarray] = {}
    for index, feature in enumerate(spec.features):
        column = matrix[:, index]
        if feature.kind is FeatureKind.NUMERIC:
            columns[feature.name] = np.array(
                [np.nan if value is None else value for value in column], dtype=np.float64
            )
        else:
            columns[feature.name] = column
    return pd.DataFrame(columns, columns=names)
