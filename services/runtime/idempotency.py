"""Remembering which events were handled, so a redelivered event is handled once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from uuid import UUID

__all__ = ["SeenEvents"]


class SeenEvents:
    """A bounded memory of handled event ids (least recently seen forgotten first).

    Kafka redelivers after a rebalance or a crash, usually within the last few thousand events;
    services whose effects must survive a restart also record ids in their own database.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._ids: OrderedDict[UUID, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: UUID) -> None:
        """Remember an id, forgetting the oldest one when full."""
        self.add_many((event_id,))

    def add_many(self, event_ids: Iterable[UUID]) -> None:
        """Remember ids in order, forgetting the oldest ones beyond the capacity."""
        ids = self._ids
        for event_id in event_ids:
            ids[event_id] = None
            ids.move_to_end(event_id)
        while len(ids) > self._capacity:
            ids.popitem(last=False)
