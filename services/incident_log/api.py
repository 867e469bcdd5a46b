"""The incident log's HTTP API: incidents (opened by hand too: ``POST /incidents``), timelines,
actions, the runbooks a person may pick (``/incidents/{id}/runbook-choices``), alerts, silences,
stats (over time too), and ``/whoami`` (tokens: ``token_api.py``; reviews: ``review_api.py``).

Thin: authenticate, check the role, call a use case, shape the answer. Every action is recorded on
the incident's timeline with the caller's name as actor. Errors: 401 without a valid token, 403 for
a role too low (the message names the role needed) or a call a scoped token's scopes do not name,
404 for an unknown incident, 409 when the incident's state refuses the action (the message says
why), 422 for a malformed body.

The routes are module-level functions on :data:`router`; :func:`install_incident_api` gives an
app the incident log they act on (:data:`Api`), and the caller comes from
:data:`~services.incident_log.auth.Caller`.
"""

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Self

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Response,
    status,
)
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

from contracts.alerts import AlertKind, Severity
from contracts.incidents import EscalationTrigger, IncidentStatus, Tier
from contracts.values import FiniteJson, ModelName
from services.incident_log.approvals import HeldRun
from services.incident_log.auth import Caller, Principal, ensure_allowed
from services.incident_log.domain import DomainError, Effects, Incident
from services.incident_log.lifecycle import InvalidTransition
from services.incident_log.manual import ManualReport, manual_alert
from services.incident_log.permissions import Permission, Role
from services.incident_log.routing import Matcher
from services.incident_log.runbook_choices import CatalogView, RunbookChoice
from services.incident_log.service import (
    IdempotencyConflict,
    IncidentLog,
    UnknownIncident,
    UnknownSilence,
)
from services.incident_log.stats import (
    BUCKETS,
    IncidentFacts,
    ResponseStats,
    RunFact,
    TimelineFact,
    bucket_span,
    response_stats,
    runbook_rates,
    stats_over_time,
)
from services.incident_log.store import IncidentStore
from services.incident_log.tables import AlertRow, IncidentRow, SilenceRow, TimelineRow
from services.runtime.app_state import AppState
from services.runtime.database import Sessions
from services.runtime.scopes import Scope

__all__ = ["Api", "IncidentApi", "install_incident_api", "router"]

_MAX_REPORT_BYTES = 256 * 1024
MAX_SILENCE_MINUTES = 366 * 24 * 60
"""The longest silence: a year (a longer one is a routing change, not a silence)."""
MAX_OFFSET = 1_000_000
MAX_BUCKETS = 366


# -- bodies and views --------------------------------------------------------------------------


class _Body(BaseModel):
    """A request body: no NaN or infinite number anywhere (422)."""

    model_config = ConfigDict(allow_inf_nan=False)


class ActionBody(_Body):
    """Options every incident action takes."""

    take_over: bool = Field(
        default=False, description="Act on an incident someone else holds (and take it over)."
    )


class CommentBody(ActionBody):
    """A comment for the timeline."""

    text: str = Field(min_length=1, max_length=10_000)


class ReasonBody(ActionBody):
    """An action that needs a reason on the timeline."""

    reason: str = Field(min_length=1, max_length=2_000)


class RetrainBody(ReasonBody):
    """Asking for a retrain, possibly on a person's behalf."""

    on_behalf_of: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description=(
            "The person on whose behalf the caller asks (the runbook runner, for the person who "
            "ran the runbook); recorded as the requester, who may not approve the candidate. "
            "Only a token allowed to act for others may give it (403 otherwise)."
        ),
    )


class ResolveBody(ReasonBody):
    """Resolving; ``force`` resolves a performance incident labels have not confirmed yet."""

    force: bool = False


class SilenceBody(_Body):
    """A new silence: what it matches, and when (``ends_at`` or ``duration_minutes``)."""

    matcher: Matcher
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration_minutes: float | None = Field(default=None, gt=0, le=MAX_SILENCE_MINUTES)
    reason: str = Field(min_length=1, max_length=2_000)

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if (self.ends_at is None) == (self.duration_minutes is None):
            raise ValueError("give exactly one of ends_at and duration_minutes")
        if self.starts_at is not None and self.duration_minutes is not None:
            try:
                self.starts_at + timedelta(minutes=self.duration_minutes)
            except OverflowError:
                raise ValueError("starts_at plus duration_minutes is past year 9999") from None
        return self


