"""How a training snapshot differs from the previous version: rows, label balance, and each
feature's shift. Pure.

Numeric features are compared with the two-sample Kolmogorov-Smirnov test and their means,
categorical ones with a chi-square test of homogeneity on their levels; missing values are
counted apart (the tests see present values only), because a change in the missing rate is a
change of its own.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import chi2_contingency, ks_2samp

from contracts.drift import FeatureKind
from contracts.registry import DatasetChanges, DatasetRef, FeatureShift, MonitoringSpec
from contracts.values import FeatureValue
from services.retrainer.retraining.training_data import LabelledRows

__all__ = ["describe_changes", "label_balance"]


def label_balance(rows: LabelledRows, classes: list[str]) -> dict[str, float]:
    """Return the share of each class (every class of the spec, in its order).

    >>> rows = LabelledRows(((1.0,), (2.0,), (3.0,), (4.0,)), ("a", "b", "b", "b"), 4)
    >>> label_balance(rows, ["a", "b"])
    {'a': 0.25, 'b': 0.75}
    """
    counts = Counter(rows.labels)
    total = len(rows.labels)
    return {label: (counts[label] / total if total else 0.0) for label in classes}


def _missing_rate(values: list[FeatureValue]) -> float:
    return sum(value is None for value in values) / len(values) if values else 0.0


def _shift(
    name: str, kind: FeatureKind, before: list[FeatureValue], after: list[FeatureValue]
) -> FeatureShift:
    present_before = [value for value in before if value is not None]
    present_after = [value for value in after if value is not None]
    statistic: float | None = None
    p_value: float | None = None
    mean_before: float | None = None
    mean_after: float | None = None
    if kind is FeatureKind.NUMERIC:
        test = "ks"
        numbers_before = np.array(present_before, dtype=np.float64)
        numbers_after = np.array(present_after, dtype=np.float64)
        if len(numbers_before) and len(numbers_after):
            result = ks_2samp(numbers_before, numbers_after)
            statistic, p_value = float(result.statistic), float(result.pvalue)
        mean_before = float(numbers_before.mean()) if len(numbers_before) else None
        mean_after = float(numbers_after.mean()) if len(numbers_after) else None
    else:
        test = "chi_square"
        levels = sorted({str(value) for value in present_before + present_after})
        if present_before and present_after and len(levels) > 1:
            counts_before = Counter(str(value) for value in present_before)
            counts_after = Counter(str(value) for value in present_after)
            table = np.array(
                [
                    [counts_before[level] for level in levels],
                    [counts_after[level] for level in levels],
                ]
            )
            result = chi2_contingency(table)
            statistic, p_value = float(result.statistic), float(result.pvalue)
        elif present_before and present_after:
            statistic, p_value = 0.0, 1.0
    return FeatureShift(
        feature=name,
        kind=kind,
        test=test,
        statistic=statistic,
        p_value=p_value,
        mean_before=mean_before,
        mean_after=mean_after,
        missing_rate_before=_missing_rate(before),
        missing_rate_after=_missing_rate(after),
    )


def describe_changes(
    spec: MonitoringSpec,
    current: LabelledRows,
    current_ref: DatasetRef,
    previous: LabelledRows | None,
    previous_ref: DatasetRef | None,
    *,
    dropped_rows: int = 0,
) -> DatasetChanges:
    """Compare a snapshot with the previous version of the model's training data."""
    before = previous if previous is not None else LabelledRows((), (), 0)
    features = [
        _shift(
            feature.name,
            feature.kind,
            [row[column] for row in before.rows],
            [row[column] for row in current.rows],
        )
        for column, feature in enumerate(spec.features)
    ]
    return DatasetChanges(
        previous=previous_ref,
        current=current_ref,
        rows_before=len(before),
        rows_after=len(current),
        live_rows=current.live_rows,
        dropped_rows=dropped_rows,
        label_balance_before=label_balance(before, list(spec.classes)),
        label_balance_after=label_balance(current, list(spec.classes)),
        features=features,
    )
