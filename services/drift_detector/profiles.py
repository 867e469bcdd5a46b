"""Reference profiles: what every drift test needs to know about a model version's training data.

A profile is computed once per model version, from that version's training dataset, and stored;
windows are tested against it and never cause it to be recomputed. It holds, per numeric feature,
the sorted reference values (KS, Cramer-von Mises and Wasserstein read the reference distribution
function off them), decile bins for PSI, normal-score moments and their correlation matrix (the
joint test and the sequential mode); per categorical feature, the level counts and a Good-Turing
estimate of how often a never-seen level turns up by chance; and per feature the missing-value
count. The score reference is added to it in memory once the first live scores of the version
are in (ADR 0008); it is stored in the detector's database, not with the profile.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import special

from contracts.drift import FeatureKind
from services.drift_detector.stats import SortedReference, sorted_reference

__all__ = [
    "SCORE_FEATURE",
    "CategoricalReference",
    "FileProfileStore",
    "NumericReference",
    "ProfileError",
    "ProfileStore",
    "ReferenceProfile",
    "build_profile",
    "categorical_reference",
    "numeric_reference",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

SCORE_FEATURE = "__score__"
"""Name under which the prediction score is reported."""

PSI_BINS = 10
_FORMAT = 2


class ProfileError(ValueError):
    """The reference data cannot make a profile (no rows, a feature missing, a bad value)."""


@dataclass(frozen=True, eq=False)
class NumericReference:
    """Reference distribution of numeric columns, laid out one row per column."""

    names: tuple[str, ...]
    rows: int
    sorted_values: FloatArray
    """``(k, n)`` non-missing values of each column, ascending, NaN-padded on the right."""
    counts: IntArray
    """``(k,)`` non-missing values per column."""
    std: FloatArray
    """``(k,)`` standard deviation of each column (the unit of the effect size)."""
    bin_lookup: IntArray
    """``(k, n + 1)`` PSI bin of a value, indexed by how many reference values lie below it."""
    bin_counts: IntArray
    """``(k, PSI_BINS)`` reference values per PSI bin."""
    score_lookup: FloatArray
    """``(k, 2n + 1)`` normal score of a value, indexed by the number of reference values below
    it plus the number at or below it."""
    score_mean: FloatArray
    """``(k,)`` mean normal score of the reference values (about 0)."""
    score_std: FloatArray
    """``(k,)`` standard deviation of the reference normal scores (about 1)."""
    correlation: FloatArray
    """``(k, k)`` correlation of the reference normal scores."""

    @property
    def missing(self) -> IntArray:
        """Missing values per column."""
        result: IntArray = self.rows - self.counts
        return result

    @cached_property
    def sorted(self) -> SortedReference:
        """The values prepared for placing windows in them (derived once, not stored)."""
        return sorted_reference(self.sorted_values)

    @cached_property
    def effect_scale(self) -> FloatArray:
        """The unit of a numeric shift's effect size: the standard deviation, or for a constant
        column (no spread) its value's magnitude, at least 1. Derived once: every window
        divides by it."""
        constant = np.nan_to_num(self.sorted_values[:, 0]) if self.sorted_values.size else 0
        result: FloatArray = np.where(self.std > 0, self.std, np.maximum(np.abs(constant), 1.0))
        result.flags.writeable = False
        return result

    @cached_property
    def missing_share(self) -> FloatArray:
        """Share of missing values per column (derived once)."""
        result: FloatArray = self.missing / max(self.rows, 1)
        result.flags.writeable = False
        return result

    @cached_property
    def group_scores(self) -> tuple[FloatArray, FloatArray]:
        """Normal score of a window value by where :func:`~.stats.place` put it: ``(k * g,)``
        by the last reference group at or below the value, for a value between groups and for
        one equal to its group's value (its rank then counts the group's values once, not
        twice). Read with one ``take`` per window instead of building each value's rank."""
        at_or_below = self.sorted.group_at_or_below
        below = np.zeros_like(at_or_below)
        below[:, 1:] = at_or_below[:, :-1]
        top = self.score_lookup.shape[1] - 1
        between, equal = (
            np.take_along_axis(self.score_lookup, np.minimum(rank, top), axis=1).ravel()
            for rank in (2 * at_or_below, below + at_or_below)
        )
        between.flags.writeable = False
        equal.flags.writeable = False
        return between, equal

    def score_precision(self, usable: NDArray[np.bool_], regularisation: float) -> FloatArray:
        """Inverse of the regularised normal-score correlation of the ``usable`` columns.

        The joint test needs it for every window, and window after window the same columns are
        usable (usually all), so each inverse is kept (read-only) rather than redone.
        """
        key = (usable.tobytes(), regularisation)
        kept = self._precisions
        if key not in kept:
            if len(kept) >= _KEPT_PRECISIONS:
                kept.clear()
            size = int(usable.sum())
            correlation = self.correlation[np.ix_(usable, usable)]
            correlation = (1 - regularisation) * correlation + regularisation * np.eye(size)
            precision = np.asarray(np.linalg.inv(correlation), dtype=np.float64)
            precision.flags.writeable = False
            kept[key] = precision
        return kept[key]

    @cached_property
    def _precisions(self) -> dict[tuple[bytes, float], FloatArray]:
        return {}


