"""The on-call console: server-rendered pages over the incident log's own HTTP API.

Every read and every action goes through the same API the CLI uses (in-process, with the signed-in
person's token), so the console can do nothing the API would not allow, and it shows the API's
own explanation when it refuses. Pages are complete without JavaScript; with it, regions marked
``data-live`` reload when the server-sent change feed says something changed.

Sign-in stores the API token in an HttpOnly, SameSite=Strict cookie, ``Secure`` when the request
came over HTTPS or the public URL is HTTPS; forms carry a token derived from it against cross-site
requests. The sign-in form itself is guarded by a signed double-submit token (login CSRF: a
foreign page must not sign a browser in as someone else): ``GET /console/login`` sets a random
nonce in a cookie scoped to the sign-in path and puts its HMAC, under a key this process drew at
start, in the form; ``POST`` refuses with 403 unless the two agree. A restart changes the key, so a
form opened before it must be reloaded. A browser's ``Origin`` header, when sent, must also be this
server's own or the public URL's (defence in depth, as OWASP recommends). Only a person's token
signs in (a service's scoped token is refused). The tokens page lists an admin every token and
anyone else their own, with a revoke button each; a token an admin creates there is shown once,
in the answer to the form, never in a URL.

The workflows: the form that opens an incident by hand carries a fresh ``Idempotency-Key``, so
sending it twice opens one incident; the runbook picker builds each runbook's fields from the
API's runbook choices (typed as the catalogue says, patterns as HTML ``pattern``) and types the
submitted text the same way before the API checks it again; the review page shows
``GET /incidents/{id}/review`` and saves the action items with the version they were edited
from.
"""

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from contracts.alerts import Severity
from contracts.incidents import IncidentStatus, Tier
from services.incident_log.auth import Principal
from services.incident_log.changes import ChangeFeed
from services.incident_log.chart_views import (
    STATS_GROUPS,
    comparison_chart,
    gate_chart,
    key_metric_sparkline,
    model_charts,
    report_charts,
    response_time_charts,
    runbook_rate_charts,
    share_resolved_at_l1_chart,
    signal_charts,
)
from services.incident_log.permissions import Permission, Role
from services.incident_log.runbook_choices import ChoiceParameter, parse_form_value
from services.incident_log.tokens import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS
from services.runtime.scopes import Scope

__all__ = ["PREFIX", "SignInRequired", "build_console", "sign_in_redirect", "static_files"]

PREFIX = "/console"
COOKIE = "vigil_token"
LOGIN_COOKIE = "vigil_login"
_LOGIN_FORM_SECONDS = 3600
HERE = Path(__file__).parent

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["minutes"] = lambda seconds: (
    "—" if seconds is None else f"{seconds / 60:.1f} min"
)
templates.env.filters["when"] = lambda text: _when(text)
templates.env.filters["clock"] = lambda text: _clock(text)


def static_files() -> StaticFiles:
    """The console's stylesheet and script."""
    return StaticFiles(directory=HERE / "static")


def _csrf(token: str) -> str:
    return hmac.new(token.encode(), b"vigil-console-form", hashlib.sha256).hexdigest()[:32]


class SignInRequired(Exception):  # control flow: send the browser to sign in
    """The request has no valid session; :func:`sign_in_redirect` answers it."""


