"""The hot path's rewritten Cramér-von Mises gives the former formulation's figures to the bit.

Issue 18 rewrote how :func:`cramervonmises` reads the reference's tables (one ``take`` for both
running sums, in-place arithmetic, no masking of complete windows) and how its p-value series
is summed (constants hoisted out of the loop). The detector's verdict must not move, so the
former formulation is kept here, verbatim in its arithmetic, as the oracle: every statistic and
p-value must be *equal*, not close, over many seeds and shapes (ties, missing values, constant
and empty columns, outliers, windows smaller and larger than the reference).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from services.drift_detector.stats import (
    Placement,
    _cdf_cvm_inf,
    cramervonmises,
    place,
    sorted_reference,
)

from .test_stats import padded_reference


def former_cdf_cvm_inf(x: np.ndarray) -> np.ndarray:
    total = np.zeros_like(x)
    pending = np.ones_like(x, dtype=bool)
    k = 0
    while pending.any():
        xs = x[pending]
        u = np.exp(special.gammaln(k + 0.5) - special.gammaln(k + 1)) / (np.pi**1.5 * np.sqrt(xs))
        y = 4 * k + 1
        q = y**2 / (16 * xs)
        term = u * np.sqrt(y) * np.exp(-q) * special.kv(0.25, q)
        total[pending] += term
        pending[pending] = np.abs(term) >= 1e-7
        k += 1
    return total


def former_cramervonmises(placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    reference = placement.reference
    n = placement.reference_count.astype(np.float64)
    m = placement.current_count.astype(np.float64)
    columns = np.arange(len(n))
    sums_table = reference.group_ecdf_sums
    squares_table = reference.group_ecdf_square_sums
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf_window = placement.window_cdf
        own = np.where(placement.valid, placement.cdf_gap**2, 0.0).sum(axis=1)
        run_length = placement.to_following(placement.below, placement.reference_count)
        low_sums = np.ascontiguousarray(sums_table).ravel().take(placement.group_below)
        low_squares = np.ascontiguousarray(squares_table).ravel().take(placement.group_below)
        sums = placement.to_following(low_sums, sums_table[columns, -1])
        squares = placement.to_following(low_squares, squares_table[columns, -1])
        runs = squares - 2 * cdf_window * sums + cdf_window**2 * run_length
        before_first = np.where(placement.current_count > 0, low_squares[:, 0], 0.0)
        total = own + np.where(placement.group_end, runs, 0.0).sum(axis=1) + before_first
        nm, pooled = n * m, n + m
        t = nm / pooled**2 * total
        expected = (1 + 1 / pooled) / 6
        variance = (pooled + 1) * (4 * nm * pooled - 3 * (n**2 + m**2) - 2 * nm)
        variance = variance / (45 * pooled**2 * 4 * nm)
        normalised = 1 / 6 + (t - expected) / np.sqrt(45 * variance)
    enough = (placement.reference_count >= 2) & (placement.current_count >= 2)
    p = np.ones_like(t)
    tail = enough & (normalised >= 0.003)
    p[tail] = np.clip(1.0 - former_cdf_cvm_inf(normalised[tail]), 0.0, None)
    return np.where(enough, t, np.nan), np.where(enough, p, np.nan)


def varied_columns(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window (rows x columns) of many shapes: what the detector meets."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([3, 50, 569, 2000]))
    m = int(rng.choice([2, 30, 100, 1000, 3000]))
    k = 12
    reference = rng.lognormal(0.0, 1.0, size=(n, k))
    current = rng.lognormal(float(rng.normal(0, 0.3)), 1.0, size=(m, k))
    reference[:, 1] = rng.poisson(3, n)  # ties on both sides
    current[:, 1] = rng.poisson(3 + rng.random(), m)
    reference[:, 2] = np.round(reference[:, 2], 1)
    current[:, 2] = np.round(current[:, 2], 1)
    reference[rng.random(n) < 0.2, 3] = np.nan  # missing values
    current[rng.random(m) < rng.random(), 3] = np.nan
    reference[:, 4] = 7.0  # a constant reference
    current[:, 5] = np.nan  # an empty window column
    current[: max(m // 50, 1), 6] = 1e300  # outliers beyond the reference
    reference[:1, 7] = -1e300  # an outlier stretching the reference's range
    current[:, 8] = reference[rng.integers(0, n, m), 8]  # values drawn from the reference
    current[:, 9] *= 3.0  # a drifted column
    return reference, current


@pytest.mark.parametrize("seed", range(200))
def test_cramervonmises_equals_the_former_formulation_to_the_bit(seed: int) -> None:
    reference, current = varied_columns(seed)
    prepared = sorted_reference(padded_reference(list(reference.T)))
    placement = place(prepared, np.ascontiguousarray(current.T))
    statistic, p_value = former_cramervonmises(placement)
    result = cramervonmises(placement)
    np.testing.assert_array_equal(result.statistic, statistic)
    np.testing.assert_array_equal(result.p_value, p_value)


def test_a_complete_and_a_masked_window_give_the_same_figures() -> None:
    """A window without missing values skips the mask; one NaN elsewhere must not change the
    other columns' figures (the masked path is the former one)."""
    reference, current = varied_columns(7)
    reference, current = reference[:, [0, 9]], current[:, [0, 9]]
    prepared = sorted_reference(padded_reference(list(reference.T)))
    complete = cramervonmises(place(prepared, np.ascontiguousarray(current.T)))
    with_nan = np.column_stack([current, current[:, 0]])
    with_nan[0, 2] = np.nan
    prepared_three = sorted_reference(padded_reference([*reference.T, reference[:, 0]]))
    masked = cramervonmises(place(prepared_three, np.ascontiguousarray(with_nan.T)))
    np.testing.assert_array_equal(masked.statistic[:2], complete.statistic)
    np.testing.assert_array_equal(masked.p_value[:2], complete.p_value)