_KEPT_PRECISIONS = 16
"""Inverses kept per profile (one per pattern of usable columns)."""


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """Reference level counts of categorical columns."""

    names: tuple[str, ...]
    rows: int
    levels: tuple[tuple[str, ...], ...]
    """Known levels of each column, sorted."""
    counts: IntArray
    """``(k, L)`` reference rows per level, zero-padded to the widest column."""
    missing: IntArray
    """``(k,)`` missing values per column."""
    unseen_rate: FloatArray
    """``(k,)`` chance that a row shows a level the reference never did (Good-Turing)."""

    def level_codes(self) -> tuple[dict[str, int], ...]:
        """Map each column's levels to their index."""
        return tuple({level: code for code, level in enumerate(levels)} for levels in self.levels)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Everything the detector compares a model version's windows against."""

    model: str
    version: int
    dataset_digest: str
    feature_order: tuple[str, ...]
    numeric: NumericReference
    categorical: CategoricalReference
    positive_class: str | None = None
    scores: NumericReference | None = None

    @property
    def rows(self) -> int:
        """Rows of training data the profile was computed from."""
        return max(self.numeric.rows, self.categorical.rows)

    def kind_of(self, feature: str) -> FeatureKind:
        """Return how a feature is tested; ``KeyError`` for an unknown feature."""
        if feature in self.numeric.names:
            return FeatureKind.NUMERIC
        if feature in self.categorical.names:
            return FeatureKind.CATEGORICAL
        raise KeyError(feature)

    def with_scores(self, scores: Sequence[float]) -> ReferenceProfile:
        """Return the profile with a reference score distribution added."""
        matrix = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
        return replace(self, scores=numeric_reference((SCORE_FEATURE,), matrix))


def numeric_reference(names: Sequence[str], matrix: FloatArray) -> NumericReference:
    """Profile numeric columns given as an ``(n, k)`` matrix with NaN for missing values."""
    rows, width = matrix.shape
    if width != len(names):
        raise ProfileError(f"{width} columns for {len(names)} names")
    if not np.all(np.isfinite(matrix) | np.isnan(matrix)):
        raise ProfileError("reference values must be finite numbers")
    columns = matrix.T
    counts = (~np.isnan(columns)).sum(axis=1).astype(np.int64)
    sorted_values = np.sort(columns, axis=1)  # NaN sorts last
    widest = int(counts.max(initial=0))
    sorted_values = sorted_values[:, :widest]
    lookup = np.zeros((width, widest + 1), dtype=np.int64)
    score_lookup = np.zeros((width, 2 * widest + 1))
    bin_counts = np.zeros((width, PSI_BINS), dtype=np.int64)
    score_mean = np.zeros(width)
    score_std = np.zeros(width)
    scores = np.zeros((rows, width))
    std = np.zeros(width)
    for j in range(width):  # once per profile, not per window
        n = int(counts[j])
        if n == 0:
            continue
        values = sorted_values[j, :n]
        std[j] = float(values.std())
        lookup[j, : n + 1] = _psi_bin_lookup(values)
        present = ~np.isnan(columns[j])
        below = np.searchsorted(values, columns[j][present], side="left")
        bin_counts[j] = np.bincount(lookup[j, below], minlength=PSI_BINS)
        at_or_below = np.searchsorted(values, columns[j][present], side="right")
        score_lookup[j, : 2 * n + 1] = _normal_scores(np.arange(2 * n + 1), n)
        normal = score_lookup[j, below + at_or_below]
        score_mean[j] = float(normal.mean())
        score_std[j] = float(normal.std())
        scores[present, j] = normal - score_mean[j]
    return NumericReference(
        names=tuple(names),
        rows=rows,
        sorted_values=sorted_values,
        counts=counts,
        std=std,
        bin_lookup=lookup,
        bin_counts=bin_counts,
        score_lookup=score_lookup,
        score_mean=score_mean,
        score_std=score_std,
        correlation=_correlation(scores, score_std),
    )


def _normal_scores(below_plus_at_or_below: IntArray, n: int) -> FloatArray:
    """Van der Waerden scores: the normal quantile of a value's mid-rank in the reference."""
    share = np.clip(below_plus_at_or_below / (2.0 * n), 0.5 / n, 1 - 0.5 / n)
    result: FloatArray = special.ndtri(share)
    return result


