"""The registry over HTTP on SQLite and PostgreSQL: register, deploy, traffic, promote, roll back,
history, content by hash, and the outbox events of every change."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sqlalchemy.exc import IntegrityError

from contracts import (
    Envelope,
    ModelDeployed,
    ModelPromoted,
    ModelRegistered,
    ModelRolledBack,
)
from services.retrainer.registry.tables import AliasRow
from services.runtime import RegistryClient
from tests.factories import T0
from tests.http_tools import serving
from tests.model_builders import CLASSES, registration_form, train
from tests.registry_tools import AS_ANA, AS_LEE, Registry, bearer, deploy, register

MODEL = "breast-cancer"


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Envelope] = []

    async def publish(self, event: Envelope) -> None:
        self.published.append(event)

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        self.published.extend(events)


async def registered(http: httpx.AsyncClient, count: int) -> None:
    for n in range(count):
        response = await register(http, MODEL, train(c=1.0 + n))
        assert response.status_code == 201, response.text


def evil(values: object) -> object:
    return values


async def test_a_registered_version_keeps_its_lineage_and_content_by_hash(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    trained = train()
    response = await register(http, MODEL, trained, incident_id="inc-7", parameters={"C": 1.0})
    assert response.status_code == 201, response.text
    record = response.json()
    sha = hashlib.sha256(trained.artifact).hexdigest()
    assert record["version"] == 1
    assert record["artifact_sha256"] == sha
    assert record["artifact_uri"] == f"sha256/{sha}.skops"
    assert (
        record["dataset"]["digest"] == "sha256:" + hashlib.sha256(trained.training_csv).hexdigest()
    )
    assert record["evaluation_dataset"]["version"] == "1-test"
    assert record["incident_id"] == "inc-7"
    assert record["registered_at"].startswith("2026-11-22T10:00:00")

    second = await register(http, MODEL, train(c=0.5))
    assert second.json()["version"] == 2
    listed = (await http.get("/models")).json()
    assert listed == [{"name": MODEL, "versions": 2, "latest_version": 2, "deployment": None}]
    assert (await http.get(f"/artifacts/{sha}")).content == trained.artifact
    assert (await http.get(f"/artifacts/{'0' * 64}")).status_code == 404
    digest = record["dataset"]["digest"]
    assert (await http.get(f"/datasets/{digest}", headers=AS_ANA)).content == trained.training_csv
    assert (await http.get(f"/datasets/{digest}")).status_code == 401  # training data
    assert (await http.get(f"/datasets/{digest}", headers=AS_LEE)).status_code == 403


async def test_the_registry_client_reads_the_real_api_over_loopback_http(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    trained = train()
    record = (await register(http, MODEL, trained)).json()
    async with serving(reg.app) as url, httpx.AsyncClient() as client:
        registry_client = RegistryClient(client, url, token="token-ana")
        assert await registry_client.deployment(MODEL) is None
        assert await registry_client.deployments() == {}
        assert (await deploy(http, MODEL, 1)).status_code == 200
        version = await registry_client.version(MODEL, 1)
        assert version.model_dump(mode="json") == record
        deployment = await registry_client.deployment(MODEL)
        assert deployment is not None
        assert deployment.champion is not None
        assert deployment.champion.artifact_sha256 == record["artifact_sha256"]
        assert await registry_client.deployments() == {MODEL: deployment}
        assert await registry_client.artifact(record["artifact_sha256"]) == trained.artifact
        dataset = await registry_client.dataset(record["evaluation_dataset"]["digest"])
        assert dataset == trained.evaluation_csv


async def test_unsafe_or_mismatched_artifacts_are_refused_with_the_reason(
    http: httpx.AsyncClient,
) -> None:
    trained = train()
    features = np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0], [0.0, 1.0]])
    labels = CLASSES[[0, 1, 0, 1]]
    custom = make_pipeline(FunctionTransformer(evil), LogisticRegression()).fit(features, labels)
    three = LogisticRegression().fit(np.hstack([features, features[:, :1]]), labels)
    other_classes = LogisticRegression().fit(features, np.array(["a", "b", "a", "b"]))
    cases = [
        (pickle.dumps(trained.estimator), "not a skops file"),
        (skops.io.dumps(custom), "untrusted types: tests.retrainer.test_api.evil"),
        (skops.io.dumps(three), "model takes 3 features, the spec lists 2"),
        (skops.io.dumps(other_classes), "model classes ['a', 'b'] differ"),
    ]
    for artifact, message in cases:
        bad = type(trained)(artifact, trained.training_csv, trained.evaluation_csv, None)
        response = await register(http, MODEL, bad)
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["body", "artifact"]
        assert message in problem["msg"]
    assert (await http.get("/models")).json() == []


async def test_datasets_and_metadata_that_do_not_fit_the_spec_are_refused(
    http: httpx.AsyncClient,
) -> None:
    trained = train()
    wrong_header = type(trained)(
        trained.artifact, b"radius,texture,diagnosis\n1,2,benign\n", trained.evaluation_csv, None
    )
    response = await register(http, MODEL, wrong_header)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "training_data"]
    assert "header must be" in response.json()["detail"][0]["msg"]

    bad_label = trained.evaluation_csv + b"1.0,2.0,maybe\n"
    response = await register(
        http, MODEL, type(trained)(trained.artifact, trained.training_csv, bad_label, None)
    )
    assert response.status_code == 422
    assert "label 'maybe'" in response.json()["detail"][0]["msg"]

    spec = {"features": [], "label": "diagnosis"}
    response = await register(http, MODEL, trained, spec=spec)
    assert response.status_code == 422
    locations = [problem["loc"] for problem in response.json()["detail"]]
    assert ["body", "metadata", "spec", "features"] in locations

    response = await register(http, "Bad Name!", trained)
    assert response.status_code == 422


async def test_deploy_canary_promote_and_roll_back_with_history_and_champion_at_time_t(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    await registered(http, 3)
    steps: list[tuple[str, str, dict[str, object]]] = [
        ("put", "/deployment", {"champion": 1}),
        ("put", "/deployment", {"champion": 1, "challenger": 2, "challenger_share": 0.1}),
        ("put", "/deployment/traffic", {"challenger_share": 0.3}),
        ("post", "/deployment/promote", {}),
        ("post", "/deployment/rollback", {"incident_id": "inc-9"}),
    ]
    times = []
    for method, path, body in steps:
        times.append(reg.clock.advance(timedelta(hours=1)))
        response = await http.request(
            method,
            f"/models/{MODEL}{path}",
            json=body | {"reason": f"step {len(times)}"},
            headers=AS_ANA,
        )
        assert response.status_code == 200, response.text

    deployment = (await http.get(f"/models/{MODEL}/deployment")).json()
    assert deployment["revision"] == 5
    assert deployment["champion"]["version"] == 1
    assert deployment["challenger"] is None

    history = (await http.get(f"/models/{MODEL}/history")).json()
    assert [r["action"] for r in history["revisions"]] == [
        "deployed",
        "deployed",
        "traffic_changed",
        "promoted",
        "rolled_back",
    ]
    moves = [(m["alias"], m["version"], m["reason"]) for m in history["alias_moves"]]
    assert moves == [
        ("champion", 1, "step 1"),
        ("challenger", 2, "step 2"),
        ("champion", 2, "step 4"),
        ("challenger", None, "step 4"),
        ("champion", 1, "step 5"),
    ]
    assert history["revisions"][-1]["incident_id"] == "inc-9"

    async def champion_at(at: str) -> Any:
        response = await http.get(f"/models/{MODEL}/deployment/at", params={"time": str(at)})
        assert response.status_code == 200, response.text
        return response.json()

    before = await champion_at((T0).isoformat())
    assert before["champion"] is None
    assert before["revision"] is None
    canary = await champion_at((times[2] + timedelta(minutes=30)).isoformat())
    assert (canary["champion"], canary["challenger"]) == (1, 2)
    assert canary["revision"]["deployment"]["challenger_share"] == 0.3
    promoted = await champion_at((times[3] + timedelta(minutes=1)).isoformat())
    assert (promoted["champion"], promoted["revision"]["actor"]) == (2, "ana")
    assert (await champion_at(times[4].isoformat()))["champion"] == 1
    assert (
        await http.get(f"/models/{MODEL}/deployment/at?time=2026-11-22T10:00")
    ).status_code == 422

    aliases = (await http.get(f"/models/{MODEL}")).json()["aliases"]
    assert aliases == {"champion": 1}


async def test_every_change_is_staged_in_order_on_the_outbox(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    await registered(http, 2)
    await deploy(http, MODEL, 1)
    await deploy(http, MODEL, 1, 2, 0.1)
    for step in ("promote", "rollback"):
        response = await http.post(
            f"/models/{MODEL}/deployment/{step}", json={"reason": "r"}, headers=AS_ANA
        )
        assert response.status_code == 200, response.text
    publisher = RecordingPublisher()
    relay = reg.relay(publisher)
    assert await relay.publish_pending() == 6
    assert await relay.publish_pending() == 0
    types = [type(event) for event in publisher.published]
    assert types == [
        ModelRegistered,
        ModelRegistered,
        ModelDeployed,
        ModelDeployed,
        ModelPromoted,
        ModelRolledBack,
    ]
    revisions = [event.deployment.revision for event in publisher.published[2:]]  # type: ignore[attr-defined]
    assert revisions == [1, 2, 3, 4]


async def test_refused_changes_say_why_and_change_nothing(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    await registered(http, 1)
    why: dict[str, Any] = {"json": {"reason": "r"}, "headers": AS_ANA}
    assert (await http.get("/models/nope/deployment")).status_code == 404
    assert (await http.get(f"/models/{MODEL}/deployment")).status_code == 404
    assert (await deploy(http, MODEL, 7)).status_code == 404
    response = await http.post(f"/models/{MODEL}/deployment/rollback", **why)
    assert response.status_code == 409
    assert "not deployed" in response.json()["detail"]
    assert (await deploy(http, MODEL, 1)).status_code == 200
    response = await http.post(f"/models/{MODEL}/deployment/rollback", **why)
    assert response.status_code == 409
    assert "no previous champion" in response.json()["detail"]
    assert (await deploy(http, MODEL, 1, None, 0.6)).status_code == 422
    assert (await http.post("/models/nope/deployment/promote", **why)).status_code == 404
    publisher = RecordingPublisher()
    assert await reg.relay(publisher).publish_pending() == 2  # the registration and one deploy


async def test_only_a_known_caller_of_level_two_or_above_changes_the_registry_as_themselves(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    """Reads stay open; every change needs a bearer token of role l2+, and the actor recorded is
    the token's owner, never a name in the body."""
    await registered(http, 2)
    assert (await deploy(http, MODEL, 1)).status_code == 200
    changes: list[tuple[str, str, dict[str, object]]] = [
        ("PUT", "/deployment", {"champion": 2, "reason": "r"}),
        ("PUT", "/deployment/traffic", {"challenger_share": 0.1, "reason": "r"}),
        ("POST", "/deployment/promote", {"reason": "r"}),
        ("POST", "/deployment/rollback", {"reason": "r"}),
    ]
    for method, path, body in changes:
        url = f"/models/{MODEL}{path}"
        anonymous = await http.request(method, url, json=body)
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        unknown = await http.request(method, url, json=body, headers=bearer("token-nobody"))
        assert (unknown.status_code, unknown.json()["detail"]) == (
            401,
            "unknown, revoked or expired token",
        )
        level_one = await http.request(method, url, json=body, headers=AS_LEE)
        assert level_one.status_code == 403, (path, level_one.text)
        assert "role l1 may not change the registry (needs l2 or higher)" in level_one.text
    data, files = registration_form(train(c=0.1))
    assert (await http.post(f"/models/{MODEL}/versions", data=data, files=files)).status_code == 401
    refused = await register(http, MODEL, train(c=0.1), headers=AS_LEE)
    assert refused.status_code == 403
    impostor = await http.put(
        f"/models/{MODEL}/deployment",
        json={"champion": 2, "reason": "r", "actor": "the-ceo"},
        headers=AS_ANA,
    )
    assert impostor.status_code == 422
    assert "actor" in impostor.text
    impostor_registration = await register(http, MODEL, train(c=0.1), registered_by="the-ceo")
    assert impostor_registration.status_code == 422

    assert (await http.get("/models")).status_code == 200
    detail = (await http.get(f"/models/{MODEL}")).json()
    assert [record["registered_by"] for record in detail["versions"]] == ["ana", "ana"]
    assert detail["deployment"]["revision"] == 1
    history = (await http.get(f"/models/{MODEL}/history")).json()
    assert [entry["actor"] for entry in history["revisions"]] == ["ana"]
    publisher = RecordingPublisher()
    assert await reg.relay(publisher).publish_pending() == 3  # two registrations, one deploy


