"""Count and event-time windows cut a stream the same way however it is batched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from contracts import WindowKind
from services.drift_detector.windows import (
    ClosedWindow,
    OpenWindow,
    WindowSpec,
    add_rows,
    close_window,
    out_of_bounds,
)
from tests.drift_detector.data import numeric_batch


def feed(
    spec: WindowSpec, values: np.ndarray, times: np.ndarray, batch_size: int
) -> tuple[OpenWindow, list[ClosedWindow]]:
    state = OpenWindow()
    closed: list[ClosedWindow] = []
    for start in range(0, len(values), batch_size):
        state, done = add_rows(
            state,
            spec,
            numeric_batch(values[start : start + batch_size]),
            times[start : start + batch_size],
        )
        closed += done
    return state, closed


@pytest.mark.parametrize("batch_size", [1, 7, 100, 1000])
def test_count_windows_close_every_size_rows_whatever_the_batches(batch_size: int) -> None:
    values = np.arange(1050, dtype=float).reshape(-1, 1)
    spec = WindowSpec(kind=WindowKind.COUNT, size=200, min_rows=30)
    state, closed = feed(spec, values, np.arange(1050, dtype=float), batch_size)
    assert [w.window.size for w in closed] == [200] * 5
    assert closed[1].batch.numeric[:, 0].tolist() == list(range(200, 400))
    assert closed[0].window.kind is WindowKind.COUNT
    assert closed[0].window.start.timestamp() == 0
    assert closed[0].window.end.timestamp() == 199
    assert state.rows == 50


@pytest.mark.parametrize("batch_size", [1, 13, 500])
def test_time_windows_follow_event_time_buckets(batch_size: int) -> None:
    times = np.arange(0, 600, 0.5)  # two rows a second for ten minutes
    values = times.reshape(-1, 1)
    spec = WindowSpec(kind=WindowKind.TIME, duration_s=120, min_rows=30)
    state, closed = feed(spec, values, times, batch_size)
    assert [w.window.size for w in closed] == [240] * 4  # the fifth bucket is still open
    assert closed[2].window.start.timestamp() == 240
    assert closed[2].window.end.timestamp() == 359.5
    assert closed[0].window.kind is WindowKind.TIME
    assert state.rows == 240


def test_a_sparse_time_window_is_carried_into_the_next_and_late_rows_join_the_open_one() -> None:
    times = np.array(
        [0.0, 10, 70, 130, 135, 50, 140, 200, 250] + [260 + i for i in range(40)] + [400]
    )
    values = np.arange(len(times), dtype=float).reshape(-1, 1)
    spec = WindowSpec(kind=WindowKind.TIME, duration_s=60, min_rows=5)
    _, closed = feed(spec, values, times, 4)
    # Buckets 0-2 hold too few rows until the late row (t=50) and t=140 arrive; then 200 closes.
    assert [w.window.size for w in closed] == [7, 42]
    assert closed[0].batch.numeric[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert closed[0].window.end.timestamp() == 140


def test_time_windows_refuse_dates_past_the_tolerance_or_before_the_preceding_bucket() -> None:
    spec = WindowSpec(kind=WindowKind.TIME, duration_s=60, min_rows=5)
    open_at_120 = OpenWindow(bucket=2)  # the open bucket is [120 s, 180 s)
    now = datetime.fromtimestamp(1000, tz=UTC)
    tolerance = timedelta(seconds=30)

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, tz=UTC)

    dates = [60, 59.999, 1030.001, 61, 1030, 1000, 400]
    refusals = out_of_bounds(
        open_at_120, spec, [at(t) for t in dates], now=now, future_tolerance=tolerance
    )
    assert [why is None for why in refusals] == [True, False, False, True, True, True, False]
    assert "beyond the horizon of 0:01:00" in str(refusals[1])
    assert "beyond the future tolerance of 0:00:30" in str(refusals[2])
    # The refused t=1030.001 moved nothing (t=61 is still taken); the taken t=1030 moved the
    # clock to its bucket [1020 s, 1080 s), so t=400 is now behind it.
    assert "event-time clock (1970-01-01T00:17:00+00:00)" in str(refusals[6])
    assert out_of_bounds(OpenWindow(), spec, [at(0)], now=now, future_tolerance=tolerance) == [None]


def test_count_windows_keep_no_clock_and_take_any_date() -> None:
    spec = WindowSpec(kind=WindowKind.COUNT, size=100, min_rows=10)
    dates = [datetime(2099, 1, 1, tzinfo=UTC), datetime.min.replace(tzinfo=UTC)]
    now = datetime(2026, 12, 4, tzinfo=UTC)
    assert out_of_bounds(OpenWindow(), spec, dates, now=now, future_tolerance=timedelta(0)) == [
        None,
        None,
    ]


def test_a_first_date_at_the_start_of_the_calendar_gives_a_clock_without_overflow() -> None:
    spec = WindowSpec(kind=WindowKind.TIME, duration_s=3600, min_rows=5)
    first = datetime.min.replace(tzinfo=UTC)
    now = datetime(2026, 12, 4, tzinfo=UTC)
    refusals = out_of_bounds(
        OpenWindow(), spec, [first, first, now], now=now, future_tolerance=timedelta(0)
    )
    assert refusals == [None, None, None]


def test_closing_early_returns_what_is_open() -> None:
    spec = WindowSpec(kind=WindowKind.COUNT, size=100, min_rows=10)
    state, _ = add_rows(OpenWindow(), spec, numeric_batch(np.ones((40, 2))), np.arange(40.0))
    state, closed = close_window(state, WindowKind.COUNT)
    assert closed is not None
    assert closed.window.size == 40
    assert state.rows == 0
    assert close_window(state, WindowKind.COUNT)[1] is None


def test_window_specs_refuse_sizes_that_cannot_be_tested() -> None:
    with pytest.raises(ValueError, match="below min_rows"):
        WindowSpec(size=10, min_rows=30)
    with pytest.raises(ValueError, match="positive duration"):
        WindowSpec(kind=WindowKind.TIME, duration_s=0)
    with pytest.raises(ValueError, match="event times"):
        add_rows(OpenWindow(), WindowSpec(), numeric_batch(np.ones((3, 1))), np.arange(2.0))
