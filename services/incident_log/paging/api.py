"""Paging's HTTP API: people and contacts, schedules and overrides, who is on call, what each
incident paged, and the acknowledge links pages carry.

People, contacts and schedules are managed by ``admin``; anyone signed in reads schedules and who
is on call; a responder (``l1`` or higher) may add an override that puts *themselves* on call.
Acknowledge links need no token: the signed link is the credential, ``GET`` only shows what it
would do (mail scanners fetch links) and ``POST`` does it, once.
"""

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Annotated, Self

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, status
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.incidents import Tier
from contracts.notifications import Channel
from services.incident_log.auth import Caller, Principal, ensure_allowed
from services.incident_log.domain import ClaimConflict, DomainError, Effects, Incident
from services.incident_log.domain import TimelineEntry as Entry
from services.incident_log.lifecycle import InvalidTransition
from services.incident_log.paging.links import LinkExpired, LinkInvalid, read_link_token
from services.incident_log.paging.schedules import (
    NAME_PATTERN,
    Layer,
    OnCall,
    Override,
    Schedule,
    on_call,
)
from services.incident_log.paging.store import PagingStore
from services.incident_log.paging.tables import (
    ContactRow,
    NotificationRow,
    OverrideRow,
    PersonRow,
    ScheduleRow,
)
from services.incident_log.permissions import Permission
from services.incident_log.service import IncidentLog, UnknownIncident
from services.runtime.app_state import AppState
from services.runtime.database import Sessions

__all__ = ["PagingApi", "install_paging_api", "router"]

_URL_PATTERN = r"^https?://[^\s]{1,2000}$"
_EMAIL_PATTERN = r"^[^@\s]{1,200}@[^@\s]{1,200}$"


# -- bodies and views --------------------------------------------------------------------------


class PersonBody(BaseModel):
    """A person to create or update."""

    display_name: str | None = Field(default=None, max_length=200)


class ContactBody(BaseModel):
    """A way to reach a person. Webhooks get a signing secret if none is given; a pager contact's
    secret is its PagerDuty routing key."""

    channel: Channel
    address: str = Field(min_length=1, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=200)

    @model_validator(mode="after")
    def _address_fits_channel(self) -> Self:
        pattern = _EMAIL_PATTERN if self.channel is Channel.EMAIL else _URL_PATTERN
        if not re.fullmatch(pattern, self.address):
            kind = "an e-mail address" if self.channel is Channel.EMAIL else "an http(s) URL"
            raise ValueError(f"the address of a {self.channel.value} contact must be {kind}")
        if self.channel is Channel.PAGERDUTY and not self.secret:
            raise ValueError("a pagerduty contact needs its routing key as secret")
        return self


class ContactView(BaseModel):
    """A contact; the secret is shown only when it is created."""

    id: str
    person: str
    channel: Channel
    address: str
    secret: str | None = None


class PersonView(BaseModel):
    """A person and their contacts."""

    name: str
    display_name: str | None
    contacts: list[ContactView]


class ScheduleBody(BaseModel):
    """A schedule's layers (later layers win where they have someone) and its tier."""

    tier: Tier | None = None
    layers: list[Layer] = Field(min_length=1, max_length=20)


class OverrideBody(BaseModel):
    """Someone covers a schedule from ``starts_at`` to ``ends_at`` (at most 31 days)."""

    person: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    starts_at: AwareDatetime
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.starts_at < _EARLIEST or self.ends_at > _LATEST:
            raise ValueError("give times between 2000 and 2199")
        if self.ends_at - self.starts_at > timedelta(days=31):
            raise ValueError("an override lasts at most 31 days")
        return self


class OverrideView(BaseModel):
    """An override."""

    id: str
    schedule: str
    person: str
    starts_at: datetime
    ends_at: datetime
    created_by: str


class OnCallView(BaseModel):
    """Who a schedule has on call at a moment."""

    schedule: str
    tier: Tier | None
    person: str | None
    layer: str | None
    override: str | None
    until: datetime | None


class ScheduleView(BaseModel):
    """A schedule, who it has on call, and its overrides to come."""

    name: str
    tier: Tier | None
    layers: list[Layer]
    on_call: OnCallView
    overrides: list[OverrideView]


class NotificationView(BaseModel):
    """One notification of an incident and what became of it."""

    key: str
    person: str
    channel: str | None
    reason: str
    tier: str
    status: str
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None


# -- routes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PagingApi:
    """What the routes act on: the database, the incident log (an acknowledge link acts on an
    incident), and what to call once a link's acknowledgement is committed (to wake the
    dispatcher and the relay)."""

    sessions: Sessions
    log: IncidentLog
    committed: Callable[[], None] = lambda: None


