"""Row-wise lookups answer exactly what numpy's own (slower) calls answer."""

from __future__ import annotations

import numpy as np
import pytest

from services.drift_detector.lookup import row_search, take_in_rows


def search_rows(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The layout :func:`row_search` takes: a leading slot, the values, then NaN (at least one)."""
    width = max(len(row) for row in rows) + 2
    out = np.full((len(rows), width), np.nan)
    for j, row in enumerate(rows):
        out[j, 1 : len(row) + 1] = row
    return out, np.array([len(row) for row in rows])


def seeded_rows(seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct ascending rows of different shapes and the values to search in each."""
    rng = np.random.default_rng(seed)
    shapes = [
        rng.normal(size=500),
        rng.lognormal(0, 2, size=800),  # most values crowd into the first cells
        np.concatenate([rng.uniform(0, 1, 300), [1e12]]),  # one outlier stretches the grid
        rng.integers(-5, 6, size=40).astype(float),
        1.0 + np.arange(200) * 1e-12,  # closer together than the grid can tell apart
        np.array([3.0]),
        np.array([]),
    ]
    rows = [np.unique(row) for row in shapes]
    width = 1000
    searched = np.empty((len(rows), width))
    for j, row in enumerate(rows):
        pool = np.concatenate([row, [-1e300, 1e300, 0.0, np.nan]]) if row.size else np.array([0.0])
        near = rng.choice(pool, width) + rng.choice([0.0, 0.0, 1e-13, -1e-13, 0.5], width)
        searched[j] = np.where(rng.random(width) < 0.5, rng.choice(pool, width), near)
    return rows, searched


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_last_value_at_or_below_is_what_searchsorted_finds(seed: int) -> None:
    rows, searched = seeded_rows(seed)
    layout, counts = search_rows(rows)
    positions = row_search(layout, counts).last_at_or_below(searched)
    width = layout.shape[1]
    for j, row in enumerate(rows):
        expected = np.searchsorted(row, searched[j], side="right")
        expected[np.isnan(searched[j])] = 0
        np.testing.assert_array_equal(positions[j] - j * width, expected)


def test_take_in_rows_equals_take_along_axis() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(4, 50))
    counts = rng.integers(0, 100, size=(4, 50))
    index = rng.integers(0, 50, size=(4, 30))
    taken_values, taken_counts = take_in_rows(index, values, counts)
    np.testing.assert_array_equal(taken_values, np.take_along_axis(values, index, axis=1))
    np.testing.assert_array_equal(taken_counts, np.take_along_axis(counts, index, axis=1))
