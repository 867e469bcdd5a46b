"""The detector: one window of a model version's data against its reference profile.

``evaluate(profile, window, policy)`` is pure. It runs every check on every feature at once (one
vector per check, no loop over features), corrects the whole family of p-values, and calls a check
*fired* only when it is significant **and** its effect reaches the floor of its measure, so that a
huge window cannot flag a trivial shift and a small one cannot flag noise::

    numeric feature      distribution   Cramer-von Mises (or KS)     Wasserstein / reference std
                         missing_rate   chi-square, 2 x 2            |change in missing share|
    categorical feature  distribution   chi-square over the levels   Jensen-Shannon distance
                         missing_rate   chi-square, 2 x 2            |change in missing share|
                         unseen_levels  binomial vs Good-Turing      share of rows
    numeric features     joint_location Hotelling T^2 on the mean    Mahalanobis distance
                                        reference normal scores
      then, if it fired  location       the fewest features whose own shifts explain it
    prediction score     distribution, in a family of its own

A feature drifted when one of its checks fired; the window drifted when a feature did or the
joint test fired. Drivers are the drifted features, strongest evidence first. The per-feature
report objects are built only when read (:attr:`DriftReport.features`), and so are the figures
only they show (KS beside Cramer-von Mises, PSI) and the effect sizes of checks nowhere significant
(an effect size only decides whether a significant check fires): a caller that only needs the
verdict pays for the tests that decide it alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import TypeAdapter
from scipy import special

from contracts.drift import Correction, DriftCheck, FeatureDrift, FeatureKind, Histogram
from services.drift_detector.correction import adjust_p_values
from services.drift_detector.encoding import FeatureBatch
from services.drift_detector.lookup import take_in_rows
from services.drift_detector.profiles import (
    PSI_BINS,
    CategoricalReference,
    NumericReference,
    ReferenceProfile,
)
from services.drift_detector.stats import (
    Placement,
    chi_square_homogeneity,
    cramervonmises,
    jensen_shannon,
    ks_p_value,
    ks_statistic,
    missing_rate_change,
    place,
    population_stability_index,
    unseen_level_p_value,
    wasserstein,
)

__all__ = ["DriftPolicy", "DriftReport", "NumericTest", "WindowError", "evaluate"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
T = TypeVar("T")

WASSERSTEIN_MEASURE = "wasserstein / reference std"
JENSEN_SHANNON_MEASURE = "jensen-shannon distance"
MISSING_MEASURE = "absolute change in missing share"
UNSEEN_MEASURE = "share of rows with unseen levels"
MAHALANOBIS_MEASURE = "mahalanobis distance of mean normal scores"
LOCATION_MEASURE = "mean normal-score shift (sd)"

_FEATURES = TypeAdapter(list[FeatureDrift])
"""Validates a compact report's features in one call into pydantic-core, not one per feature."""


class NumericTest(StrEnum):
    """Test whose p-value decides a numeric feature's distribution check."""

    CRAMERVONMISES = "cramervonmises"
    KS = "ks"


class WindowError(ValueError):
    """A window that cannot be tested (empty, or smaller than the policy's minimum)."""


@dataclass(frozen=True)
class DriftPolicy:
    """Significance, correction and effect-size floors of the detector (ADR 0008 explains them)."""

    alpha: float = 0.01
    correction: Correction = Correction.BONFERRONI
    numeric_test: NumericTest = NumericTest.CRAMERVONMISES
    numeric_effect_floor: float = 0.05
    categorical_effect_floor: float = 0.05
    missing_rate_floor: float = 0.01
    unseen_level_floor: float = 0.005
    joint_test: bool = True
    joint_effect_floor: float = 0.05
    regularisation: float = 1e-3
    min_rows: int = 30

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), not {self.alpha}")
        floors = (
            self.numeric_effect_floor,
            self.categorical_effect_floor,
            self.missing_rate_floor,
            self.unseen_level_floor,
            self.joint_effect_floor,
        )
        if min(floors) < 0:
            raise ValueError("effect-size floors must not be negative")
        if not 0 <= self.regularisation < 1:
            raise ValueError("regularisation must lie in [0, 1)")
        if self.min_rows < 2:
            raise ValueError("min_rows must be at least 2")


