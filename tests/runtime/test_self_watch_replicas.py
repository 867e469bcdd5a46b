"""Replicas of a service measure the same lag and outbox: one of them, the holder of the
self-watch lease, publishes the alerts; a stand-by that takes over from a dead holder sends the
recovery of the alert the holder raised."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import AlertKind, AlertRaised, AlertRecovered, Envelope
from services.runtime.leases import Lease
from services.runtime.self_watch import Reading, SelfWatch
from tests.database_tools import kill_holder
from tests.publishers import RecordingPublisher

LEASE = "monitor-self-watch"


class Outbox:
    """What every replica's probe reads: the one shared outbox, stalled or not."""

    def __init__(self) -> None:
        self.stalled = False

    async def __call__(self) -> Sequence[Reading]:
        return [Reading(AlertKind.OUTBOX_STALLED, "monitor/outbox", self.stalled, "outbox")]


@pytest.fixture
def engines(engines: list[AsyncEngine]) -> list[AsyncEngine]:
    """The two replicas' engines, on PostgreSQL only."""
    if engines[0].dialect.name != "postgresql":
        pytest.skip("a SQLite file belongs to one process: its one replica publishes")
    return engines


async def test_one_replica_publishes_and_a_stand_by_recovers_what_a_dead_holder_raised(
    engines: list[AsyncEngine],
) -> None:
    outbox = Outbox()
    publishers = [RecordingPublisher(), RecordingPublisher()]
    leases = [Lease(engine, LEASE) for engine in engines]
    watches = [
        SelfWatch(producer="monitor", publisher=publisher, interval_s=1.0)
        for publisher in publishers
    ]
    for watch, lease in zip(watches, leases, strict=True):
        watch.add_probe(outbox, raise_after=2, resolve_after=2)
        watch.publish_under(lease)
    outbox.stalled = True
    for _ in range(4):
        for watch in watches:
            await watch.check()
    alerts = [e for p in publishers for e in p.events]
    assert [type(e) for e in alerts] == [AlertRaised]
    (holder,) = [i for i, lease in enumerate(leases) if lease.holding]
    assert publishers[holder].events == alerts
    # The holder dies (its connection goes, as with SIGKILL); the outbox drains meanwhile.
    await kill_holder(engines[1 - holder], LEASE)
    outbox.stalled = False
    stand_by = watches[1 - holder]
    for _ in range(3):
        await stand_by.check()
    assert leases[1 - holder].holding
    (recovery,) = publishers[1 - holder].events
    assert isinstance(recovery, AlertRecovered)
    assert isinstance(alerts[0], AlertRaised)
    assert recovery.fingerprint == alerts[0].fingerprint
    await leases[1 - holder].release()
    with contextlib.suppress(Exception):  # the dead holder's connection, closed for the test
        await leases[holder].release()


class Unreachable(RecordingPublisher):
    async def publish(self, event: Envelope) -> None:
        raise ConnectionError("broker unreachable")


async def test_a_raise_the_dead_holder_could_not_publish_is_published_by_the_stand_by(
    engines: list[AsyncEngine],
) -> None:
    outbox = Outbox()
    holder_lease, stand_by_lease = Lease(engines[0], LEASE), Lease(engines[1], LEASE)
    assert await holder_lease.held()
    holder = SelfWatch(producer="monitor", publisher=Unreachable(), interval_s=1.0)
    published = RecordingPublisher()
    stand_by = SelfWatch(producer="monitor", publisher=published, interval_s=1.0)
    for watch, lease in ((holder, holder_lease), (stand_by, stand_by_lease)):
        watch.add_probe(outbox, raise_after=2, resolve_after=2)
        watch.publish_under(lease)
    outbox.stalled = True
    for _ in range(3):
        await holder.check()  # the raise is due but cannot be published
        await stand_by.check()  # follows the episode as if the holder had published it
    assert published.events == []
    await kill_holder(engines[1], LEASE)
    await stand_by.check()
    assert [type(e) for e in published.events] == [AlertRaised]
    await stand_by.check()
    assert len(published.events) == 1  # said again once, on taking over
    await stand_by_lease.release()
    with contextlib.suppress(Exception):
        await holder_lease.release()
