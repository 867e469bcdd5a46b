"""Hostile features against the scorer on the real broker, served by uvicorn on loopback: NaN and
infinities are refused over HTTP (422) and dead-lettered over Kafka, also for a feature the spec
lets be missing (null is the missing value, NaN is not), and the next good request is scored."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import MessageDeadLettered, PredictionMade, Topic
from contracts.wire import decode
from services.runtime import KafkaSettings
from services.scorer.app import create_app
from services.scorer.settings import Settings
from tests.factories import make_scoring_request
from tests.http_tools import serving
from tests.kafka_tools import read_until, write_raw
from tests.registry_tools import one_version_deployed

pytestmark = [pytest.mark.integration]

MODEL = "breast-cancer"
CAP = 16 * 1024
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e309"]


@pytest.fixture
async def scorer(tmp_path: Path, kafka_settings: KafkaSettings) -> AsyncIterator[str]:
    """The scorer on the real broker, v1 deployed ('mean texture' may be missing); its URL."""
    registry_db = f"sqlite:///{tmp_path / 'registry.db'}"
    async with one_version_deployed(registry_db, MODEL) as (_, registry_http):
        settings = Settings(
            kafka=kafka_settings, registry_url="http://registry", http_max_body_bytes=CAP
        )
        app = create_app(settings, registry_http=registry_http)
        async with serving(app, lifespan="on") as url:
            yield url


def instance(texture: str, radius: str = "14.2") -> str:
    return f'{{"features": {{"mean radius": {radius}, "mean texture": {texture}}}}}'


async def predict(client: httpx.AsyncClient, *instances: str) -> httpx.Response:
    body = f'{{"model": "{MODEL}", "instances": [{", ".join(instances)}]}}'
    return await client.post("/predict", content=body, headers={"Content-Type": "application/json"})


async def still_scores(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    good = await predict(client, instance("null"), instance("19.1"))
    assert good.status_code == 200, good.text
    assert len(good.json()["predictions"]) == 2


@pytest.mark.parametrize("number", NON_FINITE)
async def test_predict_refuses_nan_and_infinities_even_where_a_value_may_be_missing(
    scorer: str, number: str
) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        for bad in (instance(number), instance("19.1", radius=number)):
            response = await predict(client, instance("19.1"), bad)
            assert response.status_code == 422, response.text
            (problem,) = response.json()["detail"]
            assert problem["loc"] == ["body", "instances", 1, "features"]
            assert "NaN and infinite numbers are not allowed" in problem["msg"]
        await still_scores(client)


@pytest.mark.parametrize(
    ("features", "where"),
    [
        (instance('"nan"'), "mean texture"),  # text where a number is expected
        (instance("1e999999"), None),  # parses to infinity
        (instance("[1]"), None),
        (instance("19.1", radius="true"), "mean radius"),
    ],
)
async def test_predict_refuses_numbers_of_the_wrong_type(
    scorer: str, features: str, where: str | None
) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        response = await predict(client, features)
        assert response.status_code == 422, response.text
        if where is not None:
            assert response.json()["detail"][0]["loc"][-1] == where
        await still_scores(client)


async def test_a_predict_body_over_the_cap_is_refused(scorer: str) -> None:
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        response = await predict(client, *[instance("19.1")] * 400)
        assert response.status_code == 413
        await still_scores(client)


def with_texture(request_id: str, texture: str) -> bytes:
    event = make_scoring_request(request_id=request_id, features={"mean radius": 14.2})
    document = json.loads(event.model_dump_json())
    text = json.dumps(document).replace(
        '"mean radius": 14.2', f'"mean radius": 14.2, "mean texture": {texture}'
    )
    return text.encode()


async def test_nan_and_infinities_over_kafka_are_dead_lettered_and_the_next_is_scored(
    scorer: str, kafka_settings: KafkaSettings
) -> None:
    bad = {f"bad-{n}": with_texture(f"bad-{n}", number) for n, number in enumerate(NON_FINITE)}
    good = [with_texture("good-1", "null"), with_texture("good-2", "19.1")]
    await write_raw(kafka_settings, Topic.SCORING_REQUESTS, [*bad.values(), *good])

    def letters(records: list[Any]) -> list[MessageDeadLettered]:
        found = [decode(Topic.DEAD_LETTER, record.value) for record in records]
        return [letter for letter in found if isinstance(letter, MessageDeadLettered)]

    dead = letters(
        await read_until(
            kafka_settings, Topic.DEAD_LETTER, lambda records: len(letters(records)) >= len(bad)
        )
    )
    assert len(dead) == len(bad)
    for letter in dead:
        assert letter.reason == "invalid"
        assert "feature 'mean texture'" in letter.error
        assert "NaN and infinite numbers are not allowed" in letter.error
        assert base64.b64decode(letter.original_value_b64) in bad.values()

    def predictions(records: list[Any]) -> list[PredictionMade]:
        found = [decode(Topic.PREDICTIONS, record.value) for record in records]
        return [event for event in found if isinstance(event, PredictionMade)]

    made = predictions(
        await read_until(
            kafka_settings, Topic.PREDICTIONS, lambda records: len(predictions(records)) >= 2
        )
    )
    assert sorted(event.request_id for event in made) == ["good-1", "good-2"]
    async with httpx.AsyncClient(base_url=scorer, timeout=30) as client:
        await still_scores(client)
