"""The drift detector on the real broker: a shift raises one episode, a clean stream none, and
events it cannot test go to the dead-letter topic with the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from contracts import (
    AlertRaised,
    DeadLetterReason,
    DriftReported,
    Envelope,
    FeatureValue,
    MessageDeadLettered,
    Topic,
)
from services.runtime import EventPublisher, KafkaSettings
from tests.drift_detector.data import predictions, training_csv, training_rows
from tests.drift_detector.fakes import Registry
from tests.drift_detector.running import detector, publish
from tests.factories import T0
from tests.kafka_tools import read_events as read_distinct

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def read_events(kafka: KafkaSettings, topic: Topic, count: int) -> list[Envelope]:
    """The detector's events, a relay's byte-identical copies left out (its ids are derived from
    its input, so a decision published twice has the same id and still counts twice)."""
    records = await read_distinct(kafka, topic, count=count, timeout_s=45, identical_only=True)
    parse: type[Envelope] = DriftReported if topic is Topic.DRIFT else AlertRaised
    return [parse.model_validate_json(record.value) for record in records]


async def nothing_more(kafka: KafkaSettings, topic: Topic, count: int) -> bool:
    try:
        await read_distinct(kafka, topic, count=count + 1, timeout_s=3, identical_only=True)
    except AssertionError:
        return True
    return False


@pytest.mark.timeout(120)
async def test_a_stream_that_shifts_after_a_point_raises_one_episode_naming_the_shifted_features(
    kafka_settings: KafkaSettings, publisher: EventPublisher, tmp_path: Path, unique: str
) -> None:
    model = f"m-{unique}"
    registry = Registry(model, training_csv(np.random.default_rng(10)))
    values, devices = training_rows(np.random.default_rng(11), 5000)
    values[2500:, [1, 3]] += 0.8  # the score follows x0 only: no prediction drift
    app = detector(kafka_settings, tmp_path, registry)
    async with app.router.lifespan_context(app):
        await publish(publisher, list(predictions(values, devices, model=model)))
        reports = await read_events(kafka_settings, Topic.DRIFT, count=10)
        alerts = await read_events(kafka_settings, Topic.ALERTS, count=1)
        assert await nothing_more(kafka_settings, Topic.ALERTS, 1)
    (alert,) = alerts
    assert isinstance(alert, AlertRaised)
    assert alert.fingerprint == f"{model}:v1:data_drift:x1,x3"
    drivers = alert.evidence["drivers"]
    assert isinstance(drivers, list)
    assert sorted(str(name) for name in drivers) == ["x1", "x3"]
    assert "x1" in alert.summary
    alerted = next(r for r in reports if str(r.event_id) == alert.evidence["report_event_id"])
    assert isinstance(alerted, DriftReported)
    assert alerted.drifted
    assert alerted.window.start >= T0 + timedelta(seconds=2500)  # raised after the shift
    assert alerted.window.end <= T0 + timedelta(seconds=3500)  # within 1,000 rows of it


@pytest.mark.timeout(120)
async def test_a_clean_stream_raises_no_alert(
    kafka_settings: KafkaSettings, publisher: EventPublisher, tmp_path: Path, unique: str
) -> None:
    model = f"m-{unique}"
    # A clean stream of ten windows opens a (false) episode about once in 60 seeds (measured with
    # the in-memory handler); these seeds are a typical one, not a hand-picked lucky one.
    registry = Registry(model, training_csv(np.random.default_rng(1000)))
    values, devices = training_rows(np.random.default_rng(2000), 5000)
    app = detector(kafka_settings, tmp_path, registry)
    async with app.router.lifespan_context(app):
        await publish(publisher, list(predictions(values, devices, model=model)))
        reports = await read_events(kafka_settings, Topic.DRIFT, count=10)
        assert await nothing_more(kafka_settings, Topic.ALERTS, 0)
    assert len(reports) == 10


@pytest.mark.timeout(120)
async def test_predictions_that_cannot_be_tested_are_dead_lettered_with_the_reason(
    kafka_settings: KafkaSettings, publisher: EventPublisher, tmp_path: Path, unique: str
) -> None:
    model = f"m-{unique}"
    registry = Registry(model, training_csv(np.random.default_rng(30)))
    values, devices = training_rows(np.random.default_rng(31), 2)
    good, bad = predictions(values, devices, model=model)
    features: dict[str, FeatureValue] = dict(bad.features) | {"x2": "n/a"}
    bad = bad.model_copy(update={"features": features})
    (unknown,) = predictions(values[:1], devices[:1], model=model, version=7)
    app = detector(kafka_settings, tmp_path, registry)
    async with app.router.lifespan_context(app):
        await publisher.publish_many([good, bad, unknown])
        records = await read_distinct(kafka_settings, Topic.DEAD_LETTER, count=2, timeout_s=45)
    letters = [MessageDeadLettered.model_validate_json(record.value) for record in records]
    assert {letter.reason for letter in letters} == {DeadLetterReason.INVALID}
    errors = sorted(letter.error for letter in letters)
    assert "feature 'x2': expected a number, got str 'n/a'" in errors[0] + errors[1]
    assert f"model {model} v7" in errors[0] + errors[1]


@pytest.mark.timeout(120)
async def test_a_registry_answering_503_holds_the_predictions_until_it_serves_again(
    kafka_settings: KafkaSettings, publisher: EventPublisher, tmp_path: Path, unique: str
) -> None:
    """Found by the chaos run: a registry whose identity provider was down answered 503 and
    every prediction of the batch was dead-lettered. A 503 is transient: nothing is lost."""
    model = f"m-{unique}"
    registry = Registry(model, training_csv(np.random.default_rng(40)))
    registry.unavailable_for_s = 3.0  # past the short retries of poison
    values, devices = training_rows(np.random.default_rng(41), 1000)
    app = detector(kafka_settings, tmp_path, registry)
    async with app.router.lifespan_context(app):
        await publish(publisher, list(predictions(values, devices, model=model)))
        reports = await read_events(kafka_settings, Topic.DRIFT, count=2)
        assert await nothing_more(kafka_settings, Topic.DEAD_LETTER, 0)
    assert len(reports) == 2
    assert registry.unavailable_answers > 0
