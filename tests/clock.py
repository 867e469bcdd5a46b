"""Time in tests: one :class:`FakeClock` that moves only when the test moves it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Generic, TypeVar, overload

__all__ = ["FakeClock"]

T = TypeVar("T", datetime, float)


class FakeClock(Generic[T]):
    """``clock()`` is now: a ``datetime`` (a wall clock) or a ``float`` (a monotonic one, in
    seconds); :meth:`advance` moves it by a ``timedelta`` or by seconds, and returns the new now."""

    def __init__(self, now: T) -> None:
        self.now: T = now

    def __call__(self) -> T:
        return self.now

    @overload
    def advance(self: FakeClock[datetime], by: timedelta) -> datetime: ...

    @overload
    def advance(self: FakeClock[float], by: float) -> float: ...

    def advance(self, by: timedelta | float) -> datetime | float:
        self.now = self.now + by  # type: ignore[operator]  # by matches now's kind (the overloads)
        return self.now
