"""Access, attacked over loopback HTTP on a real database (SQLite and PostgreSQL): a lower role
cannot take over a higher tier's claim, a silence of every alert needs admin and ending one
records who did, and the console's sign-in resists login CSRF and marks its cookies Secure on
HTTPS."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import AlertKind, alert_fingerprint
from services.incident_log.api import install_incident_api
from services.incident_log.app import create_app
from services.incident_log.auth import install_authentication
from services.incident_log.changes import ChangeFeed
from services.incident_log.console import (
    LOGIN_COOKIE,
    SignInRequired,
    build_console,
    sign_in_redirect,
)
from services.incident_log.permissions import Role
from services.incident_log.service import IncidentLog
from services.incident_log.settings import Settings
from services.incident_log.tokens import issue_token, token_digest
from services.runtime import (
    Sessions,
    session_factory,
)
from tests.factories import MODEL, T0, make_alert
from tests.http_tools import serving
from tests.incident_log.policies import make_policy
from tests.processes import write_routing_policy

ADMIN = "access-admin"


@dataclass
class Served:
    url: str
    http: httpx.AsyncClient
    log: IncidentLog
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def console_app(log: IncidentLog, sessions: Sessions, *, public_url: str | None = None) -> FastAPI:
    """The API and the console as the incident log composes them (console calls in-process)."""
    app = FastAPI()
    install_authentication(app, sessions, admin_sha256=token_digest(ADMIN), clock=log.now)
    install_incident_api(app, log, sessions)

    def own_api() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://incident-log"
        )

    app.include_router(build_console(own_api, ChangeFeed(), public_url=public_url))
    app.add_exception_handler(SignInRequired, sign_in_redirect)
    return app


@pytest.fixture
async def served(engine: AsyncEngine) -> AsyncIterator[Served]:
    sessions: Sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy(), clock=lambda: T0)
    tokens = {"admin": ADMIN}
    async with sessions() as session, session.begin():
        for name, role in (
            ("l1-person", Role.L1),
            ("l2-person", Role.L2),
            ("l3-person", Role.L3),
            ("l3-other", Role.L3),
        ):
            tokens[name] = await issue_token(session, name, role, T0)
    async with (
        serving(console_app(log, sessions)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        yield Served(url, http, log, tokens)


async def l3_incident_held_by_l3(served: Served) -> str:
    """A drift incident (no runbook: L2 at once), escalated to L3 and claimed there."""
    drift = AlertKind.DATA_DRIFT
    await served.log.on_alerts(
        [make_alert(kind=drift, fingerprint=alert_fingerprint(MODEL, 3, drift, "access"))]
    )
    listed = (await served.http.get("/incidents", headers=served.auth("admin"))).json()
    incident = str(listed[0]["id"])
    escalated = await served.http.post(
        f"/incidents/{incident}/escalate",
        json={"reason": "owners needed"},
        headers=served.auth("l2-person"),
    )
    assert escalated.json()["tier"] == "L3", escalated.text
    claimed = await served.http.post(
        f"/incidents/{incident}/claim", headers=served.auth("l3-person")
    )
    assert claimed.json()["held_by"] == "l3-person", claimed.text
    return incident


TAKE_OVERS = [
    ("l1-person", "comment", {"text": "mine now"}),
    ("l2-person", "comment", {"text": "mine now"}),
    ("l2-person", "runbooks", {"runbook": "drift-diagnosis", "reason": "look"}),
    ("l2-person", "retrain", {"reason": "new data"}),
]


@pytest.mark.parametrize(
    ("who", "action", "body"), TAKE_OVERS, ids=[f"{w}-{a}" for w, a, _ in TAKE_OVERS]
)
async def test_a_lower_role_cannot_take_over_a_level_three_claim_whatever_the_action(
    served: Served, who: str, action: str, body: dict[str, Any]
) -> None:
    incident = await l3_incident_held_by_l3(served)
    path = f"/incidents/{incident}"
    before = (await served.http.get(f"{path}/timeline", headers=served.auth("admin"))).json()
    refused = await served.http.post(
        f"{path}/{action}", json=body | {"take_over": True}, headers=served.auth(who)
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == (
        f"role {who[:2]} may not take over a claim on an L3 incident (needs l3 or higher)"
    )
    after = (await served.http.get(f"{path}/timeline", headers=served.auth("admin"))).json()
    assert after == before
    detail = (await served.http.get(path, headers=served.auth("admin"))).json()
    assert detail["held_by"] == "l3-person"


async def test_the_incident_tier_or_higher_may_take_over_and_holders_act_unhindered(
    served: Served,
) -> None:
    incident = await l3_incident_held_by_l3(served)
    path = f"/incidents/{incident}"
    own = await served.http.post(
        f"{path}/comment",
        json={"text": "still mine", "take_over": True},
        headers=served.auth("l3-person"),
    )
    assert own.status_code == 200, own.text
    without = await served.http.post(
        f"{path}/comment", json={"text": "hello"}, headers=served.auth("l1-person")
    )
    assert without.status_code == 409  # held: a comment from others needs a take-over
    taken = await served.http.post(
        f"{path}/comment",
        json={"text": "I take it", "take_over": True},
        headers=served.auth("l3-other"),
    )
    assert taken.status_code == 200, taken.text
    assert taken.json()["held_by"] == "l3-other"
    by_admin = await served.http.post(
        f"{path}/acknowledge", json={"take_over": True}, headers=served.auth("admin")
    )
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["held_by"] == "admin"
    timeline = (await served.http.get(f"{path}/timeline", headers=served.auth("admin"))).json()
    took = [(e["actor"], e["details"]["from"]) for e in timeline if e["action"] == "took_over"]
    assert took == [("l3-other", "l3-person"), ("admin", "l3-other")]


EVERY_ALERT = [
    {},
    {"kinds": [], "severities": [], "models": []},
    {"models": ["*"]},
    {"models": ["churn", "?*"]},
    {"models": ["[!x]*"]},
    {"kinds": [kind.value for kind in AlertKind]},
    {"severities": ["info", "warning", "critical"], "models": ["**"]},
]


async def test_a_silence_of_every_alert_needs_admin(served: Served) -> None:
    for matcher in EVERY_ALERT:
        body = {"matcher": matcher, "duration_minutes": 60, "reason": "quiet please"}
        refused = await served.http.post("/silences", json=body, headers=served.auth("l3-person"))
        assert refused.status_code == 403, (matcher, refused.text)
        assert "needs admin" in refused.json()["detail"]
    assert (await served.http.get("/silences", headers=served.auth("admin"))).json() == []
    narrow = {"matcher": {"models": ["churn-*"]}, "duration_minutes": 60, "reason": "migration"}
    assert (
        await served.http.post("/silences", json=narrow, headers=served.auth("l2-person"))
    ).status_code == 201
    everything = {"matcher": {}, "duration_minutes": 60, "reason": "whole-system maintenance"}
    assert (
        await served.http.post("/silences", json=everything, headers=served.auth("admin"))
    ).status_code == 201
    assert len((await served.http.get("/silences", headers=served.auth("admin"))).json()) == 2


async def test_ending_a_silence_records_who_ended_it(served: Served) -> None:
    body = {"matcher": {"kinds": ["data_drift"]}, "duration_minutes": 60, "reason": "migration"}
    created = await served.http.post("/silences", json=body, headers=served.auth("l2-person"))
    assert created.json()["expired_by"] is None
    silence = created.json()["id"]
    ended = await served.http.delete(f"/silences/{silence}", headers=served.auth("l3-person"))
    assert ended.status_code == 200, ended.text
    assert ended.json()["expired_by"] == "l3-person"
    assert ended.json()["active"] is False
    again = await served.http.delete(f"/silences/{silence}", headers=served.auth("admin"))
    assert again.json()["expired_by"] == "l3-person"  # already over: the first ender stays
    listed = (await served.http.get("/silences?expired=true", headers=served.auth("admin"))).json()
    assert [(s["id"], s["expired_by"]) for s in listed] == [(silence, "l3-person")]
    unknown = await served.http.delete("/silences/sil-nope", headers=served.auth("admin"))
    assert unknown.status_code == 404


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


async def _login_form(browser: httpx.AsyncClient) -> str:
    page = await browser.get("/console/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def test_sign_in_refuses_a_form_without_its_token_or_with_another_browsers(
    served: Served,
) -> None:
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=10) as victim,
        httpx.AsyncClient(base_url=served.url, timeout=10) as attacker,
    ):
        no_form = await victim.post("/console/login", data={"token": ADMIN})
        assert no_form.status_code == 403, no_form.text
        assert "vigil_token" not in _set_cookies(no_form)
        attackers_csrf = await _login_form(attacker)
        await _login_form(victim)
        forged = await victim.post(
            "/console/login", data={"token": served.tokens["l1-person"], "csrf": attackers_csrf}
        )
        assert forged.status_code == 403, forged.text
        assert "vigil_token" not in _set_cookies(forged)
        assert "vigil_token" not in victim.cookies
        foreign = await victim.post("/console/login", data={"token": ADMIN, "csrf": "tökén"})
        assert foreign.status_code == 403
        # a cross-site form carries no SameSite=Strict cookie at all
        bare = httpx.AsyncClient(base_url=served.url, timeout=10)
        async with bare:
            cross_site = await bare.post(
                "/console/login", data={"token": ADMIN, "csrf": attackers_csrf}
            )
        assert cross_site.status_code == 403
        csrf = await _login_form(victim)
        for origin in (
            "https://evil.example",
            "null",
            served.url.replace("127.0.0.1", "localhost"),
        ):
            posted = await victim.post(
                "/console/login",
                data={"token": ADMIN, "csrf": csrf},
                headers={"Origin": origin},
            )
            assert posted.status_code == 403, (origin, posted.text)
            assert "vigil_token" not in victim.cookies

        signed_in = await victim.post(
            "/console/login", data={"token": ADMIN, "csrf": csrf}, headers={"Origin": served.url}
        )
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == "/console/"
        cookie = _set_cookies(signed_in)["vigil_token"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie  # plain HTTP on loopback, public URL not HTTPS
        assert (await victim.get("/console/")).status_code == 200


async def test_cookies_are_secure_over_https(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy(), clock=lambda: T0)
    transport = httpx.ASGITransport(app=console_app(log, sessions))
    async with httpx.AsyncClient(transport=transport, base_url="https://vigil.example") as browser:
        page = await browser.get("/console/login")
        assert "secure" in _set_cookies(page)[LOGIN_COOKIE].lower()
        csrf = await _login_form(browser)
        signed_in = await browser.post("/console/login", data={"token": ADMIN, "csrf": csrf})
        assert signed_in.status_code == 303, signed_in.text
        cookie = _set_cookies(signed_in)["vigil_token"].lower()
        assert "secure" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie


async def test_behind_a_tls_proxy_the_public_url_makes_cookies_secure_and_may_post(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy(), clock=lambda: T0)
    app = console_app(log, sessions, public_url="https://vigil.example/")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.7:8700") as proxy:
        page = await proxy.get("/console/login")
        login_cookie = _set_cookies(page)[LOGIN_COOKIE]
        assert "secure" in login_cookie.lower()
        nonce = login_cookie.split(";", 1)[0].split("=", 1)[1]
        csrf = re.findall(r'name="csrf" value="([0-9a-f]+)"', page.text)[0]
        # The browser holds the Secure cookie (it speaks HTTPS to the proxy) and sends it back.
        proxy.cookies.clear()
        signed_in = await proxy.post(
            "/console/login",
            data={"token": ADMIN, "csrf": csrf},
            headers={"Origin": "https://vigil.example", "Cookie": f"{LOGIN_COOKIE}={nonce}"},
        )
        assert signed_in.status_code == 303, signed_in.text
        assert "secure" in _set_cookies(signed_in)["vigil_token"].lower()


async def test_an_https_public_url_makes_cookies_secure_behind_a_tls_proxy(
    tmp_path: Path,
) -> None:
    settings = Settings(
        public_url="https://vigil.example",
        policy_path=write_routing_policy(tmp_path),
        state_dir=tmp_path / "state",
    )
    app = create_app(settings)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as browser:
        page = await browser.get("/console/login")
        assert page.status_code == 200
        assert "secure" in _set_cookies(page)[LOGIN_COOKIE].lower()