def build_console(
    api: Callable[[], httpx.AsyncClient],
    feed: ChangeFeed,
    *,
    registry: Callable[[], httpx.AsyncClient] | None = None,
    monitor: Callable[[], httpx.AsyncClient] | None = None,
    public_url: str | None = None,
) -> APIRouter:
    """The console's routes. ``api`` gives a client of the incident log's API (in-process);
    ``registry`` one of the registry's, for the models page and model approvals; ``monitor``
    one of the monitor's, whose recent windows the charts draw;
    ``public_url`` is where people reach the console: an https one marks cookies ``Secure`` even
    on plain HTTP (TLS ends at a proxy), and its origin may post the sign-in form."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    login_key = secrets.token_bytes(32)
    public = urlsplit(public_url) if public_url else None

    def secure(request: Request) -> bool:
        return request.url.scheme == "https" or (public is not None and public.scheme == "https")

    def same_origin(request: Request) -> bool:
        """A browser's ``Origin`` (absent from other clients) must be this server's own."""
        origin = request.headers.get("origin")
        allowed = {f"{request.url.scheme}://{request.url.netloc}"}
        if public is not None:
            allowed.add(f"{public.scheme}://{public.netloc}")
        return origin is None or origin in allowed

    def login_csrf(nonce: str) -> str:
        return hmac.new(login_key, nonce.encode(), hashlib.sha256).hexdigest()

    async def signed_in(request: Request) -> tuple[str, Principal]:
        token = request.cookies.get(COOKIE)
        if not token or not token.isascii():
            raise SignInRequired
        async with api() as client:
            response = await client.get("/whoami", headers=_bearer(token))
        if response.status_code != 200:
            raise SignInRequired
        me = response.json()
        if me.get("role") is None:  # a service's token: not a person's session
            raise SignInRequired
        return token, Principal(me["name"], Role(me["role"]))

    Session = Annotated[tuple[str, Principal], Depends(signed_in)]

    def page(
        request: Request, name: str, session: tuple[str, Principal] | None, **context: Any
    ) -> HTMLResponse:
        token, principal = session or ("", None)
        flash = request.query_params.get("error") or request.query_params.get("done")
        return templates.TemplateResponse(
            request,
            name,
            {
                "prefix": PREFIX,
                "principal": principal,
                "csrf": _csrf(token) if token else "",
                "flash": (
                    {"kind": "error" if "error" in request.query_params else "ok", "text": flash}
                    if flash
                    else None
                ),
                **context,
            },
        )

    def check_form(token: str, csrf: str) -> None:
        if not hmac.compare_digest(csrf.encode(), _csrf(token).encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "form expired: reload the page")

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> HTMLResponse:
        nonce = secrets.token_urlsafe(24)
        response = page(request, "login.html", None, login_csrf=login_csrf(nonce))
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            max_age=_LOGIN_FORM_SECONDS,
            path=f"{PREFIX}/login",
        )
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        # Read by hand: a declared Form() field would let a multipart body spool up to a
        # thousand files to disk before this runs. The form holds one short token, no file.
        async with request.form(max_files=0, max_fields=4, max_part_size=4096) as form:
            token = form.get("token")
            csrf = form.get("csrf")
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not (
            same_origin(request)
            and isinstance(csrf, str)
            and csrf.isascii()
            and nonce
            and hmac.compare_digest(csrf.encode(), login_csrf(nonce).encode())
        ):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "sign-in form expired or foreign: reload the page"
            )
        if not isinstance(token, str) or not token:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "token"], "msg": "Field required", "type": "missing"}],
            )
        response = None
        if token.isascii():
            async with api() as client:
                response = await client.get("/whoami", headers=_bearer(token))
        if response is None or response.status_code != 200:
            return _redirect(f"{PREFIX}/login", error="unknown, revoked or expired token")
        if response.json().get("role") is None:
            return _redirect(
                f"{PREFIX}/login", error="a service's token cannot sign in: use a person's"
            )
        redirect = _redirect(f"{PREFIX}/")
        redirect.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            max_age=12 * 3600,
            path=PREFIX,
        )
        redirect.delete_cookie(
            LOGIN_COOKIE, path=f"{PREFIX}/login", secure=secure(request), httponly=True
        )
        return redirect

    @router.post("/logout")
    async def logout(request: Request, session: Session, csrf: Annotated[str, Form()]) -> Response:
        check_form(session[0], csrf)
        redirect = _redirect(f"{PREFIX}/login")
        redirect.delete_cookie(
            COOKIE, path=PREFIX, secure=secure(request), httponly=True, samesite="strict"
        )
        return redirect

    async def incidents_context(token: str, request: Request) -> dict[str, Any]:
        filters = {
            "tier": request.query_params.get("tier") or None,
            "status": request.query_params.get("status") or None,
            "model": request.query_params.get("model") or None,
            "unresolved": request.query_params.get("unresolved") == "true",
        }
        params = {k: v for k, v in filters.items() if v} | {"limit": 200}
        async with api() as client:
            response = await client.get("/incidents", params=params, headers=_bearer(token))
            everything = await client.get(
                "/incidents", params={"limit": 1000}, headers=_bearer(token)
            )
        rows = [_Row(item) for item in _ok(response)]
        counts = Counter((row["tier"], row["status"]) for row in _ok(everything))
        return {
            "incidents": rows,
            "counts": counts,
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "tiers": [tier.value for tier in Tier],
            "statuses": [status.value for status in IncidentStatus],
        }

    @router.get("/", response_class=HTMLResponse)
    async def incidents(request: Request, session: Session) -> HTMLResponse:
        return page(
            request, "incidents.html", session, **await incidents_context(session[0], request)
        )

    @router.get("/fragments/incidents", response_class=HTMLResponse)
    async def incidents_fragment(request: Request, session: Session) -> HTMLResponse:
        return page(
            request, "_incidents.html", session, **await incidents_context(session[0], request)
        )

    async def incident_context(
        token: str, principal: Principal, incident_id: str
    ) -> dict[str, Any]:
        async with api() as client:
            detail = await client.get(f"/incidents/{incident_id}", headers=_bearer(token))
            if detail.status_code == 404:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
            timeline = await client.get(
                f"/incidents/{incident_id}/timeline", headers=_bearer(token)
            )
            pages = await client.get(
                f"/incidents/{incident_id}/notifications", headers=_bearer(token)
            )
            held = await client.get(f"/incidents/{incident_id}/approvals", headers=_bearer(token))
        promotions = await _promotions(registry, token, incident_id)
        found = _ok(detail)
        entries = _ok(timeline)
        series = await _series(monitor, found["model"])
        choices = (
            await runbook_choices(token, incident_id)
            if principal.allows(Permission.RUN_RUNBOOK)
            else None
        )
        return {
            "choices": choices,
            "incident": _Row(found),
            "signal_charts": {
                s["fingerprint"]: signal_charts(
                    s, found["model"], found.get("model_version"), series
                )
                for s in found.get("signals", [])
            },
            "canary_charts": _canary_charts(entries, promotions, series),
            "report_charts": [
                chart
                for entry in entries
                if entry.get("action") == "report_attached"
                and isinstance((entry.get("details") or {}).get("report"), dict)
                for chart in report_charts(entry["details"]["report"], entry["details"]["title"])
            ],
            "promotion_charts": {
                p["request_id"]: gate_chart(
                    p.get("evidence") or {},
                    f"request {p['state']}",
                    f"gate of {p['model']} v{p['version']}",
                )
                for p in promotions
            },
            "timeline": [_Row(entry) for entry in entries],
            "pages": [_Row(entry) for entry in _ok(pages)],
            "held_runs": [_Row(run) for run in _ok(held)],
            "me": principal.name,
            "promotions": promotions,
            "can_run_runbooks": principal.allows(Permission.RUN_RUNBOOK),
            "can_approve": principal.allows(Permission.APPROVE_MODEL),
        }

    @router.get("/incidents/{incident_id}", response_class=HTMLResponse)
    async def incident(request: Request, session: Session, incident_id: str) -> HTMLResponse:
        context = await incident_context(*session, incident_id)
        return page(request, "incident.html", session, **context)

    @router.get("/fragments/incidents/{incident_id}", response_class=HTMLResponse)
    async def incident_fragment(
        request: Request, session: Session, incident_id: str
    ) -> HTMLResponse:
        context = await incident_context(*session, incident_id)
        return page(request, "_incident.html", session, **context)

    @router.post("/incidents/{incident_id}/{action}")
    async def act(request: Request, session: Session, incident_id: str, action: str) -> Response:
        token, _ = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        body = _action_body(action, form)
        if body is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no action {action!r}")
        back = f"{PREFIX}/incidents/{quote(incident_id, safe='')}"
        if action == "runbooks":
            choices = await runbook_choices(token, incident_id)
            try:
                body["parameters"] = typed_parameters(choices, body["runbook"], form)
            except ValueError as error:
                return _redirect(back, error=f"runbooks refused: {error}")
        path = f"/incidents/{quote(incident_id, safe='')}/{action}"
        async with api() as client:
            response = await client.post(path, json=body, headers=_bearer(token))
        if response.is_success and action == "runbooks":
            asked = response.json()
            if asked.get("state") == "pending_approval":
                return _redirect(
                    back,
                    done=f"run {asked['run_id']} of {asked['runbook']} waits for a second "
                    "person's approval",
                )
        if response.is_success:
            return _redirect(back, done=f"{action}: done")
        return _redirect(back, error=f"{action} refused: {_detail(response)}")

    @router.post("/incidents/{incident_id}/promotions/{request_id}/{decision}")
    async def decide(
        request: Request, session: Session, incident_id: str, request_id: str, decision: str
    ) -> Response:
        token, _ = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        back = f"{PREFIX}/incidents/{incident_id}"
        if decision not in ("approve", "reject") or registry is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such decision")
        async with registry() as client:
            response = await client.post(
                f"/promotions/{request_id}/{decision}",
                json={"comment": str(form.get("comment", ""))},
                headers=_bearer(token),
            )
        if response.is_success:
            return _redirect(back, done=f"{decision}: done")
        return _redirect(back, error=f"{decision} refused: {_detail(response)}")

    @router.post("/incidents/{incident_id}/held-runs/{run_id}/{decision}")
    async def decide_run(
        request: Request, session: Session, incident_id: str, run_id: str, decision: str
    ) -> Response:
        """Approve or reject a runbook run held for a second person (the API decides who may)."""
        token, _ = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        if decision not in ("approve", "reject"):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such decision")
        reason = str(form.get("reason", "")).strip()
        async with api() as client:
            response = await client.post(
                f"/incidents/{quote(incident_id, safe='')}/runbooks/{quote(run_id, safe='')}"
                f"/{decision}",
                json={"reason": reason} if reason else None,
                headers=_bearer(token),
            )
        back = f"{PREFIX}/incidents/{quote(incident_id, safe='')}"
        if response.is_success:
            return _redirect(back, done=f"run {run_id}: {decision}d")
        return _redirect(back, error=f"{decision} refused: {_detail(response)}")

    async def runbook_choices(token: str, incident_id: str) -> _Row:
        async with api() as client:
            found = await client.get(
                f"/incidents/{quote(incident_id, safe='')}/runbook-choices",
                headers=_bearer(token),
            )
        return _Row(_ok(found))

    @router.get("/new-incident", response_class=HTMLResponse)
    async def new_incident_page(request: Request, session: Session) -> HTMLResponse:
        """The form that opens an incident by hand; it carries a fresh idempotency key, so
        sending it twice (a double click, a reload) opens one incident."""
        return page(
            request,
            "new_incident.html",
            session,
            key=f"console-{secrets.token_hex(12)}",
            severities=[severity.value for severity in Severity],
            can_open=session[1].allows(Permission.OPEN_INCIDENT),
        )

    @router.post("/new-incident")
    async def open_incident(request: Request, session: Session) -> Response:
        token, _ = session
        async with request.form(max_files=0, max_fields=16, max_part_size=16_384) as form:
            check_form(token, str(form.get("csrf", "")))
            version = str(form.get("model_version", "")).strip()
            body: dict[str, Any] = {
                "model": str(form.get("model", "")).strip(),
                "severity": str(form.get("severity", "")),
                "summary": str(form.get("summary", "")).strip(),
                "details": str(form.get("details", "")).strip(),
            }
            key = str(form.get("idempotency_key", ""))
        if version:
            if not _whole_number(version):
                return _redirect(f"{PREFIX}/new-incident", error="the version is a whole number")
            body["model_version"] = int(version)
        async with api() as client:
            response = await client.post(
                "/incidents",
                json=body,
                headers=_bearer(token) | ({"Idempotency-Key": key} if key else {}),
            )
        if not response.is_success:
            return _redirect(f"{PREFIX}/new-incident", error=f"refused: {_detail(response)}")
        opened = response.json()
        return _redirect(
            f"{PREFIX}/incidents/{quote(opened['id'], safe='')}",
            done=f"incident {opened['id']} opened",
        )

    @router.get("/incidents/{incident_id}/review", response_class=HTMLResponse)
    async def review_page(request: Request, session: Session, incident_id: str) -> HTMLResponse:
        token, principal = session
        async with api() as client:
            found = await client.get(
                f"/incidents/{quote(incident_id, safe='')}/review", headers=_bearer(token)
            )
        return page(
            request,
            "review.html",
            session,
            review=_Row(_ok(found)),
            incident_id=incident_id,
            can_edit=principal.allows(Permission.EDIT_REVIEW),
        )

    @router.get("/incidents/{incident_id}/review.md")
    async def review_markdown(session: Session, incident_id: str) -> Response:
        async with api() as client:
            found = await client.get(
                f"/incidents/{quote(incident_id, safe='')}/review",
                params={"format": "markdown"},
                headers=_bearer(session[0]),
            )
        _ok_status(found)
        return Response(
            found.text,
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{incident_id}-review.md"'},
        )

    @router.post("/incidents/{incident_id}/review/action-items")
    async def save_review(request: Request, session: Session, incident_id: str) -> Response:
        token, _ = session
        async with request.form(max_files=0, max_fields=8, max_part_size=65_536) as form:
            check_form(token, str(form.get("csrf", "")))
            text = str(form.get("action_items", "")).replace("\r\n", "\n")
            version = str(form.get("version", ""))
        back = f"{PREFIX}/incidents/{quote(incident_id, safe='')}/review"
        if not _whole_number(version):
            return _redirect(back, error="the form lost its version: reload the page")
        async with api() as client:
            response = await client.put(
                f"/incidents/{quote(incident_id, safe='')}/review/action-items",
                json={"text": text, "version": int(version)},
                headers=_bearer(token),
            )
        if response.is_success:
            return _redirect(
                back, done=f"action items saved (version {response.json()['version']})"
            )
        return _redirect(back, error=f"not saved: {_detail(response)}")

    @router.get("/oncall", response_class=HTMLResponse)
    async def on_call(request: Request, session: Session) -> HTMLResponse:
        async with api() as client:
            schedules = _ok(await client.get("/schedules", headers=_bearer(session[0])))
        ordered = sorted(schedules, key=lambda s: (s["tier"] or "L9", s["name"]))
        return page(request, "oncall.html", session, schedules=[_Row(s) for s in ordered])

    @router.get("/people", response_class=HTMLResponse)
    async def people(request: Request, session: Session) -> HTMLResponse:
        token, principal = session
        if not principal.allows(Permission.MANAGE_PAGING):
            return page(request, "people.html", session, people=None)
        async with api() as client:
            found = _ok(await client.get("/people", headers=_bearer(token)))
        return page(request, "people.html", session, people=[_Row(p) for p in found])

    @router.post("/people")
    async def add_person(request: Request, session: Session) -> Response:
        token, _ = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        name = str(form.get("name", "")).strip()
        body = {"display_name": str(form.get("display_name", "")).strip() or None}
        async with api() as client:
            response = await client.put(f"/people/{name}", json=body, headers=_bearer(token))
        if response.is_success:
            return _redirect(f"{PREFIX}/people", done=f"{name} saved")
        return _redirect(f"{PREFIX}/people", error=f"refused: {_detail(response)}")

    @router.post("/people/{name}/contacts")
    async def add_contact(request: Request, session: Session, name: str) -> Response:
        token, _ = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        body = {
            "channel": str(form.get("channel", "")),
            "address": str(form.get("address", "")).strip(),
            "secret": str(form.get("secret", "")).strip() or None,
        }
        async with api() as client:
            response = await client.post(
                f"/people/{name}/contacts", json=body, headers=_bearer(token)
            )
        if not response.is_success:
            return _redirect(f"{PREFIX}/people", error=f"refused: {_detail(response)}")
        secret = response.json().get("secret")
        shown = f"; signing secret (shown once): {secret}" if secret else ""
        return _redirect(f"{PREFIX}/people", done=f"contact added for {name}{shown}")

    @router.post("/people/{name}/remove")
    async def remove(request: Request, session: Session, name: str) -> Response:
        token, _ = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        contact = str(form.get("contact", ""))
        path = f"/people/{name}/contacts/{contact}" if contact else f"/people/{name}"
        async with api() as client:
            response = await client.delete(path, headers=_bearer(token))
        if response.is_success:
            return _redirect(f"{PREFIX}/people", done=f"removed {contact or name}")
        return _redirect(f"{PREFIX}/people", error=f"refused: {_detail(response)}")

    @router.get("/stats", response_class=HTMLResponse)
    async def stats(request: Request, session: Session) -> HTMLResponse:
        bucket = request.query_params.get("bucket", "day")
        bucket = bucket if bucket in ("hour", "day", "week") else "day"
        by = request.query_params.get("by", "tier")
        by = by if by in STATS_GROUPS else "tier"
        async with api() as client:
            figures = _ok(await client.get("/stats", headers=_bearer(session[0])))
            over_time = _ok(
                await client.get(
                    "/stats/over-time",
                    params={"bucket": bucket, "count": 14},
                    headers=_bearer(session[0]),
                )
            )
        return page(
            request,
            "stats.html",
            session,
            stats=_Row(figures),
            bucket=bucket,
            by=by,
            groups=list(STATS_GROUPS),
            over_time=[_Row(b) for b in over_time],
            response_time_charts=response_time_charts(over_time, by),
            l1_chart=share_resolved_at_l1_chart(over_time),
            runbook_charts=runbook_rate_charts(figures.get("runbooks") or {}),
        )

    @router.get("/models", response_class=HTMLResponse)
    async def models(request: Request, session: Session) -> HTMLResponse:
        found, error = await _models(registry)
        can_rollback = session[1].allows(Permission.APPROVE_MODEL)
        async with api() as client:
            unresolved = _ok(
                await client.get(
                    "/incidents",
                    params={"unresolved": "true", "limit": 1000},
                    headers=_bearer(session[0]),
                )
            )
        open_incidents = Counter(str(item["model"]) for item in unresolved)
        sparklines = {}
        for model in found:
            deployment = model.get("deployment") or {}
            champion = (deployment.get("champion") or {}).get("version")
            series = await _series(monitor, model["name"])
            sparklines[model["name"]] = key_metric_sparkline(series, champion)
        return page(
            request,
            "models.html",
            session,
            models=found,
            error=error,
            can_rollback=can_rollback,
            open_incidents=open_incidents,
            sparklines=sparklines,
        )

    @router.get("/models/{model}", response_class=HTMLResponse)
    async def model_page(request: Request, session: Session, model: str) -> HTMLResponse:
        """One model's charts: each version and slot's watched metrics, traffic and latency
        over the monitor's recent windows, and its live champion-challenger comparisons."""
        if not model.isascii() or len(model) > 200:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {model!r}")
        series = await _series(monitor, model)
        slots = model_charts(series) if series is not None else []
        comparisons = (series or {}).get("comparisons", [])
        return page(
            request,
            "model.html",
            session,
            model=model,
            slots=slots,
            comparison=comparison_chart(comparisons[-1]) if comparisons else None,
            monitor_error=None if series is not None or monitor is None else "no windows yet",
        )

    @router.post("/models/{model}/rollback")
    async def rollback(request: Request, session: Session, model: str) -> Response:
        token, principal = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        if not principal.allows(Permission.APPROVE_MODEL) or registry is None:
            return _redirect(f"{PREFIX}/models", error="rolling back a model needs l2 or higher")
        async with registry() as client:
            response = await client.post(
                f"/models/{model}/deployment/rollback",
                json={"reason": str(form.get("reason", ""))},
                headers=_bearer(token),
            )
        if response.is_success:
            return _redirect(f"{PREFIX}/models", done=f"{model}: rolled back one step")
        return _redirect(f"{PREFIX}/models", error=f"rollback refused: {_detail(response)}")

    @router.get("/tokens", response_class=HTMLResponse)
    async def tokens(request: Request, session: Session) -> HTMLResponse:
        return await tokens_page(request, session)

    async def tokens_page(
        request: Request, session: tuple[str, Principal], *, created: Any = None
    ) -> HTMLResponse:
        token, principal = session
        async with api() as client:
            found = _ok(
                await client.get(
                    "/tokens", params={"include_inactive": "true"}, headers=_bearer(token)
                )
            )
        response = page(
            request,
            "tokens.html",
            session,
            tokens=[_Row(t) for t in found],
            is_admin=principal.allows(Permission.MANAGE_TOKENS),
            roles=[role.value for role in Role],
            scopes=[scope.value for scope in Scope],
            max_days=MAX_TOKEN_DAYS,
            default_days=DEFAULT_TOKEN_DAYS,
            created=_Row(created) if created else None,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.post("/tokens", response_class=HTMLResponse)
    async def create_token(request: Request, session: Session) -> Response:
        token, _ = session
        async with request.form(max_files=0, max_fields=16, max_part_size=4096) as form:
            check_form(token, str(form.get("csrf", "")))
            kind = str(form.get("kind", "role"))
            body: dict[str, Any] = {
                "name": str(form.get("name", "")).strip(),
                "expires_in_days": str(form.get("expires_in_days", "")).strip()
                or DEFAULT_TOKEN_DAYS,
            }
            if kind == "scopes":
                body["scopes"] = [str(scope) for scope in form.getlist("scopes")]
            else:
                body["role"] = str(form.get("role", ""))
        async with api() as client:
            response = await client.post("/tokens", json=body, headers=_bearer(token))
        if not response.is_success:
            return _redirect(f"{PREFIX}/tokens", error=f"refused: {_detail(response)}")
        # The new token is shown in this answer only, never in a URL (history, proxy logs).
        return await tokens_page(request, session, created=response.json())

    @router.post("/tokens/{token_id}/revoke")
    async def revoke_token(request: Request, session: Session, token_id: str) -> Response:
        token, _ = session
        form = await request.form()
        check_form(token, str(form.get("csrf", "")))
        async with api() as client:
            response = await client.delete(f"/tokens/{token_id}", headers=_bearer(token))
        if response.is_success:
            revoked = response.json()
            return _redirect(
                f"{PREFIX}/tokens", done=f"token {revoked['id']} of {revoked['name']} revoked"
            )
        return _redirect(f"{PREFIX}/tokens", error=f"refused: {_detail(response)}")

    @router.get("/events")
    async def events(session: Session) -> StreamingResponse:
        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 3000\n\n"
            async for version in feed.listen():
                yield (
                    b": keep-alive\n\n"
                    if version is None
                    else f"event: changed\ndata: {version}\n\n".encode()
                )

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


async def sign_in_redirect(request: Request, error: Exception) -> Response:
    """Exception handler: a page that needs a session sends the browser to sign in."""
    return _redirect(f"{PREFIX}/login")


class _Row(dict[str, Any]):
    """JSON from the API, readable in templates as ``row.field`` (enums as ``.value``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return _wrap(value)


class _Value(str):
    @property
    def value(self) -> str:
        return str(self)


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return _Row(value)
    if isinstance(value, list):
        return [_wrap(item) for item in value]
    if isinstance(value, str):
        return _Value(value)
    return value


def _when(text: str | None) -> str:
    """An ISO time from the API, shown to the second."""
    return "—" if not text else text[:19].replace("T", " ")


def _clock(text: str | None) -> str:
    """An ISO time from the API, shown as the time of day."""
    return "—" if not text else text[11:19]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(response: httpx.Response) -> Any:
    if response.status_code == 401:
        raise SignInRequired
    if not response.is_success:
        raise HTTPException(response.status_code, _detail(response))
    return response.json()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # a validation error: each problem's message
        return "; ".join(
            str(problem.get("msg", problem)).removeprefix("Value error, ")
            if isinstance(problem, dict)
            else str(problem)
            for problem in detail
        )
    return str(detail)


def _ok_status(response: httpx.Response) -> None:
    if response.status_code == 401:
        raise SignInRequired
    if not response.is_success:
        raise HTTPException(response.status_code, _detail(response))


def typed_parameters(choices: dict[str, Any], runbook: str, form: Any) -> dict[str, Any]:
    """The values of a runbook's parameter fields (``param.<name>``), typed as the catalogue
    says; an empty optional field is left to its default. ``ValueError`` says which is wrong."""
    found = next(
        (r for group in ("applicable", "others") for r in choices[group] if r["name"] == runbook),
        None,
    )
    if found is None:
        return {}  # the API names the runbook it does not know
    values: dict[str, Any] = {}
    for spec in found["parameters"]:
        text = str(form.get(f"param.{spec['name']}", ""))
        if text == "" and spec["type"] != "str":
            continue
        if text == "" and not spec["required"]:
            continue
        parameter = ChoiceParameter.model_validate(dict(spec))
        try:
            values[spec["name"]] = parse_form_value(parameter, text)
        except ValueError as error:
            raise ValueError(f"parameter {spec['name']!r}: {error}") from None
    return values


def _redirect(url: str, **flash: str) -> RedirectResponse:
    target = f"{url}?{urlencode(flash)}" if flash else url
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


_REASONED = {"escalate", "mitigating", "monitoring", "resolve", "reopen", "retrain"}


def _action_body(action: str, form: Any) -> dict[str, Any] | None:
    take_over = form.get("take_over") == "true"
    if action in ("acknowledge", "claim"):
        return {"take_over": take_over}
    if action == "comment":
        return {"text": str(form.get("text", "")), "take_over": take_over}
    if action == "resolve":
        return {"reason": str(form.get("reason", "")), "force": form.get("force") == "true"}
    if action in _REASONED:
        return {"reason": str(form.get("reason", "")), "take_over": take_over}
    if action == "runbooks":
        return {
            "runbook": str(form.get("runbook", "")),
            "reason": str(form.get("reason", "")),
            "take_over": take_over,
        }
    return None


async def _promotions(
    registry: Callable[[], httpx.AsyncClient] | None, token: str, incident_id: str
) -> list[_Row]:
    if registry is None:
        return []
    try:
        async with registry() as client:
            response = await client.get(
                "/promotions", params={"incident_id": incident_id}, headers=_bearer(token)
            )
    except httpx.HTTPError:
        return []
    if not response.is_success:
        return []
    return [_Row(item) for item in response.json()]


async def _series(
    monitor: Callable[[], httpx.AsyncClient] | None, model: str
) -> dict[str, Any] | None:
    """The monitor's recent windows of a model; ``None`` when it has none or cannot answer
    (the page then shows its tables without charts)."""
    if monitor is None:
        return None
    try:
        async with monitor() as client:
            response = await client.get(f"/series/{quote(model, safe='')}")
        if response.status_code != 200:
            return None
        found = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _canary_charts(
    timeline: list[dict[str, Any]], promotions: list[_Row], series: dict[str, Any] | None
) -> list[str]:
    """The gate's verdicts on candidates (from the timeline) and the latest live comparison of
    challenger and champion, with the decision that followed it when there was one."""
    charts = []
    for entry in timeline:
        details = entry.get("details") or {}
        if entry.get("action") == "candidate_evaluated" and isinstance(details, dict):
            passed = details.get("passed")
            failures = "; ".join(details.get("failures") or [])
            chart = gate_chart(
                details.get("figures") or {},
                "passed the gate" if passed else f"failed the gate: {failures}",
                f"gate: candidate v{details.get('candidate_version')} against champion "
                f"v{details.get('champion_version')} on held-out rows",
            )
            if chart is not None:
                charts.append(chart)
    comparisons = (series or {}).get("comparisons", [])
    if comparisons:
        decided = [
            e for e in timeline if e.get("action") in ("model_promoted", "model_rolled_back")
        ]
        decision = None
        if decided:
            last = decided[-1]
            verb = "promoted" if last["action"] == "model_promoted" else "rolled back"
            decision = f"{verb}: {(last.get('details') or {}).get('reason', '')}"
        charts.append(comparison_chart(comparisons[-1], decision))
    return charts


async def _models(
    registry: Callable[[], httpx.AsyncClient] | None,
) -> tuple[list[_Row], str | None]:
    if registry is None:
        return [], "no registry configured"
    try:
        async with registry() as client:
            listed = (await client.get("/models")).json()
            models = []
            for summary in listed:
                name = summary["name"]
                detail = (await client.get(f"/models/{name}")).json()
                history = (await client.get(f"/models/{name}/history")).json()
                models.append(_Row(detail | {"history": history["alias_moves"]}))
    except (httpx.HTTPError, ValueError, KeyError) as error:
        return [], f"the registry could not be read: {error}"
    return models, None


def _whole_number(text: str) -> bool:
    """Whether ``int(text)`` takes it and it fits a version (``"²".isdigit()`` is true, and a
    4,301-digit string makes ``int`` raise: both were a 500)."""
    return text.isascii() and text.isdigit() and len(text) <= 9
