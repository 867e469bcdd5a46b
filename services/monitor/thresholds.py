"""Alert episodes: when a breach becomes an alert, and when an alert recovers.

Each signal (a fingerprint: model, version, kind, metric) is in one of two states::

    healthy ──── breached in N consecutive judged windows ────▶ alerting   (one AlertRaised)
       ▲                                                            │
       └─── clear of the recovery level in M consecutive windows ───┘      (one AlertRecovered)

While alerting, further breaches raise nothing: one alert per breach episode. Recovery needs the
metric back past the threshold by a hysteresis margin — a share of the gap between baseline and
threshold — so a metric hovering at the threshold does not flap. A window without evidence (too
few labels, an undefined metric) leaves the streaks as they are. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from contracts.registry import MetricDirection, MetricTarget

__all__ = [
    "Episode",
    "Reading",
    "Transition",
    "TransitionKind",
    "advance",
    "read",
    "recovery_level",
]


class Reading(StrEnum):
    """How a window's value stands against a target."""

    BREACHED = "breached"
    """On the alerting side of the threshold."""
    BORDERLINE = "borderline"
    """Not breached, but short of the recovery level."""
    CLEAR = "clear"
    """At or past the recovery level."""
    NO_EVIDENCE = "no_evidence"
    """Undefined, or measured on too little data to judge."""


def recovery_level(target: MetricTarget, hysteresis: float) -> float:
    """Return the value a metric must reach again before an alert on it recovers.

    >>> target = MetricTarget(metric="recall", baseline=0.97, threshold=0.95)
    >>> round(recovery_level(target, 0.5), 4)
    0.96
    """
    gap = abs(target.baseline - target.threshold)
    if target.direction is MetricDirection.HIGHER_IS_BETTER:
        return target.threshold + hysteresis * gap
    return target.threshold - hysteresis * gap


def read(value: float | None, target: MetricTarget, hysteresis: float) -> Reading:
    """Judge one window's value of a metric against its target.

    >>> target = MetricTarget(metric="recall", baseline=0.97, threshold=0.95)
    >>> [read(v, target, 0.5).value for v in (0.90, 0.955, 0.97, None)]
    ['breached', 'borderline', 'clear', 'no_evidence']
    """
    if value is None:
        return Reading.NO_EVIDENCE
    level = recovery_level(target, hysteresis)
    if target.direction is MetricDirection.HIGHER_IS_BETTER:
        if value < target.threshold:
            return Reading.BREACHED
        return Reading.CLEAR if value >= level else Reading.BORDERLINE
    if value > target.threshold:
        return Reading.BREACHED
    return Reading.CLEAR if value <= level else Reading.BORDERLINE


@dataclass(frozen=True)
class Episode:
    """Where a signal stands: alerting or not, and the values of its current streak."""

    alerting: bool = False
    streak: tuple[float | None, ...] = ()
    since: str | None = None
    """ISO event time the alert was raised at, for signals whose episode another signal can
    close (an estimate contradicted by labels of predictions made since); else ``None``."""
    muted: bool = False
    """Closed by another signal (labels contradicted the estimate): raises again only after its
    own value has come back clear, so an estimate and the labels do not take turns."""

    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"alerting": self.alerting, "streak": list(self.streak)}
        if self.since is not None:
            state["since"] = self.since
        if self.muted:
            state["muted"] = True
        return state

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        return cls(
            alerting=bool(data["alerting"]),
            streak=tuple(data["streak"]),
            since=data.get("since"),
            muted=bool(data.get("muted", False)),
        )


class TransitionKind(StrEnum):
    RAISED = "raised"
    RECOVERED = "recovered"


@dataclass(frozen=True)
class Transition:
    """A signal changed state; ``values`` are the windows' values that made it change."""

    kind: TransitionKind
    values: tuple[float | None, ...]


def advance(
    episode: Episode,
    reading: Reading,
    value: float | None,
    *,
    raise_after: int,
    recover_after: int,
) -> tuple[Episode, Transition | None]:
    """Apply one judged window to an episode; return the new episode and any transition.

    >>> episode, raised = Episode(), None
    >>> for reading in (Reading.BREACHED, Reading.BREACHED, Reading.BREACHED):
    ...     episode, transition = advance(episode, reading, 0.8, raise_after=2, recover_after=2)
    ...     raised = raised or transition
    >>> episode.alerting, raised.kind.value, raised.values
    (True, 'raised', (0.8, 0.8))
    """
    if raise_after < 1 or recover_after < 1:
        raise ValueError("raise_after and recover_after must be at least 1")
    if reading is Reading.NO_EVIDENCE:
        return episode, None
    if not episode.alerting:
        if reading is not Reading.BREACHED:
            return Episode(alerting=False), None
        streak = (*episode.streak, value)
        if len(streak) >= raise_after:
            return Episode(alerting=True), Transition(TransitionKind.RAISED, streak)
        return Episode(alerting=False, streak=streak), None
    if reading is not Reading.CLEAR:
        return Episode(alerting=True), None
    streak = (*episode.streak, value)
    if len(streak) >= recover_after:
        return Episode(alerting=False), Transition(TransitionKind.RECOVERED, streak)
    return Episode(alerting=True, streak=streak), None
