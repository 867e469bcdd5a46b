"""The sequential mode: calibrated thresholds, quiet on clean streams, early on a ramp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.drift_detector.detector import evaluate
from services.drift_detector.sequential import SequentialDetector, SequentialPolicy, cusum_threshold
from tests.drift_detector.data import correlated, numeric_batch, numeric_profile


def run(
    detector: SequentialDetector, values: np.ndarray, batch_size: int
) -> list[tuple[int, list[str]]]:
    """Feed rows in batches as the tracker does; return (row of alarm, features) per alarm."""
    state = detector.start()
    alarms = []
    position = 0
    while position < len(values):
        batch = numeric_batch(values[position : position + batch_size])
        state, alarm, upto = detector.update(state, batch)
        if alarm is None:
            position += batch.rows
            continue
        assert upto is not None
        position += upto
        alarms.append((position, alarm.features))
    return alarms


def test_threshold_meets_siegmunds_run_length_and_grows_with_it() -> None:
    for allowance in (0.05, 0.1, 0.5):
        low = cusum_threshold(allowance, 1e4)
        high = cusum_threshold(allowance, 1e8)
        assert high > low > 0
        b = 2 * allowance * (high + 1.166)
        assert (math.expm1(b) - b) / (2 * allowance**2) == pytest.approx(1e8, rel=1e-6)
    with pytest.raises(ValueError, match="allowance"):
        cusum_threshold(0, 100)


def test_the_allowance_adds_three_reference_standard_errors_to_the_margin() -> None:
    rng = np.random.default_rng(0)
    policy = SequentialPolicy(allowance=0.1)
    small = SequentialDetector(numeric_profile(rng.normal(size=(400, 3))).numeric, policy)
    large = SequentialDetector(numeric_profile(rng.normal(size=(5000, 3))).numeric, policy)
    assert small.allowance == pytest.approx(0.1 + 3 / math.sqrt(400))
    assert large.allowance == pytest.approx(0.1 + 3 / math.sqrt(5000))
    assert small.threshold == large.threshold == cusum_threshold(0.1, 1e6 * 12)


def test_a_reference_off_by_two_standard_errors_does_not_make_a_clean_stream_alarm() -> None:
    rng = np.random.default_rng(9)
    reference = correlated(rng, 2000, 4, rho=0.5)
    reference -= reference.mean(axis=0) + 2 / np.sqrt(2000)  # an unlucky training sample
    detector = SequentialDetector(numeric_profile(reference).numeric, SequentialPolicy())
    assert run(detector, correlated(rng, 100_000, 4, rho=0.5), 2000) == []


def test_false_alarms_come_no_more_often_than_the_budget_allows() -> None:
    alarms = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        profile = numeric_profile(correlated(rng, 5000, 10, rho=0.5))
        detector = SequentialDetector(profile.numeric, SequentialPolicy(false_alarm_rows=1e5))
        alarms += len(run(detector, correlated(rng, 100_000, 10, rho=0.5), 5000))
    assert alarms <= 12  # 600,000 clean rows at most one false alarm per 100,000: at most 6


def test_a_gradual_ramp_alarms_sooner_than_fixed_windows_and_names_the_ramped_features() -> None:
    rng = np.random.default_rng(2)
    profile = numeric_profile(rng.normal(size=(5000, 10)))
    detector = SequentialDetector(profile.numeric, SequentialPolicy())
    values = rng.normal(size=(8000, 10))
    onset = 2500  # mid-window, as an onset usually is
    ramp = np.clip((np.arange(8000) - onset) / 5000, 0, None)  # +1 sd per 5,000 rows
    values[:, [3, 6]] += ramp[:, None]
    alarms = run(detector, values, 250)
    assert alarms
    row, features = alarms[0]
    assert onset < row <= onset + 1500
    assert set(features) <= {"x3", "x6"}
    fixed = next(
        end
        for end in range(1000, 8001, 1000)
        if evaluate(profile, numeric_batch(values[end - 1000 : end])).drifted
    )
    assert row < fixed


def test_the_charts_give_the_same_alarm_however_the_stream_is_batched() -> None:
    rng = np.random.default_rng(3)
    detector = SequentialDetector(
        numeric_profile(rng.normal(size=(3000, 4))).numeric, SequentialPolicy()
    )
    values = rng.normal(size=(3000, 4))
    values[1000:, 0] += 0.4
    assert run(detector, values, 1) == run(detector, values, 333) == run(detector, values, 3000)


def test_one_feature_leaving_its_correlated_peers_alarms_on_the_conditional_chart() -> None:
    rng = np.random.default_rng(4)
    detector = SequentialDetector(
        numeric_profile(correlated(rng, 5000, 8, rho=0.95)).numeric, SequentialPolicy()
    )
    values = correlated(rng, 3000, 8, rho=0.95)
    values[500:, 2] += 0.1
    alarms = run(detector, values, 200)
    assert alarms
    row, features = alarms[0]
    assert row < 2000
    assert features[0] == "x2"


def test_missing_values_add_no_evidence() -> None:
    rng = np.random.default_rng(5)
    detector = SequentialDetector(
        numeric_profile(rng.normal(size=(3000, 3))).numeric, SequentialPolicy()
    )
    values = rng.normal(size=(20_000, 3))
    values[:, 1] = np.nan
    assert run(detector, values, 1000) == []
