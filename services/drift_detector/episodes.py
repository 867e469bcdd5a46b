"""Drift episodes: one alert when a signal starts drifting, one recovery when it has stopped.

Windows report every time; alerts must not. Per model version and signal (data drift, prediction
drift) an episode opens after ``raise_after`` consecutive drifted windows and closes after
``recover_after`` consecutive clean ones (hysteresis, so a signal hovering at the edge does not
flap)::

    quiet --(raise_after drifted windows)--> drifting --(recover_after clean windows)--> quiet
                  raises AlertRaised                           raises AlertRecovered

The fingerprint names the signal by the features that drifted when the episode opened, and stays
the same for the whole episode even if other features join or leave it: the incident log
de-duplicates by fingerprint, and the recovery must close the incident the alert opened. The
features that drifted at any time during the episode travel in the evidence (ADR 0008).

An episode is named by the window that opened it (``opening``), not by when it was decided:
two replicas judging the same stream from the same state name it alike, so its alert and
recovery get the same event ids wherever they are decided (``reporting.episode_event_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from contracts.monitoring import Window

__all__ = ["Episode", "EpisodeState", "Raised", "Recovered", "observe_window", "window_key"]


@dataclass(frozen=True)
class Episode:
    """An open drift episode."""

    fingerprint: str
    features: tuple[str, ...]
    """Drivers of the window that opened it (named by the fingerprint)."""
    seen: tuple[str, ...]
    """Every feature that drifted during the episode, in order of first appearance."""
    started_at: datetime
    windows: int = 1
    """Drifted windows so far."""
    opening: str = ""
    """Names the window that opened it (:func:`window_key`): the episode's identity."""


@dataclass(frozen=True)
class EpisodeState:
    """Where one signal of one model version stands."""

    episode: Episode | None = None
    drifted_streak: int = 0
    """Consecutive drifted windows while no episode is open."""
    clean_streak: int = 0
    """Consecutive clean windows while an episode is open."""


@dataclass(frozen=True)
class Raised:
    """An episode opened: raise its alert."""

    episode: Episode


@dataclass(frozen=True)
class Recovered:
    """An episode closed: report its recovery."""

    episode: Episode
    clean_windows: int


def observe_window(
    state: EpisodeState,
    *,
    drifted: bool,
    drivers: Sequence[str],
    fingerprint: Callable[[Sequence[str]], str],
    now: datetime,
    raise_after: int = 1,
    recover_after: int = 3,
    window: str = "",
) -> tuple[EpisodeState, Raised | Recovered | None]:
    """Fold one window's verdict into the signal's state; say whether to raise or recover.

    ``window`` names the window judged (:func:`window_key`): an episode it opens keeps it.
    """
    if raise_after < 1 or recover_after < 1:
        raise ValueError("raise_after and recover_after must be at least 1")
    episode = state.episode
    if episode is None:
        if not drifted:
            return EpisodeState(), None
        streak = state.drifted_streak + 1
        if streak < raise_after:
            return EpisodeState(drifted_streak=streak), None
        features = tuple(drivers)
        opened = Episode(
            fingerprint=fingerprint(features),
            features=features,
            seen=features,
            started_at=now,
            opening=window,
        )
        return EpisodeState(episode=opened), Raised(opened)
    if drifted:
        seen = episode.seen + tuple(name for name in drivers if name not in episode.seen)
        grown = replace(episode, seen=seen, windows=episode.windows + 1)
        return EpisodeState(episode=grown), None
    clean = state.clean_streak + 1
    if clean < recover_after:
        return replace(state, clean_streak=clean), None
    return EpisodeState(), Recovered(episode, clean)


def window_key(window: Window) -> str:
    """A window's name from what it spans (kind, first and last event time, size): the same
    for every replica that cut it from the same stream."""
    return f"{window.kind.value}/{window.start.isoformat()}/{window.end.isoformat()}/{window.size}"