_ONE_LINE = r"^[^\x00-\x1f\x7f]+$"


class ManualIncidentBody(_Body):
    """What a person reports when they open an incident by hand (``"3"`` is no version)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: ModelName
    model_version: StrictInt | None = Field(default=None, ge=1, le=2**31 - 1)
    severity: Severity = Severity.WARNING
    summary: str = Field(
        min_length=1, max_length=1000, pattern=_ONE_LINE, description="One line for a person."
    )
    details: str = Field(default="", max_length=10_000, description="What was seen, how.")


IDEMPOTENCY_KEY = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class ChoiceParameterView(BaseModel):
    """A parameter a person supplies, with its rules (the console builds a field from it)."""

    name: str
    type: Literal["str", "int", "float", "bool"]
    required: bool
    default: str | int | float | bool | None
    allowed: list[str | int | float | bool] | None
    pattern: str | None
    minimum: float | None
    maximum: float | None
    max_length: int
    description: str


class RunbookChoiceView(BaseModel):
    """A catalogued runbook a person may pick for an incident."""

    name: str
    purpose: str
    alert_kinds: list[str]
    tier: Tier
    needs_approval: bool
    parameters: list[ChoiceParameterView] = Field(description="Those a person supplies.")
    bound: list[str] = Field(description="Those bound from the incident (model, id...).")


class RunbookChoices(BaseModel):
    """The runbooks that apply to an incident's kinds, and the other catalogued ones."""

    kinds: list[str]
    applicable: list[RunbookChoiceView]
    others: list[RunbookChoiceView]


class RunbookBody(ActionBody):
    """A catalogued runbook to run by hand, with a reason (the runner checks the catalogue)."""

    runbook: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    reason: str = Field(min_length=1, max_length=2_000)
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=100)


class RunbookRequested(BaseModel):
    """A run that was asked for; its outcome arrives on the timeline. A runbook that needs
    approval is held (``pending_approval``) until a second person approves it."""

    run_id: str
    runbook: str
    incident_id: str
    state: Literal["requested", "pending_approval"] = "requested"
    approval_expires_at: datetime | None = None


class ReportBody(_Body):
    """A report to attach to an incident's timeline."""

    title: str = Field(min_length=1, max_length=300)
    report: dict[str, FiniteJson]


class WhoAmI(BaseModel):
    """The caller: a person's role, or a service's scopes."""

    name: str
    role: Role | None = Field(description="None for a service's scoped token.")
    scopes: list[Scope] | None = Field(
        default=None, description="What a service's token may call; None for a person's."
    )
    token_id: str | None = Field(
        default=None, description="The token's id (None for the bootstrap admin token)."
    )
    expires_at: datetime | None = Field(
        default=None, description="When the token stops working (None: never)."
    )
    acts_for_others: bool = Field(
        default=False,
        description="Whether the token may name a person it acts for (scope retrain:on-behalf, "
        "the runbook runner's).",
    )


class SignalView(BaseModel):
    """One alert fingerprint on an incident."""

    fingerprint: str
    kind: AlertKind
    severity: Severity
    model_version: int | None
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    recovered_at: datetime | None
    active: bool
    summary: str
    evidence: dict[str, Any]


class IncidentView(BaseModel):
    """An incident's current state."""

    id: str
    model: str
    model_version: int | None
    title: str
    severity: Severity
    kind: AlertKind
    fingerprint: str
    status: IncidentStatus
    tier: Tier
    route: str | None
    runbooks: list[str]
    opened_at: datetime
    last_seen: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    resolved_tier: Tier | None
    held_by: str | None
    lease_expires_at: datetime | None
    alert_count: int


class IncidentDetail(IncidentView):
    """An incident with its signals and the actions the caller may take now."""

    signals: list[SignalView]
    actions: list[str] = Field(description="Actions the caller's role and the state allow.")


class TimelineEntryView(BaseModel):
    """One line of history."""

    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    from_tier: str | None
    to_tier: str | None
    details: dict[str, Any]


class AlertView(BaseModel):
    """A received alert and what became of it."""

    event_id: str
    type: str
    incident_id: str | None
    model: str
    model_version: int | None
    fingerprint: str
    kind: str
    severity: str | None
    summary: str
    evidence: dict[str, Any]
    producer: str
    occurred_at: datetime
    received_at: datetime
    disposition: str
    suppressed_by: str | None


