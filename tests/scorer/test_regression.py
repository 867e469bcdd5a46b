"""A regression model served for real (issue 17): a ``HistGradientBoostingRegressor`` pipeline
on the diabetes data, registered in the real registry API and deployed, scored by the scorer on
the real broker over loopback HTTP and over Kafka; each prediction is a ``value.predicted`` event
with the model's number. A prediction that is not a finite number (a linear model overflowing on
huge inputs) is the request's failure (422 over HTTP, the dead-letter topic over Kafka), never an
event; labels carry a number for a regressor and a class for a classifier, and the wrong kind is
refused naming the model."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LinearRegression

from contracts import MessageDeadLettered, PredictionMade, Topic, ValuePredicted, ValueRecorded
from contracts.wire import decode
from services.runtime import KafkaSettings
from services.scorer.app import create_app
from services.scorer.settings import Settings
from tests.factories import make_scoring_request
from tests.http_tools import serving
from tests.kafka_tools import read_until, read_until_quiet, write_raw
from tests.model_builders import TrainedModel, train
from tests.registry_tools import AS_ANA, deploy, register, registry
from tests.regression_builders import DIABETES, FEATURES, regression_form, train_regressor
from tests.scorer.test_labels import as_, identity_provider

pytestmark = [pytest.mark.integration]

REGRESSOR = "diabetes"
LINEAR = "diabetes-linear"
CLASSIFIER = "breast-cancer"
HUGE = 1e307
"""Finite, so the features pass; a linear model's sum of such terms overflows to ±inf or NaN."""


def linear_regressor() -> TrainedModel:
    """An array-fitted linear regression: finite on the data, non-finite on huge inputs."""
    base = train_regressor(named=False)
    picked = np.arange(len(DIABETES.target)) % 4 != 0
    model = LinearRegression().fit(
        DIABETES.data[picked].to_numpy(), DIABETES.target[picked].to_numpy()
    )
    return TrainedModel(skops.io.dumps(model), base.training_csv, base.evaluation_csv, model)


async def register_regressor(http: httpx.AsyncClient, model: str, trained: TrainedModel) -> None:
    data, files = regression_form(trained)
    answer = await http.post(f"/models/{model}/versions", data=data, files=files, headers=AS_ANA)
    assert answer.status_code == 201, answer.text
    assert (await deploy(http, model, 1)).status_code == 200


@pytest.fixture
async def scorer(tmp_path: Path, kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """The scorer on the real broker serving the diabetes pipeline, the linear regressor and
    the breast-cancer classifier; its URL."""
    async with registry(f"sqlite:///{tmp_path / 'registry.db'}") as reg:
        registry_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=reg.app), base_url="http://registry"
        )
        await register_regressor(registry_http, REGRESSOR, train_regressor())
        await register_regressor(registry_http, LINEAR, linear_regressor())
        assert (await register(registry_http, CLASSIFIER, train())).status_code == 201
        assert (await deploy(registry_http, CLASSIFIER, 1)).status_code == 200
        settings = Settings(
            kafka=kafka_settings, registry_url="http://registry", incident_log_url="http://identity"
        )
        app = create_app(
            settings, registry_http=registry_http, identity_transport=identity_provider()
        )
        async with serving(app, lifespan="on") as url:
            yield url
        await registry_http.aclose()


def patients(rows: range) -> list[dict[str, float]]:
    return [{name: float(DIABETES.data[name].iloc[i]) for name in FEATURES} for i in rows]


def expected(model: Any, features: list[dict[str, float]]) -> list[float]:
    """What the model itself says, on the kind of input it was fitted on."""
    frame = pd.DataFrame(features, columns=FEATURES)
    named = getattr(model, "feature_names_in_", None) is not None
    return [float(v) for v in model.predict(frame if named else frame.to_numpy())]


def values_of(records: list[Any]) -> list[ValuePredicted]:
    events = [decode(Topic.PREDICTIONS, record.value) for record in records]
    return [event for event in events if isinstance(event, ValuePredicted)]


async def test_predict_over_http_answers_the_models_numbers_and_publishes_them(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    features = patients(range(0, 40))
    want = expected(train_regressor().estimator, features)
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as http:
        body = {
            "model": REGRESSOR,
            "instances": [{"request_id": f"p-{n}", "features": f} for n, f in enumerate(features)],
        }
        answer = await http.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["client_request_id"] for p in predictions] == [f"p-{n}" for n in range(40)]
    for prediction, value in zip(predictions, want, strict=True):
        assert math.isclose(prediction["predicted_value"], value, rel_tol=1e-9)
        assert (prediction["predicted_class"], prediction["probabilities"]) == (None, None)
        assert prediction["confidence"] is None
    assert min(want) > 25  # the data set's range (25 to 346): a real model answered
    assert max(want) < 346

    published = values_of(
        await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: len(values_of(rs)) >= 40)
    )
    by_id = {event.request_id: event for event in published}
    for prediction in predictions:
        event = by_id[prediction["request_id"]]
        assert event.predicted_value == prediction["predicted_value"]
        assert (event.model, event.model_version, event.served) == (REGRESSOR, 1, True)


async def test_requests_over_kafka_become_value_predicted_events_with_the_models_numbers(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    features = patients(range(100, 130))
    requests = [
        make_scoring_request(model=REGRESSOR, request_id=f"k-{n}", entity_id=None, features=f)
        for n, f in enumerate(features)
    ]
    await write_raw(
        kafka_settings, Topic.SCORING_REQUESTS, [r.model_dump_json().encode() for r in requests]
    )
    published = values_of(
        await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: len(values_of(rs)) >= 30)
    )
    got = {event.request_id: event.predicted_value for event in published}
    for n, value in enumerate(expected(train_regressor().estimator, features)):
        assert math.isclose(got[f"k-{n}"], value, rel_tol=1e-9)
    assert all(event.type == "value.predicted" for event in published)


