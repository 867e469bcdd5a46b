"""Tokens that can be listed, revoked and expire, and services' scoped tokens, attacked over
loopback HTTP on a real database (SQLite and PostgreSQL): the incident log served as it composes
itself (API, paging, tokens), its clock moved by the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import AlertKind, alert_fingerprint
from services.incident_log.api import install_incident_api
from services.incident_log.auth import install_authentication
from services.incident_log.paging.api import install_paging_api
from services.incident_log.service import IncidentLog
from services.incident_log.token_api import install_token_api
from services.incident_log.tokens import (
    MAX_TOKEN_DAYS,
    ProvisionedToken,
    list_tokens,
    provision_tokens,
    token_digest,
)
from services.runtime import (
    Sessions,
    session_factory,
)
from services.runtime.invalid_requests import answer_invalid_requests
from services.runtime.scopes import Scope
from tests.clock import FakeClock
from tests.factories import MODEL, T0, make_alert
from tests.http_tools import raw_exchange, request_head, serving
from tests.incident_log.policies import make_policy

ADMIN = "tokens-admin"


@dataclass
class Served:
    url: str
    http: httpx.AsyncClient
    log: IncidentLog
    clock: FakeClock[datetime]
    sessions: Sessions

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def create(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/tokens", json=body, headers=self.auth(ADMIN))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def incident(self) -> str:
        drift = AlertKind.DATA_DRIFT
        await self.log.on_alerts(
            [make_alert(kind=drift, fingerprint=alert_fingerprint(MODEL, 3, drift, "tokens"))]
        )
        listed = (await self.http.get("/incidents", headers=self.auth(ADMIN))).json()
        return str(listed[0]["id"])


@pytest.fixture
async def served(engine: AsyncEngine) -> AsyncIterator[Served]:
    sessions: Sessions = session_factory(engine)
    clock = FakeClock(T0)
    log = IncidentLog(sessions, make_policy(), clock=clock)
    admin = token_digest(ADMIN)
    app = FastAPI()
    answer_invalid_requests(app)  # as every service's app does
    install_authentication(app, sessions, admin_sha256=admin, clock=log.now)
    install_incident_api(app, log, sessions)
    install_paging_api(app, sessions, log)
    install_token_api(app, sessions, clock=clock)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Served(url, http, log, clock, sessions)


async def whoami(served: Served, token: str) -> httpx.Response:
    return await served.http.get("/whoami", headers=served.auth(token))


# -- list, revoke, expire ----------------------------------------------------------------------


async def test_tokens_are_listed_without_their_secret_and_revoked_by_id(served: Served) -> None:
    ana = await served.create(name="ana", role="l2", expires_in_days=30)
    later = served.clock.advance(timedelta(seconds=1))
    bo = await served.create(name="bo", role="l1")
    assert ana["expires_at"].startswith((T0 + timedelta(days=30)).isoformat()[:19])
    assert bo["expires_at"].startswith((later + timedelta(days=90)).isoformat()[:19])  # default
    assert (await whoami(served, ana["token"])).json() == {
        "name": "ana",
        "role": "l2",
        "scopes": None,
        "token_id": ana["id"],
        "expires_at": ana["expires_at"],
        "acts_for_others": False,
    }

    everyone = await served.http.get("/tokens", headers=served.auth(ADMIN))
    assert [(t["name"], t["state"]) for t in everyone.json()] == [
        ("bo", "active"),
        ("ana", "active"),
    ]
    listed = json.dumps(everyone.json())
    for secret in (ana["token"], bo["token"], token_digest(ana["token"])):
        assert secret not in listed
    assert everyone.json()[1]["created_by"] == "admin"
    assert everyone.json()[1]["last_used_at"] is not None  # ana's whoami above
    assert everyone.json()[0]["last_used_at"] is None

    own = await served.http.get("/tokens", headers=served.auth(ana["token"]))
    assert [t["id"] for t in own.json()] == [ana["id"]]
    others = await served.http.get("/tokens?name=bo", headers=served.auth(ana["token"]))
    assert others.status_code == 403
    # Not someone else's, to a non-admin: it does not exist for them.
    foreign = await served.http.delete(f"/tokens/{bo['id']}", headers=served.auth(ana["token"]))
    assert foreign.status_code == 404
    assert (await whoami(served, bo["token"])).status_code == 200

    revoked = await served.http.delete(f"/tokens/{bo['id']}", headers=served.auth(ADMIN))
    assert revoked.status_code == 200, revoked.text
    assert (revoked.json()["state"], revoked.json()["revoked_by"]) == ("revoked", "admin")
    refused = await whoami(served, bo["token"])
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    again = await served.http.delete(f"/tokens/{bo['id']}", headers=served.auth(ADMIN))
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]  # the first revocation

    active = await served.http.get("/tokens", headers=served.auth(ADMIN))
    assert [t["name"] for t in active.json()] == ["ana"]
    every = await served.http.get("/tokens?include_inactive=true", headers=served.auth(ADMIN))
    assert [t["name"] for t in every.json()] == ["bo", "ana"]

    mine = await served.http.delete(f"/tokens/{ana['id']}", headers=served.auth(ana["token"]))
    assert (mine.json()["state"], mine.json()["revoked_by"]) == ("revoked", "ana")
    assert (await whoami(served, ana["token"])).status_code == 401
    assert (
        await served.http.get("/incidents", headers=served.auth(ana["token"]))
    ).status_code == 401


async def test_an_expired_token_is_refused_everywhere_and_listed_as_expired(
    served: Served,
) -> None:
    lee = await served.create(name="lee", role="l1", expires_in_days=0.5)
    assert (
        await served.http.get("/incidents", headers=served.auth(lee["token"]))
    ).status_code == 200
    served.clock.advance(timedelta(hours=11, minutes=59))
    assert (await whoami(served, lee["token"])).status_code == 200
    served.clock.advance(timedelta(minutes=1))
    for path in ("/whoami", "/incidents", "/tokens", "/schedules", "/silences"):
        response = await served.http.get(path, headers=served.auth(lee["token"]))
        assert response.status_code == 401, (path, response.text)
        assert "expired" in response.json()["detail"]
    listed = await served.http.get("/tokens?include_inactive=true", headers=served.auth(ADMIN))
    assert [(t["name"], t["state"]) for t in listed.json()] == [("lee", "expired")]


async def test_last_use_is_noted_to_the_minute(served: Served) -> None:
    kim = await served.create(name="kim", role="viewer")

    async def last_used() -> str | None:
        listed = (await served.http.get("/tokens", headers=served.auth(ADMIN))).json()
        return cast(str | None, listed[0]["last_used_at"])

    await whoami(served, kim["token"])
    first = await last_used()
    assert first is not None
    served.clock.advance(timedelta(seconds=30))
    await whoami(served, kim["token"])
    assert await last_used() == first  # no write for every request
    served.clock.advance(timedelta(seconds=31))
    await whoami(served, kim["token"])
    assert await last_used() != first


# -- scoped tokens -----------------------------------------------------------------------------


async def test_a_scoped_token_makes_only_the_calls_its_scopes_name(served: Served) -> None:
    incident = await served.incident()
    runner = await served.create(
        name="runbook-runner", scopes=["incidents:read", "incidents:report", "retrain:request"]
    )
    headers = served.auth(runner["token"])
    me = (await whoami(served, runner["token"])).json()
    assert (me["role"], me["scopes"]) == (
        None,
        ["incidents:read", "incidents:report", "retrain:request"],
    )

    inside: list[tuple[str, str, Any]] = [
        ("GET", "/incidents", None),
        ("GET", f"/incidents/{incident}", None),
        ("GET", f"/incidents/{incident}/timeline", None),
        ("GET", f"/incidents/{incident}/alerts", None),
        ("POST", f"/incidents/{incident}/reports", {"title": "diagnosis", "report": {"ks": 0.4}}),
        ("POST", f"/incidents/{incident}/retrain", {"reason": "drifted"}),
    ]
    for method, path, body in inside:
        response = await served.http.request(method, path, json=body, headers=headers)
        assert response.status_code == 200, (path, response.text)
    timeline = (await served.http.get(f"/incidents/{incident}/timeline", headers=headers)).json()
    assert {"runbook-runner"} <= {entry["actor"] for entry in timeline}
    detail = (await served.http.get(f"/incidents/{incident}", headers=headers)).json()
    assert detail["actions"] == []  # it may act on nothing by a role

    outside: list[tuple[str, str, Any]] = [
        ("GET", "/alerts", None),
        ("GET", "/silences", None),
        ("GET", "/stats", None),
        ("GET", "/tokens", None),
        ("GET", "/people", None),
        ("GET", "/schedules", None),
        ("GET", "/oncall", None),
        ("GET", f"/incidents/{incident}/notifications", None),
        ("POST", f"/incidents/{incident}/comment", {"text": "hi"}),
        ("POST", f"/incidents/{incident}/acknowledge", None),
        ("POST", f"/incidents/{incident}/escalate", {"reason": "x"}),
        ("POST", f"/incidents/{incident}/runbooks", {"runbook": "drift-diagnosis", "reason": "x"}),
        (
            "POST",
            "/silences",
            {"matcher": {"models": [MODEL]}, "duration_minutes": 5, "reason": "x"},
        ),
        ("POST", "/tokens", {"name": "evil", "role": "admin"}),
        ("DELETE", f"/tokens/{runner['id']}", None),
    ]
    for method, path, body in outside:
        response = await served.http.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (path, response.status_code, response.text)
        assert "scopes" in response.json()["detail"]
    assert (await whoami(served, runner["token"])).status_code == 200  # still in force

    reader = await served.create(name="reader", scopes=["incidents:read"])
    refused = await served.http.post(
        f"/incidents/{incident}/reports",
        json={"title": "t", "report": {}},
        headers=served.auth(reader["token"]),
    )
    assert refused.status_code == 403
    assert "needs scope incidents:report" in refused.json()["detail"]


# -- hostile input -----------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, str]] = [
    ("NaN expiry", '{"name": "x", "role": "l1", "expires_in_days": NaN}'),
    ("Infinity expiry", '{"name": "x", "role": "l1", "expires_in_days": Infinity}'),
    ("1e309 expiry", '{"name": "x", "role": "l1", "expires_in_days": 1e309}'),
    ("'nan' expiry", '{"name": "x", "role": "l1", "expires_in_days": "nan"}'),
    ("huge expiry", '{"name": "x", "role": "l1", "expires_in_days": 1e12}'),
    ("past the bound", f'{{"name": "x", "role": "l1", "expires_in_days": {MAX_TOKEN_DAYS + 1}}}'),
    ("zero expiry", '{"name": "x", "role": "l1", "expires_in_days": 0}'),
    ("negative expiry", '{"name": "x", "role": "l1", "expires_in_days": -1}'),
    ("expiry of the wrong type", '{"name": "x", "role": "l1", "expires_in_days": [1]}'),
    ("no expiry allowed", '{"name": "x", "role": "l1", "expires_in_days": null}'),
    ("role and scopes", '{"name": "x", "role": "l1", "scopes": ["datasets:read"]}'),
    ("neither role nor scopes", '{"name": "x"}'),
    ("unknown role", '{"name": "x", "role": "root"}'),
    ("unknown scope", '{"name": "x", "scopes": ["datasets:write"]}'),
    ("no scope", '{"name": "x", "scopes": []}'),
    ("unknown field", '{"name": "x", "role": "l1", "expires_at": "2099-01-01T00:00:00Z"}'),
    ("name with spaces", '{"name": "a b", "role": "l1"}'),
    ("long name", json.dumps({"name": "n" * 101, "role": "l1"})),
    ("not an object", "[1, 2]"),
    ("not JSON", "{"),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[case for case, _ in BAD_BODIES])
async def test_a_malformed_token_request_is_refused_and_creates_nothing(
    served: Served, case: str, body: str
) -> None:
    response = await served.http.post(
        "/tokens",
        content=body.encode(),
        headers=served.auth(ADMIN) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422, (case, response.text)
    listed = await served.http.get("/tokens?include_inactive=true", headers=served.auth(ADMIN))
    assert listed.json() == []
    assert (await served.http.get("/whoami", headers=served.auth(ADMIN))).status_code == 200


async def test_the_wrong_role_unknown_ids_and_foreign_tokens_are_refused_plainly(
    served: Served,
) -> None:
    l3 = await served.create(name="lia", role="l3")
    for body in ({"name": "x", "role": "l1"}, {"name": "x", "scopes": ["datasets:read"]}):
        refused = await served.http.post("/tokens", json=body, headers=served.auth(l3["token"]))
        assert refused.status_code == 403
        assert "needs admin" in refused.json()["detail"]
    for token_id in ("0" * 16, "ffff", "x" * 100, "%C3%A9" * 5, "..%2F..%2Fwhoami"):
        gone = await served.http.delete(f"/tokens/{token_id}", headers=served.auth(ADMIN))
        assert gone.status_code in (404, 422), (token_id, gone.text)
    assert (
        await served.http.delete(f"/tokens/{'x' * 101}", headers=served.auth(ADMIN))
    ).status_code == 422
    assert (
        await served.http.get("/tokens", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    assert (await served.http.get("/tokens")).status_code == 401
    # A non-ASCII bearer token travels as raw header bytes: an unknown token, not a 500.
    status, _ = await raw_exchange(
        served.url,
        request_head("GET", "/tokens", {"Authorization": "Bearer t\xf6ken".encode("latin-1")}),
    )
    assert status == 401
    named = await served.create(name="zoë", role="viewer")
    assert (await whoami(served, named["token"])).json()["name"] == "zoë"
    assert (await served.http.get("/whoami", headers=served.auth(ADMIN))).status_code == 200


# -- provisioning and old databases ------------------------------------------------------------


async def test_provisioned_tokens_rotate_and_a_hand_revocation_sticks(served: Served) -> None:
    def given(token: str) -> ProvisionedToken:
        return ProvisionedToken(
            name="drift-detector",
            token_sha256=token_digest(token),
            scopes=frozenset({Scope.DATASETS_READ}),
        )

    await provision_tokens(served.sessions, [given("first")], T0)
    await provision_tokens(served.sessions, [given("first")], T0)  # a restart: nothing new
    assert (await whoami(served, "first")).json()["scopes"] == ["datasets:read"]
    await asyncio.gather(  # two replicas starting at once
        provision_tokens(served.sessions, [given("second")], T0),
        provision_tokens(served.sessions, [given("second")], T0),
    )
    assert (await whoami(served, "first")).status_code == 401
    assert (await whoami(served, "second")).status_code == 200
    async with served.sessions() as session:
        records = await list_tokens(session, name="drift-detector")
    assert [(r.created_by, r.revoked_by) for r in records] == [
        ("settings", None),
        ("settings", "settings"),
    ]
    revoked = await served.http.delete(f"/tokens/{records[0].id}", headers=served.auth(ADMIN))
    assert revoked.status_code == 200
    await provision_tokens(served.sessions, [given("second")], T0)
    assert (await whoami(served, "second")).status_code == 401  # stays revoked
