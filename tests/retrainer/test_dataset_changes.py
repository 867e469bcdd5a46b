"""How a training snapshot differs from the previous version (pure)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from contracts import DatasetRef, FeatureKind, FeatureSpec, MetricTarget
from services.retrainer.retraining.dataset_changes import describe_changes
from services.retrainer.retraining.training_data import LabelledRows
from tests.factories import make_spec

BEFORE = DatasetRef(name="m", version="1", digest="sha256:" + "a" * 64)
AFTER = DatasetRef(name="m", version="2", digest="sha256:" + "b" * 64)
SPEC = make_spec(
    features=[
        FeatureSpec(name="size", kind=FeatureKind.NUMERIC, nullable=True),
        FeatureSpec(name="shape", kind=FeatureKind.CATEGORICAL),
    ],
    metrics=[MetricTarget(metric="recall", baseline=0.9, threshold=0.8)],
    probe=None,
)


def table(sizes: np.ndarray, shapes: list[str], labels: list[str], live_from: int) -> LabelledRows:
    return LabelledRows(
        tuple(
            (None if np.isnan(size) else float(size), shape)
            for size, shape in zip(sizes, shapes, strict=True)
        ),
        tuple(labels),
        live_from,
    )


def test_rows_balance_and_each_features_shift_are_reported_as_scipy_measures_them() -> None:
    rng = np.random.default_rng(0)
    old_sizes = rng.normal(10, 2, 300)
    new_sizes = np.concatenate([rng.normal(10, 2, 300), rng.normal(13, 2, 100)])
    new_sizes[:20] = np.nan
    old_shapes = ["round"] * 200 + ["oval"] * 100
    new_shapes = ["round"] * 200 + ["oval"] * 200
    previous = table(old_sizes, old_shapes, ["benign"] * 200 + ["malignant"] * 100, 300)
    current = table(new_sizes, new_shapes, ["benign"] * 250 + ["malignant"] * 150, 300)
    changes = describe_changes(SPEC, current, AFTER, previous, BEFORE, dropped_rows=3)
    assert (changes.rows_before, changes.rows_after, changes.live_rows, changes.dropped_rows) == (
        300,
        400,
        100,
        3,
    )
    assert changes.label_balance_before == pytest.approx({"malignant": 1 / 3, "benign": 2 / 3})
    assert changes.label_balance_after == pytest.approx({"malignant": 0.375, "benign": 0.625})
    size, shape = changes.features
    expected = ks_2samp(old_sizes, new_sizes[~np.isnan(new_sizes)])
    assert size.test == "ks"
    assert size.statistic == pytest.approx(expected.statistic)
    assert size.p_value == pytest.approx(expected.pvalue)
    assert (size.missing_rate_before, size.missing_rate_after) == (0.0, 0.05)
    assert size.mean_after == pytest.approx(np.nanmean(new_sizes))
    chi2 = chi2_contingency(np.array([[100, 200], [200, 200]]))
    assert shape.test == "chi_square"
    assert shape.statistic == pytest.approx(chi2.statistic)


def test_a_first_snapshot_has_nothing_before_it() -> None:
    current = table(np.array([1.0, 2.0]), ["round", "oval"], ["benign", "malignant"], 2)
    changes = describe_changes(SPEC, current, AFTER, None, None)
    assert (changes.previous, changes.rows_before) == (None, 0)
    assert changes.label_balance_before == {"malignant": 0.0, "benign": 0.0}
    assert all(shift.statistic is None for shift in changes.features)