_SLOT = AppState[PagingApi]("paging_api")
Api = Annotated[PagingApi, Depends(_SLOT)]
"""The :class:`PagingApi` the app was given by :func:`install_paging_api`."""

_NamePath = Annotated[str, Path(min_length=1, max_length=100, pattern=NAME_PATTERN)]

router = APIRouter()
"""Paging's routes (no scope names one: a service's token is refused them all)."""


def install_paging_api(
    app: FastAPI,
    sessions: Sessions,
    log: IncidentLog,
    *,
    committed: Callable[[], None] = lambda: None,
) -> None:
    """Add paging's routes to an app (the caller is checked as
    :func:`~services.incident_log.auth.install_authentication` set up on the app)."""
    _SLOT.put(app, PagingApi(sessions, log, committed))
    app.include_router(router)


def _admin(principal: Principal) -> None:
    ensure_allowed(principal, Permission.MANAGE_PAGING)


# -- people ------------------------------------------------------------------------------


@router.get("/people", tags=["paging"])
async def list_people(api: Api, principal: Caller) -> list[PersonView]:
    """Everyone Vigil can page, with their contacts (admin)."""
    _admin(principal)
    async with api.sessions() as session:
        store = PagingStore(session)
        contacts = await store.contacts()
        return [
            PersonView(
                name=person.name,
                display_name=person.display_name,
                contacts=[_contact_view(c) for c in contacts if c.person == person.name],
            )
            for person in await store.people()
        ]


@router.put("/people/{name}", tags=["paging"])
async def put_person(api: Api, name: _NamePath, principal: Caller, body: PersonBody) -> PersonView:
    """Create or update a person (admin); the name is the one their API token carries."""
    _admin(principal)
    async with api.sessions() as session, session.begin():
        row = await session.get(PersonRow, name, with_for_update=True)
        row = row or PersonRow(name=name, created_at=api.log.now())
        row.display_name = body.display_name
        session.add(row)
        contacts = await PagingStore(session).contacts(name)
    return PersonView(
        name=name,
        display_name=body.display_name,
        contacts=[_contact_view(c) for c in contacts],
    )


@router.delete("/people/{name}", tags=["paging"], status_code=status.HTTP_204_NO_CONTENT)
async def delete_person(api: Api, name: _NamePath, principal: Caller) -> None:
    """Remove a person and their contacts (admin); they are paged no more."""
    _admin(principal)
    async with api.sessions() as session, session.begin():
        row = await session.get(PersonRow, name, with_for_update=True)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {name!r}")
        for contact in await PagingStore(session).contacts(name):
            await session.delete(contact)
        await session.delete(row)


@router.post("/people/{name}/contacts", tags=["paging"], status_code=status.HTTP_201_CREATED)
async def add_contact(
    api: Api, name: _NamePath, principal: Caller, body: ContactBody
) -> ContactView:
    """Add a contact method (admin). A webhook's signing secret is returned once."""
    _admin(principal)
    secret = body.secret
    if secret is None and body.channel is Channel.WEBHOOK:
        secret = f"whsec_{secrets.token_urlsafe(24)}"
    async with api.sessions() as session, session.begin():
        if await session.get(PersonRow, name) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {name!r}")
        row = ContactRow(
            id=f"ct-{secrets.token_hex(6)}",
            person=name,
            channel=body.channel.value,
            address=body.address,
            secret=secret,
            created_at=api.log.now(),
        )
        session.add(row)
    return _contact_view(row, with_secret=True)


@router.delete(
    "/people/{name}/contacts/{contact_id}",
    tags=["paging"],
    status_code=status.HTTP_204_NO_CONTENT,
)
async def remove_contact(api: Api, name: _NamePath, contact_id: str, principal: Caller) -> None:
    """Remove a contact method (admin)."""
    _admin(principal)
    async with api.sessions() as session, session.begin():
        row = await session.get(ContactRow, contact_id, with_for_update=True)
        if row is None or row.person != name:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{name!r} has no {contact_id!r}")
        await session.delete(row)


# -- schedules ---------------------------------------------------------------------------


@router.get("/schedules", tags=["paging"])
async def list_schedules(
    api: Api, principal: Caller, at: AwareDatetime | None = None
) -> list[ScheduleView]:
    """Every schedule with who it has on call (now, or at ``at``)."""
    ensure_allowed(principal, Permission.READ)
    when = _moment(at, api.log.now())
    async with api.sessions() as session:
        store = PagingStore(session)
        overrides = await store.overrides(ending_after=when)
        return [
            _schedule_view(schedule, overrides, when)
            for schedule in (await store.schedules()).values()
        ]