@dataclass(frozen=True, eq=False)
class _Check:
    """One check over a set of features: one entry per feature; NaN where it does not apply.

    Entries with a p-value join the window's family; ``adjusted`` and ``fired`` are set after the
    correction.
    """

    check: str
    test: str
    statistic: FloatArray
    p_value: FloatArray
    effect_of: Callable[[], FloatArray]
    """The effect sizes, computed on first use (see :func:`_deferred`)."""
    measure: str
    floor: float
    adjusted: FloatArray = field(default_factory=lambda: np.empty(0))
    fired: BoolArray = field(default_factory=lambda: np.empty(0, dtype=np.bool_))

    @property
    def effect(self) -> FloatArray:
        return self.effect_of()

    def settled(self, adjusted: FloatArray, alpha: float) -> _Check:
        with np.errstate(invalid="ignore"):
            fired = adjusted <= alpha
            if fired.any():  # else the effect sizes decide nothing (and are left for the report)
                fired &= self.effect >= self.floor
        # Built directly: dataclasses.replace costs several times more on the hot path.
        return _Check(
            check=self.check,
            test=self.test,
            statistic=self.statistic,
            p_value=self.p_value,
            effect_of=self.effect_of,
            measure=self.measure,
            floor=self.floor,
            adjusted=adjusted,
            fired=fired,
        )

    def entry(self, i: int) -> DriftCheck:
        return DriftCheck(
            check=self.check,
            test=self.test,
            statistic=_finite(self.statistic[i]),
            p_value=_finite(self.p_value[i]),
            adjusted_p_value=_finite(self.adjusted[i]),
            effect_size=_finite(self.effect[i]),
            effect_measure=self.measure,
            effect_floor=self.floor,
            fired=bool(self.fired[i]),
        )


@dataclass(frozen=True, eq=False)
class _Evidence:
    """All checks of one kind of feature (numeric or categorical), vectorised over features."""

    kind: FeatureKind
    names: tuple[str, ...]
    checks: tuple[_Check, ...]
    psi_of: Callable[[], FloatArray]
    missing_reference: FloatArray
    missing_current: FloatArray
    statistics_of: Callable[[], dict[str, FloatArray]]
    """Figures the report shows beside the checks, computed on first use."""
    new_categories: tuple[list[str], ...] = ()
    bins_of: Callable[[], tuple[FloatArray, FloatArray, FloatArray]] | None = None
    """Numeric features: (edges, reference shares, window shares) per feature, NaN-free rows
    where the feature had values on both sides (others all NaN)."""

    @cached_property
    def fired(self) -> BoolArray:
        """Whether any check fired, per feature (read several times per window: kept)."""
        result: BoolArray = np.logical_or.reduce([c.fired for c in self.checks])
        return result

    def with_checks(self, checks: tuple[_Check, ...]) -> _Evidence:
        # Built directly: dataclasses.replace costs several times more on the hot path.
        return _Evidence(
            kind=self.kind,
            names=self.names,
            checks=checks,
            psi_of=self.psi_of,
            missing_reference=self.missing_reference,
            missing_current=self.missing_current,
            statistics_of=self.statistics_of,
            new_categories=self.new_categories,
            bins_of=self.bins_of,
        )

    def feature(self, i: int) -> FeatureDrift:
        main = self.checks[0]
        reasons = [c.check for c in self.checks if c.fired[i]]
        return FeatureDrift(
            feature=self.names[i],
            kind=self.kind,
            test=main.test,
            statistic=_finite(main.statistic[i]),
            p_value=_finite(main.p_value[i]),
            adjusted_p_value=_finite(main.adjusted[i]),
            effect_size=_finite(main.effect[i]),
            effect_measure=main.measure,
            psi=_finite(self.psi_of()[i]),
            missing_rate_reference=float(self.missing_reference[i]),
            missing_rate_current=float(self.missing_current[i]),
            new_categories=self.new_categories[i] if self.new_categories else [],
            drifted=bool(reasons),
            reasons=reasons,
            checks=[c.entry(i) for c in self.checks],
            statistics={name: _finite(values[i]) for name, values in self.statistics_of().items()},
            bins=self._bins(i),
        )

    def compact(self, alpha: float) -> list[FeatureDrift]:
        """Every feature's decision figures only: the main check's statistic and p-values, its
        effect size where the check was significant (there the effect decided whether it fired;
        elsewhere it is not computed), the missing shares, the verdict and its reasons.

        Non-finite numbers become ``None`` in one pass over each array; the objects are still
        validated, all in one call (pydantic-core checks a flat ``FeatureDrift`` in about 2 µs,
        less than ``model_construct``'s Python costs, and one call for the list saves a Python
        ``__init__`` per feature), so a compact report keeps every guarantee of the contract.
        """
        main = self.checks[0]
        with np.errstate(invalid="ignore"):
            significant = main.adjusted <= alpha
        effect = (
            _finite_list(np.where(significant, main.effect, np.nan))
            if significant.any()
            else [None] * len(self.names)
        )
        statistic = _finite_list(main.statistic)
        p_value = _finite_list(main.p_value)
        adjusted = _finite_list(main.adjusted)
        missing_reference = self.missing_reference.tolist()
        missing_current = self.missing_current.tolist()
        fired = self.fired.tolist()
        return _FEATURES.validate_python(
            [
                {
                    "feature": name,
                    "kind": self.kind,
                    "test": main.test,
                    "statistic": statistic[i],
                    "p_value": p_value[i],
                    "adjusted_p_value": adjusted[i],
                    "effect_size": effect[i],
                    "effect_measure": main.measure,
                    "psi": None,
                    "missing_rate_reference": missing_reference[i],
                    "missing_rate_current": missing_current[i],
                    "new_categories": self.new_categories[i] if self.new_categories else [],
                    "drifted": fired[i],
                    "reasons": [c.check for c in self.checks if c.fired[i]] if fired[i] else [],
                }
                for i, name in enumerate(self.names)
            ]
        )

    def _bins(self, i: int) -> Histogram | None:
        if self.bins_of is None:
            return None
        edges, reference, current = (values[i] for values in self.bins_of())
        if np.isnan(edges).any() or np.isnan(current).any():
            return None
        return Histogram(
            edges=[float(v) for v in edges],
            reference=[round(float(v), 6) for v in reference],
            current=[round(float(v), 6) for v in current],
        )


