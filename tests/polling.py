"""Waiting in tests for something another process or task does: one :func:`eventually`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["eventually"]

T = TypeVar("T")


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], Any] = ...,
    *,
    timeout_s: float = ...,
    every_s: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    until: Callable[[T], Any] = ...,
    *,
    timeout_s: float = ...,
    every_s: float = ...,
    what: str = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    until: Callable[[Any], Any] = bool,
    *,
    timeout_s: float = 30.0,
    every_s: float = 0.05,
    what: str = "condition",
) -> Any:
    """Call ``probe`` (plain or async) every ``every_s`` until ``until`` holds for what it
    returned, and return that; after ``timeout_s``, fail naming ``what`` and the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met in {timeout_s:g} s; last: {value!r}"[:2000])
        await asyncio.sleep(every_s)
