"""A publisher double for tests that check what a component published, in order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from contracts import Envelope

__all__ = ["RecordingPublisher"]

E = TypeVar("E", bound=Envelope)


class RecordingPublisher:
    """Keeps every event published, in order (``events``); ``fail_next`` makes the next call
    fail as an unreachable broker would, publishing nothing."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self.fail_next = False

    async def publish(self, event: Envelope) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        batch = list(events)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("broker unreachable")
        self.events.extend(batch)

    def of_type(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]
