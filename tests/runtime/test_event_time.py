"""Event-time bounds, pure: the tolerance ahead of the wall clock and the horizon behind a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.runtime.event_time import EventTimeBounds

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=5)
HORIZON = timedelta(days=7)
BOUNDS = EventTimeBounds(TOLERANCE, horizon=HORIZON)
MICROSECOND = timedelta(microseconds=1)


def test_an_event_exactly_at_the_tolerance_is_taken_one_microsecond_later_is_refused() -> None:
    assert BOUNDS.out_of_bounds(NOW + TOLERANCE, now=NOW, clock=NOW) is None
    why = BOUNDS.out_of_bounds(NOW + TOLERANCE + MICROSECOND, now=NOW, clock=NOW)
    assert why == (
        "occurred_at 2026-12-04T12:05:00.000001+00:00 is 0:05:00.000001 ahead of the wall clock "
        "(2026-12-04T12:00:00+00:00), beyond the future tolerance of 0:05:00"
    )


def test_a_zero_tolerance_takes_the_present_and_refuses_anything_later() -> None:
    strict = EventTimeBounds(timedelta(0))
    assert strict.out_of_bounds(NOW, now=NOW, clock=None) is None
    assert strict.out_of_bounds(NOW + MICROSECOND, now=NOW, clock=None) is not None


@pytest.mark.parametrize(
    "at",
    [
        datetime(2099, 1, 1, tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
        datetime.max.replace(tzinfo=timezone(timedelta(hours=-23, minutes=-59))),
    ],
    ids=["2099", "the last representable instant", "past it in UTC"],
)
def test_the_far_future_is_refused_without_overflowing(at: datetime) -> None:
    generous = EventTimeBounds(timedelta(days=999_999_999), horizon=HORIZON)
    assert "beyond the future tolerance" in str(BOUNDS.out_of_bounds(at, now=NOW, clock=NOW))
    # A tolerance wider than the calendar cannot overflow either: it takes everything.
    assert generous.out_of_bounds(at, now=NOW, clock=NOW) is None


def test_the_same_instant_written_in_another_time_zone_is_judged_the_same() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert BOUNDS.out_of_bounds((NOW + TOLERANCE).astimezone(tokyo), now=NOW, clock=NOW) is None
    later = (NOW + TOLERANCE + MICROSECOND).astimezone(tokyo)
    assert BOUNDS.out_of_bounds(later, now=NOW, clock=NOW) is not None


def test_a_naive_event_time_is_refused_and_a_naive_wall_clock_or_clock_is_a_bug() -> None:
    naive = datetime(2026, 12, 4, 12, 0)  # noqa: DTZ001 - the point of the test
    assert BOUNDS.out_of_bounds(naive, now=NOW, clock=NOW) == (
        "occurred_at 2026-12-04T12:00:00 has no time zone"
    )
    with pytest.raises(ValueError, match="time-zone aware"):
        BOUNDS.out_of_bounds(NOW, now=naive, clock=None)
    with pytest.raises(ValueError, match="time-zone aware"):
        BOUNDS.out_of_bounds(NOW, now=NOW, clock=naive)


def test_an_event_exactly_at_the_horizon_is_taken_one_microsecond_older_is_refused() -> None:
    clock = NOW - timedelta(hours=1)
    assert BOUNDS.out_of_bounds(clock - HORIZON, now=NOW, clock=clock) is None
    why = BOUNDS.out_of_bounds(clock - HORIZON - MICROSECOND, now=NOW, clock=clock)
    assert why == (
        "occurred_at 2026-11-27T10:59:59.999999+00:00 is 7 days, 0:00:00.000001 behind the "
        "event-time clock (2026-12-04T11:00:00+00:00), beyond the horizon of 7 days, 0:00:00"
    )


def test_the_far_past_is_refused_behind_a_clock_and_taken_before_the_first_event() -> None:
    first = datetime.min.replace(tzinfo=UTC)
    assert "beyond the horizon" in str(BOUNDS.out_of_bounds(first, now=NOW, clock=NOW))
    assert BOUNDS.out_of_bounds(first, now=NOW, clock=None) is None
    assert EventTimeBounds(TOLERANCE).out_of_bounds(first, now=NOW, clock=NOW) is None


def test_the_horizon_is_measured_from_the_clock_not_the_wall_clock() -> None:
    # A replay of last month: the wall clock is far ahead, the clock is the replay's own time.
    clock = NOW - timedelta(days=30)
    assert BOUNDS.out_of_bounds(clock - timedelta(days=1), now=NOW, clock=clock) is None


def test_bounds_refuse_a_negative_tolerance_and_an_empty_horizon() -> None:
    with pytest.raises(ValueError, match="future_tolerance"):
        EventTimeBounds(-MICROSECOND)
    with pytest.raises(ValueError, match="horizon"):
        EventTimeBounds(TOLERANCE, horizon=timedelta(0))