async def test_the_database_allows_one_version_per_alias_and_one_alias_per_version(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    await registered(http, 2)
    await deploy(http, MODEL, 1, 2, 0.1)
    with pytest.raises(IntegrityError):
        async with reg.sessions() as session, session.begin():
            session.add(AliasRow(model=MODEL, alias="champion", version=2))
    with pytest.raises(IntegrityError):
        async with reg.sessions() as session, session.begin():
            session.add(AliasRow(model=MODEL, alias="shadow", version=1))
    with pytest.raises(IntegrityError):
        async with reg.sessions() as session, session.begin():
            session.add(AliasRow(model=MODEL, alias="other", version=9))
    assert (await http.get(f"/models/{MODEL}")).json()["aliases"] == {
        "champion": 1,
        "challenger": 2,
    }


async def test_concurrent_changes_of_one_model_get_distinct_consecutive_revisions(
    reg: Registry, http: httpx.AsyncClient
) -> None:
    await registered(http, 3)
    responses = await asyncio.gather(
        *(deploy(http, MODEL, champion) for champion in (1, 2, 3, 1, 2, 3))
    )
    assert {response.status_code for response in responses} <= {200, 409}
    revisions = sorted(r.json()["revision"] for r in responses if r.status_code == 200)
    assert revisions == list(range(1, len(revisions) + 1))
    history = (await http.get(f"/models/{MODEL}/history")).json()["revisions"]
    assert [entry["revision"] for entry in history] == revisions


async def test_the_openapi_document_describes_every_registry_path(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    assert {
        "/models",
        "/models/{model}",
        "/models/{model}/versions",
        "/models/{model}/versions/{version}",
        "/models/{model}/deployment",
        "/models/{model}/deployment/traffic",
        "/models/{model}/deployment/promote",
        "/models/{model}/deployment/rollback",
        "/models/{model}/deployment/at",
        "/models/{model}/history",
        "/deployments",
        "/artifacts/{sha256}",
        "/datasets/{digest}",
    } <= set(document["paths"])
    upload = document["paths"]["/models/{model}/versions"]["post"]["requestBody"]
    assert "multipart/form-data" in upload["content"]


async def test_a_rollback_conditional_on_a_revision_no_longer_in_force_is_refused(
    reg: Registry,
) -> None:
    """Compare-and-set over real HTTP: a caller that judged revision 2 never rolls back
    revision 3, whatever it is; with the revision in force, the rollback happens."""
    async with (
        serving(reg.app) as url,
        httpx.AsyncClient(base_url=url, headers=AS_ANA) as http,
    ):
        await registered(http, 3)
        for champion in (1, 2):
            assert (await deploy(http, MODEL, champion)).status_code == 200
        assert (await deploy(http, MODEL, 3)).status_code == 200  # the fix, after the alert

        stale = await http.post(
            f"/models/{MODEL}/deployment/rollback",
            json={"reason": "v2 decayed", "incident_id": "inc-9", "expected_revision": 2},
        )
        assert stale.status_code == 409
        assert stale.json()["detail"] == (
            "the deployment changed: revision 2 expected, revision 3 is in force"
        )
        history = (await http.get(f"/models/{MODEL}/history")).json()
        assert len(history["revisions"]) == 3
        assert (await http.get(f"/models/{MODEL}/deployment")).json()["champion"]["version"] == 3

        for wrong in (0, -1, "3", 3.5, True, [3]):
            bad = await http.post(
                f"/models/{MODEL}/deployment/rollback",
                json={"reason": "r", "expected_revision": wrong},
            )
            assert bad.status_code == 422, (wrong, bad.text)
        huge = await http.post(
            f"/models/{MODEL}/deployment/rollback",
            json={"reason": "r", "expected_revision": 10**30},
        )
        assert huge.status_code == 409

        current = await http.post(
            f"/models/{MODEL}/deployment/rollback",
            json={"reason": "v3 decayed", "expected_revision": 3},
        )
        assert current.status_code == 200, current.text
        assert current.json()["deployment"]["champion"]["version"] == 2
    publisher = RecordingPublisher()
    await reg.relay(publisher).publish_pending()
    assert [type(e) for e in publisher.published].count(ModelRolledBack) == 1