class BucketView(BaseModel):
    """The response figures of the incidents opened in one time bucket ``[start, end)``."""

    start: datetime
    end: datetime
    stats: ResponseStats


class SilenceView(BaseModel):
    """A silence."""

    id: str
    matcher: Matcher
    starts_at: datetime
    ends_at: datetime
    created_by: str
    reason: str
    active: bool
    expired_by: str | None = Field(description="Who ended it early, if anyone did.")


# -- the router --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentApi:
    """What the routes act on: the incident log, its database, and the runner's catalogue as
    the incident log reads it (none: runs by hand are checked by the runner only)."""

    log: IncidentLog
    sessions: Sessions
    catalog: CatalogView | None = None


_SLOT = AppState[IncidentApi]("incident_api")
Api = Annotated[IncidentApi, Depends(_SLOT)]
"""The :class:`IncidentApi` the app was given by :func:`install_incident_api`."""

router = APIRouter()


def install_incident_api(
    app: FastAPI, log: IncidentLog, sessions: Sessions, *, catalog: CatalogView | None = None
) -> None:
    """Add the routes to an app, bound to one incident log (the caller is checked as
    :func:`~services.incident_log.auth.install_authentication` set up on the app)."""
    _SLOT.put(app, IncidentApi(log, sessions, catalog))
    app.include_router(router)


async def _act(
    api: IncidentApi,
    incident_id: str,
    principal: Principal,
    permission: Permission,
    change: Callable[[Incident, datetime], Effects],
    *,
    take_over: bool = False,
    scope: Scope | None = None,
) -> IncidentDetail:
    """Check the role (or the scope that names this action) against the incident as it is now
    (locked), then change it; a refusal writes nothing. Taking someone else's claim needs a
    role at the incident's tier, whatever the action that takes it."""

    def guarded(incident: Incident, now: datetime) -> Effects:
        ensure_allowed(principal, permission, incident.tier, scope=scope)
        if take_over and incident.held_by(now) not in (None, principal.name):
            ensure_allowed(principal, Permission.TAKE_OVER, incident.tier)
        return change(incident, now)

    incident = await _translate(api.log.act(incident_id, guarded))
    return _detail(incident, principal, api.log.now())


@router.get("/whoami", tags=["auth"])
async def whoami(principal: Caller) -> WhoAmI:
    """The caller's name and role (or scopes), and when its token expires."""
    return WhoAmI(
        name=principal.name,
        role=principal.role,
        scopes=sorted(principal.scopes) if principal.role is None else None,
        token_id=principal.token_id,
        expires_at=principal.expires_at,
        acts_for_others=principal.acts_for_others,
    )


@router.get("/incidents", tags=["incidents"])
async def list_incidents(
    api: Api,
    principal: Caller,
    status_: Annotated[IncidentStatus | None, Query(alias="status")] = None,
    tier: Tier | None = None,
    model: str | None = None,
    unresolved: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[IncidentView]:
    """Incidents, newest first, filtered by status, tier, model."""
    ensure_allowed(principal, Permission.READ, scope=Scope.INCIDENTS_READ)
    now = api.log.now()
    async with api.sessions() as session:
        rows = await IncidentStore(session).search(
            status=status_.value if status_ else None,
            tier=tier.value if tier else None,
            model=model,
            unresolved=unresolved,
            limit=limit,
            offset=offset,
        )
    return [_view_of_row(row, now) for row in rows]


@router.post(
    "/incidents",
    tags=["incidents"],
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "A retry with the same Idempotency-Key: the incident it opened."},
        409: {"description": "The Idempotency-Key was used for a different report."},
    },
)
async def open_incident(
    api: Api,
    principal: Caller,
    body: ManualIncidentBody,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=IDEMPOTENCY_KEY,
            description="Makes retries safe: the same key (per person) opens one incident.",
        ),
    ] = None,
) -> IncidentDetail:
    """Open an incident by hand (level one and up): the report becomes an alert of kind
    ``manual`` that opens a new incident, routed like any other."""
    ensure_allowed(principal, Permission.OPEN_INCIDENT)
    report = ManualReport(
        model=body.model,
        model_version=body.model_version,
        severity=body.severity,
        summary=body.summary,
        details=body.details,
    )
    alert = manual_alert(report, principal.name, api.log.now(), idempotency_key=idempotency_key)
    try:
        incident, created = await api.log.open_manual(alert)
    except IdempotencyConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return _detail(incident, principal, api.log.now())