async def test_huge_inputs_are_scored_and_non_finite_inputs_refused(scorer: str) -> None:
    [row] = patients(range(1))
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as http:
        huge = await http.post(
            "/predict",
            json={"model": REGRESSOR, "instances": [{"features": row | {"bmi": HUGE}}]},
        )
        assert huge.status_code == 200, huge.text
        assert math.isfinite(huge.json()["predictions"][0]["predicted_value"])
        for number in ("NaN", "Infinity", "-Infinity", "1e309"):
            body = (
                f'{{"model": "{REGRESSOR}", "instances": [{{"features": '
                + json.dumps(row)[:-1]
                + f', "bmi": {number}}}}}]}}'
            )
            refused = await http.post(
                "/predict", content=body, headers={"Content-Type": "application/json"}
            )
            assert refused.status_code == 422, (number, refused.text)


async def test_a_non_finite_prediction_is_refused_over_http_and_published_nowhere(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    [good, other] = patients(range(2))
    overflowing = dict.fromkeys(FEATURES, HUGE)
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as http:
        refused = await http.post(
            "/predict",
            json={
                "model": LINEAR,
                "instances": [{"features": good}, {"features": overflowing}],
            },
        )
        assert refused.status_code == 422, refused.text
        [issue] = refused.json()["detail"]
        assert issue["loc"] == ["body", "instances", 1]
        assert "non-finite value" in issue["msg"]
        assert f"{LINEAR} v1" in issue["msg"]
        served = await http.post(
            "/predict", json={"model": LINEAR, "instances": [{"features": other}]}
        )
        assert served.status_code == 200, served.text
    [answer] = served.json()["predictions"]
    published = values_of(await read_until_quiet(kafka_settings, Topic.PREDICTIONS))
    assert [e.request_id for e in published] == [answer["request_id"]]  # all or nothing


async def test_a_non_finite_prediction_over_kafka_is_dead_lettered_and_the_next_is_scored(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    [good] = patients(range(5, 6))
    bad = make_scoring_request(
        model=LINEAR, request_id="overflow", entity_id=None, features=dict.fromkeys(FEATURES, HUGE)
    )
    fine = make_scoring_request(model=LINEAR, request_id="fine", entity_id=None, features=good)
    raw = [bad.model_dump_json().encode(), fine.model_dump_json().encode()]
    await write_raw(kafka_settings, Topic.SCORING_REQUESTS, raw)

    def letters(records: list[Any]) -> list[MessageDeadLettered]:
        found = [decode(Topic.DEAD_LETTER, record.value) for record in records]
        return [letter for letter in found if isinstance(letter, MessageDeadLettered)]

    [letter] = letters(
        await read_until(kafka_settings, Topic.DEAD_LETTER, lambda r: bool(letters(r)))
    )
    assert "non-finite value" in letter.error
    assert base64.b64decode(letter.original_value_b64) == raw[0]
    published = values_of(
        await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: len(values_of(rs)) >= 1)
    )
    [event] = published
    assert event.request_id == "fine"
    assert math.isclose(event.predicted_value, expected(linear_regressor().estimator, [good])[0])


async def test_labels_carry_a_number_for_a_regressor_and_a_class_for_a_classifier(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as http:

        async def send(*labels: dict[str, Any]) -> httpx.Response:
            return await http.post(
                "/labels", json={"labels": list(labels)}, headers=as_("token-ana")
            )

        wrong_kind = await send(
            {"model": REGRESSOR, "request_id": "r-1", "value": 151.0},
            {"model": REGRESSOR, "request_id": "r-2", "label": "151"},
            {"model": CLASSIFIER, "request_id": "c-1", "value": 1.0},
        )
        assert wrong_kind.status_code == 422, wrong_kind.text
        issues = wrong_kind.json()["detail"]
        assert [issue["loc"] for issue in issues] == [
            ["body", "labels", 1, "label"],
            ["body", "labels", 2, "value"],
        ]
        assert f"model '{REGRESSOR}' is a regression model" in issues[0]["msg"]
        assert "value (a number)" in issues[0]["msg"]
        assert f"model '{CLASSIFIER}' is a classifier" in issues[1]["msg"]
        for number in ("NaN", "Infinity", "-Infinity", "1e309", '"151"x'):
            body = (
                f'{{"labels": [{{"model": "{REGRESSOR}", "request_id": "r", "value": {number}}}]}}'
            )
            refused = await http.post(
                "/labels",
                content=body,
                headers=as_("token-ana") | {"Content-Type": "application/json"},
            )
            assert refused.status_code == 422, (number, refused.text)
        accepted = await send(
            {"model": REGRESSOR, "request_id": "r-1", "value": 151.0},
            {"model": REGRESSOR, "request_id": "r-2", "value": 1e308},
        )
        assert accepted.status_code == 200, accepted.text

    def truths(records: list[Any]) -> list[Any]:
        return [decode(Topic.LABELS, record.value) for record in records]

    found = truths(await read_until_quiet(kafka_settings, Topic.LABELS))
    assert [(type(e), e.request_id, e.value) for e in found] == [
        (ValueRecorded, "r-1", 151.0),
        (ValueRecorded, "r-2", 1e308),
    ]
    assert not any(isinstance(e, PredictionMade) for e in found)
