"""Request ids are collision-proof per caller and ``vigil-…`` ids are Vigil's own: the scorer
served by uvicorn on the real broker, the predictions it publishes read back from Kafka and fed to
the retrainer's live-example store (SQLite and PostgreSQL) and the monitor's label join."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import LabelRecorded, MessageDeadLettered, PredictionMade, Topic
from contracts.scoring_api import ISSUED_REQUEST_ID_PREFIX, PROBE_REQUEST_ID_PREFIX
from contracts.wire import decode
from services.monitor.join import LabelJoin, PendingLabel, PendingPrediction
from services.retrainer.migrations import HISTORY
from services.retrainer.retraining.live_examples import LiveExamples
from services.runtime import KafkaSettings, create_engine
from services.runtime.migrations import migrate
from services.scorer.app import create_app
from services.scorer.settings import Settings
from tests.factories import make_scoring_request
from tests.http_tools import serving
from tests.kafka_tools import read_until, write_raw
from tests.registry_tools import Registry, one_version_deployed

pytestmark = [pytest.mark.integration]

MODEL = "breast-cancer"
PROBE_TOKEN = "probe-secret"
ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}


@dataclass
class Scorer:
    url: str
    registry: Registry


@pytest.fixture
async def scorer(
    tmp_path: Path, kafka_settings: KafkaSettings, database_url: str
) -> AsyncIterator[Scorer]:
    """The scorer on the real broker with v1 deployed, and the registry's database (where the
    retrainer keeps live examples too)."""
    async with one_version_deployed(database_url, MODEL) as (reg, registry_http):
        settings = Settings(
            kafka=kafka_settings, registry_url="http://registry", probe_token=PROBE_TOKEN
        )
        app = create_app(settings, registry_http=registry_http)
        async with serving(app, lifespan="on") as url:
            yield Scorer(url, reg)


def body(request_id: str | None, radius: float = 14.2) -> dict[str, Any]:
    instance: dict[str, Any] = {"features": {"mean radius": radius, "mean texture": 19.1}}
    if request_id is not None:
        instance["request_id"] = request_id
    return {"model": MODEL, "instances": [instance]}


async def predict(
    url: str, request_id: str | None, headers: dict[str, str] | None = None, radius: float = 14.2
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.post("/predict", json=body(request_id, radius), headers=headers)


def published(records: list[Any]) -> list[PredictionMade]:
    found = [decode(Topic.PREDICTIONS, record.value) for record in records]
    return [event for event in found if isinstance(event, PredictionMade)]


def dead_letters(records: list[Any]) -> list[MessageDeadLettered]:
    found = [decode(Topic.DEAD_LETTER, record.value) for record in records]
    return [letter for letter in found if isinstance(letter, MessageDeadLettered)]


@pytest.mark.parametrize(
    "request_id", ["vigil-probe:x", "vigil-req:0123", "VIGIL-probe:x", "Vigil-anything"]
)
async def test_a_reserved_request_id_is_refused_unless_the_probe_sends_it(
    scorer: Scorer, request_id: str
) -> None:
    for headers in (None, ALICE, {"Authorization": "Bearer wrong-probe-token"}):
        response = await predict(scorer.url, request_id, headers)
        assert response.status_code == 422, response.text
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["body", "instances", 0, "request_id"]
        assert "reserved" in problem["msg"]
    as_probe = await predict(scorer.url, request_id, {"Authorization": f"Bearer {PROBE_TOKEN}"})
    if request_id.startswith(PROBE_REQUEST_ID_PREFIX):
        assert as_probe.status_code == 200, as_probe.text
        assert as_probe.json()["predictions"][0]["request_id"] == request_id
    else:  # the probe has its own prefix, not the whole family
        assert as_probe.status_code == 422, as_probe.text
    good = await predict(scorer.url, "order-1")
    assert good.status_code == 200, good.text


async def test_a_reserved_request_id_over_kafka_is_dead_lettered_and_the_next_is_scored(
    scorer: Scorer, kafka_settings: KafkaSettings
) -> None:
    bad = [
        make_scoring_request(request_id=f"{prefix}{n}").model_dump_json().encode()
        for n, prefix in enumerate(["vigil-probe:", "vigil-req:", "VIGIL-"])
    ]
    good = make_scoring_request(request_id="kafka-good").model_dump_json().encode()
    await write_raw(kafka_settings, Topic.SCORING_REQUESTS, [*bad, good])
    dead = dead_letters(
        await read_until(kafka_settings, Topic.DEAD_LETTER, lambda rs: len(rs) >= len(bad))
    )
    assert sorted(base64.b64decode(letter.original_value_b64) for letter in dead) == sorted(bad)
    assert all("reserved" in letter.error for letter in dead)
    made = published(
        await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: len(published(rs)) >= 1)
    )
    assert [event.request_id for event in made] == ["kafka-good"]


async def test_two_callers_with_the_same_client_id_do_not_collide(
    scorer: Scorer, kafka_settings: KafkaSettings, database_url: str
) -> None:
    alice = await predict(scorer.url, "order-1", ALICE, radius=25.0)
    bob = await predict(scorer.url, "order-1", BOB, radius=9.0)
    anonymous = await predict(scorer.url, "order-1", None, radius=9.0)
    for response in (alice, bob, anonymous):
        assert response.status_code == 200, response.text
    answers = [r.json()["predictions"][0] for r in (alice, bob, anonymous)]
    ids = [answer["request_id"] for answer in answers]
    assert len(set(ids)) == 3
    assert all(i.startswith(ISSUED_REQUEST_ID_PREFIX) for i in ids)
    assert all(answer["client_request_id"] == "order-1" for answer in answers)

    made = published(
        await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: len(published(rs)) >= 3)
    )
    by_id = {event.request_id: event for event in made}
    assert set(by_id) == set(ids)
    alice_id, bob_id, _ = ids

    # The retrainer keeps each caller's features; a label for Alice's id joins only hers.
    engine = create_engine(database_url)
    try:
        await migrate(engine, HISTORY)
        live = LiveExamples(
            scorer.registry.sessions,
            dialect=engine.dialect.name,
            max_per_model=100,
            unlabelled_ttl=timedelta(hours=1),
        )
        now = datetime.now(UTC)
        await live.add_predictions(list(by_id.values()), now)
        label = LabelRecorded(producer="labeller", model=MODEL, request_id=alice_id, label="benign")
        await live.add_labels([label], now)
        (example,) = await live.labelled(MODEL)
        assert (example.request_id, example.features["mean radius"]) == (alice_id, 25.0)
        assert await live.count(MODEL) == (1, 3)
    finally:
        await engine.dispose()

    join = LabelJoin(ttl=timedelta(days=1), max_pending=100)
    for event in made:
        join.add_prediction(
            PendingPrediction(
                event.model,
                event.request_id,
                event.model_version,
                event.variant.value,
                event.occurred_at,
                event.predicted_class,
                event.probabilities,
                event.confidence,
            )
        )
    joined, _ = join.add_label(PendingLabel(MODEL, alice_id, datetime.now(UTC), "benign"))
    assert [pair.prediction.request_id for pair in joined] == [alice_id]
    assert join.waiting_for(MODEL, bob_id) != []


async def test_a_replayed_request_gets_the_same_id_and_publishes_the_same_events(
    scorer: Scorer, kafka_settings: KafkaSettings
) -> None:
    first = await predict(scorer.url, "order-7", ALICE)
    again = await predict(scorer.url, "order-7", ALICE)
    other_features = await predict(scorer.url, "order-7", ALICE, radius=30.0)
    for response in (first, again, other_features):
        assert response.status_code == 200, response.text
    ids = [r.json()["predictions"][0]["request_id"] for r in (first, again, other_features)]
    assert ids[0] == ids[1] != ids[2]
    made = published(
        await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: len(published(rs)) >= 3)
    )
    replayed = [event for event in made if event.request_id == ids[0]]
    assert len(replayed) == 2
    assert replayed[0].event_id == replayed[1].event_id
    without_id = [(await predict(scorer.url, None, ALICE)).json() for _ in range(2)]
    fresh = [answer["predictions"][0]["request_id"] for answer in without_id]
    assert fresh[0] != fresh[1]
    assert all(i.startswith(ISSUED_REQUEST_ID_PREFIX) for i in fresh)
