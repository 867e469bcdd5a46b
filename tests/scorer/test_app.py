"""The scorer through its handlers, on FastStream's in-memory broker, with the real registry API
(SQLite) behind its registry client: batches, HTTP, dead letters, deployment swaps."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from contracts import (
    Envelope,
    MessageDeadLettered,
    ModelDeployed,
    PredictionMade,
    ScoringRequest,
    Variant,
)
from services.runtime import KafkaSettings, RegistryUnavailable, ServiceRuntime
from services.scorer.app import create_app
from services.scorer.service import ScoringService
from services.scorer.settings import Settings
from tests.factories import make_scoring_request
from tests.model_builders import train
from tests.registry_tools import Registry, deploy, register, registry

MODEL = "breast-cancer"


@dataclass
class Harness:
    registry: Registry
    registry_http: httpx.AsyncClient
    scorer_http: httpx.AsyncClient
    runtime: ServiceRuntime
    service: ScoringService
    predictions: list[PredictionMade]
    dead: list[MessageDeadLettered]

    async def send(self, *requests: ScoringRequest) -> None:
        await self.runtime.publisher.publish_many(requests)

    async def relay(self) -> int:
        """Publish the registry's outbox (its relay runs in the retrainer process normally).

        The in-memory broker delivers inside ``publish``, so the events are collected first and
        sent after the relay's transaction, as the real broker would deliver them.
        """
        collected = Collected()
        count = await self.registry.relay(collected).publish_pending()
        await self.runtime.publisher.publish_many(collected.events)
        return count


class Collected:
    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def publish(self, event: Envelope) -> None:
        self.events.append(event)

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        self.events.extend(events)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with registry(f"sqlite:///{tmp_path / 'registry.db'}") as reg:
        registry_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=reg.app), base_url="http://registry"
        )
        for c in (1.0, 0.01):
            assert (await register(registry_http, MODEL, train(c=c))).status_code == 201
        assert (await deploy(registry_http, MODEL, 1)).status_code == 200
        settings = Settings(kafka=KafkaSettings(), registry_url="http://registry")
        app = create_app(settings, registry_http=registry_http)
        runtime: ServiceRuntime = app.state.runtime
        predictions: list[PredictionMade] = []
        dead: list[MessageDeadLettered] = []

        @runtime.broker.subscriber("predictions", batch=True)
        async def on_predictions(events: list[PredictionMade]) -> None:
            predictions.extend(events)

        @runtime.broker.subscriber("dead-letter", batch=True)
        async def on_dead(letters: list[MessageDeadLettered]) -> None:
            dead.extend(letters)

        runtime.consumer.subscribe(runtime.broker)
        async with (
            TestKafkaBroker(runtime.broker),
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://scorer"
            ) as scorer_http,
        ):
            yield Harness(
                reg, registry_http, scorer_http, runtime, app.state.scoring, predictions, dead
            )
        await registry_http.aclose()


def request(n: int, **overrides: Any) -> ScoringRequest:
    fields: dict[str, Any] = {
        "request_id": f"req-{n}",
        "entity_id": f"patient-{n}",
        "features": {"mean radius": 10.0 + n % 15, "mean texture": 20.0},
    }
    return make_scoring_request(**(fields | overrides))


async def test_requests_over_kafka_get_one_prediction_each_from_the_deployed_version(
    harness: Harness,
) -> None:
    await harness.send(*(request(n) for n in range(50)))
    assert sorted(p.request_id for p in harness.predictions) == sorted(
        f"req-{n}" for n in range(50)
    )
    for prediction in harness.predictions:
        assert (prediction.model_version, prediction.variant) == (1, Variant.CHAMPION)
        assert prediction.deployment_revision == 1
        assert prediction.served
        assert math.isclose(sum(prediction.probabilities.values()), 1.0)
        assert prediction.confidence == prediction.probabilities[prediction.predicted_class]
        assert prediction.features["mean texture"] == 20.0
        assert prediction.latency_ms >= 0
    big = next(p for p in harness.predictions if p.request_id == "req-14")
    assert big.predicted_class == "malignant"
    assert harness.dead == []


async def test_requests_that_cannot_be_scored_are_dead_lettered_naming_the_problem(
    harness: Harness,
) -> None:
    bad = {
        "unknown model 'nope'": request(1, model="nope"),
        "features.mean radius: missing": request(2, features={"mean texture": 1.0}),
        "features.colour: not a feature of the model": request(
            3, features={"mean radius": 1.0, "mean texture": 1.0, "colour": "red"}
        ),
        "features.mean radius: expected a number, got str 'x'": request(
            4, features={"mean radius": "x", "mean texture": 1.0}
        ),
    }
    good = [request(10), request(11)]
    await harness.send(good[0], *bad.values(), good[1])
    # JSON has no NaN, but clients send the literal; the contract refuses it (null is missing).
    nan = request(5).model_dump_json().replace('"mean radius":15.0', '"mean radius":NaN')
    await harness.runtime.broker.publish(nan.encode(), "scoring.requests")
    assert sorted(p.request_id for p in harness.predictions) == ["req-10", "req-11"]
    expected = [*bad, "features: Value error, feature 'mean radius' is nan: NaN and infinite"]
    assert len(harness.dead) == len(expected)
    for letter, message in zip(harness.dead, expected, strict=True):
        assert letter.reason == "invalid"
        assert message in letter.error, letter.error


async def test_a_registry_outage_does_not_hold_the_requests_of_models_already_served(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking the registry about an unknown model is best effort: while it answers 503, the
    unknown model's request is refused and the served model's requests are scored."""

    async def unavailable(model: str) -> None:
        raise RegistryUnavailable("registry answered 503 to GET /models/x/deployment")

    monkeypatch.setattr(harness.service._registry, "deployment", unavailable)
    await harness.send(request(1), request(2, model="launched-a-second-ago"), request(3))
    assert sorted(p.request_id for p in harness.predictions) == ["req-1", "req-3"]
    assert [letter.error for letter in harness.dead] == [
        "unknown model 'launched-a-second-ago': it is not deployed"
    ]


