"""Alert episodes: N consecutive breaches raise once; recovery needs hysteresis for M windows."""

from __future__ import annotations

import pytest

from contracts import MetricDirection, MetricTarget
from services.monitor.thresholds import (
    Episode,
    Reading,
    TransitionKind,
    advance,
    read,
    recovery_level,
)

RECALL = MetricTarget(metric="recall", baseline=0.97, threshold=0.95)
LOW_CONFIDENCE = MetricTarget(
    metric="low_confidence_rate",
    baseline=0.05,
    threshold=0.2,
    direction=MetricDirection.LOWER_IS_BETTER,
)


def run(values: list[float | None], *, raise_after: int = 2, recover_after: int = 2) -> list[str]:
    """Feed recall values through one episode; return the transitions, in order."""
    episode = Episode()
    transitions = []
    for value in values:
        reading = read(value, RECALL, 0.5)
        episode, transition = advance(
            episode, reading, value, raise_after=raise_after, recover_after=recover_after
        )
        if transition is not None:
            transitions.append(transition.kind.value)
    return transitions


def test_readings_respect_direction_threshold_and_recovery_level() -> None:
    assert recovery_level(RECALL, 0.5) == pytest.approx(0.96)
    assert recovery_level(LOW_CONFIDENCE, 0.5) == pytest.approx(0.125)
    assert read(0.94, RECALL, 0.5) is Reading.BREACHED
    assert read(0.95, RECALL, 0.5) is Reading.BORDERLINE
    assert read(0.96, RECALL, 0.5) is Reading.CLEAR
    assert read(0.21, LOW_CONFIDENCE, 0.5) is Reading.BREACHED
    assert read(0.15, LOW_CONFIDENCE, 0.5) is Reading.BORDERLINE
    assert read(0.1, LOW_CONFIDENCE, 0.5) is Reading.CLEAR
    assert read(None, RECALL, 0.5) is Reading.NO_EVIDENCE


def test_a_long_breach_raises_once_and_a_long_recovery_recovers_once() -> None:
    assert run([0.99, 0.8, 0.8, 0.8, 0.7, 0.8, 0.99, 0.99, 0.99, 0.99]) == ["raised", "recovered"]


def test_a_single_bad_window_does_not_alert() -> None:
    assert run([0.99, 0.8, 0.99, 0.8, 0.99, 0.8]) == []


def test_a_metric_hovering_just_above_the_threshold_does_not_recover() -> None:
    assert run([0.8, 0.8, 0.955, 0.951, 0.955, 0.959, 0.952]) == ["raised"]


def test_a_borderline_window_breaks_the_recovery_streak() -> None:
    assert run([0.8, 0.8, 0.97, 0.955, 0.97]) == ["raised"]
    assert run([0.8, 0.8, 0.97, 0.955, 0.97, 0.97]) == ["raised", "recovered"]


def test_windows_without_evidence_neither_break_nor_extend_a_streak() -> None:
    assert run([0.8, None, None, 0.8]) == ["raised"]
    assert run([0.8, 0.8, 0.97, None, 0.97]) == ["raised", "recovered"]


def test_a_breach_after_recovery_opens_a_new_episode() -> None:
    assert run([0.8, 0.8, 0.99, 0.99, 0.8, 0.8]) == ["raised", "recovered", "raised"]


def test_the_transition_carries_the_values_of_its_streak() -> None:
    episode = Episode()
    for value in (0.9, 0.85, 0.8):
        episode, transition = advance(
            episode, Reading.BREACHED, value, raise_after=3, recover_after=1
        )
    assert transition is not None
    assert transition.kind is TransitionKind.RAISED
    assert transition.values == (0.9, 0.85, 0.8)


def test_episodes_survive_a_round_trip_through_a_dict() -> None:
    episode = Episode(alerting=True, streak=(0.97, None))
    assert Episode.from_dict(episode.to_dict()) == episode


def test_streak_lengths_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        advance(Episode(), Reading.BREACHED, 0.1, raise_after=0, recover_after=1)
