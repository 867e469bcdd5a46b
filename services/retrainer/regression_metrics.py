"""A regressor's error on labelled rows: MAE, RMSE and R², the metrics a regression spec watches
(``contracts.registry.REGRESSION_METRICS``). Pure.

The registry measures them when a version is registered without metrics, and the spec scaffold
proposes baselines and thresholds from them, so both speak of the same numbers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["regression_metric"]


def regression_metric(metric: str, truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """One regression metric of predictions against the truth; ``None`` where undefined (no
    rows, or R² of a constant truth, which has no variance to explain).

    >>> truth, predicted = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])
    >>> [round(regression_metric(m, truth, predicted), 4) for m in ("mae", "rmse", "r2")]
    [0.6667, 1.1547, -1.0]
    >>> regression_metric("r2", np.array([2.0, 2.0]), np.array([1.0, 3.0])) is None
    True
    """
    if len(truth) == 0:
        return None
    error = predicted - truth
    if metric == "mae":
        return float(np.mean(np.abs(error)))
    if metric == "rmse":
        return float(np.sqrt(np.mean(error**2)))
    if metric == "r2":
        spread = float(np.sum((truth - truth.mean()) ** 2))
        return 1.0 - float(np.sum(error**2)) / spread if spread > 0 else None
    raise ValueError(f"unknown regression metric {metric!r}")
