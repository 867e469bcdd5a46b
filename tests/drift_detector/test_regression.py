"""Drift on a regressor's predictions (ADR 0022): ``value.predicted`` is tested like
``prediction.made``, its features against the training data and its ``predicted_value`` as the
score stream, against a reference of the version's first live predictions."""

from __future__ import annotations

from typing import Any

import numpy as np

from contracts import AlertKind, AlertRaised, DriftReported, ValuePredicted
from services.drift_detector.service import VersionStreams
from tests.drift_detector.data import predictions, training_csv, training_rows
from tests.drift_detector.fakes import (
    InMemoryEpisodeStore,
    InMemoryProfileStore,
    Registry,
    version_streams,
)
from tests.drift_detector.regression_data import (
    FEATURES,
    diabetes_csv,
    live_rows,
    regression_spec,
    value_predictions,
)

MODEL = "diabetes"
BMI, BP = FEATURES.index("bmi"), FEATURES.index("bp")


def make_streams(
    registry: Registry,
) -> tuple[VersionStreams, InMemoryEpisodeStore, InMemoryProfileStore]:
    """The streams, and the episode store whose ``events`` are what each commit staged."""
    episodes = InMemoryEpisodeStore()
    profiles = InMemoryProfileStore()
    streams = version_streams(registry, episodes, profiles)
    return streams, episodes, profiles


async def judged(
    values: np.ndarray,
) -> tuple[list[Any], InMemoryProfileStore, InMemoryEpisodeStore]:
    registry = Registry(MODEL, diabetes_csv(), spec=regression_spec())
    streams, staged, profiles = make_streams(registry)
    events = value_predictions(values, model=MODEL)
    for start in range(0, len(events), 400):
        assert await streams.on_predictions(events[start : start + 400]) == []
    return staged.events, profiles, staged


async def test_shifted_inputs_of_a_regressor_raise_a_data_drift_alert_naming_them() -> None:
    values = live_rows(np.random.default_rng(1), 4000)
    values[2000:, [BMI, BP]] += 0.03  # about 0.6 standard deviations
    events, profiles, stored = await judged(values)
    reports = [e for e in events if isinstance(e, DriftReported)]
    alerts = [e for e in events if isinstance(e, AlertRaised)]
    assert [r.drifted for r in reports[:3]] == [False] * 3
    data = [a for a in alerts if a.kind is AlertKind.DATA_DRIFT]
    assert len(data) == 1
    assert data[0].fingerprint == f"{MODEL}:v1:data_drift:bmi,bp"
    # bmi and bp drive the predictions: the predicted values drift with them.
    assert any(a.kind is AlertKind.PREDICTION_DRIFT for a in alerts)
    assert profiles.profiles[(MODEL, 1)].positive_class is None
    reference = stored.episodes[(MODEL, 1)].score_reference
    assert reference is not None
    assert len(reference) == 300  # the first live predictions, in the target's unit
    assert (
        reference == tuple(e.predicted_value for e in value_predictions(values, model=MODEL))[:300]
    )


async def test_an_unshifted_regressor_stream_raises_no_alert() -> None:
    events, _, stored = await judged(live_rows(np.random.default_rng(2), 4000))
    reports = [e for e in events if isinstance(e, DriftReported)]
    assert len(reports) >= 7
    assert not any(r.drifted for r in reports)
    assert [e for e in events if isinstance(e, AlertRaised)] == []
    assert stored.episodes[(MODEL, 1)].score_reference is not None


async def test_a_regressor_prediction_off_the_schema_is_refused_with_the_reason() -> None:
    registry = Registry(MODEL, diabetes_csv(), spec=regression_spec())
    streams, _, _ = make_streams(registry)
    good, bad = value_predictions(live_rows(np.random.default_rng(3), 2), model=MODEL)
    bad = bad.model_copy(update={"features": {**bad.features, "bmi": "obese"}})
    (rejection,) = await streams.on_predictions([good, bad])
    assert rejection.event_id == bad.event_id
    assert "feature 'bmi': expected a number, got str 'obese'" in rejection.error


async def test_a_value_predicted_for_a_classifier_version_is_refused() -> None:
    registry = Registry(MODEL, training_csv(np.random.default_rng(5)))  # a classifier's spec
    streams, _, _ = make_streams(registry)
    values, devices = training_rows(np.random.default_rng(6), 1)
    (classified,) = predictions(values, devices, model=MODEL)
    number = ValuePredicted(
        **classified.model_dump(
            exclude={"type", "event_id", "predicted_class", "probabilities", "confidence"}
        ),
        predicted_value=0.4,
    )
    (rejection,) = await streams.on_predictions([number])
    assert rejection.event_id == number.event_id
    assert rejection.error == f"model {MODEL} v1 is a classifier: value.predicted does not fit it"
    assert await streams.on_predictions([classified]) == []
