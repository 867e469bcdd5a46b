"""The detector's verdicts: false-alarm control, effect-size floor, every check, bad windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from contracts import Correction
from services.drift_detector.correction import adjust_p_values
from services.drift_detector.detector import DriftPolicy, NumericTest, WindowError, evaluate
from tests.drift_detector.data import (
    correlated,
    mixed_batch,
    mixed_profile,
    numeric_batch,
    numeric_profile,
)


def test_bonferroni_and_benjamini_hochberg_equal_their_reference_definitions() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 1e-3, size=10)])
    np.testing.assert_allclose(
        adjust_p_values(p, Correction.BONFERRONI), np.minimum(1, p * 50), rtol=1e-12
    )
    np.testing.assert_allclose(
        adjust_p_values(p, Correction.BENJAMINI_HOCHBERG),
        stats.false_discovery_control(p, method="bh"),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(adjust_p_values(p, Correction.NONE), p)
    with pytest.raises(ValueError, match="p-values must lie"):
        adjust_p_values(np.array([0.5, np.nan]), Correction.BONFERRONI)


def test_clean_windows_of_50_features_rarely_alarm_with_correction_and_often_without() -> None:
    rng = np.random.default_rng(1)
    profile = numeric_profile(rng.normal(size=(2000, 50)))
    windows = [numeric_batch(rng.normal(size=(500, 50))) for _ in range(100)]
    corrected = sum(evaluate(profile, w).drifted for w in windows)
    uncorrected = DriftPolicy(correction=Correction.NONE, alpha=0.05, joint_test=False)
    naive = sum(evaluate(profile, w, uncorrected).drifted for w in windows)
    assert corrected <= 3  # alpha = 1 % per window
    assert naive >= 60  # 100 tests at 5 % each: something flags on most windows


def test_the_family_is_every_tested_check_and_bonferroni_multiplies_by_its_size() -> None:
    rng = np.random.default_rng(2)
    profile = numeric_profile(rng.normal(size=(1000, 8)))
    window = rng.normal(size=(400, 8))
    window[:20, 3] = np.nan  # one missing-rate test becomes possible
    report = evaluate(profile, numeric_batch(window))
    assert report.hypotheses == 8 + 1 + 1  # distributions, one missing rate, the joint test
    feature = report.features[3]
    (distribution, missing, _location) = feature.checks
    assert distribution.p_value is not None
    assert missing.p_value is not None
    assert distribution.adjusted_p_value == pytest.approx(min(1, distribution.p_value * 10))
    assert missing.adjusted_p_value == pytest.approx(min(1, missing.p_value * 10))
    assert report.features[0].checks[1].p_value is None  # nothing missing anywhere: no test


def test_benjamini_hochberg_finds_at_least_what_bonferroni_finds() -> None:
    rng = np.random.default_rng(3)
    profile = numeric_profile(rng.normal(size=(2000, 20)))
    window = rng.normal(size=(500, 20))
    window[:, :6] += 0.2
    bonferroni = evaluate(profile, numeric_batch(window))
    hochberg = evaluate(
        profile, numeric_batch(window), DriftPolicy(correction=Correction.BENJAMINI_HOCHBERG)
    )
    assert set(bonferroni.drivers) <= set(hochberg.drivers)
    assert len(hochberg.drivers) >= 4


def test_a_trivial_shift_in_a_huge_window_is_significant_but_below_the_effect_floor() -> None:
    rng = np.random.default_rng(4)
    profile = numeric_profile(rng.normal(size=(200_000, 3)), max_rows=200_000)
    window = rng.normal(size=(200_000, 3))
    window[:, 0] += 0.03
    report = evaluate(profile, numeric_batch(window), DriftPolicy(joint_test=False))
    distribution = report.features[0].checks[0]
    assert distribution.adjusted_p_value is not None
    assert distribution.adjusted_p_value < 0.01
    assert distribution.effect_size is not None
    assert distribution.effect_size < 0.05
    assert not report.drifted
    no_floor = DriftPolicy(joint_test=False, numeric_effect_floor=0.0)
    assert evaluate(profile, numeric_batch(window), no_floor).drivers == ("x0",)


def test_a_shifted_feature_drives_the_verdict_and_stronger_shifts_rank_first() -> None:
    rng = np.random.default_rng(5)
    profile = numeric_profile(rng.normal(size=(3000, 10)))
    window = rng.normal(size=(1000, 10))
    window[:, 7] += 0.5
    window[:, 2] += 1.0
    report = evaluate(profile, numeric_batch(window))
    assert report.drifted
    assert report.drivers[:2] == ("x2", "x7")
    feature = report.features[2]
    assert feature.drifted
    assert "distribution" in feature.reasons
    assert feature.test == "cramervonmises"
    assert feature.effect_size == pytest.approx(1.0, abs=0.15)
    assert feature.statistics["ks"] is not None


def test_ks_can_decide_instead_of_cramer_von_mises() -> None:
    rng = np.random.default_rng(6)
    profile = numeric_profile(rng.normal(size=(2000, 3)))
    window = rng.normal(size=(800, 3))
    window[:, 1] += 0.5
    report = evaluate(profile, numeric_batch(window), DriftPolicy(numeric_test=NumericTest.KS))
    assert report.features[1].test == "ks"
    assert report.features[1].statistic == report.features[1].statistics["ks"]
    assert report.drivers == ("x1",)


def test_one_feature_moving_against_its_correlated_peers_is_caught_jointly_and_named() -> None:
    rng = np.random.default_rng(7)
    reference = correlated(rng, 3000, 12, rho=0.9)
    profile = numeric_profile(reference)
    window = correlated(rng, 500, 12, rho=0.9)
    window[:, 5] += 0.15  # too small for a per-feature test at this size
    per_feature = evaluate(profile, numeric_batch(window), DriftPolicy(joint_test=False))
    assert not per_feature.drifted
    report = evaluate(profile, numeric_batch(window))
    assert report.joint is not None
    assert report.joint.fired
    assert report.drivers == ("x5",)
    assert report.features[5].reasons == ["location"]


def test_clean_correlated_windows_do_not_fire_the_joint_test() -> None:
    rng = np.random.default_rng(8)
    profile = numeric_profile(correlated(rng, 3000, 12, rho=0.9))
    fired = 0
    for _ in range(60):
        report = evaluate(profile, numeric_batch(correlated(rng, 300, 12, rho=0.9)))
        fired += report.joint is not None and report.joint.fired
    assert fired <= 2


def test_an_all_missing_column_is_a_missing_rate_change_not_a_crash() -> None:
    rng = np.random.default_rng(9)
    profile = numeric_profile(rng.normal(size=(1000, 4)))
    window = rng.normal(size=(300, 4))
    window[:, 2] = np.nan
    report = evaluate(profile, numeric_batch(window))
    feature = report.features[2]
    assert feature.drifted
    assert feature.reasons == ["missing_rate"]
    assert feature.missing_rate_current == 1.0
    assert feature.p_value is None  # no values: no distribution test
    assert report.drivers == ("x2",)


def test_a_new_level_in_five_percent_of_rows_is_caught_and_named() -> None:
    rng = np.random.default_rng(10)
    profile = mixed_profile(rng)
    devices = [str(d) for d in rng.choice(["a", "b", "c"], size=1000, p=[0.5, 0.3, 0.2])]
    for i in range(0, 1000, 20):
        devices[i] = "tablet"
    report = evaluate(profile, mixed_batch(profile, rng.normal(size=(1000, 2)), devices))
    device = report.features[2]
    assert device.new_categories == ["tablet"]
    assert "unseen_levels" in device.reasons
    assert report.drivers == ("device",)


def test_a_categorical_frequency_shift_is_caught_with_its_jensen_shannon_distance() -> None:
    rng = np.random.default_rng(11)
    profile = mixed_profile(rng)
    devices = [str(d) for d in rng.choice(["a", "b", "c"], size=1000, p=[0.35, 0.3, 0.35])]
    report = evaluate(profile, mixed_batch(profile, rng.normal(size=(1000, 2)), devices))
    device = report.features[2]
    assert device.reasons == ["distribution"]
    assert device.test == "chi2"
    assert device.effect_measure == "jensen-shannon distance"
    assert device.effect_size is not None
    assert device.effect_size > 0.05


def test_missing_categorical_values_are_counted_not_dropped() -> None:
    rng = np.random.default_rng(12)
    profile = mixed_profile(rng)
    devices: list[str | None] = ["a"] * 700 + [None] * 300
    report = evaluate(profile, mixed_batch(profile, rng.normal(size=(1000, 2)), devices))
    assert report.features[2].missing_rate_current == pytest.approx(0.3)
    assert "missing_rate" in report.features[2].reasons


def test_prediction_scores_are_tested_in_a_family_of_their_own() -> None:
    rng = np.random.default_rng(13)
    profile = numeric_profile(rng.normal(size=(1000, 3))).with_scores(
        rng.beta(2, 5, size=800).tolist()
    )
    clean = evaluate(profile, numeric_batch(rng.normal(size=(500, 3)), rng.beta(2, 5, size=500)))
    assert clean.score is not None
    assert not clean.score_drifted
    shifted = evaluate(profile, numeric_batch(rng.normal(size=(500, 3)), rng.beta(5, 2, size=500)))
    assert shifted.score_drifted
    assert shifted.score is not None
    assert shifted.score.feature == "__score__"
    assert not shifted.drifted  # the features did not move
    unscored = evaluate(
        numeric_profile(rng.normal(size=(100, 3))), numeric_batch(rng.normal(size=(50, 3)))
    )
    assert unscored.score is None


def test_windows_that_cannot_be_tested_are_refused_with_a_clear_error() -> None:
    rng = np.random.default_rng(14)
    profile = numeric_profile(rng.normal(size=(500, 3)))
    with pytest.raises(WindowError, match="empty"):
        evaluate(profile, numeric_batch(np.zeros((0, 3))))
    with pytest.raises(WindowError, match="at least 30"):
        evaluate(profile, numeric_batch(rng.normal(size=(10, 3))))
    with pytest.raises(WindowError, match="do not match the profile"):
        evaluate(profile, numeric_batch(rng.normal(size=(100, 4))))


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="alpha"):
        DriftPolicy(alpha=1.5)
    with pytest.raises(ValueError, match="floors"):
        DriftPolicy(numeric_effect_floor=-1)


def test_a_constant_reference_feature_that_changes_is_drift_with_a_finite_effect() -> None:
    rng = np.random.default_rng(15)
    reference = rng.normal(size=(500, 2))
    reference[:, 1] = 3.0
    window = rng.normal(size=(200, 2))
    window[:, 1] = 4.0
    report = evaluate(numeric_profile(reference), numeric_batch(window))
    assert report.features[1].drifted
    assert report.features[1].effect_size == pytest.approx(1 / 3)


def test_figures_the_verdict_does_not_need_are_still_reported_exactly() -> None:
    rng = np.random.default_rng(8)
    reference = rng.normal(size=(2000, 4))
    window = rng.normal(size=(500, 4))
    report = evaluate(numeric_profile(reference), numeric_batch(window))
    assert not report.drifted  # nothing significant: effect sizes, KS and PSI wait for the report
    for j, feature in enumerate(report.features):
        x, y = reference[:, j], window[:, j]
        expected_effect = stats.wasserstein_distance(x, y) / x.std()
        assert feature.effect_size == pytest.approx(expected_effect, rel=1e-9)
        assert feature.statistics["ks"] == pytest.approx(stats.ks_2samp(x, y).statistic, rel=1e-12)
        assert feature.psi is not None


def test_numeric_features_carry_the_reference_and_window_distributions_over_its_deciles() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(2000, 2))
    profile = numeric_profile(reference)
    window = rng.normal(size=(500, 2))
    window[:, 1] += 2.0  # the second feature moves up by two sd
    window[:50, 0] = np.nan
    report = evaluate(profile, numeric_batch(window))
    steady, moved = (feature.bins for feature in report.features)
    assert steady is not None
    assert moved is not None
    deciles = np.quantile(np.sort(reference[:, 0]), np.arange(1, 10) / 10, method="inverted_cdf")
    assert steady.edges[0] == reference[:, 0].min()
    assert steady.edges[-1] == reference[:, 0].max()
    np.testing.assert_allclose(steady.edges[1:-1], deciles)
    np.testing.assert_allclose(steady.reference, [0.1] * 10, atol=1e-3)
    for shares in (steady.reference, steady.current, moved.current):
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    # Counted over the window's 450 values present, as numpy bins them on the same edges.
    present = window[50:, 0]
    inner = np.searchsorted(np.asarray(steady.edges[1:-1]), present, side="left")
    expected = np.bincount(inner, minlength=10) / len(present)
    np.testing.assert_allclose(steady.current, expected, atol=1e-6)
    assert sum(moved.current[-3:]) > 0.6  # most of the moved window sits in the top deciles


def test_a_feature_with_no_values_in_the_window_has_no_distribution() -> None:
    rng = np.random.default_rng(6)
    profile = numeric_profile(rng.normal(size=(500, 2)))
    window = rng.normal(size=(100, 2))
    window[:, 0] = np.nan
    report = evaluate(profile, numeric_batch(window))
    assert report.features[0].bins is None
    assert report.features[1].bins is not None