@router.get("/incidents/{incident_id}/runbook-choices", tags=["incidents"])
async def runbook_choices(api: Api, incident_id: str, principal: Caller) -> RunbookChoices:
    """The catalogued runbooks that apply to the incident's alert kinds (and the others),
    with the typed parameters a person supplies."""
    ensure_allowed(principal, Permission.READ, scope=Scope.INCIDENTS_READ)
    async with api.sessions() as session:
        incident = await IncidentStore(session).get(incident_id, for_update=False)
    if incident is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    kinds = sorted({signal.kind.value for signal in incident.signals.values()})
    applicable, others = api.catalog.for_kinds(kinds) if api.catalog else ([], [])
    return RunbookChoices(
        kinds=kinds,
        applicable=[_choice_view(r) for r in applicable],
        others=[_choice_view(r) for r in others],
    )


@router.get("/incidents/{incident_id}", tags=["incidents"])
async def get_incident(api: Api, incident_id: str, principal: Caller) -> IncidentDetail:
    """One incident with its signals and the actions the caller may take."""
    ensure_allowed(principal, Permission.READ, scope=Scope.INCIDENTS_READ)
    async with api.sessions() as session:
        incident = await IncidentStore(session).get(incident_id, for_update=False)
    if incident is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
    return _detail(incident, principal, api.log.now())


@router.get("/incidents/{incident_id}/timeline", tags=["incidents"])
async def get_timeline(api: Api, incident_id: str, principal: Caller) -> list[TimelineEntryView]:
    """An incident's history, oldest first."""
    ensure_allowed(principal, Permission.READ, scope=Scope.INCIDENTS_READ)
    async with api.sessions() as session:
        store = IncidentStore(session)
        if await store.get(incident_id, for_update=False) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
        rows = await store.timeline(incident_id)
    return [_timeline_view(row) for row in rows]


@router.get("/incidents/{incident_id}/alerts", tags=["incidents"])
async def get_incident_alerts(api: Api, incident_id: str, principal: Caller) -> list[AlertView]:
    """The alerts that fed an incident, newest first."""
    ensure_allowed(principal, Permission.READ, scope=Scope.INCIDENTS_READ)
    async with api.sessions() as session:
        rows = await IncidentStore(session).alerts(incident_id=incident_id)
    return [_alert_view(row) for row in rows]


@router.post("/incidents/{incident_id}/acknowledge", tags=["actions"])
async def acknowledge(
    api: Api, incident_id: str, principal: Caller, body: ActionBody | None = None
) -> IncidentDetail:
    """Acknowledge at the incident's current tier."""
    options = body or ActionBody()
    return await _act(
        api,
        incident_id,
        principal,
        Permission.ACT_ON_INCIDENT,
        lambda i, now: i.acknowledge(principal.name, now, take_over=options.take_over),
        take_over=options.take_over,
    )


@router.post("/incidents/{incident_id}/claim", tags=["actions"])
async def claim(
    api: Api, incident_id: str, principal: Caller, body: ActionBody | None = None
) -> IncidentDetail:
    """Take ownership for a while (renewed by activity); others see who holds it."""
    options = body or ActionBody()
    lease = api.log.policy.claim_lease
    return await _act(
        api,
        incident_id,
        principal,
        Permission.ACT_ON_INCIDENT,
        lambda i, now: i.claim(principal.name, now, lease, take_over=options.take_over),
        take_over=options.take_over,
    )


@router.post("/incidents/{incident_id}/comment", tags=["actions"])
async def comment(
    api: Api, incident_id: str, principal: Caller, body: CommentBody
) -> IncidentDetail:
    """Add a comment to the timeline."""
    return await _act(
        api,
        incident_id,
        principal,
        Permission.COMMENT,
        lambda i, now: i.comment(principal.name, body.text, now, take_over=body.take_over),
        take_over=body.take_over,
    )


