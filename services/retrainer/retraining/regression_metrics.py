"""A regressor's error on labelled rows: MAE, RMSE and R², the metrics a regression spec watches
(``contracts.registry.REGRESSION_METRICS``). Pure.

The registry measures them when a version is registered without metrics, the spec scaffold
proposes baselines and thresholds from them, and the gate judges a candidate on them, so all
three speak of the same numbers.
"""

from __future__ import annotations

import numpy as np

from contracts.registry import REGRESSION_METRICS

__all__ = ["regression_metric"]


def regression_metric(metric: str, truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """One regression metric of predictions against the truth, as the monitor computes it;
    ``None`` where undefined: no rows, R² of a constant truth (no variance to explain), or a
    figure that overflows (a true value near the float limit).

    >>> truth, predicted = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])
    >>> [round(regression_metric(m, truth, predicted), 4) for m in ("mae", "rmse", "r2")]
    [0.6667, 1.1547, -1.0]
    >>> regression_metric("r2", np.array([2.0, 2.0]), np.array([1.0, 3.0])) is None
    True
    >>> regression_metric("rmse", np.array([1e300]), np.array([-1e300])) is None
    True
    """
    if metric not in REGRESSION_METRICS:
        raise ValueError(f"{metric!r} is not a regression metric")
    if len(truth) == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        errors = truth - predicted
        if metric == "mae":
            value = float(np.mean(np.abs(errors)))
        elif metric == "rmse":
            value = float(np.sqrt(np.mean(errors**2)))
        else:
            spread = float(np.sum((truth - truth.mean()) ** 2))
            if not spread > 0:
                return None
            value = 1.0 - float(np.sum(errors**2)) / spread
    return value if np.isfinite(value) else None