def _psi_bin_lookup(values: FloatArray) -> IntArray:
    """PSI bin of a value from how many reference values lie below it (deciles of the values).

    A value lies above a decile edge ``e`` exactly when more reference values lie below it than
    lie at or below ``e``, so a bin is a function of that count alone.
    """
    n = len(values)
    positions = np.ceil(np.arange(1, PSI_BINS) * n / PSI_BINS).astype(np.int64) - 1
    edges_at_or_below = np.searchsorted(values, values[np.clip(positions, 0, n - 1)], "right")
    lookup: IntArray = np.searchsorted(edges_at_or_below, np.arange(n + 1), side="right")
    return lookup


def _correlation(scores: FloatArray, score_std: FloatArray) -> FloatArray:
    width = scores.shape[1]
    if scores.shape[0] < 2 or width == 0:
        return np.eye(width)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.atleast_2d(np.corrcoef(scores, rowvar=False))
    correlation = np.nan_to_num(correlation, nan=0.0)
    constant = score_std == 0
    correlation[constant, :] = 0.0
    correlation[:, constant] = 0.0
    np.fill_diagonal(correlation, 1.0)
    return correlation


def categorical_reference(
    names: Sequence[str],
    columns: Sequence[Sequence[str | None]],
    known_levels: Sequence[Sequence[str] | None] | None = None,
) -> CategoricalReference:
    """Profile categorical columns given as lists of levels (``None`` for missing)."""
    if len(columns) != len(names):
        raise ProfileError(f"{len(columns)} columns for {len(names)} names")
    rows = len(columns[0]) if columns else 0
    declared = list(known_levels) if known_levels is not None else [None] * len(names)
    counters = [Counter(value for value in column if value is not None) for column in columns]
    levels = tuple(
        tuple(sorted(set(counter) | set(extra or ())))
        for counter, extra in zip(counters, declared, strict=True)
    )
    widest = max((len(column_levels) for column_levels in levels), default=0)
    counts = np.zeros((len(names), widest), dtype=np.int64)
    for j, (counter, column_levels) in enumerate(zip(counters, levels, strict=True)):
        counts[j, : len(column_levels)] = [counter[level] for level in column_levels]
    missing = np.array([sum(v is None for v in column) for column in columns], dtype=np.int64)
    present = counts.sum(axis=1)
    singletons = np.array([sum(1 for c in counter.values() if c == 1) for counter in counters])
    # Good-Turing: the chance of a new level is about the share of levels seen once; the +1 keeps
    # it above zero when the reference saw no singletons.
    unseen_rate = (singletons + 1) / (present + 1.0)
    return CategoricalReference(
        names=tuple(names),
        rows=rows,
        levels=levels,
        counts=counts,
        missing=missing,
        unseen_rate=unseen_rate.astype(np.float64),
    )


def build_profile(
    *,
    model: str,
    version: int,
    dataset_digest: str,
    feature_order: Sequence[str],
    numeric: Mapping[str, FloatArray],
    categorical: Mapping[str, Sequence[str | None]],
    known_levels: Mapping[str, Sequence[str]] | None = None,
    positive_class: str | None = None,
    max_rows: int = 5_000,
    rng: np.random.Generator | None = None,
) -> ReferenceProfile:
    """Compute the reference profile of a model version from its training columns.

    A training set larger than ``max_rows`` is represented by a uniform sample of that many rows
    (drawn with ``rng``, default seeded by the dataset digest, so the profile is reproducible):
    the tests' cost grows with the reference, and beyond a few thousand rows their power is set
    by the window's size, not the reference's.
    """
    missing = [name for name in feature_order if name not in numeric and name not in categorical]
    if missing:
        raise ProfileError(f"no reference data for features {missing}")
    numeric_names = [name for name in feature_order if name in numeric]
    categorical_names = [name for name in feature_order if name in categorical]
    lengths = {len(numeric[name]) for name in numeric_names}
    lengths |= {len(categorical[name]) for name in categorical_names}
    if len(lengths) > 1:
        raise ProfileError(f"reference columns have different lengths {sorted(lengths)}")
    rows = lengths.pop() if lengths else 0
    if rows == 0:
        raise ProfileError("the reference data has no rows")
    if max_rows < 2:
        raise ProfileError("max_rows must be at least 2")
    keep = np.arange(rows)
    if rows > max_rows:
        generator = rng or np.random.default_rng(_seed(dataset_digest))
        keep = np.sort(generator.choice(rows, size=max_rows, replace=False))
    matrix = (
        np.column_stack([np.asarray(numeric[name], dtype=np.float64) for name in numeric_names])
        if numeric_names
        else np.zeros((rows, 0))
    )[keep]
    levels = known_levels or {}
    return ReferenceProfile(
        model=model,
        version=version,
        dataset_digest=dataset_digest,
        feature_order=tuple(feature_order),
        numeric=numeric_reference(numeric_names, matrix),
        categorical=categorical_reference(
            categorical_names,
            [[categorical[name][i] for i in keep.tolist()] for name in categorical_names],
            [levels.get(name) for name in categorical_names],
        ),
        positive_class=positive_class,
    )


