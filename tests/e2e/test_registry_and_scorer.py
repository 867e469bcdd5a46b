"""Acceptance of issue 3 on the real broker, with the retrainer and the scorer as processes:
register → deploy → score over Kafka and HTTP → canary at 10 % → roll back, every prediction's
version and variant checked; and a scorer killed mid-stream loses no request."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import Deployment, PredictionMade, ScoringRequest, Topic, Variant
from services.runtime import EventPublisher, KafkaSettings
from services.scorer.request_ids import ANONYMOUS, issue_request_id
from services.scorer.routing import route
from tests.e2e.scoring_stack import scoring_stack
from tests.kafka_tools import read_until
from tests.model_builders import train
from tests.processes import ServiceProcess
from tests.registry_tools import deploy

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

MODEL = "breast-cancer"
ADMIN = "registry-e2e-admin"


def make_request(n: int, phase: str) -> ScoringRequest:
    return ScoringRequest(
        producer="client",
        model=MODEL,
        request_id=f"{phase}-{n}",
        entity_id=f"patient-{n % 700}" if n % 2 else None,
        features={"mean radius": 8.0 + n % 20, "mean texture": 10.0 + n % 17},
    )


Stack = tuple[ServiceProcess, ServiceProcess, dict[str, str]]
"""The retrainer, the scorer, and the headers of ana (l2), who may change the registry."""


@pytest.fixture
async def stack(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[Stack]:
    versions = [train(c=1.0), train(c=0.01)]
    async with scoring_stack(
        kafka_settings, tmp_path, admin_token=ADMIN, model=MODEL, versions=versions
    ) as built:
        yield built


def served_ids(records: list[Any]) -> set[str]:
    return {
        prediction.request_id
        for prediction in (PredictionMade.model_validate_json(r.value) for r in records)
        if prediction.served
    }


async def scored(kafka: KafkaSettings, requests: list[ScoringRequest]) -> None:
    """Wait until every request has its prediction (so the next change cannot reach them)."""
    ids = {r.request_id for r in requests}
    await read_until(kafka, Topic.PREDICTIONS, lambda records: ids <= served_ids(records))


async def wait_for_revision(scorer_url: str, instances: list[dict[str, Any]], want: Any) -> None:
    """Poll POST /predict until the scorer answers as the wanted deployment routes."""
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            response = await client.post(
                f"{scorer_url}/predict", json={"model": MODEL, "instances": instances}
            )
            assert response.status_code == 200, response.text
            answers = [(p["model_version"], p["variant"]) for p in response.json()["predictions"]]
            if answers == want:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"scorer never served {want}")


async def test_register_deploy_score_canary_and_roll_back_attributes_every_prediction(
    stack: Stack, kafka_settings: KafkaSettings, publisher: EventPublisher
) -> None:
    retrainer, scorer, ana = stack
    http = httpx.AsyncClient(base_url=retrainer.url)
    phases = {"champion": 300, "canary": 2000, "rolled-back": 300}
    sent: dict[str, list[ScoringRequest]] = {}

    async with http:
        sent["champion"] = [make_request(n, "champion") for n in range(phases["champion"])]
        await publisher.publish_many(sent["champion"])
        response = await http.post(
            f"{scorer.url}/predict",
            json={
                "model": MODEL,
                "instances": [
                    {"request_id": "http-1", "features": {"mean radius": 25.0, "mean texture": 30}}
                ],
            },
        )
        assert response.status_code == 200
        assert response.json()["predictions"][0]["model_version"] == 1
        assert response.json()["predictions"][0]["predicted_class"] == "malignant"

        await scored(kafka_settings, sent["champion"])
        canary = await deploy(http, MODEL, 1, 2, 0.1, headers=ana)
        assert canary.status_code == 200
        canary_deployment = Deployment.model_validate(canary.json()["deployment"])
        probe_ids = [f"probe-{n}" for n in range(40)]
        probes = [
            {"request_id": probe, "features": {"mean radius": 12.0, "mean texture": 20.0}}
            for probe in probe_ids
        ]
        expected = []
        for probe in probe_ids:  # the scorer routes by the id it issues for the request
            issued = issue_request_id(
                ANONYMOUS, MODEL, probe, None, {"mean radius": 12.0, "mean texture": 20.0}
            )
            chosen = route(MODEL, canary_deployment, issued)
            assert chosen is not None
            expected.append((chosen.served.version, chosen.variant.value))
        assert (2, "challenger") in expected
        await wait_for_revision(scorer.url, probes, expected)
        sent["canary"] = [make_request(n, "canary") for n in range(phases["canary"])]
        await publisher.publish_many(sent["canary"])
        await scored(kafka_settings, sent["canary"])

        rollback = await http.post(
            f"/models/{MODEL}/deployment/rollback",
            json={"reason": "canary recall low", "incident_id": "i-1"},
            headers=ana,
        )
        assert rollback.status_code == 200
        assert rollback.json()["action"] == "rolled_back"
        await wait_for_revision(scorer.url, probes, [(1, "champion")] * len(probes))
        sent["rolled-back"] = [make_request(n, "rolled-back") for n in range(300)]
        await publisher.publish_many(sent["rolled-back"])

        history = (await http.get(f"/models/{MODEL}/history")).json()
    deployments = {
        entry["revision"]: Deployment.model_validate(entry["deployment"])
        for entry in history["revisions"]
    }
    assert sorted(deployments) == [1, 2, 3]

    everything = {r.request_id for batch in sent.values() for r in batch}
    records = await read_until(
        kafka_settings, Topic.PREDICTIONS, lambda rs: everything <= served_ids(rs)
    )
    predictions = [PredictionMade.model_validate_json(r.value) for r in records]
    kafka_predictions = [p for p in predictions if p.request_id in everything]
    assert len(kafka_predictions) == len(everything)  # one each: no loss, no duplicates
    phase_revision = {"champion": 1, "canary": 2, "rolled-back": 3}
    requests = {r.request_id: r for batch in sent.values() for r in batch}
    variants: Counter[Variant] = Counter()
    for prediction in kafka_predictions:
        phase = prediction.request_id.rsplit("-", 1)[0]
        assert prediction.deployment_revision == phase_revision[phase], prediction.request_id
        request = requests[prediction.request_id]
        chosen = route(
            MODEL,
            deployments[prediction.deployment_revision],
            request.entity_id or request.request_id,
        )
        assert chosen is not None
        assert (prediction.model_version, prediction.variant) == (
            chosen.served.version,
            chosen.variant,
        )
        assert prediction.served
        assert prediction.features == request.features
        if phase == "canary":
            variants[prediction.variant] += 1
    share = variants[Variant.CHALLENGER] / phases["canary"]
    assert 0.05 < share < 0.15, variants


async def test_a_scorer_killed_mid_stream_and_restarted_scores_every_request(
    stack: Stack, kafka_settings: KafkaSettings, publisher: EventPublisher
) -> None:
    _, scorer, _ = stack
    requests = [make_request(n, "stream") for n in range(6000)]
    ids = {r.request_id for r in requests}

    async def produce() -> None:
        for start in range(0, len(requests), 200):
            await publisher.publish_many(requests[start : start + 200])
            await asyncio.sleep(0.05)

    producing = asyncio.create_task(produce())
    await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: len(rs) >= 500)
    assert not producing.done()  # killed mid-stream: requests are still arriving
    await scorer.kill()
    assert scorer.process is not None
    assert scorer.process.returncode == -9
    await producing
    scorer.start()
    await scorer.wait_ready()
    records = await read_until(
        kafka_settings, Topic.PREDICTIONS, lambda rs: ids <= served_ids(rs), timeout_s=120
    )
    predictions = [PredictionMade.model_validate_json(r.value) for r in records]
    assert {p.request_id for p in predictions} == ids
    # Requests scored twice (handled, not yet committed when killed) get the same event id
    # again, so consumers of predictions discard the repeat.
    event_ids: dict[str, set[object]] = {}
    for prediction in predictions:
        event_ids.setdefault(prediction.request_id, set()).add(prediction.event_id)
    assert all(len(found) == 1 for found in event_ids.values())


async def test_deployments_changing_under_a_stream_drop_duplicate_and_misattribute_nothing(
    stack: Stack, kafka_settings: KafkaSettings, publisher: EventPublisher
) -> None:
    retrainer, _, ana = stack
    requests = [make_request(n, "swap") for n in range(4000)]
    ids = {r.request_id for r in requests}

    async def produce() -> None:
        for start in range(0, len(requests), 100):
            await publisher.publish_many(requests[start : start + 100])
            await asyncio.sleep(0.02)

    producing = asyncio.create_task(produce())
    async with httpx.AsyncClient(base_url=retrainer.url, headers=ana) as http:
        who = {"reason": "swap under load"}
        traffic = f"/models/{MODEL}/deployment/traffic"
        for method, path, body in [
            (
                "PUT",
                f"/models/{MODEL}/deployment",
                {"champion": 1, "challenger": 2, "challenger_share": 0.3},
            ),
            ("PUT", traffic, {"challenger_share": 0.5}),
            ("POST", f"/models/{MODEL}/deployment/promote", {}),
            ("POST", f"/models/{MODEL}/deployment/rollback", {}),
        ]:
            await asyncio.sleep(0.3)
            response = await http.request(method, path, json=who | body)
            assert response.status_code == 200, response.text
        await producing
        history = (await http.get(f"/models/{MODEL}/history")).json()
    deployments = {
        entry["revision"]: Deployment.model_validate(entry["deployment"])
        for entry in history["revisions"]
    }
    records = await read_until(kafka_settings, Topic.PREDICTIONS, lambda rs: ids <= served_ids(rs))
    predictions = [PredictionMade.model_validate_json(r.value) for r in records]
    mine = [p for p in predictions if p.request_id in ids]
    assert len(mine) == len(ids)
    by_id = {r.request_id: r for r in requests}
    for prediction in mine:
        request = by_id[prediction.request_id]
        chosen = route(
            MODEL,
            deployments[prediction.deployment_revision],
            request.entity_id or request.request_id,
        )
        assert chosen is not None
        assert (prediction.model_version, prediction.variant) == (
            chosen.served.version,
            chosen.variant,
        ), prediction.request_id
    assert len({p.deployment_revision for p in mine}) >= 3  # the stream really saw the swaps