@router.get("/schedules/{name}", tags=["paging"])
async def get_schedule(
    api: Api, name: _NamePath, principal: Caller, at: AwareDatetime | None = None
) -> ScheduleView:
    """A schedule, who it has on call (now, or at ``at``) and its overrides to come."""
    ensure_allowed(principal, Permission.READ)
    when = _moment(at, api.log.now())
    async with api.sessions() as session:
        store = PagingStore(session)
        schedule = (await store.schedules()).get(name)
        if schedule is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {name!r}")
        return _schedule_view(schedule, await store.overrides(ending_after=when), when)


@router.put("/schedules/{name}", tags=["paging"])
async def put_schedule(
    api: Api, name: _NamePath, principal: Caller, body: ScheduleBody
) -> ScheduleView:
    """Create or replace a schedule (admin)."""
    _admin(principal)
    schedule = Schedule(name=name, tier=body.tier, layers=body.layers)
    now = api.log.now()
    async with api.sessions() as session, session.begin():
        row = await session.get(ScheduleRow, name, with_for_update=True)
        row = row or ScheduleRow(name=name, layers=[], updated_at=now, updated_by="")
        row.tier = body.tier.value if body.tier else None
        row.layers = [layer.model_dump(mode="json") for layer in body.layers]
        row.updated_at, row.updated_by = now, principal.name
        session.add(row)
        overrides = await PagingStore(session).overrides(ending_after=now)
    return _schedule_view(schedule, overrides, now)


@router.delete("/schedules/{name}", tags=["paging"], status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(api: Api, name: _NamePath, principal: Caller) -> None:
    """Delete a schedule (admin)."""
    _admin(principal)
    async with api.sessions() as session, session.begin():
        row = await session.get(ScheduleRow, name, with_for_update=True)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {name!r}")
        await session.delete(row)


@router.post("/schedules/{name}/overrides", tags=["paging"], status_code=status.HTTP_201_CREATED)
async def add_override(
    api: Api, name: _NamePath, principal: Caller, body: OverrideBody
) -> OverrideView:
    """Put someone on call for a time range: admin for anyone, a responder for themselves."""
    if body.person != principal.name:
        _admin(principal)
    else:
        ensure_allowed(principal, Permission.COMMENT)  # l1 or higher
    now = api.log.now()
    if body.ends_at <= now:
        raise HTTPException(422, "the range is over already")
    async with api.sessions() as session, session.begin():
        if await session.get(ScheduleRow, name) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {name!r}")
        if await session.get(PersonRow, body.person) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {body.person!r}")
        row = OverrideRow(
            id=f"ov-{secrets.token_hex(6)}",
            schedule=name,
            person=body.person,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            created_at=now,
            created_by=principal.name,
        )
        session.add(row)
    return _override_view(row)


@router.delete(
    "/schedules/{name}/overrides/{override_id}",
    tags=["paging"],
    status_code=status.HTTP_204_NO_CONTENT,
)
async def cancel_override(api: Api, name: _NamePath, override_id: str, principal: Caller) -> None:
    """Cancel an override: admin, or the person it puts on call."""
    async with api.sessions() as session, session.begin():
        row = await session.get(OverrideRow, override_id, with_for_update=True)
        if row is None or row.schedule != name or row.cancelled_at is not None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no override {override_id!r}")
        if row.person != principal.name:
            _admin(principal)
        row.cancelled_at, row.cancelled_by = api.log.now(), principal.name
        session.add(row)


@router.get("/oncall", tags=["paging"])
async def who_is_on_call(
    api: Api, principal: Caller, at: AwareDatetime | None = None, tier: Tier | None = None
) -> list[OnCallView]:
    """Who each schedule (of one tier, if given) has on call now, or at ``at``."""
    ensure_allowed(principal, Permission.READ)
    when = _moment(at, api.log.now())
    async with api.sessions() as session:
        store = PagingStore(session)
        overrides = await store.overrides(ending_after=when)
        schedules = (await store.schedules()).values()
    return [
        _on_call_view(schedule, on_call(schedule, overrides, when))
        for schedule in sorted(schedules, key=lambda s: (s.tier or "L9", s.name))
        if tier is None or schedule.tier is tier
    ]


@router.get("/incidents/{incident_id}/notifications", tags=["paging"])
async def incident_notifications(
    api: Api, incident_id: str, principal: Caller
) -> list[NotificationView]:
    """Every notification an incident caused, and what became of it."""
    ensure_allowed(principal, Permission.READ)
    async with api.sessions() as session:
        rows = await PagingStore(session).notifications_of(incident_id)
    return [_notification_view(row) for row in rows]


# -- acknowledge links -------------------------------------------------------------------


@router.get("/ack/{token}", response_class=HTMLResponse, include_in_schema=False)
async def ack_page(api: Api, token: str) -> HTMLResponse:
    """What the link would do, with a button that does it."""
    async with api.sessions() as session, session.begin():  # the key is made on first use
        key = await PagingStore(session).link_key()
    try:
        claims = read_link_token(key, token, api.log.now())
    except (LinkInvalid, LinkExpired) as error:
        return _ack_answer(str(error), status.HTTP_400_BAD_REQUEST, error)
    form = (
        f"<p>Acknowledge incident <b>{escape(claims.incident_id)}</b> at "
        f"{claims.tier.value} as <b>{escape(claims.person)}</b>?</p>"
        f"<form method='post'><button type='submit'>Acknowledge</button></form>"
    )
    return HTMLResponse(_html("Acknowledge", form))


@router.post("/ack/{token}", response_class=HTMLResponse, include_in_schema=False)
async def ack_by_link(api: Api, token: str) -> HTMLResponse:
    """Acknowledge as the paged person, once."""
    async with api.sessions() as session, session.begin():
        key = await PagingStore(session).link_key()
    try:
        claims = read_link_token(key, token, api.log.now())
    except (LinkInvalid, LinkExpired) as error:
        return _ack_answer(str(error), status.HTTP_400_BAD_REQUEST, error)

    def acknowledge(incident: Incident, now: datetime) -> Effects:
        if incident.tier is not claims.tier:
            raise DomainError(
                f"the incident moved to {incident.tier.value} since this page; "
                f"this link was for {claims.tier.value}"
            )
        effects = incident.acknowledge(claims.person, now)
        effects.record(
            Entry(
                at=now,
                actor=claims.person,
                action="acknowledged_from_page",
                details={"notification": claims.nonce},
            )
        )
        return effects

    async def spend(session: AsyncSession, now: datetime) -> None:
        if not await PagingStore(session).spend_link(
            claims.nonce, claims.incident_id, claims.person, now
        ):
            raise _LinkUsed()

    try:
        incident = await api.log.act(claims.incident_id, acknowledge, within=spend)
    except (_LinkUsed, IntegrityError):
        return _ack_answer("this link was used already", status.HTTP_410_GONE, "used")
    except UnknownIncident:
        return _ack_answer("no such incident", status.HTTP_404_NOT_FOUND, "unknown")
    except (ClaimConflict, InvalidTransition, DomainError) as error:
        return _ack_answer(str(error), status.HTTP_409_CONFLICT, error)
    api.committed()
    return HTMLResponse(
        _html(
            "Acknowledged",
            f"<p>{escape(claims.person)} acknowledged <b>{escape(incident.id)}</b> "
            f"({escape(incident.title)}) at {incident.tier.value}. Reminders stop.</p>",
        )
    )


class _LinkUsed(Exception):
    pass


_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2199, 12, 31, tzinfo=UTC)


