"""Count and event-time windows cut a stream the same way however it is batched."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import WindowKind
from services.drift_detector.windows import (
    ClosedWindow,
    OpenWindow,
    WindowSpec,
    add_rows,
    close_window,
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