@router.post("/incidents/{incident_id}/escalate", tags=["actions"])
async def escalate(
    api: Api, incident_id: str, principal: Caller, body: ReasonBody
) -> IncidentDetail:
    """Hand the incident to the next tier."""
    return await _act(
        api,
        incident_id,
        principal,
        Permission.ACT_ON_INCIDENT,
        lambda i, now: i.escalate(
            principal.name, EscalationTrigger.HUMAN, body.reason, now, take_over=body.take_over
        ),
        take_over=body.take_over,
    )


@router.post("/incidents/{incident_id}/mitigating", tags=["actions"])
async def mitigating(
    api: Api, incident_id: str, principal: Caller, body: ReasonBody
) -> IncidentDetail:
    """Say a fix is being worked on."""
    return await _act(
        api,
        incident_id,
        principal,
        Permission.ACT_ON_INCIDENT,
        lambda i, now: i.start_mitigation(
            principal.name, body.reason, now, take_over=body.take_over
        ),
        take_over=body.take_over,
    )


@router.post("/incidents/{incident_id}/monitoring", tags=["actions"])
async def monitoring(
    api: Api, incident_id: str, principal: Caller, body: ReasonBody
) -> IncidentDetail:
    """Say the fix is in and is being watched."""
    return await _act(
        api,
        incident_id,
        principal,
        Permission.ACT_ON_INCIDENT,
        lambda i, now: i.start_monitoring(
            principal.name, body.reason, now, take_over=body.take_over
        ),
        take_over=body.take_over,
    )


@router.post("/incidents/{incident_id}/resolve", tags=["actions"])
async def resolve(
    api: Api, incident_id: str, principal: Caller, body: ResolveBody
) -> IncidentDetail:
    """Resolve (a performance incident needs the labels' confirmation, or ``force``)."""
    return await _act(
        api,
        incident_id,
        principal,
        Permission.ACT_ON_INCIDENT,
        lambda i, now: i.resolve(
            principal.name, body.reason, now, force=body.force, take_over=body.take_over
        ),
        take_over=body.take_over,
    )


@router.post("/incidents/{incident_id}/reopen", tags=["actions"])
async def reopen(api: Api, incident_id: str, principal: Caller, body: ReasonBody) -> IncidentDetail:
    """Reopen a resolved incident."""
    return await _act(
        api,
        incident_id,
        principal,
        Permission.REOPEN,
        lambda i, now: i.reopen(principal.name, body.reason, now),
    )


@router.post(
    "/incidents/{incident_id}/runbooks", tags=["actions"], status_code=status.HTTP_202_ACCEPTED
)
async def run_runbook(
    api: Api, incident_id: str, principal: Caller, body: RunbookBody
) -> RunbookRequested:
    """Ask the runner for a catalogued runbook, with a reason; its result joins the timeline.
    A runbook that needs approval is held until a second person approves it
    (``POST /incidents/{id}/runbooks/{run_id}/approve``)."""
    ensure_allowed(principal, Permission.RUN_RUNBOOK)
    if api.catalog is not None:
        problems = api.catalog.problems(body.runbook, body.parameters)
        if problems:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "; ".join(problems))
    run_id = f"run-{secrets.token_hex(6)}"
    if api.log.approvals.needs_approval(body.runbook):
        held = await _translate_held(
            api.log.hold_runbook(
                incident_id,
                lambda now: HeldRun(
                    run_id=run_id,
                    incident_id=incident_id,
                    runbook=body.runbook,
                    parameters=dict(body.parameters),
                    reason=body.reason,
                    requested_by=principal.name,
                    requested_at=now,
                    expires_at=now + api.log.approvals.approval_timeout,
                ),
                lambda i, run, now: _guarded_hold(principal, i, run, now, body.take_over),
            )
        )
        return RunbookRequested(
            run_id=run_id,
            runbook=body.runbook,
            incident_id=incident_id,
            state="pending_approval",
            approval_expires_at=held.expires_at,
        )
    await _act(
        api,
        incident_id,
        principal,
        Permission.RUN_RUNBOOK,
        lambda i, now: i.request_runbook(
            principal.name,
            body.runbook,
            body.reason,
            body.parameters,
            run_id,
            now,
            take_over=body.take_over,
        ),
        take_over=body.take_over,
    )
    return RunbookRequested(run_id=run_id, runbook=body.runbook, incident_id=incident_id)


