"""Episodes: one alert per drift episode, hysteresis on recovery, a stable fingerprint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from services.drift_detector.episodes import EpisodeState, Raised, Recovered, observe_window
from tests.factories import T0


def fingerprint(features: Sequence[str]) -> str:
    return "m:v1:data_drift:" + ",".join(sorted(features))


def replay(verdicts: list[tuple[bool, tuple[str, ...]]], **options: Any) -> list[object]:
    state = EpisodeState()
    changes: list[object] = []
    for drifted, drivers in verdicts:
        state, change = observe_window(
            state, drifted=drifted, drivers=drivers, fingerprint=fingerprint, now=T0, **options
        )
        if change is not None:
            changes.append(change)
    return changes


def test_a_run_of_drifted_windows_raises_once_and_recovers_once_after_hysteresis() -> None:
    clean = (False, ())
    changes = replay(
        [clean, (True, ("b", "a")), (True, ("a",)), (True, ("c",)), clean, clean, clean, clean],
        raise_after=1,
        recover_after=3,
    )
    assert len(changes) == 2
    raised, recovered = changes
    assert isinstance(raised, Raised)
    assert isinstance(recovered, Recovered)
    assert raised.episode.fingerprint == "m:v1:data_drift:a,b"
    assert recovered.episode.fingerprint == raised.episode.fingerprint
    assert recovered.episode.seen == ("b", "a", "c")
    assert recovered.episode.windows == 3
    assert recovered.clean_windows == 3


def test_a_clean_window_inside_the_hysteresis_keeps_the_episode_open() -> None:
    changes = replay(
        [(True, ("a",)), (False, ()), (False, ()), (True, ("a",)), (False, ()), (False, ())],
        raise_after=1,
        recover_after=3,
    )
    assert [type(change) for change in changes] == [Raised]


def test_raise_after_two_ignores_a_lone_drifted_window() -> None:
    assert replay([(True, ("a",)), (False, ()), (True, ("a",)), (False, ())], raise_after=2) == []
    changes = replay([(True, ("a",)), (True, ("a", "b"))], raise_after=2)
    assert len(changes) == 1
    assert isinstance(changes[0], Raised)
    assert changes[0].episode.features == ("a", "b")


def test_a_new_episode_after_recovery_raises_again() -> None:
    verdicts = [(True, ("a",)), (False, ()), (True, ("d",))]
    changes = replay(verdicts, raise_after=1, recover_after=1)
    assert [type(change) for change in changes] == [Raised, Recovered, Raised]
    assert isinstance(changes[2], Raised)
    assert changes[2].episode.fingerprint == "m:v1:data_drift:d"


def test_nonsense_hysteresis_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        observe_window(
            EpisodeState(), drifted=True, drivers=(), fingerprint=fingerprint, now=T0, raise_after=0
        )