def _seed(digest: str) -> int:
    return int.from_bytes(digest.encode()[-8:], "big")


class ProfileStore(Protocol):
    """Where reference profiles are kept between restarts."""

    def load(self, model: str, version: int) -> ReferenceProfile | None:
        """Return the stored profile of a model version, or ``None``."""
        ...

    def save(self, profile: ReferenceProfile) -> None:
        """Store a profile, replacing any earlier one of the same version (a cache written
        again only to drop a score reference kept there before the database kept them)."""
        ...


class FileProfileStore:
    """Profiles as ``.npz`` files under ``{state_dir}/drift/profiles/{model}/v{version}.npz``.

    Written atomically (a temporary file renamed into place) and read without pickle.
    """

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "drift" / "profiles"

    def path(self, model: str, version: int) -> Path:
        """Return the file of a model version's profile."""
        return self.root / model / f"v{version}.npz"

    def load(self, model: str, version: int) -> ReferenceProfile | None:
        path = self.path(model, version)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != _FORMAT:
            return None  # written by another release: rebuilt from the training data
        return _profile_from(meta, arrays)

    def save(self, profile: ReferenceProfile) -> None:
        path = self.path(profile.model, profile.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta, arrays = _profile_to(profile)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                contents: dict[str, Any] = {"meta": np.array(json.dumps(meta)), **arrays}
                np.savez(file, **contents)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


_NUMERIC_ARRAYS = (
    "sorted_values",
    "counts",
    "std",
    "bin_lookup",
    "bin_counts",
    "score_lookup",
    "score_mean",
    "score_std",
    "correlation",
)


def _profile_to(profile: ReferenceProfile) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    arrays: dict[str, NDArray[Any]] = {}
    numeric_parts = {"numeric": profile.numeric}
    if profile.scores is not None:
        numeric_parts["scores"] = profile.scores
    for prefix, part in numeric_parts.items():
        for name in _NUMERIC_ARRAYS:
            arrays[f"{prefix}_{name}"] = getattr(part, name)
    arrays["categorical_counts"] = profile.categorical.counts
    arrays["categorical_missing"] = profile.categorical.missing
    arrays["categorical_unseen_rate"] = profile.categorical.unseen_rate
    meta = {
        "format": _FORMAT,
        "model": profile.model,
        "version": profile.version,
        "dataset_digest": profile.dataset_digest,
        "feature_order": list(profile.feature_order),
        "positive_class": profile.positive_class,
        "numeric": {"names": list(profile.numeric.names), "rows": profile.numeric.rows},
        "scores": None if profile.scores is None else {"rows": profile.scores.rows},
        "categorical": {
            "names": list(profile.categorical.names),
            "rows": profile.categorical.rows,
            "levels": [list(levels) for levels in profile.categorical.levels],
        },
    }
    return meta, arrays


def _numeric_from(
    names: Sequence[str], rows: int, prefix: str, arrays: Mapping[str, NDArray[Any]]
) -> NumericReference:
    fields = {name: arrays[f"{prefix}_{name}"] for name in _NUMERIC_ARRAYS}
    return NumericReference(names=tuple(names), rows=rows, **fields)


def _profile_from(meta: dict[str, Any], arrays: Mapping[str, NDArray[Any]]) -> ReferenceProfile:
    categorical = meta["categorical"]
    scores = meta["scores"]
    return ReferenceProfile(
        model=meta["model"],
        version=meta["version"],
        dataset_digest=meta["dataset_digest"],
        feature_order=tuple(meta["feature_order"]),
        numeric=_numeric_from(meta["numeric"]["names"], meta["numeric"]["rows"], "numeric", arrays),
        categorical=CategoricalReference(
            names=tuple(categorical["names"]),
            rows=categorical["rows"],
            levels=tuple(tuple(levels) for levels in categorical["levels"]),
            counts=arrays["categorical_counts"],
            missing=arrays["categorical_missing"],
            unseen_rate=arrays["categorical_unseen_rate"],
        ),
        positive_class=meta["positive_class"],
        scores=None
        if scores is None
        else _numeric_from((SCORE_FEATURE,), scores["rows"], "scores", arrays),
    )
