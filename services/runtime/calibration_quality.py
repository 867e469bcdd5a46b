"""How well a binary classifier's scores match outcome rates: expected calibration error and
Brier score. Pure; shared by the registry (measured on the evaluation data at registration) and
the monitor (measured on a version's reference before and after recalibrating), so both report
the same figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["BINS", "brier_score", "expected_calibration_error"]

BINS = 10
"""Equal-width probability bins of the expected calibration error."""


def expected_calibration_error(
    probability: Sequence[float] | NDArray[np.float64],
    positive: Sequence[bool] | Sequence[float] | NDArray[np.bool_] | NDArray[np.float64],
) -> float:
    """Mean over ten equal-width bins of |mean score - positive rate|, weighted by the bin's
    share of rows. Scores outside [0, 1] are clipped.

    >>> round(expected_calibration_error([0.9, 0.9, 0.1, 0.1], [True, False, False, False]), 3)
    0.25
    """
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    truth = np.asarray(positive, dtype=float)
    if p.shape != truth.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError("scores and outcomes must be two non-empty sequences of one length")
    bins = np.minimum((p * BINS).astype(int), BINS - 1)
    error = 0.0
    for b in range(BINS):
        members = bins == b
        if members.any():
            error += members.mean() * abs(p[members].mean() - truth[members].mean())
    return float(error)


def brier_score(
    probability: Sequence[float] | NDArray[np.float64],
    positive: Sequence[bool] | Sequence[float] | NDArray[np.bool_] | NDArray[np.float64],
) -> float:
    """Mean squared difference between score and outcome (0 is perfect).

    >>> brier_score([1.0, 0.5], [True, False])
    0.125
    """
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    truth = np.asarray(positive, dtype=float)
    if p.shape != truth.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError("scores and outcomes must be two non-empty sequences of one length")
    return float(np.mean((p - truth) ** 2))
