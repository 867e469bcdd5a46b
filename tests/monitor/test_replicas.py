"""Two monitor replicas on one database, a model's partition moving between them (rebalances):
each continues from the other's committed state, so the figures are those of one uninterrupted
monitor: no prediction judged twice, no window lost, no alert twice or missing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from contracts import AlertRaised, AlertRecovered, Envelope
from tests.factories import T0
from tests.monitor.conftest import ServiceMaker
from tests.monitor.doubles import FakeRegistry
from tests.monitor.streams import Phase, interleaved, scored_stream
from tests.monitor.test_service import comparable, feed, uninterrupted


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

    published = first_out.published + second_out.published
    assert in_any_order(comparable(published)) == in_any_order(comparable(expected))


def in_any_order(events: list[dict[str, Any]]) -> list[str]:
    """The events as sorted JSON: two replicas' outputs interleave by turn."""
    return sorted(json.dumps(event, sort_keys=True) for event in events)
