"""The sequential mode: CUSUM charts that alarm on gradual drift before a window is full.

A fixed window waits for its last row, and a slow ramp spreads its evidence over several windows.
A CUSUM accumulates evidence row by row from the moment it appears and forgets it only as fast as
the allowance lets it. Each numeric feature gets four one-sided charts on its reference normal
score (see :mod:`services.drift_detector.profiles`), ``z``, standardised to N(0, 1) under the
reference:

- ``z`` up and down: the feature's own location moved;
- ``u = (P z)_j / sqrt(P_jj)`` up and down, with ``P`` the inverse correlation of the scores:
  the feature moved *relative to the features it correlates with* (the conditional residual),
  which a shift of one feature alone makes large even when its own move is small.

The chart ``S_t = max(0, S_{t-1} + x_t - k)`` alarms when it exceeds ``h``. A reference of n
rows is itself off by about 1/sqrt(n) in every direction, and on a long clean stream that offset
accumulates like drift. So the allowance is ``k = a + 3/sqrt(n)`` and ``h`` is set, from
Siegmund's approximation of the in-control run length, for the margin ``a`` alone: whatever the
reference's offset up to three standard errors, the whole set of charts false-alarms at most
about once per ``false_alarm_rows`` rows.

All of it is vectorised over the rows of a batch: the chart is ``C_t - min(-S_0, min_{s<=t} C_s)``
with ``C`` the cumulative sum of ``x - k``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from contracts.drift import SequentialAlarm
from services.drift_detector.encoding import FeatureBatch
from services.drift_detector.profiles import NumericReference
from services.drift_detector.stats import place

__all__ = ["CusumState", "SequentialDetector", "SequentialPolicy", "cusum_threshold"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SequentialPolicy:
    """Allowance and false-alarm budget of the sequential mode."""

    allowance: float = 0.1
    """Margin (in sd) above the reference's own uncertainty, 3 / sqrt(reference rows), that a
    per-row shift must exceed to accumulate."""
    false_alarm_rows: float = 1_000_000.0
    """Expected rows between two false alarms of the whole set of charts."""
    regularisation: float = 1e-3

    def __post_init__(self) -> None:
        if not self.allowance > 0:
            raise ValueError("allowance must be positive")
        if not self.false_alarm_rows >= 100:
            raise ValueError("false_alarm_rows must be at least 100")


def cusum_threshold(allowance: float, run_length: float) -> float:
    """Return the threshold h whose in-control average run length is ``run_length``.

    Notes
    -----
    Siegmund's approximation for a one-sided CUSUM on N(0, 1) increments with allowance
    :math:`k`:

    .. math:: ARL_0 \\approx \\frac{e^{2kb} - 2kb - 1}{2k^2}, \\qquad b = h + 1.166.

    Examples
    --------
    >>> h = cusum_threshold(0.5, 500.0)
    >>> round(h, 2)
    4.38
    """
    if not allowance > 0 or not run_length > 1:
        raise ValueError("allowance must be positive and run_length above 1")

    def run_length_at(h: float) -> float:
        b = 2 * allowance * (h + 1.166)
        return (math.expm1(b) - b) / (2 * allowance**2)

    low, high = 0.0, 1.0
    while run_length_at(high) < run_length:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        if run_length_at(middle) < run_length:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True, eq=False)
class CusumState:
    """The charts' current values and the rows they accumulated since the last reset."""

    sums: FloatArray
    rows: int = 0


class SequentialDetector:
    """CUSUM charts over one model version's numeric features."""

    def __init__(self, reference: NumericReference, policy: SequentialPolicy) -> None:
        self.reference = reference
        self.policy = policy
        k = len(reference.names)
        smallest = int(reference.counts.min()) if k else 0
        self.allowance = policy.allowance + 3.0 / math.sqrt(max(smallest, 1))
        self.threshold = cusum_threshold(policy.allowance, policy.false_alarm_rows * 4 * max(k, 1))
        self._usable = (reference.score_std > 0) & (reference.counts >= 2)
        correlation = reference.correlation
        correlation = (1 - policy.regularisation) * correlation + policy.regularisation * np.eye(k)
        precision = np.asarray(np.linalg.inv(correlation), dtype=np.float64) if k else np.eye(0)
        self._precision = precision
        self._scale = np.sqrt(np.diag(precision)) if k else np.ones(0)

    def start(self) -> CusumState:
        """Return charts at zero."""
        return CusumState(sums=np.zeros(4 * len(self.reference.names)))

    def update(
        self, state: CusumState, batch: FeatureBatch
    ) -> tuple[CusumState, SequentialAlarm | None, int | None]:
        """Run the charts over a batch of rows.

        Returns the new state and, at the first row whose charts cross the threshold, the alarm
        and the number of the batch's rows up to and including that row; the charts restart at
        zero after an alarm, and the rows after it are not charted (the caller feeds them again
        once it has acted on the alarm).
        """
        k = len(self.reference.names)
        if k == 0 or batch.rows == 0:
            return state, None, None
        z = self._standard_scores(batch)
        conditional = (z @ self._precision) / self._scale
        increments = np.concatenate([z, -z, conditional, -conditional], axis=1) - self.allowance
        cumulative = np.cumsum(increments, axis=0)
        floor = np.minimum(np.minimum.accumulate(cumulative, axis=0), -state.sums)
        charts = cumulative - floor
        crossed = np.flatnonzero((charts > self.threshold).any(axis=1))
        if crossed.size == 0:
            return CusumState(sums=charts[-1].copy(), rows=state.rows + batch.rows), None, None
        row = int(crossed[0])
        at_alarm = charts[row]
        over = np.flatnonzero(at_alarm > self.threshold)
        ranked = over[np.argsort(-at_alarm[over])]
        features: list[str] = []
        for index in ranked.tolist():
            name = self.reference.names[index % k]
            if name not in features:
                features.append(name)
        alarm = SequentialAlarm(
            statistic=float(at_alarm.max()),
            threshold=self.threshold,
            allowance=self.allowance,
            features=features,
            rows=state.rows + row + 1,
        )
        return self.start(), alarm, row + 1

    def _standard_scores(self, batch: FeatureBatch) -> FloatArray:
        """Each row's reference normal scores, standardised; 0 (no evidence) where missing."""
        reference = self.reference
        placement = place(reference.sorted, np.ascontiguousarray(batch.numeric.T), keep_rows=True)
        assert placement.rows is not None
        columns, positions = np.nonzero(placement.valid)
        rank = placement.below[columns, positions] + placement.at_or_below[columns, positions]
        rank = np.minimum(rank, reference.score_lookup.shape[1] - 1)
        scores = np.zeros((batch.rows, len(reference.names)))
        scores[placement.rows[columns, positions], columns] = reference.score_lookup[columns, rank]
        with np.errstate(invalid="ignore", divide="ignore"):
            standard = (scores - reference.score_mean) / reference.score_std
        missing = np.isnan(batch.numeric) | ~self._usable
        standard[missing] = 0.0
        result: FloatArray = standard
        return result