class DriftReport:
    """The detector's verdict on one window, with the evidence for every feature."""

    def __init__(
        self,
        *,
        profile: ReferenceProfile,
        rows: int,
        policy: DriftPolicy,
        evidence: tuple[_Evidence, ...],
        joint: _Check | None,
        hypotheses: int,
        score: _Evidence | None,
    ) -> None:
        self.rows = rows
        self.policy = policy
        self.hypotheses = hypotheses
        self._order = profile.feature_order
        self._evidence = evidence
        self._joint = joint
        self._score = score
        fired = [(e, int(i)) for e in evidence for i in np.flatnonzero(e.fired)]
        self.drivers: tuple[str, ...] = tuple(
            e.names[i] for e, i in sorted(fired, key=lambda item: _strength(*item))
        )
        joint_fired = joint is not None and bool(joint.fired[0])
        self.drifted: bool = bool(fired) or joint_fired

    @cached_property
    def features(self) -> tuple[FeatureDrift, ...]:
        """Evidence for every feature, in the profile's feature order."""
        by_name = {e.names[i]: e.feature(i) for e in self._evidence for i in range(len(e.names))}
        return tuple(by_name[name] for name in self._order)

    @cached_property
    def compact_features(self) -> tuple[FeatureDrift, ...]:
        """Every feature's decision figures only (see :meth:`_Evidence.compact`), in the
        profile's feature order: what a clean window's report carries."""
        alpha = self.policy.alpha
        by_name = {f.feature: f for e in self._evidence for f in e.compact(alpha)}
        return tuple(by_name[name] for name in self._order)

    @cached_property
    def compact_score(self) -> FeatureDrift | None:
        """The score's decision figures only, when the profile and the window have scores."""
        return None if self._score is None else self._score.compact(self.policy.alpha)[0]

    @cached_property
    def joint(self) -> DriftCheck | None:
        """The joint test of all numeric features, when it ran."""
        return None if self._joint is None else self._joint.entry(0)

    @cached_property
    def score(self) -> FeatureDrift | None:
        """Prediction (score) drift, when the profile and the window have scores."""
        return None if self._score is None else self._score.feature(0)

    @property
    def score_drifted(self) -> bool:
        """Whether the prediction score drifted."""
        return self._score is not None and bool(self._score.fired[0])