async def test_predict_over_http_answers_in_order_and_publishes_the_predictions(
    harness: Harness,
) -> None:
    body = {
        "model": MODEL,
        "instances": [
            {"request_id": "h-1", "features": {"mean radius": 25.0, "mean texture": 30.0}},
            {"features": {"mean radius": 9.0, "mean texture": None}},
        ],
    }
    response = await harness.scorer_http.post("/predict", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [p["predicted_class"] for p in answer["predictions"]] == ["malignant", "benign"]
    assert [p["client_request_id"] for p in answer["predictions"]] == ["h-1", None]
    assert all(p["request_id"].startswith("vigil-req:") for p in answer["predictions"])
    assert {p["model_version"] for p in answer["predictions"]} == {1}
    assert [p.request_id for p in harness.predictions] == [
        p["request_id"] for p in answer["predictions"]
    ]


async def test_predict_over_http_names_the_bad_field_and_the_unknown_model(
    harness: Harness,
) -> None:
    good = {"mean radius": 10.0, "mean texture": 1.0}
    bad = {"mean radius": "big", "mean texture": 1.0, "extra": 1}
    response = await harness.scorer_http.post(
        "/predict",
        json={"model": MODEL, "instances": [{"features": good}, {"features": bad}]},
    )
    assert response.status_code == 422
    assert [problem["loc"] for problem in response.json()["detail"]] == [
        ["body", "instances", 1, "features", "mean radius"],
        ["body", "instances", 1, "features", "extra"],
    ]
    response = await harness.scorer_http.post(
        "/predict", json={"model": "nope", "instances": [{"features": good}]}
    )
    assert response.status_code == 404
    response = await harness.scorer_http.post("/predict", json={"model": MODEL, "instances": []})
    assert response.status_code == 422
    assert harness.predictions == []


async def test_shadow_predictions_are_published_but_never_returned(harness: Harness) -> None:
    response = await deploy(harness.registry_http, MODEL, 1, 2, 0.5, "shadow")
    assert response.status_code == 200
    assert await harness.relay() == 4  # two registrations, two deployments
    instances = [
        {"request_id": f"s-{n}", "features": {"mean radius": 12.0, "mean texture": 18.0}}
        for n in range(40)
    ]
    answer = await harness.scorer_http.post(
        "/predict", json={"model": MODEL, "instances": instances}
    )
    assert answer.status_code == 200
    returned = answer.json()["predictions"]
    assert len(returned) == 40
    assert all((p["model_version"], p["variant"]) == (1, "champion") for p in returned)
    shadows = [p for p in harness.predictions if not p.served]
    assert 5 < len(shadows) < 35
    assert all((p.model_version, p.variant) == (2, Variant.CHALLENGER) for p in shadows)
    assert len(harness.predictions) == 40 + len(shadows)


async def test_deployment_events_swap_versions_and_an_older_revision_is_ignored(
    harness: Harness,
) -> None:
    response = await deploy(harness.registry_http, MODEL, 2)
    revision = response.json()["deployment"]
    newer = ModelDeployed(
        producer="retrainer", model=MODEL, deployment=revision, actor="ana", reason="v2"
    )
    await harness.runtime.publisher.publish(newer)
    await harness.send(request(1))
    older = newer.model_copy(
        update={"deployment": newer.deployment.model_copy(update={"revision": 1})}
    )
    await harness.runtime.publisher.publish(older)
    await harness.send(request(2))
    assert [(p.model_version, p.deployment_revision) for p in harness.predictions] == [
        (2, 2),
        (2, 2),
    ]
