"""The on-call workflows' API on SQLite and PostgreSQL: incidents opened by hand, the runbook
picker's choices and checks, the post-incident review with its action items, and the response
statistics — MTTA and MTTR asserted on a simulated clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from contracts import AlertKind, RunbookFinished, RunState, alert_fingerprint
from services.incident_log.api import install_incident_api
from services.incident_log.auth import install_authentication
from services.incident_log.permissions import Role
from services.incident_log.review_api import install_review_api
from services.incident_log.runbook_choices import load_catalog_view
from services.incident_log.service import IncidentLog
from services.incident_log.tables import AlertRow
from services.incident_log.tokens import issue_token, token_digest
from services.runtime import OutboxMessage, ServiceName, Sessions, session_factory
from services.runtime.invalid_requests import answer_invalid_requests
from services.runtime.scopes import SERVICE_SCOPES
from tests.clock import FakeClock
from tests.factories import MODEL, T0, make_alert
from tests.incident_log.policies import make_policy

ADMIN = "admin-secret"
CATALOG = Path(__file__).resolve().parents[1] / "runbook_runner" / "scripts" / "catalog.yaml"
MINUTE = timedelta(minutes=1)


@dataclass
class Api:
    client: httpx.AsyncClient
    log: IncidentLog
    clock: FakeClock[datetime]
    tokens: dict[Role | str, str]
    sessions: Sessions

    def auth(self, who: Role | str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def decay_incident(self, subject: str) -> str:
        kind = AlertKind.METRIC_DECAY
        alert = make_alert(kind=kind, fingerprint=alert_fingerprint(MODEL, 3, kind, subject))
        await self.log.on_alerts([alert])
        listed = await self.client.get("/incidents", headers=self.auth(Role.VIEWER))
        return str(next(i["id"] for i in listed.json() if i["fingerprint"] == alert.fingerprint))

    async def post(self, path: str, body: Any, who: Role | str = Role.L2) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth(who))


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    sessions: Sessions = session_factory(engine)
    clock = FakeClock(T0)
    log = IncidentLog(sessions, make_policy(), clock=clock)
    app = FastAPI()
    answer_invalid_requests(app)  # as every service does: a 422 that survives NaN in the input
    admin = token_digest(ADMIN)
    catalog = load_catalog_view(CATALOG)
    install_authentication(app, sessions, admin_sha256=admin, clock=log.now)
    install_incident_api(app, log, sessions, catalog=catalog)
    install_review_api(app, log, sessions)
    tokens: dict[Role | str, str] = {Role.ADMIN: ADMIN}
    async with sessions() as session, session.begin():
        for role in (Role.VIEWER, Role.L1, Role.L2, Role.L3):
            tokens[role] = await issue_token(session, f"{role.value}-person", role, T0)
        tokens["ann"] = await issue_token(session, "ann", Role.L1, T0)
        tokens["service"] = await issue_token(
            session, "runbook-runner", None, T0, scopes=SERVICE_SCOPES[ServiceName.RUNBOOK_RUNNER]
        )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://incident-log"
    ) as client:
        yield Api(client, log, clock, tokens, sessions)


REPORT = {"model": MODEL, "model_version": 3, "severity": "critical", "summary": "odd answers"}


# -- incidents opened by hand ----------------------------------------------------------------


async def test_level_one_opens_an_incident_by_hand_as_a_manual_alert(api: Api) -> None:
    body = REPORT | {"details": "a customer says every answer is 'benign'"}
    opened = await api.post("/incidents", body, Role.L1)
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert (incident["kind"], incident["severity"], incident["model_version"]) == (
        "manual",
        "critical",
        3,
    )
    (signal,) = incident["signals"]
    assert signal["kind"] == "manual"
    assert signal["evidence"] == {"reported_by": "l1-person", "details": body["details"]}
    assert "odd answers" in incident["title"]
    async with api.sessions() as session:
        (alert,) = (await session.exec(select(AlertRow))).all()
        events = (await session.exec(select(OutboxMessage))).all()
    assert (alert.kind, alert.producer, alert.disposition, alert.incident_id) == (
        "manual",
        "person:l1-person",
        "opened",
        incident["id"],
    )
    opened_events = [json.loads(m.payload) for m in events if "incident.opened" in m.payload]
    assert [e["kind"] for e in opened_events] == ["manual"]
    timeline = await api.client.get(
        f"/incidents/{incident['id']}/timeline", headers=api.auth(Role.VIEWER)
    )
    assert timeline.json()[0]["details"]["producer"] == "person:l1-person"


async def test_an_idempotency_key_opens_one_incident_however_often_it_is_sent(api: Api) -> None:
    key = {"Idempotency-Key": "ticket-4711"}
    first = await api.client.post("/incidents", json=REPORT, headers=api.auth(Role.L1) | key)
    again = await api.client.post("/incidents", json=REPORT, headers=api.auth(Role.L1) | key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    changed = await api.client.post(
        "/incidents", json=REPORT | {"summary": "other"}, headers=api.auth(Role.L1) | key
    )
    assert changed.status_code == 409
    assert "different report" in changed.json()["detail"]
    someone_else = await api.client.post("/incidents", json=REPORT, headers=api.auth("ann") | key)
    assert someone_else.status_code == 201
    without_key = [await api.post("/incidents", REPORT, Role.L1) for _ in range(2)]
    assert [r.status_code for r in without_key] == [201, 201]
    listed = (await api.client.get("/incidents", headers=api.auth(Role.VIEWER))).json()
    assert len(listed) == 4


HOSTILE_REPORTS = [
    '{"model": "m", "model_version": NaN, "summary": "s"}',
    '{"model": "m", "model_version": Infinity, "summary": "s"}',
    '{"model": "m", "model_version": 1e309, "summary": "s"}',
    '{"model": "m", "model_version": 99999999999999999999, "summary": "s"}',
    '{"model": "m", "model_version": "3", "summary": "s"}',
    '{"model": "m", "model_version": 0, "summary": "s"}',
    '{"model": "m", "severity": "apocalyptic", "summary": "s"}',
    '{"model": "m", "summary": 42}',
    '{"model": "m", "summary": "two\\nlines"}',
    '{"model": "../etc", "summary": "s"}',
    '{"model": ["m"], "summary": "s"}',
    '{"model": "m", "summary": ""}',
    '{"model": "m"}',
    '{"model": "m", "summary": "s", "kind": "metric_decay"}',
    '{"model": "m", "summary": "s", "details": "' + "x" * 10_001 + '"}',
    '["not", "an", "object"]',
    "null",
]


@pytest.mark.parametrize("body", HOSTILE_REPORTS, ids=range(len(HOSTILE_REPORTS)))
async def test_a_hostile_report_is_refused_with_422_and_opens_nothing(api: Api, body: str) -> None:
    answer = await api.client.post(
        "/incidents",
        content=body,
        headers=api.auth(Role.L1) | {"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert (await api.client.get("/incidents", headers=api.auth(Role.VIEWER))).json() == []


async def test_opening_by_hand_needs_a_person_at_level_one(api: Api) -> None:
    assert (await api.client.post("/incidents", json=REPORT)).status_code == 401
    viewer = await api.post("/incidents", REPORT, Role.VIEWER)
    assert viewer.status_code == 403
    assert "needs l1 or higher" in viewer.json()["detail"]
    service = await api.post("/incidents", REPORT, "service")
    assert service.status_code == 403
    for key in ("", "-starts-with-dash", "x" * 200, "sp ace"):
        bad_key = await api.client.post(
            "/incidents", json=REPORT, headers=api.auth(Role.L1) | {"Idempotency-Key": key}
        )
        assert bad_key.status_code == 422, key
    assert (await api.client.get("/incidents", headers=api.auth(Role.VIEWER))).json() == []


# -- the runbook picker --------------------------------------------------------------------


async def test_the_choices_list_the_runbooks_of_the_incidents_kinds_with_typed_fields(
    api: Api,
) -> None:
    incident = (await api.post("/incidents", REPORT, Role.L1)).json()["id"]
    choices = await api.client.get(
        f"/incidents/{incident}/runbook-choices", headers=api.auth(Role.VIEWER)
    )
    assert choices.status_code == 200
    found = choices.json()
    assert found["kinds"] == ["manual"]
    applicable = {r["name"]: r for r in found["applicable"]}
    others = {r["name"] for r in found["others"]}
    assert {"typed", "needs-approval", "show-env"} <= set(applicable)
    assert {"passes", "level-two"} <= others
    assert not set(applicable) & others
    typed = {p["name"]: p for p in applicable["typed"]["parameters"]}
    assert set(typed) == {"mode", "threshold", "dry_run", "ticket"}
    assert applicable["typed"]["bound"] == ["version"]
    assert typed["mode"]["allowed"] == ["fast", "safe"]
    assert typed["ticket"]["pattern"] == "^OPS-[0-9]{1,6}$"
    assert (typed["threshold"]["minimum"], typed["threshold"]["maximum"]) == (0, 1)
    assert applicable["needs-approval"]["needs_approval"] is True
    unknown = await api.client.get("/incidents/inc-nope/runbook-choices", headers=api.auth(Role.L1))
    assert unknown.status_code == 404


GOOD_TYPED = {"mode": "fast", "threshold": 0.5, "dry_run": True, "ticket": "OPS-12"}
BAD_TYPED = [
    ({"mode": "fast", "threshold": 0.5, "ticket": "ops-12"}, "does not match"),
    ({"mode": "reckless", "threshold": 0.5, "ticket": "OPS-1"}, "is not one of"),
    ({"threshold": 1.5, "ticket": "OPS-1"}, "above the maximum"),
    ({"threshold": "0.5", "ticket": "OPS-1"}, "not of type float"),
    ({"threshold": True, "ticket": "OPS-1"}, "not of type float"),
    ({"ticket": "OPS-1"}, "'threshold' is required"),
    ({"threshold": 0.5, "ticket": "OPS-1", "version": 3}, "bound from"),
    ({"threshold": 0.5, "ticket": "OPS-1", "rm": "-rf"}, "takes no parameter 'rm'"),
]


@pytest.mark.parametrize(("parameters", "why"), BAD_TYPED, ids=[w for _, w in BAD_TYPED])
async def test_a_runbook_is_checked_against_the_catalogue_before_anything_is_published(
    api: Api, parameters: dict[str, Any], why: str
) -> None:
    incident = (await api.post("/incidents", REPORT, Role.L1)).json()["id"]
    path = f"/incidents/{incident}/runbooks"
    before = await api.client.get(f"/incidents/{incident}/timeline", headers=api.auth(Role.L2))
    refused = await api.post(path, {"runbook": "typed", "reason": "r", "parameters": parameters})
    assert refused.status_code == 422, refused.text
    assert why in refused.text
    after = await api.client.get(f"/incidents/{incident}/timeline", headers=api.auth(Role.L2))
    assert after.json() == before.json()
    unknown = await api.post(path, {"runbook": "format-disk", "reason": "r"})
    assert unknown.status_code == 422
    assert "not in the catalogue" in unknown.text
    viewer = await api.post(path, {"runbook": "format-disk", "reason": "r"}, Role.L1)
    assert viewer.status_code == 403
    good = await api.post(path, {"runbook": "typed", "reason": "r", "parameters": GOOD_TYPED})
    assert good.status_code == 202, good.text


# -- the post-incident review ----------------------------------------------------------------


def finished(incident_id: str, run_id: str, state: RunState) -> RunbookFinished:
    return RunbookFinished(
        producer="runbook-runner",
        run_id=run_id,
        incident_id=incident_id,
        model=MODEL,
        runbook="rollback-model",
        state=state,
        exit_code=0,
        verify_exit_code=1 if state is RunState.VERIFY_FAILED else 0,
    )


async def test_the_review_gives_times_per_tier_runs_decisions_and_saves_action_items(
    api: Api,
) -> None:
    incident = await api.decay_incident("review")  # L1, rollback-model requested at T0
    api.clock.now = T0 + 2 * MINUTE
    await api.post(f"/incidents/{incident}/acknowledge", {}, Role.L1)
    api.clock.now = T0 + 4 * MINUTE
    await api.log.on_runbook_result(
        finished(incident, f"{incident}-rb0-e0", RunState.VERIFY_FAILED)
    )  # the chain's last runbook failed: escalated to L2 at T0 + 4 min
    api.clock.now = T0 + 7 * MINUTE
    await api.post(f"/incidents/{incident}/acknowledge", {}, Role.L2)
    api.clock.now = T0 + 30 * MINUTE
    resolved = await api.post(
        f"/incidents/{incident}/resolve", {"reason": "rolled back by hand", "force": True}
    )
    assert resolved.json()["status"] == "resolved"

    review = await api.client.get(f"/incidents/{incident}/review", headers=api.auth(Role.VIEWER))
    assert review.status_code == 200, review.text
    found = review.json()
    assert found["tiers"]["L1"] == {"reached": 1, "mtta_seconds": 120.0, "mttr_seconds": None}
    assert found["tiers"]["L2"] == {"reached": 1, "mtta_seconds": 180.0, "mttr_seconds": 1800.0}
    (run,) = found["runbooks"]
    assert (run["runbook"], run["outcome"], run["verify_exit_code"]) == (
        "rollback-model",
        "verify_failed",
        1,
    )
    decisions = [(d["actor"], d["action"]) for d in found["decisions"]]
    assert ("l1-person", "acknowledged") in decisions
    assert ("system:incident-log", "escalated") in decisions
    assert decisions[-1] == ("l2-person", "resolved")
    markdown = found["markdown"]
    for heading in (
        "## Response times per tier",
        "## Runbooks run",
        "## Decisions",
        "## Who was paged",
        "## Timeline",
        "## Action items",
    ):
        assert heading in markdown
    assert "| L1 | 1 | 2.0 min | — |" in markdown
    assert "| L2 | 1 | 3.0 min | 30.0 min |" in markdown
    assert found["version"] == 0

    items = f"/incidents/{incident}/review/action-items"
    text = "- [ ] alert on recall sooner\n- [ ] | pipes | stay in the text"
    saved = await api.client.put(items, json={"text": text, "version": 0}, headers=api.auth("ann"))
    assert saved.status_code == 200, saved.text
    assert (saved.json()["version"], saved.json()["updated_by"]) == (1, "ann")
    retried = await api.client.put(
        items, json={"text": text, "version": 0}, headers=api.auth("ann")
    )
    assert retried.json()["version"] == 1
    stale = await api.client.put(
        items, json={"text": "mine instead", "version": 0}, headers=api.auth(Role.L2)
    )
    assert stale.status_code == 409
    assert "version 1" in stale.json()["detail"]
    as_markdown = await api.client.get(
        f"/incidents/{incident}/review", params={"format": "markdown"}, headers=api.auth(Role.L1)
    )
    assert as_markdown.headers["content-type"].startswith("text/markdown")
    assert as_markdown.text.endswith(text + "\n")


HOSTILE_ITEMS = [
    '{"text": "x", "version": NaN}',
    '{"text": "x", "version": 1e309}',
    '{"text": "x", "version": -1}',
    '{"text": "x", "version": 99999999999999999999}',
    '{"text": "x", "version": "0"}',
    '{"text": 7, "version": 0}',
    '{"text": "nul\\u0000byte", "version": 0}',
    '{"text": "' + "x" * 20_001 + '", "version": 0}',
    '{"text": "x"}',
]


@pytest.mark.parametrize("body", HOSTILE_ITEMS, ids=range(len(HOSTILE_ITEMS)))
async def test_hostile_action_items_are_refused_and_nothing_is_saved(api: Api, body: str) -> None:
    incident = (await api.post("/incidents", REPORT, Role.L1)).json()["id"]
    answer = await api.client.put(
        f"/incidents/{incident}/review/action-items",
        content=body,
        headers=api.auth(Role.L1) | {"Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    review = await api.client.get(f"/incidents/{incident}/review", headers=api.auth(Role.L1))
    assert (review.json()["version"], review.json()["action_items"]) == (0, "")


async def test_action_items_need_level_one_and_a_known_incident(api: Api) -> None:
    incident = (await api.post("/incidents", REPORT, Role.L1)).json()["id"]
    body = {"text": "x", "version": 0}
    path = f"/incidents/{incident}/review/action-items"
    assert (await api.client.put(path, json=body)).status_code == 401
    assert (await api.client.put(path, json=body, headers=api.auth(Role.VIEWER))).status_code == 403
    assert (await api.client.put(path, json=body, headers=api.auth("service"))).status_code == 403
    unknown = await api.client.put(
        "/incidents/inc-nope/review/action-items", json=body, headers=api.auth(Role.L1)
    )
    assert unknown.status_code == 404
    missing = await api.client.get("/incidents/inc-nope/review", headers=api.auth(Role.L1))
    assert missing.status_code == 404


# -- statistics ----------------------------------------------------------------------------


async def test_stats_give_mtta_and_mttr_per_tier_over_time_and_runbook_rates(api: Api) -> None:
    first = await api.decay_incident("first")  # opened T0 at L1
    api.clock.now = T0 + 3 * MINUTE
    await api.post(f"/incidents/{first}/acknowledge", {}, Role.L1)
    api.clock.now = T0 + 5 * MINUTE
    await api.log.on_runbook_result(finished(first, f"{first}-rb0-e0", RunState.SUCCEEDED))
    api.clock.now = T0 + 10 * MINUTE
    await api.post(f"/incidents/{first}/resolve", {"reason": "fixed", "force": True}, Role.L1)

    api.clock.now = T0 + timedelta(days=1)
    second = await api.decay_incident("second")  # opened the next day
    api.clock.now += MINUTE
    await api.post(f"/incidents/{second}/acknowledge", {}, Role.L1)
    api.clock.now += MINUTE
    await api.log.on_runbook_result(finished(second, f"{second}-rb0-e0", RunState.FAILED))
    api.clock.now += 4 * MINUTE  # at L2 since the failure
    await api.post(f"/incidents/{second}/acknowledge", {}, Role.L2)
    api.clock.now += 20 * MINUTE
    await api.post(f"/incidents/{second}/resolve", {"reason": "retrained", "force": True})

    stats = (await api.client.get("/stats", headers=api.auth(Role.VIEWER))).json()
    assert stats["by_tier"]["L1"]["mtta_seconds"] == (180 + 60) / 2
    assert stats["by_tier"]["L1"]["mttr_seconds"] == 600
    assert stats["by_tier"]["L2"]["mtta_seconds"] == 240
    assert stats["by_tier"]["L2"]["mttr_seconds"] == 26 * 60
    assert stats["by_model"][MODEL]["mttr_seconds"] == (600 + 26 * 60) / 2
    assert stats["by_kind"]["metric_decay"]["mtta_seconds"] == (180 + 60 + 240) / 3
    assert stats["share_resolved_at_l1"] == 0.5
    rates = stats["runbooks"]["rollback-model"]
    assert (rates["runs"], rates["succeeded"], rates["failed"]) == (2, 1, 1)
    assert (rates["success_rate"], rates["verification_rate"]) == (0.5, 1.0)

    buckets = await api.client.get(
        "/stats/over-time",
        params={"bucket": "day", "count": 3, "until": (T0 + timedelta(days=1)).isoformat()},
        headers=api.auth(Role.VIEWER),
    )
    assert buckets.status_code == 200, buckets.text
    days = buckets.json()
    assert [d["start"] for d in days] == [
        "2026-11-21T00:00:00Z",
        "2026-11-22T00:00:00Z",
        "2026-11-23T00:00:00Z",
    ]
    assert days[0]["stats"]["incidents"] == 0
    assert days[1]["stats"]["by_tier"]["L1"]["mtta_seconds"] == 180
    assert days[1]["stats"]["by_tier"]["L1"]["mttr_seconds"] == 600
    assert days[2]["stats"]["by_tier"]["L1"]["mtta_seconds"] == 60
    assert days[2]["stats"]["by_tier"]["L2"]["mtta_seconds"] == 240
    assert days[2]["stats"]["by_tier"]["L2"]["mttr_seconds"] == 26 * 60
    assert days[2]["stats"]["share_resolved_at_l1"] == 0.0


@pytest.mark.parametrize(
    "params",
    [
        {"bucket": "fortnight"},
        {"count": 0},
        {"count": 367},
        {"count": "NaN"},
        {"count": 1e309},
        {"until": "yesterday"},
        {"until": "2026-11-22T10:00:00"},  # no time zone
        {"until": "0001-01-01T00:00:00Z"},
    ],
    ids=lambda p: str(p),
)
async def test_hostile_stats_queries_are_refused_with_422(api: Api, params: dict[str, Any]) -> None:
    answer = await api.client.get("/stats/over-time", params=params, headers=api.auth(Role.VIEWER))
    assert answer.status_code == 422, answer.text
    assert (await api.client.get("/stats", headers=api.auth(Role.VIEWER))).status_code == 200


async def test_first_saves_at_the_same_moment_keep_one_and_refuse_the_others_with_409(
    api: Api,
) -> None:
    """No row to lock yet: on PostgreSQL the losers' inserts collide (it was a 500)."""
    incident = (await api.post("/incidents", REPORT, Role.L1)).json()["id"]
    path = f"/incidents/{incident}/review/action-items"
    answers = await asyncio.gather(
        *(
            api.client.put(
                path, json={"text": f"editor {n}", "version": 0}, headers=api.auth(Role.L1)
            )
            for n in range(4)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [a.text for a in answers]
    review = (
        await api.client.get(f"/incidents/{incident}/review", headers=api.auth(Role.L1))
    ).json()
    (kept,) = [a for a in answers if a.status_code == 200]
    assert (review["version"], review["action_items"]) == (1, kept.json()["action_items"])
