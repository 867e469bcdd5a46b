"""The monitor's event-time bounds, pure: a mis-dated event is refused and moves no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from contracts import LabelRecorded, MetricsComputed, PredictionMade, WindowKind
from services.monitor.domain import Monitor, MonitorPolicy
from services.monitor.settings import Settings
from services.monitor.windows import WindowPolicy
from services.runtime import KafkaSettings
from tests.factories import MODEL, T0, make_version_record
from tests.monitor.conftest import ServiceMaker
from tests.monitor.streams import POSITIVE, Phase, scored_stream

NOW = T0 + timedelta(days=30)
FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


def monitor(**overrides: Any) -> Monitor:
    fields: dict[str, Any] = {
        "window": WindowPolicy(max_events=None, span=timedelta(minutes=1)),
        "join_ttl": timedelta(minutes=30),
        "min_labelled": 20,
        "min_predictions": 20,
    }
    made = Monitor(MonitorPolicy(**(fields | overrides)))
    made.know(make_version_record(version=1))
    return made


def label(at: datetime, request_id: str = "from-the-future") -> LabelRecorded:
    return LabelRecorded(
        producer="labeller", occurred_at=at, model=MODEL, request_id=request_id, label=POSITIVE
    )


def prediction(template: PredictionMade, at: datetime, request_id: str) -> PredictionMade:
    return template.model_copy(
        update={"event_id": uuid4(), "occurred_at": at, "request_id": request_id}
    )


@pytest.mark.parametrize("intruder_kind", ["label", "prediction"])
def test_an_event_dated_in_2099_is_refused_and_the_joins_and_windows_go_on(
    intruder_kind: str,
) -> None:
    stream = scored_stream([Phase(150)], label_delay=timedelta(seconds=5))
    target = monitor()
    target.add_predictions([s.prediction for s in stream[:40]], now=NOW)
    target.add_labels([s.label for s in stream[:10]], now=NOW)
    before = target.status()
    target.drain_changes()

    if intruder_kind == "label":
        step = target.add_labels([label(FAR_FUTURE)], now=NOW)
    else:
        intruder = prediction(stream[0].prediction, FAR_FUTURE, "from-the-future")
        step = target.add_predictions([intruder], now=NOW)

    assert step.outputs == []
    assert len(step.refusals) == 1
    assert "beyond the future tolerance of 0:05:00" in step.refusals[0].reason
    assert target.status() == before  # no clock moved, no join expired, no window closed
    assert target.drain_changes().clocks == {}

    outputs = target.add_labels([s.label for s in stream[10:40]], now=NOW).outputs
    outputs += target.add_predictions([s.prediction for s in stream[40:]], now=NOW).outputs
    outputs += target.add_labels([s.label for s in stream[40:]], now=NOW).outputs
    windows = [e for e in outputs if isinstance(e, MetricsComputed)]
    assert [(w.window.kind, w.predictions, w.labelled, w.expired_unjoined) for w in windows] == [
        (WindowKind.TIME, 60, 40, 0),
        (WindowKind.TIME, 60, 0, 0),
    ]
    status = target.status()
    assert (status["pending_predictions"], status["pending_labels"]) == (0, 0)
    assert status["clocks"] == {MODEL: stream[-1].label.occurred_at.isoformat()}


def test_an_event_exactly_at_the_tolerance_is_taken_and_moves_the_clock() -> None:
    stream = scored_stream([Phase(2)])
    target = monitor(future_tolerance=timedelta(seconds=30))
    now = T0 - timedelta(seconds=30)
    assert target.add_predictions([stream[0].prediction], now=now).refusals == []
    assert target.status()["clocks"] == {MODEL: T0.isoformat()}
    late = target.add_predictions([stream[1].prediction], now=now)  # dated T0 + 1 s
    assert [r.reason for r in late.refusals] == [
        "occurred_at 2026-11-22T10:00:01+00:00 is 0:00:31 ahead of the wall clock "
        "(2026-11-22T09:59:30+00:00), beyond the future tolerance of 0:00:30"
    ]


@pytest.mark.parametrize("kind", ["label", "prediction"])
def test_an_event_further_behind_its_models_clock_than_the_join_ttl_is_refused(
    kind: str,
) -> None:
    stream = scored_stream([Phase(1)], start=T0 + timedelta(hours=1))
    target = monitor()
    target.add_predictions([stream[0].prediction], now=NOW)
    on_the_horizon = T0 + timedelta(minutes=30)
    beyond = on_the_horizon - timedelta(microseconds=1)
    if kind == "label":
        taken = target.add_labels([label(on_the_horizon, "a")], now=NOW)
        refused = target.add_labels([label(beyond, "b")], now=NOW)
    else:
        template = stream[0].prediction
        taken = target.add_predictions([prediction(template, on_the_horizon, "a")], now=NOW)
        refused = target.add_predictions([prediction(template, beyond, "b")], now=NOW)
    assert taken.refusals == []
    assert [r.reason.rsplit(", ", 1)[1] for r in refused.refusals] == [
        "beyond the horizon of 0:30:00"
    ]
    assert target.status()["clocks"] == {MODEL: (T0 + timedelta(hours=1)).isoformat()}


def test_the_far_past_is_refused_behind_a_clock_but_a_models_first_event_sets_it() -> None:
    stream = scored_stream([Phase(2)])
    target = monitor()
    first_ever = datetime.min.replace(tzinfo=UTC)
    template = stream[0].prediction
    assert target.add_predictions([prediction(template, first_ever, "a")], now=NOW).refusals == []
    assert target.add_predictions([s.prediction for s in stream], now=NOW).refusals == []
    refused = target.add_labels([label(first_ever, "a")], now=NOW).refusals
    assert len(refused) == 1
    assert "behind the event-time clock" in refused[0].reason


def test_the_horizon_is_the_longer_of_the_join_ttl_and_the_window() -> None:
    policy = MonitorPolicy(
        window=WindowPolicy(max_events=None, span=timedelta(hours=2)),
        join_ttl=timedelta(minutes=30),
    )
    assert policy.event_time_bounds().horizon == timedelta(hours=2)
    assert MonitorPolicy(join_ttl=timedelta(days=7)).event_time_bounds().horizon == timedelta(
        days=7
    )


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="future_tolerance"):
        MonitorPolicy(future_tolerance=timedelta(seconds=-1))


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "86401"])
def test_the_tolerance_setting_refuses_nan_infinity_negatives_and_more_than_a_day(
    value: str,
) -> None:
    with pytest.raises(ValueError, match="event_time_future_tolerance_seconds"):
        Settings(kafka=KafkaSettings(), event_time_future_tolerance_seconds=value)


def test_the_tolerance_setting_reaches_the_policy() -> None:
    settings = Settings(kafka=KafkaSettings(), event_time_future_tolerance_seconds=0)
    assert settings.policy().event_time_bounds().future_tolerance == timedelta(0)
    assert Settings(kafka=KafkaSettings()).policy().future_tolerance == timedelta(minutes=5)


async def test_events_refused_under_a_wrong_wall_clock_are_taken_when_replayed_after_the_fix(
    make_service: ServiceMaker,
) -> None:
    wall_clock = [T0 - timedelta(days=1)]  # the monitor's host clock is a day behind
    stream = scored_stream([Phase(20)])
    predictions = [s.prediction for s in stream]
    labels = [s.label for s in stream]
    service, _ = await make_service(clock=lambda: wall_clock[0])
    refused = [*await service.on_predictions(predictions), *await service.on_labels(labels)]
    assert len(refused) == 40
    assert all("beyond the future tolerance" in r.error for r in refused)

    wall_clock[0] = NOW  # fixed; the dead letters are replayed with their event ids
    assert await service.on_predictions(predictions) == []
    assert (await service.status())["pending_predictions"] == 20
    restarted, _ = await make_service(clock=lambda: wall_clock[0])
    assert await restarted.on_labels(labels) == []
    status = await restarted.status()
    assert (status["pending_predictions"], status["pending_labels"]) == (0, 0)
    assert status["open_windows"][0]["labelled"] == 20
