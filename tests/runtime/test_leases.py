"""A lease is held by one replica at a time on PostgreSQL and passes on when its holder's
connection dies; on SQLite (one process) it is always held."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.leases import Lease, lease_key
from tests.database_tools import kill_holder


async def test_one_holder_at_a_time_and_a_stand_by_takes_over_when_the_holder_goes(
    engines: list[AsyncEngine],
) -> None:
    first, second = Lease(engines[0], "probes"), Lease(engines[1], "probes")
    assert await first.held()
    if engines[0].dialect.name != "postgresql":
        assert await second.held()  # a SQLite file belongs to one process
        return
    assert not await second.held()
    assert await first.held()  # still ours on the next round
    other = Lease(engines[1], "another kind of work")
    assert await other.held()
    await other.release()
    await first.release()
    assert await second.held()
    assert not await first.held()
    await second.release()


async def test_a_killed_holder_connection_frees_the_lease(engines: list[AsyncEngine]) -> None:
    if engines[0].dialect.name != "postgresql":
        pytest.skip("PostgreSQL frees a dead session's locks; SQLite has one process")
    first, second = Lease(engines[0], "probes"), Lease(engines[1], "probes")
    assert await first.held()
    assert not await second.held()
    await kill_holder(engines[1], "probes")
    assert await second.held()
    assert not await first.held()  # it notices the loss at its next round
    await second.release()


def test_lease_keys_are_stable_and_distinct() -> None:
    assert lease_key("monitor-probes") == lease_key("monitor-probes")
    assert lease_key("monitor-probes") != lease_key("incident-timers")
    assert -(2**63) <= lease_key("monitor-probes") < 2**63
