"""A feed of "something changed" notices for the console's live pages (server-sent events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.runtime.waiting import wait_at_most

__all__ = ["ChangeFeed"]


class ChangeFeed:
    """Every committed change bumps a counter and wakes the listeners; slow listeners only
    miss intermediate counts, never the fact that something changed."""

    def __init__(self) -> None:
        self._version = 0
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Record that something changed (call after a commit)."""
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def listen(self, *, keepalive_s: float = 15.0) -> AsyncIterator[int | None]:
        """Yield the change counter after each change, and ``None`` as a keep-alive."""
        while True:
            changed = self._changed
            if not await wait_at_most(changed, keepalive_s):
                yield None
                continue
            yield self._version
