"""A service with no database (the scorer) leases by Kafka: the replica its consumer group
assigned partition 0 of a topic holds the lease, and a stand-by takes over when the group
reassigns it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack

import pytest
from aiokafka import TopicPartition

from contracts import TOPICS, AlertKind, AlertRaised, AlertRecovered, Topic
from contracts.scoring import ScoringRequest
from contracts.wire import decode
from services.runtime import KafkaSettings, ServiceName, ServiceRuntime, ServiceSettings
from services.runtime.leases import PartitionLease
from services.runtime.self_watch import Reading, SelfWatch
from tests.kafka_tools import read_until_quiet
from tests.polling import eventually
from tests.processes import kafka_env
from tests.publishers import RecordingPublisher

TOPIC = "scoring.requests"


class Group:
    """A fake consumer group: which member is assigned which partitions now."""

    def __init__(self, members: int) -> None:
        self.assigned: list[set[TopicPartition]] = [set() for _ in range(members)]

    def give(self, member: int, *partitions: int, topic: str = TOPIC) -> None:
        for others in self.assigned:
            others.difference_update(TopicPartition(topic, p) for p in partitions)
        self.assigned[member].update(TopicPartition(topic, p) for p in partitions)

    def lease(self, member: int) -> PartitionLease:
        return PartitionLease("scorer-self-watch", lambda: self.assigned[member], TOPIC)


class Lag:
    """What every replica's probe reads: the group's one lag, too high or not."""

    def __init__(self) -> None:
        self.high = False

    async def __call__(self) -> Sequence[Reading]:
        return [Reading(AlertKind.CONSUMER_LAG, "scorer/group/scoring.requests", self.high, "lag")]


async def test_the_member_assigned_partition_0_holds_the_lease_and_only_while_it_is() -> None:
    group = Group(2)
    first, second = group.lease(0), group.lease(1)
    assert (await first.held(), await second.held()) == (False, False)  # nobody joined yet
    group.give(0, 1, 2)
    group.give(1, 0, topic="models")  # partition 0 of another topic is no lease
    assert (await first.held(), await second.held()) == (False, False)
    group.give(1, 0)
    assert (await first.held(), await second.held()) == (False, True)
    assert second.holding
    group.give(0, 0)  # the group reassigned it (the holder left or died)
    assert (await first.held(), await second.held()) == (True, False)
    await first.release()
    assert not first.holding
    assert await first.held()  # a release cannot give the partition away


async def test_one_replica_publishes_and_the_one_given_partition_0_recovers_what_it_raised() -> (
    None
):
    group, lag = Group(2), Lag()
    publishers = [RecordingPublisher(), RecordingPublisher()]
    watches = [SelfWatch(producer="scorer", publisher=p, interval_s=1.0) for p in publishers]
    for member, watch in enumerate(watches):
        watch.add_probe(lag, raise_after=2, resolve_after=2)
        watch.publish_under(group.lease(member))
    group.give(0, 0, 1)
    group.give(1, 2, 3)
    lag.high = True
    for _ in range(3):
        for watch in watches:
            await watch.check()
    assert [type(e) for e in publishers[0].events] == [AlertRaised]
    assert publishers[1].events == []
    group.give(1, 0, 1)  # the holder died; the group gave its partitions to the stand-by
    group.assigned[0].clear()
    lag.high = False
    for _ in range(2):
        await watches[1].check()
    (raised,), (recovery,) = publishers[0].events, publishers[1].events
    assert isinstance(raised, AlertRaised)
    assert isinstance(recovery, AlertRecovered)
    assert recovery.fingerprint == raised.fingerprint


@pytest.mark.integration
async def test_two_replicas_of_a_group_one_holds_and_the_other_takes_over_when_it_stops(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    async def ignore(requests: list[ScoringRequest]) -> None:
        return None

    settings = ServiceSettings(kafka=kafka_settings, self_watch_interval_s=3600)
    runtimes = [
        ServiceRuntime(ServiceName.SCORER, settings, group_id=f"test-{unique}") for _ in range(2)
    ]
    for runtime in runtimes:
        runtime.consumer.on_batch(ScoringRequest, ignore)
        runtime.self_watch_where_assigned(Topic.SCORING_REQUESTS)
    leases = [runtime.partition_lease("lease", Topic.SCORING_REQUESTS) for runtime in runtimes]
    partitions = TOPICS[Topic.SCORING_REQUESTS].partitions
    lag = Lag()
    lag.high = True
    for runtime in runtimes:
        assert runtime.self_watch is not None
        runtime.self_watch.add_probe(lag)  # raises at its first bad check
    stacks = [AsyncExitStack(), AsyncExitStack()]
    try:
        await asyncio.gather(
            *(s.enter_async_context(r.running()) for s, r in zip(stacks, runtimes, strict=True))
        )

        def settled() -> bool:
            assigned = [runtime.assignment() for runtime in runtimes]
            return all(assigned) and sum(map(len, assigned)) == partitions

        await eventually(settled, timeout_s=30, every_s=0.1, what="both members assigned")
        held = [await lease.held() for lease in leases]
        assert sorted(held) == [False, True]
        holder = held.index(True)
        for runtime in runtimes:
            assert runtime.self_watch is not None
            await runtime.self_watch.check()  # only the holder publishes
        records = await read_until_quiet(kafka_settings, Topic.ALERTS, quiet_s=1.0)
        alerts = [decode(Topic.ALERTS, record.value) for record in records]
        assert [type(a) for a in alerts] == [AlertRaised]

        await stacks[holder].aclose()  # leaves the group: partition 0 is reassigned
        stand_by = leases[1 - holder]
        assert await eventually(stand_by.held, timeout_s=30, every_s=0.1, what="takeover")
        assert not await leases[holder].held()
        # Partition 0 may have moved to it in an earlier rebalance (a member's heartbeat
        # expired under load), so the lease can be its before the group has settled.
        await eventually(
            lambda: len(runtimes[1 - holder].assignment()) == partitions,
            timeout_s=30,
            every_s=0.1,
            what="every partition",
        )
    finally:
        for stack in stacks:
            await stack.aclose()


class Replica:
    """``tests/runtime/lease_replica.py`` in a process of its own, its last report kept."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.assigned, self.held = 0, False
        self.log: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, kafka: KafkaSettings, group: str) -> Replica:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.runtime.lease_replica",
            group,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=os.environ | kafka_env(kafka),
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            if not line.startswith(b"{"):
                self.log.append(line.decode(errors="replace"))
                continue
            report = json.loads(line)
            self.assigned, self.held = report["assigned"], report["held"]

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self._reader.cancel()


