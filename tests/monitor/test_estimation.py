"""The label-free estimator on seeded data: accurate under covariate shift, no false alarms
without shift, and refusing what it cannot calibrate on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import recall_score

from contracts.registry import MetricTarget
from services.monitor.estimation import (
    Calibration,
    ReferenceTooSmall,
    _isotonic,  # the fit itself, on inputs fit_calibration refuses too
    estimate_binary,
    fit_calibration,
)
from services.monitor.thresholds import Episode, TransitionKind, advance, read


def _population(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A model whose score is over-confident: P(y=1 | score) = score ** 1.5. Covariate shift moves
    the score distribution (x), never P(y | x)."""
    score = np.clip(
        rng.beta(2 + shift, 2, size=n) if shift >= 0 else rng.beta(2, 2 - shift, n), 0, 1
    )
    truth = rng.uniform(size=n) < score**1.5
    return score, truth


def test_estimates_follow_realised_recall_under_covariate_shift() -> None:
    rng = np.random.default_rng(7)
    calibration = fit_calibration(*_population(rng, 3000, 0.0))
    errors, covered = [], 0
    shifts = np.linspace(0.0, -1.8, 40)  # fewer high scores: recall at 0.5 falls
    for shift in shifts:
        score, truth = _population(rng, 400, float(shift))
        predicted = score >= 0.5
        estimate = estimate_binary(calibration, score, predicted, rng=rng)["recall"]
        assert estimate is not None
        realised = recall_score(truth, predicted)
        errors.append(abs(estimate.value - realised))
        covered += estimate.lower <= realised <= estimate.upper
    assert float(np.mean(errors)) < 0.03
    assert covered >= 0.85 * len(shifts)  # a 95 % band, give or take sampling


def test_no_false_estimated_decay_without_shift() -> None:
    rng = np.random.default_rng(11)
    reference = _population(rng, 3000, 0.0)
    calibration = fit_calibration(*reference)
    baseline = float(recall_score(reference[1], reference[0] >= 0.5))
    target = MetricTarget(metric="recall", baseline=baseline, threshold=baseline - 0.08)
    episode = Episode()
    for _ in range(200):
        score, _truth = _population(rng, 200, 0.0)
        estimate = estimate_binary(calibration, score, score >= 0.5, rng=rng)["recall"]
        assert estimate is not None
        episode, transition = advance(
            episode,
            read(estimate.value, target, 0.5),
            estimate.value,
            raise_after=3,
            recover_after=3,
        )
        assert transition is None or transition.kind is not TransitionKind.RAISED


def test_a_shift_that_lowers_recall_is_seen_from_scores_alone() -> None:
    rng = np.random.default_rng(3)
    calibration = fit_calibration(*_population(rng, 3000, 0.0))
    healthy, _ = _population(rng, 300, 0.0)
    shifted, _ = _population(rng, 300, -2.5)
    before = estimate_binary(calibration, healthy, healthy >= 0.5, rng=rng)["recall"]
    after = estimate_binary(calibration, shifted, shifted >= 0.5, rng=rng)["recall"]
    assert before is not None
    assert after is not None
    assert after.upper < before.lower


def test_every_metric_is_estimated_with_a_band_around_its_value() -> None:
    rng = np.random.default_rng(5)
    calibration = fit_calibration(*_population(rng, 2000, 0.0))
    score, _ = _population(rng, 300, 0.0)
    estimates = estimate_binary(calibration, score, score >= 0.5, rng=rng)
    assert set(estimates) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    for estimate in estimates.values():
        assert estimate is not None
        assert 0 <= estimate.lower <= estimate.value <= estimate.upper <= 1


def test_undefined_metrics_are_none_not_made_up() -> None:
    rng = np.random.default_rng(1)
    calibration = fit_calibration(*_population(rng, 2000, 0.0))
    score = np.full(50, 0.01)  # no predicted positives, almost surely no positives
    estimates = estimate_binary(calibration, score, score >= 0.5, rng=rng)
    assert estimates["precision"] is None
    assert estimates["recall"] is None
    assert estimates["accuracy"] is not None
    assert estimate_binary(calibration, [], [], rng=rng) == dict.fromkeys(estimates)


