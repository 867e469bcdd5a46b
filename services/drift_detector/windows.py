"""Cutting a stream of rows into windows: by count, or by event time.

Count windows close every ``size`` rows. Time windows are tumbling buckets of ``duration``
aligned to the epoch, assigned by each event's own time (``occurred_at``), so a replay cuts the
same windows as the live stream did. A window closes when the first event of a later bucket
arrives; one with fewer than ``min_rows`` rows is not tested but carried on into the next bucket
(its end moves), because a handful of rows cannot show drift and would only add noise. A late
event (from the bucket before the open one) joins the open window rather than being dropped. Both
kinds can be closed early (:func:`close_window`), which the sequential mode does when it alarms.

The open bucket is the time windows' clock, so an event's date is checked before it can move it
(:func:`out_of_bounds`): one dated years ahead would open a bucket no later event reaches, and
every window after it would stay open for ever; one from before the bucket preceding the open one
would stretch the open window back. Count windows keep no clock and take any date.

States are immutable: adding rows returns a new state, so a caller can drop it if publishing the
results fails and try again from the old one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from contracts.monitoring import Window, WindowKind
from services.drift_detector.encoding import FeatureBatch
from services.runtime.event_time import EventTimeBounds

__all__ = ["ClosedWindow", "OpenWindow", "WindowSpec", "add_rows", "close_window", "out_of_bounds"]

FloatArray = NDArray[np.float64]

_FIRST_SECOND = datetime.min.replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class WindowSpec:
    """How windows are cut."""

    kind: WindowKind = WindowKind.COUNT
    size: int = 1000
    """Rows per count window."""
    duration_s: float = 300.0
    """Seconds per time window."""
    min_rows: int = 30
    """Fewest rows a window is tested with."""

    def __post_init__(self) -> None:
        if self.min_rows < 2:
            raise ValueError("min_rows must be at least 2")
        if self.kind is WindowKind.COUNT and self.size < self.min_rows:
            raise ValueError(
                f"count windows of {self.size} rows are below min_rows {self.min_rows}"
            )
        if self.kind is WindowKind.TIME and not self.duration_s > 0:
            raise ValueError("time windows need a positive duration")


@dataclass(frozen=True, eq=False)
class OpenWindow:
    """Rows received since the last window closed."""

    chunks: tuple[FeatureBatch, ...] = ()
    times: tuple[FloatArray, ...] = ()
    """Event times (epoch seconds) of the rows of each chunk."""
    bucket: int | None = None
    """Time bucket the window belongs to (time windows)."""

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return sum(chunk.rows for chunk in self.chunks)


@dataclass(frozen=True, eq=False)
class ClosedWindow:
    """A window ready to be tested."""

    batch: FeatureBatch
    window: Window


def add_rows(
    state: OpenWindow, spec: WindowSpec, batch: FeatureBatch, times: FloatArray
) -> tuple[OpenWindow, list[ClosedWindow]]:
    """Add rows (in event order) to the open window; return it and the windows that closed."""
    if len(times) != batch.rows:
        raise ValueError(f"{len(times)} event times for {batch.rows} rows")
    if batch.rows == 0:
        return state, []
    if spec.kind is WindowKind.COUNT:
        return _add_counted(state, spec, batch, times)
    return _add_timed(state, spec, batch, times)


def out_of_bounds(
    state: OpenWindow,
    spec: WindowSpec,
    occurred_at: Sequence[datetime],
    *,
    now: datetime,
    future_tolerance: timedelta,
) -> list[str | None]:
    """Return why each event (in stream order) is refused for its date, ``None`` where it is not.

    Time windows refuse a date more than ``future_tolerance`` past the wall clock ``now``, or
    from before the bucket preceding the open one (the clock is the open bucket's start, the
    horizon one window); the clock moves with the events taken in.
    """
    if spec.kind is not WindowKind.TIME:
        return [None] * len(occurred_at)
    bounds = EventTimeBounds(future_tolerance, horizon=timedelta(seconds=spec.duration_s))
    bucket = state.bucket
    refusals: list[str | None] = []
    for at in occurred_at:
        clock = None if bucket is None else _datetime(max(bucket * spec.duration_s, _FIRST_SECOND))
        why = bounds.out_of_bounds(at, now=now, clock=clock)
        if why is None:
            opened = math.floor(at.timestamp() / spec.duration_s)
            bucket = opened if bucket is None else max(bucket, opened)
        refusals.append(why)
    return refusals


def close_window(state: OpenWindow, kind: WindowKind) -> tuple[OpenWindow, ClosedWindow | None]:
    """Close the open window now, whatever its size; ``None`` if it is empty."""
    if not state.chunks:
        return state, None
    batch = FeatureBatch.concat(state.chunks)
    times = np.concatenate(state.times)
    closed = ClosedWindow(
        batch=batch,
        window=Window(
            kind=kind,
            start=_datetime(float(times.min())),
            end=_datetime(float(times.max())),
            size=batch.rows,
        ),
    )
    return OpenWindow(bucket=state.bucket), closed


def _append(state: OpenWindow, batch: FeatureBatch, times: FloatArray) -> OpenWindow:
    if batch.rows == 0:
        return state
    return replace(state, chunks=(*state.chunks, batch), times=(*state.times, times))


def _add_counted(
    state: OpenWindow, spec: WindowSpec, batch: FeatureBatch, times: FloatArray
) -> tuple[OpenWindow, list[ClosedWindow]]:
    closed: list[ClosedWindow] = []
    start = 0
    while start < batch.rows:
        room = spec.size - state.rows
        stop = min(batch.rows, start + room)
        state = _append(state, batch.slice(start, stop), times[start:stop])
        start = stop
        if state.rows >= spec.size:
            state, window = close_window(state, WindowKind.COUNT)
            assert window is not None
            closed.append(window)
    return state, closed


def _add_timed(
    state: OpenWindow, spec: WindowSpec, batch: FeatureBatch, times: FloatArray
) -> tuple[OpenWindow, list[ClosedWindow]]:
    buckets = np.floor(times / spec.duration_s).astype(np.int64)
    closed: list[ClosedWindow] = []
    current = state.bucket if state.bucket is not None else int(buckets[0])
    start = 0
    # Only rows that open a later bucket than every row before them can close a window.
    running = np.maximum.accumulate(np.concatenate([[current], buckets]))
    openers = np.flatnonzero(buckets > running[:-1])
    for index in openers.tolist():
        state = _append(state, batch.slice(start, index), times[start:index])
        start = index
        if state.rows >= spec.min_rows:
            state, window = close_window(state, WindowKind.TIME)
            assert window is not None
            closed.append(window)
        state = replace(state, bucket=int(buckets[index]))
    state = _append(state, batch.slice(start, batch.rows), times[start:])
    if state.bucket is None:
        state = replace(state, bucket=current)
    return state, closed


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(math.floor(seconds * 1e6) / 1e6, tz=UTC)
