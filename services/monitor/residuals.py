"""Residual drift: has the distribution of a regressor's errors changed since it went live?

::

    first N labelled outcomes of a version ──▶ reference residuals (truth - prediction)
    each closed window's residuals ──▶ KS two-sample test against the reference
                                       + effect floor (Wasserstein / reference sd)
                                   ──▶ episode (consecutive_windows) ──▶ residual_drift alert

The windowed ``mae`` and ``rmse`` catch errors that grow past a threshold; this catches errors
that change shape first: a bias (every prediction 20 % low), a spread that widens on part of the
range, while the mean error may still look acceptable.

Kolmogorov-Smirnov rather than Cramér-von Mises: a regressor's truths are often whole numbers and
a tree's predictions take few values, so residuals tie, and scipy's mid-rank CvM inflates its
statistic with ties (ADR 0008: p < 1e-7 for two samples of the same counts) where KS only becomes
conservative. A significant test alone is not enough: a window of thousands of labels makes a
negligible change significant, so a window drifts only when the Wasserstein distance between the
residuals reaches :data:`EFFECT_FLOOR` reference standard deviations as well. Pure: no I/O.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import JsonValue
from scipy import stats

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity
from services.monitor.thresholds import Transition, TransitionKind

__all__ = [
    "ALPHA",
    "EFFECT_FLOOR",
    "SUBJECT",
    "ResidualReference",
    "ResidualTest",
    "compare_residuals",
    "residual",
    "residual_alert",
]

ALPHA = 0.01
"""A window's KS p-value must be below this to count as drifted (with the effect floor)."""
EFFECT_FLOOR = 0.1
"""Wasserstein distance, in reference standard deviations, a drifted window must reach."""
SUBJECT = "residuals"
"""Subject of the alert's fingerprint."""


def residual(y_true: float, y_pred: float) -> float | None:
    """Return truth - prediction, or ``None`` when it overflows (two numbers near the float
    limit of opposite signs): such an outcome is left out of the test rather than poisoning it.

    >>> residual(151.0, 120.5), residual(1e308, -1e308)
    (30.5, None)
    """
    value = y_true - y_pred
    return value if math.isfinite(value) else None


@dataclass
class ResidualReference:
    """A version's reference residuals: its first ``rows`` labelled outcomes.

    ``overlapping`` names the variants whose open window holds outcomes that went into the
    reference: that window is not judged (it would be tested partly against itself), the next
    one is.
    """

    rows: int
    residuals: list[float] = field(default_factory=list)
    overlapping: set[str] = field(default_factory=set)

    @property
    def full(self) -> bool:
        return len(self.residuals) >= self.rows

    def add(self, value: float, variant: str) -> bool:
        """Take a residual while gathering; return whether the reference changed."""
        if self.full:
            return False
        self.residuals.append(value)
        self.overlapping.add(variant)
        return True

    def judges(self, variant: str) -> bool:
        """Whether a window of ``variant`` closing now can be judged against this reference
        (it is full and the window holds none of its rows)."""
        return self.full and variant not in self.overlapping

    def window_closed(self, variant: str) -> bool:
        """Forget that a variant's window overlapped; return whether that changed anything."""
        if variant in self.overlapping and self.full:
            self.overlapping.discard(variant)
            return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "residuals": self.residuals,
            "overlapping": sorted(self.overlapping),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResidualReference:
        return cls(
            rows=int(data["rows"]),
            residuals=[float(x) for x in data["residuals"]],
            overlapping={str(v) for v in data.get("overlapping", [])},
        )


@dataclass(frozen=True)
class ResidualTest:
    """One window's residuals against the reference: the test and the effect size."""

    statistic: float
    p_value: float
    effect_size: float
    """Wasserstein distance between the two samples over the reference's standard deviation
    (over 1, the target's unit, when every reference residual is equal)."""
    reference_rows: int
    window_rows: int
    reference_median: float | None
    window_median: float | None
    drifted: bool

    def evidence(self) -> dict[str, JsonValue]:
        return {
            "test": "ks_2samp",
            "statistic": round(self.statistic, 6),
            "p_value": self.p_value,
            "alpha": ALPHA,
            "effect_size": round(self.effect_size, 6),
            "effect_measure": "wasserstein / reference sd",
            "effect_floor": EFFECT_FLOOR,
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "reference_median_residual": self.reference_median,
            "window_median_residual": self.window_median,
            "drifted": self.drifted,
        }


