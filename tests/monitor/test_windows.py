"""Windows close by count or at event-time bucket ends, keep late events, and survive storage."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from contracts import WindowKind
from services.monitor.windows import Series, Window, WindowPolicy, Windows
from tests.factories import T0

SERIES = Series("m", 1, "champion")


def test_a_count_window_closes_at_max_predictions() -> None:
    windows = Windows(WindowPolicy(max_events=3, span=None))
    closed = [windows.add_prediction(SERIES, T0, 0.9, 1.0) for _ in range(7)]
    assert [c is not None for c in closed] == [False, False, True, False, False, True, False]
    first = closed[2]
    assert first is not None
    assert first.kind is WindowKind.COUNT
    assert first.window.predictions == 3


def test_a_count_window_also_closes_at_max_labelled_predictions() -> None:
    windows = Windows(WindowPolicy(max_events=2, span=None))
    windows.add_prediction(SERIES, T0, 0.9, 1.0)
    assert windows.add_outcome(SERIES, T0, y_true="a", y_pred="a", probabilities=[1.0]) is None
    closed = windows.add_outcome(SERIES, T0, y_true="b", y_pred="a", probabilities=[1.0])
    assert closed is not None
    assert (closed.window.predictions, closed.window.labelled) == (1, 2)


def test_an_event_time_window_closes_when_the_clock_reaches_its_bucket_end() -> None:
    windows = Windows(WindowPolicy(max_events=None, span=timedelta(minutes=5)))
    start = T0 + timedelta(minutes=2)
    windows.add_prediction(SERIES, start, 0.9, 1.0)
    windows.add_prediction(SERIES, start + timedelta(minutes=1), 0.9, 1.0)
    assert windows.close_due("m", T0 + timedelta(minutes=4, seconds=59)) == []
    (closed,) = windows.close_due("m", T0 + timedelta(minutes=5))
    assert closed.kind is WindowKind.TIME
    assert (closed.window.start, closed.window.end) == (start, start + timedelta(minutes=1))
    assert windows.open_windows() == []


def test_closing_by_time_is_per_model() -> None:
    windows = Windows(WindowPolicy(max_events=None, span=timedelta(minutes=1)))
    other = Series("other", 1, "champion")
    windows.add_prediction(SERIES, T0, 0.9, 1.0)
    windows.add_prediction(other, T0, 0.9, 1.0)
    assert [c.window.series for c in windows.close_due("m", T0 + timedelta(hours=1))] == [SERIES]
    assert [w.series for w in windows.open_windows()] == [other]


def test_a_late_event_counts_in_the_open_window_and_widens_its_span() -> None:
    windows = Windows(WindowPolicy(max_events=10, span=timedelta(minutes=5)))
    windows.add_prediction(SERIES, T0 + timedelta(minutes=3), 0.9, 1.0)
    windows.add_outcome(
        SERIES, T0 + timedelta(minutes=1), y_true="a", y_pred="a", probabilities=[1.0]
    )
    (window,) = windows.open_windows()
    assert window.start == T0 + timedelta(minutes=1)
    assert window.labelled == 1


def test_two_windows_can_start_at_the_same_event_time_and_their_ends_tell_them_apart() -> None:
    """A label stamped before its prediction was scored (a client that dates it at request time)
    joins at the prediction's time; arriving after that prediction's window closed, it widens the
    next window back to the same first event time. A window is named by its start and end."""
    windows = Windows(WindowPolicy(max_events=None, span=timedelta(minutes=5)))
    first = T0 + timedelta(minutes=4, seconds=59)
    windows.add_prediction(SERIES, first, 0.9, 1.0)
    (closed,) = windows.close_due("m", T0 + timedelta(minutes=5))
    windows.add_prediction(SERIES, T0 + timedelta(minutes=5), 0.9, 1.0)
    windows.add_outcome(SERIES, first, y_true="a", y_pred="a", probabilities=[1.0])
    (following,) = windows.open_windows()
    assert following.start == closed.window.start == first
    assert following.end > closed.window.end


def test_expirations_and_label_mismatches_are_counted_in_the_open_window() -> None:
    windows = Windows(WindowPolicy(max_events=10, span=None))
    windows.add_expired(SERIES, T0)
    windows.add_expired(SERIES, T0)
    windows.add_label_mismatch(SERIES, T0)
    (window,) = windows.open_windows()
    assert (window.expired_unjoined, window.label_mismatches, window.predictions) == (2, 1, 0)


def test_a_window_survives_a_round_trip_through_json() -> None:
    windows = Windows(WindowPolicy(max_events=10, span=timedelta(minutes=5)))
    windows.add_prediction(SERIES, T0, 0.6, 3.5)
    windows.add_outcome(SERIES, T0, y_true="a", y_pred="b", probabilities=[0.4, 0.6])
    windows.add_expired(SERIES, T0)
    (window,) = windows.open_windows()
    assert Window.from_dict(json.loads(json.dumps(window.to_dict()))) == window


def test_drain_reports_open_windows_and_closed_series() -> None:
    windows = Windows(WindowPolicy(max_events=1, span=None))
    other = Series("m", 2, "challenger")
    windows.add_expired(other, T0)
    windows.add_prediction(SERIES, T0, 0.9, 1.0)  # opens and closes
    changes = windows.drain()
    assert changes[SERIES] is None
    assert changes[other] is not None
    assert windows.drain() == {}


def test_restored_windows_keep_filling_and_closing() -> None:
    first = Windows(WindowPolicy(max_events=3, span=None))
    first.add_prediction(SERIES, T0, 0.9, 1.0)
    first.add_prediction(SERIES, T0, 0.9, 1.0)
    again = Windows(WindowPolicy(max_events=3, span=None))
    again.restore(first.open_windows())
    closed = again.add_prediction(SERIES, T0, 0.9, 1.0)
    assert closed is not None
    assert closed.window.predictions == 3


def test_a_policy_needs_a_way_to_close() -> None:
    with pytest.raises(ValueError, match="count, an event-time span"):
        WindowPolicy(max_events=None, span=None)