@pytest.mark.integration
@pytest.mark.timeout(180)
async def test_a_stand_by_takes_the_lease_over_from_a_holder_that_is_sigkilled(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    """A SIGKILLed holder never leaves the group: the broker drops it when its session times
    out, then partition 0, and with it the lease, goes to the stand-by."""
    replicas = [await Replica.start(kafka_settings, f"test-{unique}") for _ in range(2)]
    partitions = TOPICS[Topic.SCORING_REQUESTS].partitions
    try:
        await eventually(
            lambda: (
                all(r.assigned for r in replicas)
                and sum(r.assigned for r in replicas) == partitions
            ),
            timeout_s=60,
            every_s=0.2,
            what="both replicas assigned",
        )
        await eventually(
            lambda: sum(r.held for r in replicas) == 1, timeout_s=10, every_s=0.2, what="a holder"
        )
        holder = next(r for r in replicas if r.held)
        stand_by = next(r for r in replicas if r is not holder)
        await holder.kill()
        killed_at = time.monotonic()
        await eventually(lambda: stand_by.held, timeout_s=60, every_s=0.1, what="takeover")
        taken_over_s = time.monotonic() - killed_at
        await eventually(
            lambda: stand_by.assigned == partitions, timeout_s=10, every_s=0.1, what="all of them"
        )
        assert stand_by.process.returncode is None
        # the embedded profile's session lasts 2 s; the group then rebalances (slow on Tansu)
        assert taken_over_s < 30, f"lease taken over {taken_over_s:.1f} s after the SIGKILL"
    except AssertionError as failed:
        logs = [f"--- replica {n}\n{''.join(r.log[-30:])}" for n, r in enumerate(replicas)]
        raise AssertionError("\n".join([str(failed), *logs])) from None
    finally:
        for replica in replicas:
            await replica.kill()


def test_a_lease_on_a_topic_the_consumer_does_not_read_is_refused() -> None:
    runtime = ServiceRuntime(ServiceName.SCORER, ServiceSettings())
    with pytest.raises(ValueError, match=r"does not read scoring\.requests"):
        runtime.partition_lease("lease", Topic.SCORING_REQUESTS)
    assert runtime.assignment() == frozenset()  # not started: no consumer, no partitions