def compare_residuals(reference: Sequence[float], window: Sequence[float]) -> ResidualTest | None:
    """Test a window's residuals against the reference; ``None`` with fewer than two finite
    residuals on either side.

    Both samples are divided by their largest magnitude first, which changes neither the KS test
    nor the Wasserstein distance in standard deviations, so residuals near the float limit give
    finite figures instead of an overflowing variance.

    >>> rng = np.random.default_rng(0)
    >>> ref = list(rng.normal(0, 40, 300))
    >>> compare_residuals(ref, list(rng.normal(0, 40, 200))).drifted
    False
    >>> compare_residuals(ref, list(rng.normal(30, 40, 200))).drifted
    True
    """
    a = np.asarray(reference, dtype=float)
    b = np.asarray(window, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:  # Smirnov's formula needs an effective size of one
        return None
    magnitude = float(max(np.max(np.abs(a)), np.max(np.abs(b))))
    scale = magnitude if magnitude > 0 else 1.0
    a_unit, b_unit = a / scale, b / scale
    # The asymptotic p-value: windows are judged on at least ``min_labelled`` labels against
    # hundreds of reference rows, and the exact method can fail on ties (it then falls back
    # with a warning anyway).
    ks = stats.ks_2samp(a_unit, b_unit, method="asymp")
    spread = float(np.std(a_unit))
    distance = float(stats.wasserstein_distance(a_unit, b_unit))
    # A reference without spread (every residual equal) is measured in the target's unit.
    effect = min(distance / spread if spread > 0 else distance * scale, sys.float_info.max)
    statistic, p_value = float(ks.statistic), float(ks.pvalue)
    return ResidualTest(
        statistic=statistic,
        p_value=p_value,
        effect_size=effect,
        reference_rows=int(a.size),
        window_rows=int(b.size),
        reference_median=_finite(float(np.median(a_unit)) * scale),
        window_median=_finite(float(np.median(b_unit)) * scale),
        drifted=p_value < ALPHA and effect >= EFFECT_FLOOR,
    )


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def residual_alert(
    *,
    model: str,
    version: int,
    variant: str,
    fingerprint: str,
    transition: Transition,
    test: ResidualTest,
    window: dict[str, JsonValue],
    producer: str,
    now: Any,
) -> AlertRaised | AlertRecovered:
    """The ``residual_drift`` alert (or its recovery) a transition of the episode makes."""
    effects = [None if v is None else round(v, 4) for v in transition.values]
    shown = ", ".join("n/a" if v is None else f"{v:.3g}" for v in effects)
    evidence: dict[str, JsonValue] = {
        **test.evidence(),
        "variant": variant,
        "windows": len(effects),
        "effect_sizes": list(effects),
        "window": window,
    }
    name = f"residuals of {model} v{version} ({variant})"
    medians = f"median residual {test.window_median} vs {test.reference_median} in the reference"
    if transition.kind is TransitionKind.RAISED:
        return AlertRaised(
            producer=producer,
            occurred_at=now,
            model=model,
            model_version=version,
            kind=AlertKind.RESIDUAL_DRIFT,
            severity=Severity.WARNING,
            fingerprint=fingerprint,
            summary=(
                f"{name} drifted from the version's first {test.reference_rows} labelled "
                f"outcomes for {len(effects)} windows (effect sizes {shown} reference sd; "
                f"{medians}; "
                f"KS p={test.p_value:.3g})"
            ),
            evidence=evidence,
        )
    return AlertRecovered(
        producer=producer,
        occurred_at=now,
        model=model,
        model_version=version,
        kind=AlertKind.RESIDUAL_DRIFT,
        fingerprint=fingerprint,
        summary=f"{name} match the reference again for {len(effects)} windows ({medians})",
        evidence=evidence,
    )
