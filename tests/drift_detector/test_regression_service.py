"""The drift detector on the real broker with a regressor: ``value.predicted`` events whose
inputs shift raise a data-drift alert, an unshifted stream none (ADR 0022)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts import AlertKind, AlertRaised, DriftReported, Envelope, Topic
from services.runtime import EventPublisher, KafkaSettings
from tests.drift_detector.fakes import Registry
from tests.drift_detector.regression_data import (
    FEATURES,
    diabetes_csv,
    live_rows,
    regression_spec,
    value_predictions,
)
from tests.drift_detector.running import detector, publish
from tests.kafka_tools import read_events, read_events_until_quiet

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def run_stream(
    kafka: KafkaSettings, publisher: EventPublisher, state_dir: Path, model: str, values: np.ndarray
) -> tuple[list[DriftReported], list[AlertRaised]]:
    """Publish one ``value.predicted`` per row; return the ten windows' reports and every alert
    (published with the reports, so all there once the reports are)."""
    registry = Registry(model, diabetes_csv(), spec=regression_spec())
    app = detector(kafka, state_dir, registry)
    events: list[Envelope] = list(value_predictions(values, model=model))
    async with app.router.lifespan_context(app):
        await publish(publisher, events)
        reports = await read_events(kafka, Topic.DRIFT, count=10, timeout_s=60, identical_only=True)
        alerts = await read_events_until_quiet(kafka, Topic.ALERTS, identical_only=True)
    return (
        [DriftReported.model_validate_json(r.value) for r in reports],
        [AlertRaised.model_validate_json(r.value) for r in alerts],
    )


@pytest.mark.timeout(150)
async def test_a_regressor_whose_inputs_shift_raises_a_data_drift_alert(
    kafka_settings: KafkaSettings, publisher: EventPublisher, tmp_path: Path, unique: str
) -> None:
    model = f"r-{unique}"
    values = live_rows(np.random.default_rng(21), 5000)
    values[2500:, [FEATURES.index("bmi"), FEATURES.index("bp")]] += 0.03
    reports, alerts = await run_stream(kafka_settings, publisher, tmp_path, model, values)
    data = [a for a in alerts if a.kind is AlertKind.DATA_DRIFT]
    assert len(data) == 1
    assert data[0].fingerprint == f"{model}:v1:data_drift:bmi,bp"
    assert not any(r.drifted for r in reports[:4])  # before the shift
    assert any(r.drifted for r in reports[5:])


@pytest.mark.timeout(150)
async def test_an_unshifted_regressor_stream_raises_no_alert(
    kafka_settings: KafkaSettings, publisher: EventPublisher, tmp_path: Path, unique: str
) -> None:
    model = f"r-{unique}"
    values = live_rows(np.random.default_rng(22), 5000)
    reports, alerts = await run_stream(kafka_settings, publisher, tmp_path, model, values)
    assert len(reports) == 10
    assert alerts == []
