"""A regressor's loss reference through the monitor service on a real database (SQLite file;
PostgreSQL under ``integration``): a restart while the reference is still gathering (waiting
predictions keep their features in storage) and one after it is complete (the loss models are
refitted from the stored rows) publish the estimates an uninterrupted monitor does."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import Envelope, MetricsComputed
from tests.factories import T0
from tests.monitor.conftest import ServiceMaker
from tests.monitor.doubles import FakeRegistry
from tests.monitor.regression_streams import regressor_record
from tests.monitor.replay import comparable, feed, uninterrupted
from tests.monitor.test_loss_estimation_in_monitor import Traffic


def traffic() -> list[Envelope]:
    """300 predictions with their values 60 behind (the reference), then 400 on shifted inputs
    whose values never come."""
    source = Traffic(11)
    predictions, truths = source.phase(300, low=0.0, high=1.0)
    events: list[Envelope] = []
    for index, prediction in enumerate(predictions):
        events.append(prediction)
        if index >= 60:
            events.append(truths[index - 60])
    events += truths[240:]
    shifted, _ = source.phase(400, low=0.9, high=1.0)
    return events + list(shifted)


@pytest.mark.parametrize("cut", [200, 700], ids=["gathering", "complete"])
async def test_a_restart_keeps_the_loss_reference(
    make_service: ServiceMaker, registry: FakeRegistry, cut: int
) -> None:
    registry.add(regressor_record(version=1))
    events = traffic()
    tolerance = timedelta(hours=1)
    expected = uninterrupted(events, registry, T0, future_tolerance=tolerance)
    estimated = [e for e in expected if isinstance(e, MetricsComputed) and e.estimated]
    assert len(estimated) >= 4

    first, first_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    assert await feed(first, events[:cut]) == []
    status = await first.status()
    (reference,) = status["loss_references"]
    assert reference["complete"] is (cut == 700)
    # A new process on the same database; Kafka redelivers what was handled but not committed.
    second, second_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    assert await feed(second, events[cut - 100 :]) == []
    published = first_out.events + second_out.events
    assert comparable(published) == comparable(expected)