@router.post("/incidents/{incident_id}/retrain", tags=["actions"])
async def request_retrain(
    api: Api, incident_id: str, principal: Caller, body: RetrainBody
) -> IncidentDetail:
    """Ask the retrainer for a new version of the incident's model (level two). A caller
    allowed to act for others (the runbook runner) names the person it asks for in
    ``on_behalf_of``: that person is the requester, "via" the caller."""
    asker, via = principal.name, None
    if body.on_behalf_of is not None:
        if not principal.acts_for_others:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{principal.name} may not act on behalf of someone else "
                "(only a token allowed to act for others, such as the runbook runner's)",
            )
        asker, via = body.on_behalf_of, principal.name
    return await _act(
        api,
        incident_id,
        principal,
        Permission.REQUEST_RETRAIN,
        lambda i, now: i.request_retrain(
            asker, body.reason, now, take_over=body.take_over, via=via
        ),
        take_over=body.take_over,
        scope=Scope.RETRAIN_REQUEST,
    )


@router.post("/incidents/{incident_id}/reports", tags=["actions"])
async def attach_report(
    api: Api, incident_id: str, principal: Caller, body: ReportBody
) -> IncidentDetail:
    """Attach a diagnosis report to the incident's timeline."""
    if len(json.dumps(body.report)) > _MAX_REPORT_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"report larger than {_MAX_REPORT_BYTES} bytes: attach a summary",
        )
    return await _act(
        api,
        incident_id,
        principal,
        Permission.ATTACH_REPORT,
        lambda i, now: i.attach_report(principal.name, body.title, body.report, now),
        scope=Scope.INCIDENTS_REPORT,
    )


@router.get("/alerts", tags=["alerts"])
async def list_alerts(
    api: Api,
    principal: Caller,
    model: str | None = None,
    suppressed: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertView]:
    """Received alerts, newest first; ``suppressed=true`` shows silenced and inhibited ones."""
    ensure_allowed(principal, Permission.READ)
    async with api.sessions() as session:
        rows = await IncidentStore(session).alerts(model=model, suppressed=suppressed, limit=limit)
    return [_alert_view(row) for row in rows]


@router.get("/silences", tags=["silences"])
async def list_silences(api: Api, principal: Caller, expired: bool = False) -> list[SilenceView]:
    """Silences in force or to come (and expired ones with ``expired=true``)."""
    ensure_allowed(principal, Permission.READ)
    now = api.log.now()
    async with api.sessions() as session:
        rows = await IncidentStore(session).silences(now=now, include_expired=expired)
    return [_silence_view(row, now) for row in rows]


@router.post("/silences", tags=["silences"], status_code=status.HTTP_201_CREATED)
async def create_silence(api: Api, principal: Caller, body: SilenceBody) -> SilenceView:
    """Mute matching alerts for a while (they are kept, and page no one). A matcher that every
    alert meets (no condition, ``models: ["*"]``...) needs admin."""
    ensure_allowed(principal, Permission.MANAGE_SILENCES)
    if body.matcher.covers_every_alert:
        ensure_allowed(principal, Permission.SILENCE_EVERY_ALERT)
    now = api.log.now()
    starts = body.starts_at or now
    ends = body.ends_at or starts + timedelta(minutes=body.duration_minutes or 0)
    try:
        row = await api.log.create_silence(
            body.matcher,
            starts_at=starts,
            ends_at=ends,
            actor=principal.name,
            reason=body.reason,
        )
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    return _silence_view(row, now)


@router.delete("/silences/{silence_id}", tags=["silences"])
async def expire_silence(api: Api, silence_id: str, principal: Caller) -> SilenceView:
    """End a silence now; the silence records who ended it (``expired_by``)."""
    ensure_allowed(principal, Permission.MANAGE_SILENCES)
    try:
        row = await api.log.expire_silence(silence_id, actor=principal.name)
    except UnknownSilence:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id!r}") from None
    return _silence_view(row, api.log.now())