def evaluate(
    profile: ReferenceProfile, window: FeatureBatch, policy: DriftPolicy | None = None
) -> DriftReport:
    """Test one window against the profile; raise :class:`WindowError` if it cannot be tested."""
    policy = policy or DriftPolicy()
    rows = window.rows
    if rows == 0:
        raise WindowError("the window is empty: there is nothing to test")
    if rows < policy.min_rows:
        raise WindowError(
            f"the window has {rows} rows; the policy needs at least {policy.min_rows}"
        )
    shapes = (window.numeric.shape, window.categorical.shape)
    if shapes != ((rows, len(profile.numeric.names)), (rows, len(profile.categorical.names))):
        raise WindowError(
            f"the window's columns {shapes} do not match the profile of "
            f"{profile.model} v{profile.version}"
        )
    evidence: list[_Evidence] = []
    joint: _Check | None = None
    explained: _Explained | None = None
    location: _Location | None = None
    if profile.numeric.names:
        numeric, location = _numeric(profile.numeric, window.numeric, policy)
        evidence.append(numeric)
        joint, explained = _joint(profile.numeric, location, policy)
    if profile.categorical.names:
        evidence.append(_categorical(profile.categorical, window, policy))

    checks = [c for e in evidence for c in e.checks] + ([joint] if joint is not None else [])
    settled, hypotheses = _settle(checks, policy)
    position = 0
    for index, e in enumerate(evidence):
        count = len(e.checks)
        evidence[index] = e.with_checks(tuple(settled[position : position + count]))
        position += count
    if joint is not None and location is not None:
        joint = settled[-1]
        evidence[0] = _with_location(evidence[0], joint, explained, location, policy, hypotheses)

    return DriftReport(
        profile=profile,
        rows=rows,
        policy=policy,
        evidence=tuple(evidence),
        joint=joint,
        hypotheses=hypotheses,
        score=_score(profile, window, policy),
    )


def _settle(checks: list[_Check], policy: DriftPolicy) -> tuple[list[_Check], int]:
    """Correct the p-values of every tested entry of every check as one family.

    All checks' p-values are masked and corrected as one array, and each check reads its part
    back as a slice: the family and its order are those of the checks one after the other, as
    before, in a few numpy calls rather than a few per check.
    """
    every = np.concatenate([c.p_value for c in checks])
    tested = ~np.isnan(every)
    p_values = every[tested]
    adjusted = np.full(every.shape, np.nan)
    adjusted[tested] = adjust_p_values(p_values, policy.correction)
    settled = []
    position = 0
    for check in checks:
        size = check.p_value.size
        settled.append(check.settled(adjusted[position : position + size], policy.alpha))
        position += size
    return settled, int(p_values.size)


def _strength(evidence: _Evidence, i: int) -> tuple[float, float]:
    """Sort key of a drifted feature: smallest adjusted p-value, then largest effect / floor."""
    fired = [c for c in evidence.checks if c.fired[i]]
    smallest = min(float(c.adjusted[i]) for c in fired)
    ratio = max(float(c.effect[i]) / c.floor if c.floor > 0 else math.inf for c in fired)
    return smallest, -ratio


def _deferred(compute: Callable[[], T]) -> Callable[[], T]:
    """``compute``, run on the first call only: for figures the verdict may not need.

    (``functools.cache`` would do, but builds a wrapper that costs more than a small window's
    statistics.)
    """
    kept: list[T] = []

    def value() -> T:
        if not kept:
            kept.append(compute())
        return kept[0]

    return value


def _given(value: T) -> Callable[[], T]:
    """A figure already computed, where a deferred one may stand."""
    return lambda: value


