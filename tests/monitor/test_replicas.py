"""Two monitor replicas on one database, a model's partition moving between them (rebalances):
each continues from the other's committed state, so the figures are those of one uninterrupted
monitor: no prediction judged twice, no window lost, no alert twice or missing."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from contracts import AlertRaised, AlertRecovered, Envelope, ProbeCompleted
from services.runtime import create_engine
from services.runtime.leases import Lease
from tests.factories import T0
from tests.monitor.conftest import ServiceMaker
from tests.monitor.doubles import FakeRegistry
from tests.monitor.replay import comparable, feed, uninterrupted
from tests.monitor.streams import Phase, interleaved, scored_stream


async def test_a_model_moving_between_two_replicas_gives_the_figures_of_one_monitor(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    stream = scored_stream([Phase(600), Phase(600, recall=0.6), Phase(800)], prefix="r")
    events: list[Envelope] = interleaved(stream, label_lag=40)
    tolerance = timedelta(hours=1)
    expected = uninterrupted(events, registry, now=T0, poll=100, future_tolerance=tolerance)
    assert any(isinstance(e, AlertRaised) for e in expected)
    assert any(isinstance(e, AlertRecovered) for e in expected)

    # Both replicas start (and restore) before either handles anything.
    first, first_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    second, second_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    await first.load_deployments()
    await second.load_deployments()
    owners = [first, second]
    size = 700  # each rebalance moves the partition to the other replica
    for turn, start in enumerate(range(0, len(events), size)):
        owner = owners[turn % 2]
        # Kafka redelivers what the previous owner handled but had not committed yet.
        await feed(owner, events[max(0, start - 200) : start + size], poll=100)

    published = first_out.events + second_out.events
    assert in_any_order(comparable(published)) == in_any_order(comparable(expected))


def in_any_order(events: list[dict[str, Any]]) -> list[str]:
    """The events as sorted JSON: two replicas' outputs interleave by turn."""
    return sorted(json.dumps(event, sort_keys=True) for event in events)


async def test_probes_run_in_one_replica_and_move_when_it_stops(
    make_service: ServiceMaker, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: its one replica probes")
    engines = [create_engine(database_url) for _ in range(2)]
    replicas = [await make_service() for _ in range(2)]
    for service, _ in replicas:
        await service.load_deployments()

    def probes_run() -> int:
        return sum(len(out.of_type(ProbeCompleted)) for _, out in replicas)

    async def until_probes(count: int) -> None:
        async with asyncio.timeout(30):
            while True:
                if probes_run() >= count:
                    return
                await asyncio.sleep(0.05)

    loops = [
        asyncio.create_task(service.run_probes(0.05, Lease(engine, "monitor-probes")))
        for (service, _), engine in zip(replicas, engines, strict=True)
    ]
    try:
        await until_probes(1)
        await asyncio.sleep(1.0)  # both loops tick ~20 times; the model's interval is longer
        assert probes_run() == 1
        holder = next(i for i, (_, out) in enumerate(replicas) if out.of_type(ProbeCompleted))
        loops[holder].cancel()  # the holder stops: its lease is released
        await asyncio.gather(loops[holder], return_exceptions=True)
        await until_probes(2)  # the stand-by takes over and probes (it never had)
        other = replicas[1 - holder][1]
        assert len(other.of_type(ProbeCompleted)) == 1
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        for engine in engines:
            await engine.dispose()