async def _facts(
    sessions: Sessions,
) -> tuple[list[IncidentFacts], list[TimelineFact], list[RunFact]]:
    async with sessions() as session:
        store = IncidentStore(session)
        rows = await store.all_incidents()
        entries = await store.all_timeline(
            ["opened", "escalated", "reopened", "acknowledged", "runbook_finished"]
        )
    incidents = [
        IncidentFacts(
            row.id, row.model, row.kind, row.opened_at, row.resolved_at, row.resolved_tier
        )
        for row in rows
    ]
    timeline = [
        TimelineFact(
            entry.incident_id,
            entry.at,
            entry.action,
            entry.to_tier or entry.details.get("tier"),
        )
        for entry in entries
        if entry.action != "runbook_finished"
    ]
    runs = [
        RunFact(str(entry.details.get("runbook")), str(entry.details.get("state")))
        for entry in entries
        if entry.action == "runbook_finished"
    ]
    return incidents, timeline, runs


@router.get("/stats", tags=["stats"])
async def stats(api: Api, principal: Caller) -> ResponseStats:
    """MTTA and MTTR per tier, model and alert kind; the share resolved at level one; the
    success and verification rates of each runbook."""
    ensure_allowed(principal, Permission.READ)
    incidents, timeline, runs = await _facts(api.sessions)
    figures = response_stats(incidents, timeline)
    figures.runbooks = runbook_rates(runs)
    return figures


@router.get("/stats/over-time", tags=["stats"])
async def stats_by_bucket(
    api: Api,
    principal: Caller,
    bucket: Literal["hour", "day", "week"] = "day",
    count: Annotated[int, Query(ge=1, le=MAX_BUCKETS)] = 14,
    until: AwareDatetime | None = None,
) -> list[BucketView]:
    """MTTA and MTTR per tier, model and kind for each time bucket (``count`` buckets up to
    the one holding ``until``, now by default); an incident counts in the bucket it opened
    in."""
    ensure_allowed(principal, Permission.READ)
    width = BUCKETS[bucket]
    try:
        since, end = bucket_span(width, count, until or api.log.now())
    except OverflowError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "until is too far from today"
        ) from None
    incidents, timeline, _ = await _facts(api.sessions)
    buckets = await asyncio.to_thread(  # off the loop: paging and consumers share it
        stats_over_time, incidents, timeline, width=width, since=since, until=end
    )
    return [BucketView(start=b.start, end=b.end, stats=b.stats) for b in buckets]


def _choice_view(runbook: RunbookChoice) -> RunbookChoiceView:
    return RunbookChoiceView(
        name=runbook.name,
        purpose=runbook.purpose,
        alert_kinds=runbook.alert_kinds,
        tier=runbook.tier,
        needs_approval=runbook.needs_approval,
        parameters=[
            ChoiceParameterView(
                name=name,
                type=p.type,
                required=p.required,
                default=p.default,
                allowed=p.allowed,
                pattern=p.pattern,
                minimum=p.minimum,
                maximum=p.maximum,
                max_length=p.max_length,
                description=p.description,
            )
            for name, p in runbook.supplied.items()
        ],
        bound=runbook.bound,
    )


def _guarded_hold(
    principal: Principal, incident: Incident, held: HeldRun, now: datetime, take_over: bool
) -> Effects:
    ensure_allowed(principal, Permission.RUN_RUNBOOK, incident.tier)
    if take_over and incident.held_by(now) not in (None, principal.name):
        ensure_allowed(principal, Permission.TAKE_OVER, incident.tier)
    return incident.hold_runbook(
        principal.name,
        held.runbook,
        held.reason,
        held.parameters,
        held.run_id,
        now,
        expires_at=held.expires_at,
        take_over=take_over,
    )


async def _translate_held(operation: Awaitable[HeldRun]) -> HeldRun:
    try:
        return await operation
    except UnknownIncident as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {error.args[0]!r}") from None
    except (DomainError, InvalidTransition) as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None


async def _translate(operation: Awaitable[Incident]) -> Incident:
    try:
        return await operation
    except UnknownIncident as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {error.args[0]!r}") from None
    except (DomainError, InvalidTransition) as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None


_ACTIONS: list[tuple[str, Permission]] = [
    ("acknowledge", Permission.ACT_ON_INCIDENT),
    ("claim", Permission.ACT_ON_INCIDENT),
    ("comment", Permission.COMMENT),
    ("escalate", Permission.ACT_ON_INCIDENT),
    ("mitigating", Permission.ACT_ON_INCIDENT),
    ("monitoring", Permission.ACT_ON_INCIDENT),
    ("resolve", Permission.ACT_ON_INCIDENT),
    ("reopen", Permission.REOPEN),
]