@pytest.mark.parametrize("seed", range(20))
def test_the_p_value_series_equals_the_former_loop_to_the_bit(seed: int) -> None:
    """The series' first terms are computed for every entry at once: each term, and the sum,
    must stay the loop's exactly, whatever the number of entries (numpy's vector paths and
    their tails) and however many terms each needs."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 200))
    x = np.exp(rng.uniform(np.log(0.003), np.log(20.0), size))
    x[: size // 4] = rng.choice([0.003, 0.01, 0.1, 1 / 6, 0.5, 1.0, 5.0], size // 4)
    np.testing.assert_array_equal(_cdf_cvm_inf(x), former_cdf_cvm_inf(x))
    np.testing.assert_array_equal(_cdf_cvm_inf(x[:0]), former_cdf_cvm_inf(x[:0]))


def complete_untied_columns(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window without missing values, no two window values equal within a column:
    the case where placing skips the mask, the copies for ties and the selection by group end."""
    rng = np.random.default_rng(1_000 + seed)
    n = int(rng.choice([3, 200, 2000]))
    m = int(rng.choice([2, 50, 1000]))
    k = 6
    reference = rng.lognormal(0.0, 1.0, size=(n, k))
    current = rng.lognormal(float(rng.normal(0, 0.3)), 1.0, size=(m, k))
    reference[:, 1] = rng.lognormal(0.0, 3.0, n)  # values crowding into few grid cells
    current[:, 1] = rng.lognormal(0.0, 3.0, m)
    # Values equal to reference values, each once (and distinct ones beyond them).
    drawn = rng.permutation(reference[:, 2])[:m]
    current[:, 2] = np.concatenate([drawn, rng.lognormal(0.0, 1.0, m - drawn.size) + 1e6])
    current[: max(m // 20, 1), 3] = np.linspace(1e299, 1e300, max(m // 20, 1))  # beyond the range
    current[:, 4] = -current[:, 4]  # all below the reference
    return reference, current


@pytest.mark.parametrize("seed", range(40))
def test_a_complete_untied_window_keeps_every_count_and_figure(seed: int) -> None:
    reference, current = complete_untied_columns(seed)
    prepared = sorted_reference(padded_reference(list(reference.T)))
    placement = place(prepared, np.ascontiguousarray(current.T))
    assert placement.every_value_ends_a_group
    for j in range(reference.shape[1]):
        x, y = np.sort(reference[:, j]), np.sort(current[:, j])
        np.testing.assert_array_equal(placement.values[j], y)
        np.testing.assert_array_equal(placement.at_or_below[j], np.searchsorted(x, y, "right"))
        np.testing.assert_array_equal(placement.below[j], np.searchsorted(x, y, "left"))
        np.testing.assert_array_equal(placement.current_at_or_below[j], np.arange(1, y.size + 1))
        np.testing.assert_array_equal(placement.current_below[j], np.arange(y.size))
    statistic, p_value = former_cramervonmises(placement)
    result = cramervonmises(placement)
    np.testing.assert_array_equal(result.statistic, statistic)
    np.testing.assert_array_equal(result.p_value, p_value)
