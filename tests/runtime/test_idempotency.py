"""The consumer's memory of handled event ids."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from services.runtime.idempotency import SeenEvents


def test_handled_ids_are_remembered_and_other_values_are_not_ids() -> None:
    seen = SeenEvents()
    handled, other = uuid4(), uuid4()
    seen.add_many([handled])
    assert handled in seen
    assert UUID(str(handled)) in seen  # an equal id, another object
    assert other not in seen
    assert handled.int not in seen  # only UUIDs are ids
    assert str(handled) not in seen
    assert len(seen) == 1


def test_the_least_recently_seen_ids_are_forgotten_first() -> None:
    seen = SeenEvents(capacity=3)
    first, second, third, fourth = (uuid4() for _ in range(4))
    seen.add_many([first, second, third])
    seen.add(first)  # seen again: now the most recent
    seen.add(fourth)
    assert second not in seen
    assert all(event_id in seen for event_id in (first, third, fourth))
    assert len(seen) == 3


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SeenEvents(capacity=0)
