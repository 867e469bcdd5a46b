"""Events handed to the monitor as its consumer hands them (polls of a size, runs of one type),
to the service or to a monitor that never stops: a restart or a replica must publish what the
uninterrupted run does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, cast

from contracts import (
    Envelope,
    LabelRecorded,
    PredictionMade,
    ProbeCompleted,
    ValuePredicted,
    ValueRecorded,
)
from services.monitor.domain import Monitor, MonitorPolicy
from services.monitor.service import MonitorService
from services.monitor.windows import WindowPolicy
from services.runtime import Rejection
from tests.factories import T0
from tests.monitor.doubles import FakeRegistry

NOW = T0 + timedelta(days=30)

PREDICTIONS = (PredictionMade, ValuePredicted)


def polled(events: Sequence[Envelope], size: int) -> list[list[Envelope]]:
    """Split events as a consumer polls them: ``size`` at a time, each poll grouped by topic
    (aiokafka returns records partition by partition), predictions first."""
    chunks = [list(events[start : start + size]) for start in range(0, len(events), size)]
    return [
        [e for e in chunk if isinstance(e, PREDICTIONS)]
        + [e for e in chunk if not isinstance(e, PREDICTIONS)]
        for chunk in chunks
    ]


async def feed(
    service: MonitorService, events: Sequence[Envelope], *, poll: int = 100
) -> list[Rejection]:
    """Hand events to the service as the consumer does: runs of one type, in order."""
    rejections: list[Rejection] = []
    for chunk in polled(events, poll):
        for kind, run in groupby(chunk, key=type):
            batch = list(run)
            if kind in PREDICTIONS:
                predictions = cast(list[PredictionMade | ValuePredicted], batch)
                rejections += await service.on_predictions(predictions)
            else:
                rejections += await service.on_labels(
                    cast(list[LabelRecorded | ValueRecorded], batch)
                )
    return rejections


def uninterrupted(
    events: Sequence[Envelope],
    registry: FakeRegistry,
    now: datetime = NOW,
    *,
    poll: int = 100,
    **policy: Any,
) -> list[Envelope]:
    """What one monitor that never stops publishes for these events (no database at all)."""
    fields: dict[str, Any] = {
        "window": WindowPolicy(max_events=100, span=None),
        "min_labelled": 20,
        "min_predictions": 20,
        "comparison_min_samples": 100,
    }
    monitor = Monitor(MonitorPolicy(**(fields | policy)))
    for record in registry.records.values():
        monitor.know(record)
    outputs: list[Envelope] = []
    for model, deployment in registry.deployments.items():
        outputs += monitor.apply_deployment(model, deployment, at=now, now=now).outputs
    for chunk in polled(events, poll):
        for kind, run in groupby(chunk, key=type):
            batch = list(run)
            if kind in PREDICTIONS:
                predictions = cast(list[PredictionMade | ValuePredicted], batch)
                outputs += monitor.add_predictions(predictions, now=now).outputs
            else:
                truths = cast(list[LabelRecorded | ValueRecorded], batch)
                outputs += monitor.add_labels(truths, now=now).outputs
    return outputs


def comparable(events: Sequence[Envelope]) -> list[dict[str, Any]]:
    return [
        event.model_dump(mode="json", exclude={"event_id", "occurred_at"})
        for event in events
        if not isinstance(event, ProbeCompleted)
    ]