def _possible(incident: Incident, action: str) -> bool:
    resolved = incident.status is IncidentStatus.RESOLVED
    if action == "reopen":
        return resolved
    if resolved:
        return False
    if action == "acknowledge":
        return incident.acknowledged_at is None
    if action == "escalate":
        return incident.tier is not Tier.L3
    if action == "mitigating":
        return incident.status in (
            IncidentStatus.OPEN,
            IncidentStatus.ACKNOWLEDGED,
            IncidentStatus.MONITORING,
        )
    if action == "monitoring":
        return incident.status is IncidentStatus.MITIGATING
    return True


def _detail(incident: Incident, principal: Principal, now: datetime) -> IncidentDetail:
    actions = [
        name
        for name, permission in _ACTIONS
        if _possible(incident, name) and principal.allows(permission, incident.tier)
    ]
    return IncidentDetail(
        id=incident.id,
        model=incident.model,
        model_version=incident.model_version,
        title=incident.title,
        severity=incident.severity,
        kind=incident.kind,
        fingerprint=incident.fingerprint,
        status=incident.status,
        tier=incident.tier,
        route=incident.route.name if incident.route else None,
        runbooks=list(incident.route.runbooks) if incident.route else [],
        opened_at=incident.opened_at,
        last_seen=incident.last_seen,
        acknowledged_by=incident.acknowledged_by,
        acknowledged_at=incident.acknowledged_at,
        mitigated_at=incident.mitigated_at,
        resolved_at=incident.resolved_at,
        resolved_tier=incident.resolved_tier,
        held_by=incident.held_by(now),
        lease_expires_at=incident.lease_expires_at if incident.held_by(now) else None,
        alert_count=incident.alert_count,
        signals=[
            SignalView(
                fingerprint=s.fingerprint,
                kind=s.kind,
                severity=s.severity,
                model_version=s.model_version,
                first_seen=s.first_seen,
                last_seen=s.last_seen,
                occurrences=s.occurrences,
                recovered_at=s.recovered_at,
                active=s.active,
                summary=s.summary,
                evidence=s.evidence,
            )
            for s in incident.signals.values()
        ],
        actions=actions,
    )


def _view_of_row(row: IncidentRow, now: datetime) -> IncidentView:
    held = row.owner if row.lease_expires_at and row.lease_expires_at > now else None
    route = row.route or {}
    return IncidentView(
        id=row.id,
        model=row.model,
        model_version=row.model_version,
        title=row.title,
        severity=Severity(row.severity),
        kind=AlertKind(row.kind),
        fingerprint=row.fingerprint,
        status=IncidentStatus(row.status),
        tier=Tier(row.tier),
        route=route.get("name"),
        runbooks=list(route.get("runbooks", [])),
        opened_at=row.opened_at,
        last_seen=row.last_seen,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=row.acknowledged_at,
        mitigated_at=row.mitigated_at,
        resolved_at=row.resolved_at,
        resolved_tier=Tier(row.resolved_tier) if row.resolved_tier else None,
        held_by=held,
        lease_expires_at=row.lease_expires_at if held else None,
        alert_count=row.alert_count,
    )


def _timeline_view(row: TimelineRow) -> TimelineEntryView:
    return TimelineEntryView(
        at=row.at,
        actor=row.actor,
        action=row.action,
        from_status=row.from_status,
        to_status=row.to_status,
        from_tier=row.from_tier,
        to_tier=row.to_tier,
        details=row.details,
    )


def _alert_view(row: AlertRow) -> AlertView:
    return AlertView(
        event_id=str(row.event_id),
        type=row.type,
        incident_id=row.incident_id,
        model=row.model,
        model_version=row.model_version,
        fingerprint=row.fingerprint,
        kind=row.kind,
        severity=row.severity,
        summary=row.summary,
        evidence=row.evidence,
        producer=row.producer,
        occurred_at=row.occurred_at,
        received_at=row.received_at,
        disposition=row.disposition,
        suppressed_by=row.suppressed_by,
    )


def _silence_view(row: SilenceRow, now: datetime) -> SilenceView:
    return SilenceView(
        id=row.id,
        matcher=Matcher.model_validate(row.matcher),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        reason=row.reason,
        active=row.starts_at <= now < row.ends_at,
        expired_by=row.expired_by,
    )
