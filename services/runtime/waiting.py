"""Waiting for an event with a time limit, in loops that must stop when cancelled."""

from __future__ import annotations

import asyncio

__all__ = ["wait_at_most"]


async def wait_at_most(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; return whether it was set.

    Not ``asyncio.wait_for``: on Python 3.11 it loses a cancellation that arrives as the event is
    set (CPython gh-86296), so a background loop woken at that moment (an outbox relay, a pager)
    never stops and the service hangs at shutdown.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