def test_calibration_quality_is_reported_and_round_trips() -> None:
    rng = np.random.default_rng(2)
    calibration = fit_calibration(*_population(rng, 2000, 0.0))
    quality = calibration.quality
    assert quality.rows == 2000
    assert quality.ece < quality.ece_raw  # over-confident scores: calibrating helps
    assert 0 < quality.brier < 0.25
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_scores_that_are_calibrated_already_are_used_as_they_are() -> None:
    rng = np.random.default_rng(4)
    score = rng.uniform(size=300)
    truth = rng.uniform(size=300) < score
    calibration = fit_calibration(score, truth)
    if not calibration.quality.calibrating_helps:
        assert calibration.knots_x == (0.0, 1.0)
        assert calibration.knots_y == (0.0, 1.0)
    assert calibration([0.3])[0] == pytest.approx(0.3, abs=0.15)


@pytest.mark.parametrize(
    ("scores", "labels"),
    [
        ([0.5] * 10, [True, False] * 5),  # too few rows
        (list(np.linspace(0, 1, 100)), [True] * 98 + [False] * 2),  # too few of a class
    ],
)
def test_a_reference_too_small_is_refused(scores: list[float], labels: list[bool]) -> None:
    with pytest.raises(ReferenceTooSmall):
        fit_calibration(scores, labels)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_reference_scores_are_refused(bad: float) -> None:
    scores = [*np.linspace(0, 1, 99), bad]
    with pytest.raises(ValueError, match="finite"):
        fit_calibration(scores, [True, False] * 50)


def _scikit_learns_isotonic(scores: np.ndarray, labels: np.ndarray) -> IsotonicRegression:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    return model.fit(scores, labels.astype(float))


def _awkward_reference(rng: np.random.Generator, case: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores with many ties, ties one rounding apart, one class only, one to three rows."""
    size = int(rng.choice([1, 2, 3, int(rng.integers(4, 60)), int(rng.integers(60, 800))]))
    kind = case % 6
    scores: np.ndarray
    if kind == 0:
        scores = rng.uniform(size=size)
    elif kind == 1:  # few distinct scores (a model of few leaves, rounded probabilities)
        scores = np.round(rng.uniform(size=size), int(rng.integers(0, 3)))
    elif kind == 2:  # ties one rounding apart: scikit-learn merges scores within 1e-15
        scores = rng.choice([0.1 + 0.2, 0.3, 0.3 + 2e-16, 0.5, 0.5 + 8e-16, 0.5 + 1.6e-15], size)
    elif kind == 3:  # a chain of near ties longer than 1e-15 end to end
        scores = 0.5 + rng.integers(0, 8, size=size) * 3e-16
    elif kind == 4:  # scores outside [0, 1] (a decision function)
        scores = rng.normal(0, float(rng.choice([1e-3, 1.0, 100.0])), size)
    else:
        scores = rng.beta(0.3, 0.3, size)
    labels = rng.uniform(size=size) < np.clip(scores, 0, 1) ** float(rng.uniform(0.3, 3))
    if rng.uniform() < 0.2:
        labels[:] = rng.uniform() < 0.5  # one class only
    return scores, labels


@pytest.mark.parametrize("seed", range(5))
def test_the_isotonic_fit_is_scikit_learns(seed: int) -> None:
    """The calibration is fitted with SciPy's solver, not scikit-learn's ``IsotonicRegression``
    (whose import costs a monitor process about 48 MB): the same knots, hence the same
    probabilities, and calibrations stored before load and apply as they did."""
    rng = np.random.default_rng(seed)
    for case in range(120):
        scores, labels = _awkward_reference(rng, case)
        knots_x, knots_y = _isotonic(scores, labels)
        model = _scikit_learns_isotonic(scores, labels)
        assert knots_x == tuple(model.X_thresholds_.tolist())
        assert knots_y == tuple(model.y_thresholds_.tolist())
        low, high = float(scores.min()), float(scores.max())
        probes = np.r_[scores, rng.uniform(low - 1, high + 1, 300), np.linspace(low, high, 50)]
        np.testing.assert_allclose(
            np.interp(probes, knots_x, knots_y), model.predict(probes), rtol=0, atol=1e-12
        )


def test_a_fitted_calibration_has_scikit_learns_knots() -> None:
    rng = np.random.default_rng(5)
    scores, labels = _population(rng, 1000, 0.0)
    scores = np.round(scores, 2)  # ties
    calibration = fit_calibration(scores, labels)
    assert calibration.quality.calibrating_helps
    model = _scikit_learns_isotonic(scores, labels)
    assert calibration.knots_x == tuple(model.X_thresholds_.tolist())
    assert calibration.knots_y == tuple(model.y_thresholds_.tolist())
    probes = rng.uniform(-0.5, 1.5, 500)
    np.testing.assert_allclose(calibration(probes), model.predict(probes), rtol=0, atol=1e-12)
    assert Calibration.from_dict(calibration.to_dict())(probes).tolist() == (
        calibration(probes).tolist()
    )
