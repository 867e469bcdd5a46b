"""Alert episodes: raise after N bad checks in a row, resolve after M good, only once published."""

from __future__ import annotations

import pytest

from services.runtime.alert_episodes import AlertEpisodes, Transition


def test_an_episode_opens_after_consecutive_bad_checks_and_closes_after_good_ones() -> None:
    episodes = AlertEpisodes(raise_after=3, resolve_after=2)
    assert [episodes.observe("a", bad=True) for _ in range(2)] == [None, None]
    assert episodes.observe("a", bad=True) is Transition.RAISE
    episodes.settle("a", Transition.RAISE)
    assert episodes.raised() == ["a"]
    assert episodes.observe("a", bad=True) is None  # already raised: said once
    assert episodes.observe("a", bad=False) is None
    assert episodes.observe("a", bad=False) is Transition.RESOLVE
    episodes.settle("a", Transition.RESOLVE)
    assert episodes.raised() == []
    assert episodes.observe("a", bad=False) is None


def test_a_good_check_between_bad_ones_starts_the_count_again() -> None:
    episodes = AlertEpisodes(raise_after=2, resolve_after=1)
    assert episodes.observe("a", bad=True) is None
    assert episodes.observe("a", bad=False) is None
    assert episodes.observe("a", bad=True) is None
    assert episodes.observe("a", bad=True) is Transition.RAISE


def test_an_unpublished_transition_stays_due_until_settled() -> None:
    episodes = AlertEpisodes(raise_after=1, resolve_after=1)
    assert episodes.observe("a", bad=True) is Transition.RAISE
    assert episodes.observe("a", bad=True) is Transition.RAISE  # publish failed: due again
    episodes.settle("a", Transition.RAISE)
    assert episodes.observe("a", bad=False) is Transition.RESOLVE
    assert episodes.observe("a", bad=False) is Transition.RESOLVE
    episodes.settle("a", Transition.RESOLVE)
    assert episodes.observe("a", bad=False) is None


def test_a_due_raise_that_clears_before_it_went_out_says_nothing() -> None:
    episodes = AlertEpisodes(raise_after=1, resolve_after=1)
    assert episodes.observe("a", bad=True) is Transition.RAISE
    assert episodes.observe("a", bad=False) is None
    assert episodes.raised() == []


def test_subjects_are_independent() -> None:
    episodes = AlertEpisodes(raise_after=1, resolve_after=1)
    assert episodes.observe("a", bad=True) is Transition.RAISE
    assert episodes.observe("b", bad=False) is None
    episodes.settle("a", Transition.RAISE)
    assert episodes.raised() == ["a"]


@pytest.mark.parametrize(("raise_after", "resolve_after"), [(0, 1), (1, 0), (-1, 2)])
def test_counts_below_one_are_refused(raise_after: int, resolve_after: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AlertEpisodes(raise_after=raise_after, resolve_after=resolve_after)
