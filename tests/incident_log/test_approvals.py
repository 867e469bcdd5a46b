"""Runbook runs that need approval, through the API on SQLite and PostgreSQL: held until a second
person approves (then published signed, with approved_by), never by the requester (403),
rejected or expired runs never published, every step on the timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from contracts import AlertKind, RunbookRequest, Tier, alert_fingerprint
from services.incident_log.api import install_incident_api
from services.incident_log.app import runbook_signer
from services.incident_log.approval_api import install_approval_api
from services.incident_log.approvals import ApprovalPolicy
from services.incident_log.auth import install_authentication
from services.incident_log.permissions import Role
from services.incident_log.service import IncidentLog
from services.incident_log.settings import Settings
from services.incident_log.tokens import issue_token, token_digest
from services.runtime import (
    OutboxMessage,
    ServiceName,
    Sessions,
    session_factory,
)
from services.runtime.request_signing import SigningKeys, verification_problem
from services.runtime.scopes import SERVICE_SCOPES
from tests.clock import FakeClock
from tests.factories import MODEL, T0, TEST_SIGNING_KEY, make_alert
from tests.incident_log.policies import make_policy

ADMIN = "admin-secret"
KEYS = SigningKeys.parse(TEST_SIGNING_KEY)
POLICY = ApprovalPolicy({"purge-cache": Tier.L2, "wipe-model": Tier.L3}, timedelta(minutes=30))
PEOPLE = {"ann": Role.L2, "bo": Role.L2, "cy": Role.L1, "dee": Role.L3, "vi": Role.VIEWER}


@dataclass
class Api:
    client: httpx.AsyncClient
    log: IncidentLog
    sessions: Sessions
    clock: FakeClock[datetime]
    tokens: dict[str, str] = field(default_factory=dict)
    versions: int = 0

    def auth(self, person: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[person]}"}

    async def new_incident(self) -> str:
        kind = AlertKind.METRIC_DECAY
        self.versions += 1  # another version: not correlated into the previous incident
        fingerprint = alert_fingerprint(MODEL, self.versions, kind, uuid4().hex)
        before = await self.incident_ids()
        await self.log.on_alerts(
            [make_alert(kind=kind, model_version=self.versions, fingerprint=fingerprint)]
        )
        (new,) = await self.incident_ids() - before
        return new

    async def incident_ids(self) -> set[str]:
        listed = await self.client.get("/incidents", headers=self.auth("vi"))
        return {str(incident["id"]) for incident in listed.json()}

    async def ask(
        self, incident: str, person: str = "ann", runbook: str = "purge-cache"
    ) -> httpx.Response:
        return await self.client.post(
            f"/incidents/{incident}/runbooks",
            json={"runbook": runbook, "reason": "cache poisoned", "parameters": {"depth": 2}},
            headers=self.auth(person),
        )

    async def decide(
        self, incident: str, run_id: str, decision: str, person: str, **body: Any
    ) -> httpx.Response:
        return await self.client.post(
            f"/incidents/{incident}/runbooks/{run_id}/{decision}",
            json=body or None,
            headers=self.auth(person),
        )

    async def published(self, run_id: str) -> list[RunbookRequest]:
        async with self.sessions() as session:
            rows = await session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.event_type == "runbook.request")
                .order_by(col(OutboxMessage.id))
            )
            requests = [RunbookRequest.model_validate_json(row.payload) for row in rows]
        return [request for request in requests if request.run_id == run_id]

    async def timeline(self, incident: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/incidents/{incident}/timeline", headers=self.auth("vi"))
        return list(response.json())


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    sessions: Sessions = session_factory(engine)
    clock = FakeClock(T0)
    settings = Settings(runbook_signing_key=TEST_SIGNING_KEY)
    log = IncidentLog(
        sessions, make_policy(), clock=clock, sign=runbook_signer(settings), approvals=POLICY
    )
    app = FastAPI()
    install_authentication(app, sessions, admin_sha256=token_digest(ADMIN), clock=log.now)
    install_incident_api(app, log, sessions)
    install_approval_api(app, log, sessions)
    tokens = {}
    async with sessions() as session, session.begin():
        for person, role in PEOPLE.items():
            tokens[person] = await issue_token(session, person, role, T0)
        tokens["runner"] = await issue_token(
            session, "runbook-runner", None, T0, scopes=SERVICE_SCOPES[ServiceName.RUNBOOK_RUNNER]
        )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://incident-log"
    ) as client:
        yield Api(client, log, sessions, clock, tokens)


async def test_a_held_run_is_published_signed_once_a_second_person_approves_it(
    api: Api,
) -> None:
    incident = await api.new_incident()
    asked = await api.ask(incident)
    assert asked.status_code == 202, asked.text
    held = asked.json()
    assert held["state"] == "pending_approval"
    assert held["approval_expires_at"].startswith("2026")
    run_id = held["run_id"]
    assert await api.published(run_id) == []
    listed = (
        await api.client.get(f"/incidents/{incident}/approvals", headers=api.auth("bo"))
    ).json()
    assert [(r["run_id"], r["state"], r["can_approve"]) for r in listed] == [
        (run_id, "pending", True)
    ]
    mine = (
        await api.client.get(f"/incidents/{incident}/approvals", headers=api.auth("ann"))
    ).json()
    assert mine[0]["can_approve"] is False

    api.clock.now = T0 + timedelta(minutes=5)
    approved = await api.decide(incident, run_id, "approve", "bo", reason="checked the cache")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    assert approved.json()["decided_by"] == "bo"

    (request,) = await api.published(run_id)
    assert request.requested_by == "ann"
    assert request.approved_by == "bo"
    assert request.runbook == "purge-cache"
    assert request.parameters == {"depth": 2}
    assert request.occurred_at == T0 + timedelta(minutes=5)
    assert verification_problem(request, KEYS, now=api.clock.now) is None
    actions = [(e["action"], e["actor"]) for e in await api.timeline(incident)]
    assert ("runbook_approval_requested", "ann") in actions
    assert actions[-2:] == [("runbook_approved", "bo"), ("runbook_requested", "ann")]

    again = await api.decide(incident, run_id, "approve", "dee")
    assert again.status_code == 409
    assert "already approved (by bo)" in again.json()["detail"]
    assert len(await api.published(run_id)) == 1


@pytest.mark.parametrize("same_person", ["ann", "ANN"])
async def test_the_requester_cannot_approve_their_own_run(api: Api, same_person: str) -> None:
    PEOPLE_TOKENS = api.tokens | {"ANN": api.tokens["ann"]}
    api.tokens = PEOPLE_TOKENS
    incident = await api.new_incident()
    run_id = (await api.ask(incident)).json()["run_id"]
    refused = await api.decide(incident, run_id, "approve", same_person)
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"ann asked for run {run_id} and cannot approve it: a second person must"
    )
    assert await api.published(run_id) == []
    held = (await api.client.get(f"/incidents/{incident}/approvals", headers=api.auth("vi"))).json()
    assert held[0]["state"] == "pending"


async def test_an_approver_needs_l2_and_the_runbooks_tier(api: Api) -> None:
    incident = await api.new_incident()
    run_id = (await api.ask(incident)).json()["run_id"]
    for person, needs in (("vi", "needs l2"), ("cy", "needs l2")):
        refused = await api.decide(incident, run_id, "approve", person)
        assert refused.status_code == 403
        assert needs in refused.json()["detail"]
    wipe = (await api.ask(incident, runbook="wipe-model")).json()["run_id"]
    refused = await api.decide(incident, wipe, "approve", "bo")
    assert refused.status_code == 403
    assert "runs at tier L3" in refused.json()["detail"]
    assert (await api.decide(incident, wipe, "approve", "dee")).status_code == 200
    assert await api.published(run_id) == []
    assert [r.approved_by for r in await api.published(wipe)] == ["dee"]


async def test_a_services_scoped_token_reads_held_runs_but_never_decides_them(api: Api) -> None:
    incident = await api.new_incident()
    run_id = (await api.ask(incident)).json()["run_id"]
    for decision in ("approve", "reject"):
        refused = await api.decide(incident, run_id, decision, "runner")
        assert refused.status_code == 403, refused.text
        assert "scopes" in refused.json()["detail"]
    held = await api.client.get(f"/incidents/{incident}/approvals", headers=api.auth("runner"))
    assert held.status_code == 200
    assert [(r["run_id"], r["state"], r["can_approve"]) for r in held.json()] == [
        (run_id, "pending", False)
    ]
    assert await api.published(run_id) == []


async def test_a_rejected_run_never_runs_and_the_requester_may_withdraw(api: Api) -> None:
    incident = await api.new_incident()
    rejected = (await api.ask(incident)).json()["run_id"]
    withdrawn = (await api.ask(incident)).json()["run_id"]
    no = await api.decide(incident, rejected, "reject", "bo", reason="not this cache")
    assert no.status_code == 200
    assert no.json()["state"] == "rejected"
    assert (await api.decide(incident, withdrawn, "reject", "ann")).json()["state"] == "rejected"
    late = await api.decide(incident, rejected, "approve", "dee")
    assert late.status_code == 409
    assert "already rejected (by bo)" in late.json()["detail"]
    assert await api.published(rejected) == []
    assert await api.published(withdrawn) == []
    rejections = [e for e in await api.timeline(incident) if e["action"] == "runbook_rejected"]
    assert [(e["actor"], e["details"]["reason"]) for e in rejections] == [
        ("bo", "not this cache"),
        ("ann", None),
    ]


async def test_an_approval_nobody_gives_in_time_expires_on_the_timeline_and_never_runs(
    api: Api,
) -> None:
    incident = await api.new_incident()
    run_id = (await api.ask(incident)).json()["run_id"]
    api.clock.now = T0 + timedelta(minutes=29)
    assert await api.log.expire_approvals() == 0
    api.clock.now = T0 + timedelta(minutes=30)
    assert await api.log.expire_approvals() == 1
    assert await api.log.expire_approvals() == 0
    late = await api.decide(incident, run_id, "approve", "bo")
    assert late.status_code == 409
    assert "already expired" in late.json()["detail"]
    assert await api.published(run_id) == []
    (expired,) = [
        e for e in await api.timeline(incident) if e["action"] == "runbook_approval_expired"
    ]
    assert expired["actor"] == "system:incident-log"
    assert expired["details"]["run_id"] == run_id


async def test_an_approval_after_the_deadline_is_refused_and_recorded_expired_without_the_sweep(
    api: Api,
) -> None:
    incident = await api.new_incident()
    run_id = (await api.ask(incident)).json()["run_id"]
    api.clock.now = T0 + timedelta(hours=2)
    late = await api.decide(incident, run_id, "approve", "bo")
    assert late.status_code == 409
    listed = (await api.client.get("/approvals", headers=api.auth("vi"))).json()
    assert listed == []
    assert await api.published(run_id) == []


async def test_a_runbook_without_approval_is_published_at_once_signed(api: Api) -> None:
    incident = await api.new_incident()
    asked = await api.ask(incident, runbook="rollback-model")
    assert asked.json()["state"] == "requested"
    (request,) = await api.published(asked.json()["run_id"])
    assert request.approved_by is None
    assert verification_problem(request, KEYS, now=T0) is None


async def test_unknown_runs_and_incidents_are_404_and_bad_bodies_422(api: Api) -> None:
    incident = await api.new_incident()
    other = await api.new_incident()
    run_id = (await api.ask(incident)).json()["run_id"]
    assert (await api.decide(incident, "run-nope", "approve", "bo")).status_code == 404
    assert (await api.decide("inc-nope", run_id, "approve", "bo")).status_code == 404
    assert (await api.decide(other, run_id, "approve", "bo")).status_code == 404
    for body in ({"reason": ""}, {"reason": "x" * 2001}, {"reason": 3}):
        response = await api.client.post(
            f"/incidents/{incident}/runbooks/{run_id}/approve", json=body, headers=api.auth("bo")
        )
        assert response.status_code == 422, body
    assert (
        await api.client.post(f"/incidents/{incident}/runbooks/{run_id}/approve")
    ).status_code == 401
    held = (await api.client.get(f"/incidents/{incident}/approvals", headers=api.auth("vi"))).json()
    assert [r["state"] for r in held] == ["pending"]


async def test_a_run_cannot_be_held_or_approved_on_a_resolved_incident(api: Api) -> None:
    incident = await api.new_incident()
    run_id = (await api.ask(incident)).json()["run_id"]
    resolved = await api.client.post(
        f"/incidents/{incident}/resolve",
        json={"reason": "fixed by hand", "force": True},
        headers=api.auth("bo"),
    )
    assert resolved.status_code == 200, resolved.text
    assert (await api.ask(incident)).status_code == 409
    late = await api.decide(incident, run_id, "approve", "bo")
    assert late.status_code == 409
    assert "resolved incident" in late.json()["detail"]
    assert await api.published(run_id) == []
