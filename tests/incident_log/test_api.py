"""The HTTP API: every action needs a token (401), the right role (403), and lands on the timeline
with its actor; state conflicts are 409 with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from contracts import AlertKind, RetrainRequest, alert_fingerprint
from services.incident_log.api import install_incident_api
from services.incident_log.auth import install_authentication
from services.incident_log.permissions import Role
from services.incident_log.service import IncidentLog
from services.incident_log.token_api import install_token_api
from services.incident_log.tokens import issue_token, token_digest
from services.runtime import (
    OutboxMessage,
    ServiceName,
    Sessions,
    session_factory,
)
from services.runtime.scopes import SERVICE_SCOPES, Scope
from tests.factories import MODEL, T0, make_alert
from tests.incident_log.policies import make_policy

ADMIN = "admin-secret"


@dataclass
class Api:
    client: httpx.AsyncClient
    log: IncidentLog
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def post_as(self, role: Role, path: str, body: object) -> httpx.Response:
        """POST ``body`` as JSON with the token of someone of ``role``."""
        return await self.client.post(path, json=body, headers=self.auth(role))

    async def new_incident(self, *, kind: AlertKind = AlertKind.METRIC_DECAY) -> str:
        alert = make_alert(kind=kind, fingerprint=alert_fingerprint(MODEL, 3, kind, str(id(self))))
        await self.log.on_alerts([alert])
        listed = await self.client.get("/incidents", headers=self.auth(Role.VIEWER))
        return str(listed.json()[0]["id"])


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    sessions: Sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy(), clock=lambda: T0)
    app = FastAPI()
    install_authentication(app, sessions, admin_sha256=token_digest(ADMIN), clock=log.now)
    install_incident_api(app, log, sessions)
    install_token_api(app, sessions, clock=log.now)
    tokens = {Role.ADMIN: ADMIN}
    async with sessions() as session, session.begin():
        for role in (Role.VIEWER, Role.L1, Role.L2, Role.L3):
            tokens[role] = await issue_token(session, f"{role.value}-person", role, T0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://incident-log"
    ) as client:
        yield Api(client, log, tokens)


ACTIONS = [
    ("acknowledge", {}),
    ("claim", {}),
    ("comment", {"text": "looking"}),
    ("escalate", {"reason": "need data scientists"}),
    ("mitigating", {"reason": "rolling back"}),
    ("resolve", {"reason": "false alarm", "force": True}),
]


@pytest.mark.parametrize(("action", "body"), ACTIONS, ids=[a for a, _ in ACTIONS])
async def test_an_action_needs_a_token_and_a_role_then_lands_on_the_timeline_with_its_actor(
    api: Api, action: str, body: dict[str, object]
) -> None:
    incident = await api.new_incident()
    url = f"/incidents/{incident}/{action}"
    missing = await api.client.post(url, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await api.client.post(url, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    low = await api.post_as(Role.VIEWER, url, body)
    assert low.status_code == 403
    assert "needs l1 or higher" in low.json()["detail"]
    done = await api.post_as(Role.L1, url, body)
    assert done.status_code == 200, done.text
    timeline = (
        await api.client.get(f"/incidents/{incident}/timeline", headers=api.auth(Role.VIEWER))
    ).json()
    assert timeline[-1]["actor"] == "l1-person"


async def test_level_one_cannot_act_on_a_level_two_incident_but_level_two_can(api: Api) -> None:
    incident = await api.new_incident(kind=AlertKind.DATA_DRIFT)  # no runbook: straight to L2
    detail = (await api.client.get(f"/incidents/{incident}", headers=api.auth(Role.L1))).json()
    assert detail["tier"] == "L2"
    assert "acknowledge" not in detail["actions"]
    refused = await api.client.post(f"/incidents/{incident}/acknowledge", headers=api.auth(Role.L1))
    assert refused.status_code == 403
    assert "an L2 incident (needs l2 or higher)" in refused.json()["detail"]
    assert (
        await api.client.post(f"/incidents/{incident}/acknowledge", headers=api.auth(Role.L2))
    ).status_code == 200


async def test_reopen_monitoring_silences_and_tokens_check_their_roles(api: Api) -> None:
    incident = await api.new_incident()
    l1 = api.auth(Role.L1)
    await api.client.post(f"/incidents/{incident}/mitigating", json={"reason": "x"}, headers=l1)
    assert (
        await api.post_as(Role.VIEWER, f"/incidents/{incident}/monitoring", {"reason": "y"})
    ).status_code == 403
    assert (
        await api.client.post(f"/incidents/{incident}/monitoring", json={"reason": "y"}, headers=l1)
    ).status_code == 200
    await api.client.post(
        f"/incidents/{incident}/resolve", json={"reason": "z", "force": True}, headers=l1
    )
    assert (
        await api.post_as(Role.VIEWER, f"/incidents/{incident}/reopen", {"reason": "again"})
    ).status_code == 403
    reopened = await api.client.post(
        f"/incidents/{incident}/reopen", json={"reason": "again"}, headers=l1
    )
    assert reopened.json()["status"] == "open"

    silence = {"matcher": {"kinds": ["data_drift"]}, "duration_minutes": 30, "reason": "migration"}
    assert (await api.client.post("/silences", json=silence, headers=l1)).status_code == 403
    created = await api.post_as(Role.L2, "/silences", silence)
    assert created.status_code == 201
    assert created.json()["active"] is True
    silence_id = created.json()["id"]
    assert (await api.client.delete(f"/silences/{silence_id}", headers=l1)).status_code == 403
    expired = await api.client.delete(f"/silences/{silence_id}", headers=api.auth(Role.L2))
    assert expired.json()["active"] is False

    token = {"name": "dana", "role": "l2"}
    assert (await api.post_as(Role.L3, "/tokens", token)).status_code == 403
    issued = await api.post_as(Role.ADMIN, "/tokens", token)
    assert issued.status_code == 201
    me = await api.client.get(
        "/whoami", headers={"Authorization": f"Bearer {issued.json()['token']}"}
    )
    assert me.json()["name"] == "dana"
    assert me.json()["role"] == "l2"
    assert me.json()["token_id"] == issued.json()["id"]
    assert me.json()["acts_for_others"] is False


async def test_state_conflicts_are_409_with_the_reason(api: Api) -> None:
    incident = await api.new_incident()
    l1 = api.auth(Role.L1)
    await api.client.post(f"/incidents/{incident}/claim", headers=l1)
    held = await api.client.post(f"/incidents/{incident}/acknowledge", headers=api.auth(Role.L2))
    assert held.status_code == 409
    assert "held by l1-person" in held.json()["detail"]
    taken = await api.post_as(Role.L2, f"/incidents/{incident}/acknowledge", {"take_over": True})
    assert taken.json()["held_by"] == "l2-person"
    unconfirmed = await api.post_as(
        Role.L2, f"/incidents/{incident}/resolve", {"reason": "fine now"}
    )
    assert unconfirmed.status_code == 409
    assert "labels have not confirmed" in unconfirmed.json()["detail"]
    unknown = await api.client.post("/incidents/inc-nope/acknowledge", headers=l1)
    assert unknown.status_code == 404
    bad = await api.client.post(f"/incidents/{incident}/comment", json={"text": ""}, headers=l1)
    assert bad.status_code == 422


async def test_reads_are_open_to_viewers_and_filter(api: Api) -> None:
    await api.new_incident()
    viewer = api.auth(Role.VIEWER)
    assert (await api.client.get("/incidents")).status_code == 401
    assert len((await api.client.get("/incidents?tier=L1", headers=viewer)).json()) == 1
    assert (await api.client.get("/incidents?tier=L2", headers=viewer)).json() == []
    assert (await api.client.get("/incidents?status=resolved", headers=viewer)).json() == []
    stats = (await api.client.get("/stats", headers=viewer)).json()
    assert stats["incidents"] == 1
    assert stats["by_tier"]["L1"]["incidents"] == 1
    alerts = (await api.client.get("/alerts", headers=viewer)).json()
    assert alerts[0]["disposition"] == "opened"


async def test_runbooks_by_hand_and_retrain_requests_need_level_two_and_reports_level_one(
    api: Api,
) -> None:
    incident = await api.new_incident()
    run = {"runbook": "drift-diagnosis", "reason": "look closer", "parameters": {"window": 500}}
    assert (await api.post_as(Role.L1, f"/incidents/{incident}/runbooks", run)).status_code == 403
    accepted = await api.post_as(Role.L2, f"/incidents/{incident}/runbooks", run)
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]
    retrain = {"reason": "drift on three features"}
    assert (
        await api.post_as(Role.L1, f"/incidents/{incident}/retrain", retrain)
    ).status_code == 403
    assert (
        await api.post_as(Role.L2, f"/incidents/{incident}/retrain", retrain)
    ).status_code == 200
    report = {"title": "drift diagnosis", "report": {"top": ["mean radius"]}}
    assert (
        await api.post_as(Role.VIEWER, f"/incidents/{incident}/reports", report)
    ).status_code == 403
    assert (await api.post_as(Role.L1, f"/incidents/{incident}/reports", report)).status_code == 200
    huge = {"title": "too much", "report": {"rows": ["x" * 1000] * 300}}
    assert (await api.post_as(Role.L1, f"/incidents/{incident}/reports", huge)).status_code == 413
    timeline = (
        await api.client.get(f"/incidents/{incident}/timeline", headers=api.auth(Role.VIEWER))
    ).json()
    requested = [
        e for e in timeline if e["action"] == "runbook_requested" and e["actor"] == "l2-person"
    ]
    assert requested[0]["details"]["run_id"] == run_id
    assert [e["action"] for e in timeline[-2:]] == ["retrain_requested", "report_attached"]


async def test_only_a_token_allowed_to_act_for_others_may_ask_for_a_retrain_on_a_persons_behalf(
    engine: AsyncEngine,
) -> None:
    sessions: Sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy(), clock=lambda: T0)
    app = FastAPI()
    install_authentication(app, sessions, admin_sha256=token_digest(ADMIN), clock=log.now)
    install_incident_api(app, log, sessions)
    async with sessions() as session, session.begin():
        runner = await issue_token(
            session, "runbook-runner", None, T0, scopes=SERVICE_SCOPES[ServiceName.RUNBOOK_RUNNER]
        )
        # A person's token that merely bears the runner's name may not act for others.
        impostor = await issue_token(session, "runbook-runner", Role.L2, T0)
        # Asking for a retrain is not enough: acting for someone is its own scope.
        asker = await issue_token(
            session, "asker", None, T0, scopes=frozenset({Scope.RETRAIN_REQUEST})
        )
        viewer = await issue_token(session, "vi", Role.VIEWER, T0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://incident-log"
    ) as client:
        api = Api(client, log, {Role.VIEWER: viewer})
        incident = await api.new_incident()
        url = f"/incidents/{incident}/retrain"

        def body(**fields: object) -> dict[str, object]:
            return {"reason": "drift"} | fields

        as_impostor = {"Authorization": f"Bearer {impostor}"}
        refused = await client.post(url, json=body(on_behalf_of="bo"), headers=as_impostor)
        assert refused.status_code == 403
        assert "may not act on behalf of someone else" in refused.json()["detail"]
        as_asker = {"Authorization": f"Bearer {asker}"}
        refused = await client.post(url, json=body(on_behalf_of="bo"), headers=as_asker)
        assert refused.status_code == 403
        as_runner = {"Authorization": f"Bearer {runner}"}
        for hostile in (17, "", "x" * 201, "bo\nroot", ["bo"]):
            answer = await client.post(url, json=body(on_behalf_of=hostile), headers=as_runner)
            assert answer.status_code == 422, (hostile, answer.text)
        whoami = await client.get("/whoami", headers=as_runner)
        assert (whoami.json()["name"], whoami.json()["acts_for_others"]) == ("runbook-runner", True)
        assert (await client.get("/whoami", headers=as_impostor)).json()["acts_for_others"] is False

        done = await client.post(url, json=body(on_behalf_of="bo"), headers=as_runner)
        assert done.status_code == 200, done.text
        timeline = (
            await client.get(f"/incidents/{incident}/timeline", headers=api.auth(Role.VIEWER))
        ).json()
        [requested] = [e for e in timeline if e["action"] == "retrain_requested"]
        assert (requested["actor"], requested["details"]["via"]) == ("bo", "runbook-runner")
    async with sessions() as session:
        [row] = (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.event_type == "retrain.request")
            )
        ).all()
    request = RetrainRequest.model_validate_json(row.payload)
    assert (request.requested_by, request.via) == ("bo", "runbook-runner")
