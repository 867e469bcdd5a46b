"""Every drift statistic equals scipy's reference implementation, column by column."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from services.drift_detector.stats import (
    chi_square_homogeneity,
    cramervonmises,
    jensen_shannon,
    ks_p_value,
    ks_statistic,
    missing_rate_change,
    place,
    population_stability_index,
    sorted_reference,
    unseen_level_p_value,
    wasserstein,
)


def padded_reference(columns: list[np.ndarray]) -> np.ndarray:
    """Sorted reference rows without their missing values, NaN-padded to one width."""
    kept = [np.sort(column[~np.isnan(column)]) for column in columns]
    width = max(len(column) for column in kept)
    out = np.full((len(kept), width), np.nan)
    for row, column in enumerate(kept):
        out[row, : len(column)] = column
    return out


def seeded_columns(seed: int, n: int, m: int, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Reference (n, k) and current (m, k) matrices with shifts, ties and missing values."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(n, k))
    current = rng.normal(size=(m, k))
    current[:, 1] += 0.4  # a shifted column
    current[:, 2] *= 1.5  # a wider one
    reference[:, 3] = np.round(reference[:, 3])  # heavily tied columns
    current[:, 3] = np.round(current[:, 3] + 0.2)
    reference[rng.random(n) < 0.1, 4] = np.nan  # missing values on both sides
    current[rng.random(m) < 0.3, 4] = np.nan
    current[:, 5] = reference[:m, 5] if m <= n else current[:, 5]  # identical values
    return reference, current


def cvm_from_ecdfs(x: np.ndarray, y: np.ndarray) -> float:
    """The Cramer-von Mises statistic by its definition on the two distribution functions."""
    pooled = np.concatenate([x, y])
    f = np.searchsorted(np.sort(x), pooled, side="right") / len(x)
    g = np.searchsorted(np.sort(y), pooled, side="right") / len(y)
    return float(len(x) * len(y) / len(pooled) ** 2 * np.sum((f - g) ** 2))


CASES = [(0, 200, 100), (1, 569, 1000), (2, 1000, 37), (3, 50, 3000)]


@pytest.mark.parametrize(("seed", "n", "m"), CASES)
def test_placement_counts_equal_searchsorted_on_both_samples(seed: int, n: int, m: int) -> None:
    reference, current = seeded_columns(seed, n, m)
    placement = place(sorted_reference(padded_reference(list(reference.T))), current.T.copy())
    for j in range(reference.shape[1]):
        x = np.sort(reference[:, j][~np.isnan(reference[:, j])])
        y = np.sort(current[:, j][~np.isnan(current[:, j])])
        valid = placement.valid[j]
        np.testing.assert_array_equal(placement.values[j, valid], y)
        at_or_below, below = np.searchsorted(x, y, "right"), np.searchsorted(x, y, "left")
        np.testing.assert_array_equal(placement.at_or_below[j, valid], at_or_below)
        np.testing.assert_array_equal(placement.below[j, valid], below)
        at_or_below, below = np.searchsorted(y, y, "right"), np.searchsorted(y, y, "left")
        np.testing.assert_array_equal(placement.current_at_or_below[j, valid], at_or_below)
        np.testing.assert_array_equal(placement.current_below[j, valid], below)


@pytest.mark.parametrize(("seed", "n", "m"), CASES)
def test_ks_cvm_and_wasserstein_equal_their_references_on_every_column(
    seed: int, n: int, m: int
) -> None:
    reference, current = seeded_columns(seed, n, m)
    pooled = place(sorted_reference(padded_reference(list(reference.T))), current.T.copy())
    ks = ks_statistic(pooled)
    cvm = cramervonmises(pooled)
    distance = wasserstein(pooled)
    for j in range(reference.shape[1]):
        x = reference[:, j][~np.isnan(reference[:, j])]
        y = current[:, j][~np.isnan(current[:, j])]
        assert ks[j] == pytest.approx(stats.ks_2samp(x, y).statistic, rel=1e-12)
        assert distance[j] == pytest.approx(stats.wasserstein_distance(x, y), rel=1e-10)
        assert cvm.statistic[j] == pytest.approx(cvm_from_ecdfs(x, y), rel=1e-10)
        if len(np.unique(np.concatenate([x, y]))) == len(x) + len(y):  # scipy is right untied
            expected = stats.cramervonmises_2samp(x, y, method="asymptotic")
            assert cvm.statistic[j] == pytest.approx(expected.statistic, rel=1e-10)
            assert cvm.p_value[j] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("seed", "n", "m"), CASES)
def test_ks_p_value_is_within_the_documented_distance_of_scipys_asymptotic_p_value(
    seed: int, n: int, m: int
) -> None:
    reference, current = seeded_columns(seed, n, m)
    pooled = place(sorted_reference(padded_reference(list(reference.T))), current.T.copy())
    p = ks_p_value(ks_statistic(pooled), pooled.reference_count, pooled.current_count)
    for j in range(reference.shape[1]):
        x = reference[:, j][~np.isnan(reference[:, j])]
        y = current[:, j][~np.isnan(current[:, j])]
        expected = stats.ks_2samp(x, y, method="asymp").pvalue
        assert p[j] == pytest.approx(expected, abs=0.02)
        if within_relative_bound(expected, len(x), len(y)):
            assert p[j] == pytest.approx(expected, rel=0.05)


def within_relative_bound(p: float, n: int, m: int) -> bool:
    """Where ks_p_value promises 5 % relative accuracy (documented in its notes)."""
    return round(n * m / (n + m)) >= 140 and 1e-8 <= p <= 0.01


def test_ks_p_value_keeps_its_documented_accuracy_across_sizes_and_distances() -> None:
    for n_e in (20, 85, 141, 667, 5000):
        d = np.linspace(0.001, 0.99, 300)
        n = np.full_like(d, 2 * n_e, dtype=np.int64)  # n m / (n + m) = n_e when n = m = 2 n_e
        reference = stats.kstwo.sf(d, n_e)
        ours = ks_p_value(d, n, n)
        np.testing.assert_allclose(ours, reference, atol=0.02)
        bounded = np.array([within_relative_bound(p, 2 * n_e, 2 * n_e) for p in reference])
        np.testing.assert_allclose(ours[bounded], reference[bounded], rtol=0.05)


def test_cramervonmises_is_not_fooled_by_ties_where_scipys_mid_rank_form_is() -> None:
    rng = np.random.default_rng(11)
    false_alarms = {"ours": 0, "scipy": 0}
    for _ in range(20):
        x = rng.poisson(3, 2000).astype(float)
        y = rng.poisson(3, 100).astype(float)
        ours = cramervonmises(place(sorted_reference(np.sort(x)[None, :]), y[None, :])).p_value[0]
        false_alarms["ours"] += ours < 0.001
        false_alarms["scipy"] += stats.cramervonmises_2samp(x, y).pvalue < 0.001
    assert false_alarms == {"ours": 0, "scipy": 20}


def test_columns_with_too_few_values_give_nan_not_a_crash() -> None:
    reference = padded_reference([np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])])
    current = np.array([[np.nan, np.nan, np.nan], [1.5, np.nan, np.nan]])
    pooled = place(sorted_reference(reference), current)
    assert np.isnan(ks_statistic(pooled)[0])
    assert np.isnan(wasserstein(pooled)[0])
    assert np.isnan(cramervonmises(pooled).p_value).all()  # CvM needs two values per side
    assert ks_statistic(pooled)[1] == pytest.approx(stats.ks_2samp([1, 2, 3], [1.5]).statistic)


def test_chi_square_equals_chi2_contingency_with_and_without_yates() -> None:
    rng = np.random.default_rng(7)
    reference = rng.integers(0, 60, size=(8, 5))
    current = rng.integers(0, 60, size=(8, 5))
    reference[2, 3:] = 0  # a level absent on both sides is left out
    current[2, 3:] = 0
    reference[4, 2:] = 0  # two levels only: Yates' correction applies
    current[4, 2:] = 0
    result = chi_square_homogeneity(reference, current)
    for j in range(8):
        table = np.array([reference[j], current[j]])
        table = table[:, table.sum(axis=0) > 0]
        expected = stats.chi2_contingency(table)
        assert result.statistic[j] == pytest.approx(expected.statistic, rel=1e-10)
        assert result.p_value[j] == pytest.approx(expected.pvalue, rel=1e-9)
        assert result.dof[j] == expected.dof


def test_chi_square_without_two_levels_or_with_an_empty_side_is_not_a_test() -> None:
    result = chi_square_homogeneity(np.array([[10, 0], [10, 5]]), np.array([[7, 0], [0, 0]]))
    assert result.p_value.tolist() == [1.0, 1.0]
    assert result.dof.tolist() == [0, 0]


def test_jensen_shannon_equals_scipy_base_2() -> None:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 100, size=(10, 6))
    current = rng.integers(0, 100, size=(10, 6))
    current[0] = 0
    current[0, 0] = 5  # disjoint support on one column
    reference[0, 0] = 0
    ours = jensen_shannon(reference, current)
    for j in range(10):
        assert ours[j] == pytest.approx(jensenshannon(reference[j], current[j], base=2), rel=1e-10)


def test_missing_rate_change_equals_chi2_contingency_on_the_two_by_two_table() -> None:
    reference_missing = np.array([0, 5, 50, 1000])
    current_missing = np.array([100, 5, 10, 0])
    result = missing_rate_change(
        reference_missing, np.full(4, 1000), current_missing, np.full(4, 200)
    )
    for j in range(4):
        table = [
            [reference_missing[j], 1000 - reference_missing[j]],
            [current_missing[j], 200 - current_missing[j]],
        ]
        assert result.p_value[j] == pytest.approx(stats.chi2_contingency(table).pvalue, rel=1e-9)


def test_unseen_level_p_value_equals_a_one_sided_binomial_test() -> None:
    unseen = np.array([0, 1, 3, 12, 50])
    total = np.array([1000, 1000, 400, 1000, 1000])
    rate = np.array([0.002, 0.002, 0.001, 0.005, 0.0005])
    ours = unseen_level_p_value(unseen, total, rate)
    for j in range(5):
        expected = stats.binomtest(int(unseen[j]), int(total[j]), rate[j], alternative="greater")
        assert ours[j] == pytest.approx(expected.pvalue, rel=1e-9)


def test_psi_matches_its_formula_and_is_zero_for_equal_shares() -> None:
    reference = np.array([[100, 200, 300, 400], [5, 0, 0, 5]])
    current = np.array([[10, 20, 30, 40], [0, 7, 0, 3]])
    psi = population_stability_index(reference, current)
    assert psi[0] == pytest.approx(0.0, abs=1e-12)
    p = np.maximum(np.array([0.5, 0.0, 0.5]), 1e-4)
    q = np.maximum(np.array([0.0, 0.7, 0.3]), 1e-4)
    assert psi[1] == pytest.approx(float(np.sum((q - p) * np.log(q / p))))


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(st.integers(-5, 5), min_size=2, max_size=40),
    current=st.lists(st.integers(-5, 5), min_size=2, max_size=40),
)
def test_tied_integer_samples_agree_with_scipy(reference: list[int], current: list[int]) -> None:
    x = np.array(reference, dtype=float)
    y = np.array(current, dtype=float)
    pooled = place(sorted_reference(np.sort(x)[None, :]), y[None, :])
    assert ks_statistic(pooled)[0] == pytest.approx(
        stats.ks_2samp(x, y, method="asymp").statistic, rel=1e-12
    )
    assert wasserstein(pooled)[0] == pytest.approx(
        stats.wasserstein_distance(x, y), rel=1e-9, abs=1e-12
    )
    assert cramervonmises(pooled).statistic[0] == pytest.approx(
        cvm_from_ecdfs(x, y), rel=1e-9, abs=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(-1, 1))
def test_statistics_are_symmetric_where_the_definition_is(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=80)
    y = rng.normal(size=50) + shift
    forward = place(sorted_reference(np.sort(x)[None, :]), y[None, :])
    backward = place(sorted_reference(np.sort(y)[None, :]), x[None, :])
    assert ks_statistic(forward)[0] == pytest.approx(ks_statistic(backward)[0])
    assert wasserstein(forward)[0] == pytest.approx(wasserstein(backward)[0])
    assert cramervonmises(forward).statistic[0] == pytest.approx(
        cramervonmises(backward).statistic[0]
    )


def test_values_too_close_to_tell_apart_in_the_search_keys_are_still_placed_exactly() -> None:
    rng = np.random.default_rng(21)
    base = 1.0 + np.arange(200) * 1e-12  # far closer together than 1e20 / 2**52
    reference = np.sort(np.concatenate([base[::2], [-1e20, 1e20]]))
    current = np.concatenate([base[1::2], base[:20]])
    rng.shuffle(current)
    placement = place(sorted_reference(reference[None, :]), current[None, :])
    expected = np.searchsorted(reference, np.sort(current), side="right")
    np.testing.assert_array_equal(placement.at_or_below[0], expected)
    assert ks_statistic(placement)[0] == pytest.approx(stats.ks_2samp(reference, current).statistic)
