"""Checking a request's features against a version's spec, and shaping them for the model. Pure.

Every problem is named by feature, so HTTP can answer 422 with the field and Kafka can dead-letter
with a message a person can act on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from contracts.drift import FeatureKind
from contracts.registry import FeatureSpec, MonitoringSpec
from contracts.values import Features, FeatureValue

__all__ = ["FeatureLayout", "FeatureProblem", "feature_problems", "to_matrix"]


@dataclass(frozen=True)
class FeatureProblem:
    """What is wrong with one feature of a request."""

    feature: str
    message: str


def _value_problem(spec: FeatureSpec, value: FeatureValue) -> str | None:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if missing:
        if spec.nullable:
            return None
        return "NaN is not allowed" if value is not None else "null is not allowed"
    if spec.kind is FeatureKind.NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {type(value).__name__} {value!r}"
        if isinstance(value, float) and math.isinf(value):
            return "infinite values are not allowed"
        return None
    if not isinstance(value, str):
        return f"expected text (a category), got {type(value).__name__} {value!r}"
    return None


@dataclass(frozen=True)
class FeatureLayout:
    """A spec's features as plain tuples, read once per version rather than once per request:
    reading a pydantic spec's fields and comparing its enums cost more than the check itself."""

    names: tuple[str, ...]
    numeric: tuple[bool, ...]

    @classmethod
    def of(cls, spec: MonitoringSpec) -> FeatureLayout:
        """Return the layout of a spec's features, in the spec's order."""
        return cls(
            tuple(feature.name for feature in spec.features),
            tuple(feature.kind is FeatureKind.NUMERIC for feature in spec.features),
        )

    def plainly_fits(self, features: Features) -> bool:
        """Tell whether a request is the common case, checked cheaply: exactly the spec's
        features, finite numbers where numbers are expected, text where categories are.
        ``False`` says only that :func:`feature_problems` must look (a nullable feature's
        ``None`` is fine but not plain)."""
        if len(features) != len(self.names):
            return False
        for name, numeric in zip(self.names, self.numeric, strict=True):
            value = features.get(name)
            kind = type(value)
            if numeric:
                if not (kind is int or (kind is float and value - value == 0)):  # type: ignore[operator]  # value is a float here; inf - inf and NaN - NaN are NaN
                    return False
            elif kind is not str:
                return False
        return True


def feature_problems(
    spec: MonitoringSpec, features: Features, layout: FeatureLayout | None = None
) -> list[FeatureProblem]:
    """Return every problem of a request's features for a spec (empty when they fit);
    ``layout`` is the spec's, when the caller holds it."""
    if (layout or FeatureLayout.of(spec)).plainly_fits(features):
        return []
    problems: list[FeatureProblem] = []
    known = {feature.name for feature in spec.features}
    for feature in spec.features:
        if feature.name not in features:
            problems.append(FeatureProblem(feature.name, "missing"))
            continue
        problem = _value_problem(feature, features[feature.name])
        if problem is not None:
            problems.append(FeatureProblem(feature.name, problem))
    for name in features:
        if name not in known:
            problems.append(FeatureProblem(name, "not a feature of the model"))
    return problems


def to_matrix(
    spec: MonitoringSpec, rows: Sequence[Features], layout: FeatureLayout | None = None
) -> np.ndarray:
    """Return checked rows as the model's input: floats (missing → NaN) when every feature is
    numeric, otherwise objects (missing → None). ``layout`` is the spec's, when the caller
    holds it."""
    layout = layout or FeatureLayout.of(spec)
    names = layout.names
    values: list[Any]
    if len(names) > 1:  # one C call per row, the values in the spec's order
        getter = itemgetter(*names)
        values = [getter(row) for row in rows]
    else:
        values = [[row[name] for name in names] for row in rows]
    if all(layout.numeric):
        return np.array(values, dtype=np.float64)  # None becomes NaN
    return np.array(values, dtype=object)