def _finite(value: float | np.floating | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _finite_list(values: FloatArray) -> list[float | None]:
    """``values`` as Python floats, non-finite ones as ``None``: one check for the array."""
    numbers: list[float | None] = values.astype(np.float64).tolist()
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        numbers[i] = None
    return numbers


def _missing_check(
    reference_missing: NDArray[np.int64],
    reference_rows: int,
    current_missing: NDArray[np.int64],
    rows: int,
    reference_share: FloatArray,
    current_share: FloatArray,
    policy: DriftPolicy,
) -> _Check:
    k = len(reference_missing)
    statistic = np.full(k, np.nan)
    p_value = np.full(k, np.nan)
    # Nothing missing on either side leaves nothing to test (chi-square gives dof 0): only the
    # other columns are tested, usually none.
    tested = np.flatnonzero((reference_missing > 0) | (current_missing > 0))
    if tested.size:
        test = missing_rate_change(
            reference_missing[tested],
            np.full(tested.size, reference_rows),
            current_missing[tested],
            np.full(tested.size, rows),
        )
        testable = test.dof > 0
        statistic[tested] = np.where(testable, test.statistic, np.nan)
        p_value[tested] = np.where(testable, test.p_value, np.nan)
    return _Check(
        check="missing_rate",
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        effect_of=_given(np.abs(current_share - reference_share)),
        measure=MISSING_MEASURE,
        floor=policy.missing_rate_floor,
    )


def _numeric(
    reference: NumericReference, values: FloatArray, policy: DriftPolicy
) -> tuple[_Evidence, _Location]:
    """Numeric checks; also returns each feature's mean normal-score shift (for the joint test)."""
    rows = values.shape[0]
    placement = place(reference.sorted, values.T)
    n, m = placement.reference_count, placement.current_count
    ks = _deferred(lambda: ks_statistic(placement))
    ks_p = _deferred(lambda: ks_p_value(ks(), n, m))
    cvm = _deferred(lambda: cramervonmises(placement))
    distance = _deferred(lambda: wasserstein(placement))
    scale = reference.effect_scale
    shift = _normal_score_shift(reference, placement)

    use_ks = policy.numeric_test is NumericTest.KS
    reference_share = reference.missing_share
    current_share = (rows - m) / rows
    distribution = _Check(
        check="distribution",
        test=policy.numeric_test.value,
        statistic=ks() if use_ks else cvm().statistic,
        p_value=ks_p() if use_ks else cvm().p_value,
        effect_of=_deferred(lambda: distance() / scale),
        measure=WASSERSTEIN_MEASURE,
        floor=policy.numeric_effect_floor,
    )
    missing = _missing_check(
        reference.missing, reference.rows, rows - m, rows, reference_share, current_share, policy
    )
    evidence = _Evidence(
        kind=FeatureKind.NUMERIC,
        names=reference.names,
        checks=(distribution, missing),
        psi_of=_deferred(lambda: np.where(m > 0, _psi(reference, placement), np.nan)),
        bins_of=_deferred(lambda: _histograms(reference, placement)),
        missing_reference=reference_share,
        missing_current=current_share,
        statistics_of=_deferred(
            lambda: {
                "ks": ks(),
                "ks_p_value": ks_p(),
                "cramervonmises": cvm().statistic,
                "cramervonmises_p_value": cvm().p_value,
                "wasserstein": distance(),
                "normal_score_shift": shift,
            }
        ),
    )
    return evidence, _Location(shift=shift, current_count=m)


def _current_bins(reference: NumericReference, placement: Placement) -> FloatArray:
    """Window values per PSI bin (the reference's deciles) of every numeric feature: a value's
    bin depends only on how many reference values lie below it, which the placement says."""
    k = len(reference.names)
    below = np.minimum(placement.below, reference.bin_lookup.shape[1] - 1)
    (bins,) = take_in_rows(below, reference.bin_lookup)
    bins += (np.arange(k) * PSI_BINS)[:, None]
    weights = placement.valid.ravel()
    counts = np.bincount(bins.ravel(), weights=weights, minlength=k * PSI_BINS)
    return counts.astype(np.float64).reshape(k, PSI_BINS)


def _psi(reference: NumericReference, placement: Placement) -> FloatArray:
    """PSI of every numeric feature over the reference's deciles."""
    return population_stability_index(reference.bin_counts, _current_bins(reference, placement))


def _histograms(
    reference: NumericReference, placement: Placement
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per feature: decile edges of the reference (with its ends), and the reference's and the
    window's share of values per bin, for the report's picture. NaN rows where a side has no
    values."""
    k, n = reference.sorted_values.shape
    counts = reference.counts
    positions = np.ceil(np.arange(1, PSI_BINS)[None, :] * counts[:, None] / PSI_BINS) - 1
    inner = np.clip(positions, 0, np.maximum(counts[:, None] - 1, 0)).astype(np.int64)
    last = np.maximum(counts - 1, 0)[:, None]
    index = np.concatenate([np.zeros((k, 1), dtype=np.int64), inner, last], axis=1)
    edges = np.take_along_axis(reference.sorted_values, np.minimum(index, max(n - 1, 0)), axis=1)
    edges = np.where(counts[:, None] > 0, edges, np.nan)
    current = _current_bins(reference, placement)
    with np.errstate(invalid="ignore", divide="ignore"):
        reference_shares = reference.bin_counts / reference.bin_counts.sum(axis=1, keepdims=True)
        current_shares = current / current.sum(axis=1, keepdims=True)
    return edges, reference_shares, current_shares


def _normal_score_shift(reference: NumericReference, placement: Placement) -> FloatArray:
    """Each feature's mean normal score in the window, less the reference's, in reference sd.

    A window value's normal score depends only on how many reference values lie below / at or
    below it, so on the reference group the placement found for it and on whether it equals
    that group's value: the reference keeps the score of each case per group
    (:attr:`NumericReference.group_scores`).
    """
    between, equal = reference.group_scores
    normal = between.take(placement.group)
    tied = placement.tied
    if tied.size:
        normal.ravel()[tied] = equal.take(placement.group.ravel()[tied])
    sums = placement.where_valid(normal).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shift: FloatArray = (sums / placement.current_count - reference.score_mean) / (
            reference.score_std
        )
    return shift


def _categorical(
    reference: CategoricalReference, window: FeatureBatch, policy: DriftPolicy
) -> _Evidence:
    k = len(reference.names)
    rows = window.rows
    width = reference.counts.shape[1] + 2
    cells = (window.categorical + 2 + np.arange(k) * width).ravel()  # UNSEEN 0, MISSING 1
    table = np.bincount(cells, minlength=k * width).reshape(k, width)
    unseen, missing_now, levels = table[:, 0], table[:, 1], table[:, 2:]
    chi = chi_square_homogeneity(reference.counts, levels)
    psi = population_stability_index(
        np.column_stack([reference.counts, np.zeros(k, dtype=np.int64)]),
        np.column_stack([levels, unseen]),
    )
    present = rows - missing_now
    reference_share = reference.missing / max(reference.rows, 1)
    current_share = missing_now / rows
    with np.errstate(invalid="ignore", divide="ignore"):
        unseen_share = unseen / present
    distribution = _Check(
        check="distribution",
        test="chi2",
        statistic=np.where(chi.dof > 0, chi.statistic, np.nan),
        p_value=np.where(chi.dof > 0, chi.p_value, np.nan),
        effect_of=_given(jensen_shannon(reference.counts, levels)),
        measure=JENSEN_SHANNON_MEASURE,
        floor=policy.categorical_effect_floor,
    )
    missing = _missing_check(
        reference.missing, reference.rows, missing_now, rows, reference_share, current_share, policy
    )
    unseen_levels = _Check(
        check="unseen_levels",
        test="binomial",
        statistic=unseen.astype(np.float64),
        p_value=np.where(
            present > 0, unseen_level_p_value(unseen, present, reference.unseen_rate), np.nan
        ),
        effect_of=_given(unseen_share),
        measure=UNSEEN_MEASURE,
        floor=policy.unseen_level_floor,
    )
    new_categories = tuple(
        [level for level, _ in counter.most_common()] for counter in window.unseen_counts()
    )
    return _Evidence(
        kind=FeatureKind.CATEGORICAL,
        names=reference.names,
        checks=(distribution, missing, unseen_levels),
        psi_of=_given(np.where(present > 0, psi, np.nan)),
        missing_reference=reference_share,
        missing_current=current_share,
        statistics_of=_given(
            {
                "chi2_dof": chi.dof.astype(np.float64),
                "jensen_shannon": distribution.effect,
                "unseen_rows": unseen.astype(np.float64),
                "unseen_null_rate": reference.unseen_rate,
            }
        ),
        new_categories=new_categories,
    )


@dataclass(frozen=True, eq=False)
class _Location:
    """Each numeric feature's mean normal-score shift in the window, in reference sd."""

    shift: FloatArray
    current_count: NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class _Explained:
    """What the joint test needs to attribute a joint shift to features."""

    usable: BoolArray
    z: FloatArray
    precision: FloatArray
    t_squared: float


def _joint(
    reference: NumericReference, location: _Location, policy: DriftPolicy
) -> tuple[_Check | None, _Explained | None]:
    """Hotelling's T^2 on the mean normal scores of all numeric features at once.

    Normal scores make every feature N(0, 1) under the reference whatever its shape, so a
    window's mean score vector is close to normal with the scores' correlation. Testing it jointly
    catches shifts that are small in each feature but large against their correlation (one
    feature moving alone, a subset of the population), which per-feature tests miss.
    """
    if not policy.joint_test:
        return None, None
    n = reference.counts
    current = location.current_count
    shift = location.shift
    usable = (n >= 2) & (current >= 2) & (reference.score_std > 0) & np.isfinite(shift)
    size = int(usable.sum())
    reference_rows = int(n[usable].min()) if size else 0
    if size == 0 or reference_rows <= size + 1:
        return None, None
    d = shift[usable]
    z = d / np.sqrt(1.0 / n[usable] + 1.0 / current[usable])
    precision = reference.score_precision(usable, policy.regularisation)
    t_squared = float(z @ precision @ z)
    f_value = t_squared * (reference_rows - size) / (size * (reference_rows - 1))
    joint = _Check(
        check="joint_location",
        test="hotelling",
        statistic=np.array([t_squared]),
        p_value=np.array([float(special.fdtrc(size, reference_rows - size, f_value))]),
        effect_of=_given(np.array([math.sqrt(max(float(d @ precision @ d), 0.0))])),
        measure=MAHALANOBIS_MEASURE,
        floor=policy.joint_effect_floor,
    )
    return joint, _Explained(usable=usable, z=z, precision=precision, t_squared=t_squared)


def _with_location(
    numeric: _Evidence,
    joint: _Check,
    explained: _Explained | None,
    location: _Location,
    policy: DriftPolicy,
    hypotheses: int,
) -> _Evidence:
    """Add the per-feature ``location`` check: which features explain a joint shift."""
    k = len(numeric.names)
    statistic = np.full(k, np.nan)
    p_value = np.full(k, np.nan)
    selected = np.zeros(k, dtype=np.bool_)
    if explained is not None:
        indices = np.flatnonzero(explained.usable)
        weighted = explained.precision @ explained.z
        single = weighted / np.sqrt(np.diag(explained.precision))
        statistic[indices] = single
        p_value[indices] = 2.0 * special.ndtr(-np.abs(single))
        if joint.fired[0]:
            chosen = _explaining_features(explained, policy.alpha / max(hypotheses, 1))
            selected[indices[chosen]] = True
    adjusted = np.minimum(1.0, p_value * int(np.sum(~np.isnan(p_value))))
    effect = np.abs(location.shift)
    with np.errstate(invalid="ignore"):
        fired = selected & (effect >= policy.joint_effect_floor)
    location_check = _Check(
        check="location",
        test="normal",
        statistic=statistic,
        p_value=p_value,
        effect_of=_given(effect),
        measure=LOCATION_MEASURE,
        floor=policy.joint_effect_floor,
        adjusted=adjusted,
        fired=fired,
    )
    return numeric.with_checks((*numeric.checks, location_check))


def _explaining_features(explained: _Explained, level: float) -> list[int]:
    """Forward selection of the fewest features whose own mean shifts explain T^2.

    If only the features in S moved, the expected score shift is zero outside S, and the part of
    T^2 they explain is :math:`w_S^T P_{SS}^{-1} w_S` with :math:`w = P z`; the rest is
    chi-square with k - |S| degrees of freedom. Add the feature explaining most until the rest
    is no longer significant at ``level``.
    """
    precision = explained.precision
    weighted = precision @ explained.z
    size = len(weighted)
    chosen: list[int] = []
    explained_so_far = 0.0
    while len(chosen) < size:
        if chosen:
            inverse = np.linalg.inv(precision[np.ix_(chosen, chosen)])
            across = precision[:, chosen] @ inverse
            numerator = (weighted - across @ weighted[chosen]) ** 2
            denominator = np.diag(precision) - np.sum(across * precision[:, chosen], axis=1)
        else:
            numerator = weighted**2
            denominator = np.diag(precision).copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = np.where(denominator > 1e-12, numerator / denominator, 0.0)
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        explained_so_far += float(gain[best])
        remaining = size - len(chosen)
        residual = max(explained.t_squared - explained_so_far, 0.0)
        if remaining == 0 or special.chdtrc(remaining, residual) > level:
            break
    return chosen


def _score(
    profile: ReferenceProfile, window: FeatureBatch, policy: DriftPolicy
) -> _Evidence | None:
    """Prediction drift: the window's scores against the reference scores, a family of one."""
    if profile.scores is None or window.scores is None or np.isnan(window.scores).all():
        return None
    evidence, _ = _numeric(profile.scores, window.scores.reshape(-1, 1), policy)
    distribution = evidence.checks[0]
    settled, _ = _settle([distribution], policy)
    return evidence.with_checks((settled[0],))