def _moment(at: datetime | None, now: datetime) -> datetime:
    """``at`` (or now), refused with 422 outside the years schedules can describe."""
    if at is None:
        return now
    if not _EARLIEST <= at <= _LATEST:
        raise HTTPException(422, "at: give a moment between 2000 and 2199")
    return at


def _html(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Vigil · {escape(title)}</title>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _ack_answer(message: str, code: int, why: object) -> HTMLResponse:
    titles = {
        400: "Not a valid link",
        404: "Unknown incident",
        409: "Nothing changed",
        410: "Link used",
    }
    if isinstance(why, LinkExpired):
        code, title = status.HTTP_410_GONE, "Link expired"
    else:
        title = titles.get(code, "Nothing changed")
    return HTMLResponse(
        _html(title, f"<p>{escape(message)}. Nothing was changed.</p>"), status_code=code
    )


def _contact_view(row: ContactRow, *, with_secret: bool = False) -> ContactView:
    return ContactView(
        id=row.id,
        person=row.person,
        channel=Channel(row.channel),
        address=row.address,
        secret=row.secret if with_secret else None,
    )


def _override_view(row: OverrideRow | Override) -> OverrideView:
    return OverrideView(
        id=row.id,
        schedule=row.schedule,
        person=row.person,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
    )


def _on_call_view(schedule: Schedule, now_on: OnCall) -> OnCallView:
    return OnCallView(
        schedule=schedule.name,
        tier=schedule.tier,
        person=now_on.person,
        layer=now_on.layer,
        override=now_on.override,
        until=now_on.until,
    )


def _schedule_view(schedule: Schedule, overrides: list[Override], at: datetime) -> ScheduleView:
    return ScheduleView(
        name=schedule.name,
        tier=schedule.tier,
        layers=schedule.layers,
        on_call=_on_call_view(schedule, on_call(schedule, overrides, at)),
        overrides=[_override_view(o) for o in overrides if o.schedule == schedule.name],
    )


def _notification_view(row: NotificationRow) -> NotificationView:
    return NotificationView(
        key=row.id,
        person=row.person,
        channel=row.channel,
        reason=row.reason,
        tier=row.tier,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
    )
