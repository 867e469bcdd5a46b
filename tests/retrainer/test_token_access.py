"""The retrainer honours the incident log's tokens as they change: a revoked token is refused
within the identity cache's bound, an expired one at its expiry, a service's scoped token only
makes the calls its scopes name, and training data needs l2 or ``datasets:read``. Over loopback
HTTP against the real incident log (a process), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.retrainer.settings import Settings as RetrainerSettings
from services.runtime import KafkaSettings
from tests.http_tools import raw_exchange, request_head
from tests.kafka_tools import own_namespace
from tests.model_builders import train
from tests.processes import issue_tokens, running_incident_log
from tests.registry_tools import bearer, deploy, register
from tests.retrainer.retrainer_harness import MODEL, Retrainer, real_retrainer
from tests.retrainer.retraining_data import SPEC

pytestmark = [pytest.mark.integration]

ADMIN = "token-access-admin"
CACHE_SECONDS = RetrainerSettings.model_fields["identity_cache_seconds"].default
"""The documented bound (docs/security.md): the retrainer's default identity cache."""


@dataclass
class IncidentLog:
    url: str
    tokens: dict[str, str]

    async def create(self, **body: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, headers=bearer(ADMIN)) as admin:
            response = await admin.post("/tokens", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def revoke(self, token_id: str) -> None:
        async with httpx.AsyncClient(base_url=self.url, headers=bearer(ADMIN)) as admin:
            response = await admin.delete(f"/tokens/{token_id}")
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def incident_log(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[IncidentLog]:
    folder = tmp_path_factory.mktemp("incident-log")
    kafka = await own_namespace(kafka_bootstrap, "tk")
    async with running_incident_log(
        kafka, folder, admin_token=ADMIN, group_wait_seconds=None
    ) as process:
        people = {"ana": "l2", "lee": "l1"}
        yield IncidentLog(process.url, await issue_tokens(process.url, ADMIN, people))


@pytest.fixture
async def retrainer(
    incident_log: IncidentLog, kafka_settings: KafkaSettings, tmp_path: Path, database_url: str
) -> AsyncIterator[Retrainer]:
    async with real_retrainer(
        tmp_path,
        kafka_settings,
        database_url,
        incident_log.url,
        incident_log.tokens,
        identity_cache_seconds=CACHE_SECONDS,
    ) as running:
        yield running


async def training_digest(retrainer: Retrainer) -> str:
    model = (await retrainer.http.get(f"/models/{MODEL}")).json()  # open: digests are no secret
    return str(model["versions"][0]["dataset"]["digest"])


async def test_training_data_needs_l2_or_the_datasets_scope(
    retrainer: Retrainer, incident_log: IncidentLog
) -> None:
    path = f"/datasets/{await training_digest(retrainer)}"
    assert (await retrainer.http.get(path)).status_code == 401
    assert (await retrainer.http.get(path, headers=bearer("vgl_unknown"))).status_code == 401
    status, _ = await raw_exchange(
        retrainer.url,
        request_head("GET", path, {"Authorization": "Bearer d\xe9j\xe0".encode("latin-1")}),
    )
    assert status == 401
    lee = await retrainer.http.get(path, headers=bearer(incident_log.tokens["lee"]))
    assert lee.status_code == 403
    assert "needs l2 or higher" in lee.json()["detail"]
    ana = await retrainer.http.get(path, headers=bearer(incident_log.tokens["ana"]))
    assert ana.status_code == 200
    assert ana.content.startswith(b"mean radius,")
    wrong_scope = await incident_log.create(name="prober", scopes=["incidents:read"])
    refused = await retrainer.http.get(path, headers=bearer(wrong_scope["token"]))
    assert refused.status_code == 403
    assert "needs scope datasets:read" in refused.json()["detail"]
    reader = await incident_log.create(name="drift-detector", scopes=["datasets:read"])
    assert (await retrainer.http.get(path, headers=bearer(reader["token"]))).content == ana.content


async def test_a_scoped_token_makes_only_the_calls_its_scopes_name(
    retrainer: Retrainer, incident_log: IncidentLog
) -> None:
    runner = await incident_log.create(
        name="runbook-runner", scopes=["registry:rollback", "retrain:request", "datasets:read"]
    )
    headers = bearer(runner["token"])
    ana = bearer(incident_log.tokens["ana"])
    second = await register(
        retrainer.http,
        MODEL,
        train(c=2.0),
        headers=ana,
        spec=SPEC.model_dump(mode="json"),
        parameters={"C": 2.0},
    )
    assert second.status_code == 201, second.text
    assert (await deploy(retrainer.http, MODEL, 2, headers=ana)).status_code == 200

    refused = [
        ("PUT", f"/models/{MODEL}/deployment", {"champion": 1, "reason": "x"}),
        ("PUT", f"/models/{MODEL}/deployment/traffic", {"challenger_share": 0.1, "reason": "x"}),
        ("POST", f"/models/{MODEL}/deployment/promote", {"reason": "x"}),
        ("GET", "/promotions", None),
        ("POST", "/promotions/nope/approve", {"comment": "x"}),
    ]
    for method, path, body in refused:
        response = await retrainer.http.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert "scopes" in response.json()["detail"]
    upload = await register(retrainer.http, MODEL, train(), headers=headers)
    assert upload.status_code == 403

    rolled = await retrainer.http.post(
        f"/models/{MODEL}/deployment/rollback", json={"reason": "recall fell"}, headers=headers
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["actor"] == "runbook-runner"
    assert (await retrainer.deployment())["champion"]["version"] == 1
    asked = await retrainer.http.post(
        "/retrains", json={"model": MODEL, "reason": "drifted"}, headers=headers
    )
    assert asked.status_code == 202, asked.text

    reader = await incident_log.create(name="reader", scopes=["datasets:read"])
    for method, path, body in (
        ("POST", f"/models/{MODEL}/deployment/rollback", {"reason": "x"}),
        ("POST", "/retrains", {"model": MODEL, "reason": "x"}),
    ):
        response = await retrainer.http.request(
            method, path, json=body, headers=bearer(reader["token"])
        )
        assert response.status_code == 403, (path, response.text)


async def test_a_revoked_token_is_refused_within_the_identity_cache_bound(
    retrainer: Retrainer, incident_log: IncidentLog
) -> None:
    path = f"/datasets/{await training_digest(retrainer)}"
    rita = await incident_log.create(name="rita", role="l2")
    assert (await retrainer.http.get(path, headers=bearer(rita["token"]))).status_code == 200
    await incident_log.revoke(rita["id"])
    revoked_at = time.monotonic()
    async with httpx.AsyncClient(base_url=incident_log.url) as log:
        assert (await log.get("/whoami", headers=bearer(rita["token"]))).status_code == 401
    # Timed by when each request was sent, not when its answer came: the request that ends the
    # cached identity asks the incident log again, which on a loaded machine can take seconds.
    while True:
        sent_s = time.monotonic() - revoked_at
        answer = await retrainer.http.get(path, headers=bearer(rita["token"]))
        if answer.status_code == 401:
            break
        assert answer.status_code == 200
        assert sent_s <= CACHE_SECONDS + 1.0, f"revoked token still works {sent_s:.1f} s after"
        await asyncio.sleep(0.1)


async def test_an_expired_token_is_refused_at_its_expiry_whatever_the_cache(
    retrainer: Retrainer, incident_log: IncidentLog
) -> None:
    path = f"/datasets/{await training_digest(retrainer)}"
    brief = await incident_log.create(name="brief", role="l2", expires_in_days=3 / 86_400)
    assert (await retrainer.http.get(path, headers=bearer(brief["token"]))).status_code == 200
    expires = datetime.fromisoformat(brief["expires_at"]).timestamp()
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.2)
    assert (await retrainer.http.get(path, headers=bearer(brief["token"]))).status_code == 401
