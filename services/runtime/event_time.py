"""Bounds on event time: how far from the present an event may be dated and still be taken in.

A consumer that keeps an event-time clock (the monitor's model clocks, the drift detector's time
windows) moves it forward with each event's ``occurred_at`` and never back, so that a replay
gives the same results whatever the wall clock says. One event dated years ahead (a labeller's
clock set wrong, a typo in a backfill) would move that clock there for good: every waiting join
expires at once and no time window closes again. An event far behind the clock can join nothing
and falls in no open window. Both are refused before they touch the clock::

    refused ◀── clock - horizon ──── accepted ──── now + future tolerance ──▶ refused
                (event time)                        (wall clock at receipt)

Only the future bound reads the wall clock, and only to refuse: what is accepted is judged in event
time alone. A date on a bound is inside it. Pure: the adapter passes the wall clock in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["EventTimeBounds"]


@dataclass(frozen=True)
class EventTimeBounds:
    """How far ahead of the wall clock, and behind a consumer's own clock, an event may be dated.

    >>> from datetime import UTC, datetime, timedelta
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> bounds = EventTimeBounds(timedelta(minutes=5), horizon=timedelta(days=7))
    >>> bounds.out_of_bounds(now + timedelta(minutes=5), now=now, clock=None) is None
    True
    >>> print(bounds.out_of_bounds(datetime(2099, 1, 1, tzinfo=UTC), now=now, clock=None))
    occurred_at 2099-01-01T00:00:00+00:00 is 26663 days, 0:00:00 ahead of the wall clock \
(2026-01-01T00:00:00+00:00), beyond the future tolerance of 0:05:00
    """

    future_tolerance: timedelta = timedelta(minutes=5)
    """How far ahead of the wall clock at receipt an event may be dated (clock skew)."""
    horizon: timedelta | None = None
    """How far behind the consumer's event-time clock an event may be dated; ``None``: any."""

    def __post_init__(self) -> None:
        if self.future_tolerance < timedelta(0):
            raise ValueError("future_tolerance must not be negative")
        if self.horizon is not None and self.horizon <= timedelta(0):
            raise ValueError("horizon must be positive")

    def out_of_bounds(self, at: datetime, *, now: datetime, clock: datetime | None) -> str | None:
        """Return why an event dated ``at`` is refused, or ``None`` if it is within the bounds.

        Args:
            at: the event's ``occurred_at``.
            now: the wall clock when the event was received (time-zone aware).
            clock: the consumer's event-time clock, ``None`` before its first event.
        """
        if not _aware(now) or (clock is not None and not _aware(clock)):
            raise ValueError("now and clock must be time-zone aware")
        if not _aware(at):
            return f"occurred_at {at.isoformat()} has no time zone"
        # Differences of aware datetimes cannot overflow where ``now + tolerance`` could.
        ahead = at - now
        if ahead > self.future_tolerance:
            return (
                f"occurred_at {at.isoformat()} is {ahead} ahead of the wall clock "
                f"({now.isoformat()}), beyond the future tolerance of {self.future_tolerance}"
            )
        if self.horizon is not None and clock is not None:
            behind = clock - at
            if behind > self.horizon:
                return (
                    f"occurred_at {at.isoformat()} is {behind} behind the event-time clock "
                    f"({clock.isoformat()}), beyond the horizon of {self.horizon}"
                )
        return None


def _aware(moment: datetime) -> bool:
    return moment.utcoffset() is not None
