"""The monitor against the real broker: an event dated far in the future must not blind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from contracts import (
    Envelope,
    LabelRecorded,
    MessageDeadLettered,
    MetricsComputed,
    Topic,
    WindowKind,
)
from services.runtime import KafkaSettings
from tests.factories import MODEL, T0
from tests.monitor.real import producer, read_events
from tests.monitor.streams import POSITIVE, Phase, scored_stream
from tests.monitor.test_real_broker import monitor, registry_of, settings_for
from tests.polling import eventually

pytestmark = pytest.mark.integration

FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("intruder_kind", ["label", "prediction"])
async def test_an_event_dated_in_2099_is_dead_lettered_and_the_monitor_keeps_its_clock(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str, intruder_kind: str
) -> None:
    # Predictions a second apart from 10:00:00, each labelled 5 s later; one-minute windows.
    stream = scored_stream([Phase(150)], label_delay=timedelta(seconds=5))
    intruder: Envelope = (
        LabelRecorded(
            producer="labeller",
            occurred_at=FAR_FUTURE,
            model=MODEL,
            request_id="from-the-future",
            label=POSITIVE,
        )
        if intruder_kind == "label"
        else stream[0].prediction.model_copy(
            update={"event_id": uuid4(), "request_id": "from-the-future", "occurred_at": FAR_FUTURE}
        )
    )
    settings = settings_for(
        kafka_settings,
        tmp_path,
        unique,
        window_max_events=None,
        window_seconds=60,
        join_ttl_seconds=1800,
    )
    last_label = stream[-1].label.occurred_at
    async with (
        monitor(settings, registry_of(MODEL)) as app,
        producer(kafka_settings) as publish,
    ):
        service = app.state.service
        await publish([s.prediction for s in stream[:40]] + [s.label for s in stream[:10]])
        await eventually(
            service.status,
            lambda s: (
                s["pending_predictions"] == 30
                and s["clocks"].get(MODEL) == stream[39].prediction.occurred_at.isoformat()
            ),
            what="the first 40 predictions and 10 labels handled",
            timeout_s=60,
            every_s=0.2,
        )
        await publish([intruder])
        # Topics are not ordered with each other: each step waits until the monitor took it in.
        await publish([s.label for s in stream[10:40]])
        await eventually(
            service.status,
            lambda s: s["pending_predictions"] == 0 and s["pending_labels"] == 0,
            timeout_s=20,
            what="labels 10-39 joined with their waiting predictions",
            every_s=0.2,
        )
        await publish([s.prediction for s in stream[40:]])
        await eventually(
            service.status,
            lambda s: (
                s["pending_predictions"] == 110
                and s["clocks"].get(MODEL) == stream[-1].prediction.occurred_at.isoformat()
            ),
            timeout_s=20,
            what="predictions 40-149 handled, the clock at the last of them",
            every_s=0.2,
        )
        await publish([s.label for s in stream[40:]])
        status = await eventually(
            service.status,
            lambda s: (
                s["pending_predictions"] == 0
                and s["pending_labels"] == 0
                and s["clocks"].get(MODEL) == last_label.isoformat()
            ),
            timeout_s=20,
            what="every label joined, the clock at the last label",
            every_s=0.2,
        )

    letters = [
        d
        for d in await read_events(kafka_settings, Topic.DEAD_LETTER)
        if isinstance(d, MessageDeadLettered)
    ]
    assert len(letters) == 1, [d.error for d in letters]
    topic = Topic.LABELS if intruder_kind == "label" else Topic.PREDICTIONS
    assert letters[0].original_topic == kafka_settings.topic_name(topic)
    assert "future tolerance of 0:05:00" in letters[0].error
    assert FAR_FUTURE.isoformat() in letters[0].error

    windows = [
        m
        for m in await read_events(kafka_settings, Topic.METRICS)
        if isinstance(m, MetricsComputed)
    ]
    assert [(m.window.kind, m.window.start, m.predictions) for m in windows] == [
        (WindowKind.TIME, T0, 60),
        (WindowKind.TIME, T0 + timedelta(seconds=60), 60),
    ]
    assert sum(m.expired_unjoined for m in windows) == 0
    assert all(m.metrics["expired_labels"] == 0 for m in windows)
    still_open = status["open_windows"]
    assert [m.labelled for m in windows] == [40, 0]
    assert [(w["predictions"], w["labelled"]) for w in still_open] == [(30, 110)]
