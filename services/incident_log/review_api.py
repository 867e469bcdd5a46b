"""The post-incident review's HTTP API: the generated document, and its action items.

``GET /incidents/{id}/review`` answers the review (:mod:`services.incident_log.review`) as data
and as Markdown (``?format=markdown`` answers the Markdown alone, ``text/markdown``);
``PUT /incidents/{id}/review/action-items`` saves the action items. A save names the version it
edits (0 for the first): a save over a version someone else saved since is refused (409), so two
people editing at once never overwrite each other unseen; the same text again is no change.
The CLI (``vigil incidents review``) and the console read these same routes.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.incident_log.auth import Caller, ensure_allowed
from services.incident_log.paging.store import PagingStore
from services.incident_log.permissions import Permission
from services.incident_log.review import (
    IncidentSummary,
    PageFact,
    ReviewEntry,
    build_review,
    review_markdown,
)
from services.incident_log.service import IncidentLog
from services.incident_log.store import IncidentStore
from services.incident_log.tables import IncidentRow, ReviewRow
from services.runtime.app_state import AppState
from services.runtime.database import Sessions

__all__ = ["MAX_ACTION_ITEMS", "ReviewApi", "install_review_api", "router"]

MAX_ACTION_ITEMS = 20_000
"""Characters of action items one review keeps."""


class ActionItemsBody(BaseModel):
    """The action items, in Markdown, and the version of them the editor started from."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    text: str = Field(max_length=MAX_ACTION_ITEMS, pattern=r"^[^\x00]*$")
    version: StrictInt = Field(ge=0, le=2**31 - 1, description="The version edited (0: none yet).")


class TierTimesView(BaseModel):
    """How fast one tier answered this incident."""

    reached: int
    mtta_seconds: float | None
    mttr_seconds: float | None


class RunView(BaseModel):
    """One runbook run and its outcome."""

    run_id: str
    runbook: str
    requested_by: str
    requested_at: datetime
    reason: str
    outcome: str
    approved_by: str | None
    exit_code: int | None
    verify_exit_code: int | None


class DecisionView(BaseModel):
    """A decision on the timeline."""

    at: datetime
    actor: str
    action: str
    details: dict[str, object]


class PagedView(BaseModel):
    """One person paged, and how."""

    person: str
    tiers: list[str]
    channels: list[str]
    reasons: list[str]
    outcomes: list[str]


class ReviewView(BaseModel):
    """An incident's review: its parts, the action items and their version, and the Markdown."""

    incident_id: str
    tiers: dict[str, TierTimesView]
    runbooks: list[RunView]
    decisions: list[DecisionView]
    paged: list[PagedView]
    action_items: str
    version: int
    updated_by: str | None
    updated_at: datetime | None
    markdown: str


@dataclass(frozen=True)
class ReviewApi:
    """What the routes act on: the incident log and its database."""

    log: IncidentLog
    sessions: Sessions


_SLOT = AppState[ReviewApi]("review_api")
Api = Annotated[ReviewApi, Depends(_SLOT)]
"""The :class:`ReviewApi` the app was given by :func:`install_review_api`."""

router = APIRouter(tags=["reviews"])


def install_review_api(app: FastAPI, log: IncidentLog, sessions: Sessions) -> None:
    """Add the review's routes to an app, bound to one incident log (the caller is checked as
    :func:`~services.incident_log.auth.install_authentication` set up on the app)."""
    _SLOT.put(app, ReviewApi(log, sessions))
    app.include_router(router)


@router.get(
    "/incidents/{incident_id}/review",
    response_model=ReviewView,
    responses={200: {"content": {"text/markdown": {}}}, 404: {"description": "No incident."}},
)
async def get_review(
    api: Api,
    incident_id: str,
    principal: Caller,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> ReviewView | PlainTextResponse:
    """The post-incident review of an incident (whatever its state)."""
    ensure_allowed(principal, Permission.READ)
    view = await _review(api.sessions, incident_id)
    if format == "markdown":
        return PlainTextResponse(view.markdown, media_type="text/markdown; charset=utf-8")
    return view


@router.put(
    "/incidents/{incident_id}/review/action-items",
    responses={
        404: {"description": "No incident."},
        409: {"description": "Someone saved another version since."},
    },
)
async def save_action_items(
    api: Api, incident_id: str, principal: Caller, body: ActionItemsBody
) -> ReviewView:
    """Save the review's action items over the version the editor started from."""
    ensure_allowed(principal, Permission.EDIT_REVIEW)
    try:
        async with api.sessions() as session, session.begin():
            if await session.get(IncidentRow, incident_id) is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
            row = (
                await session.exec(
                    select(ReviewRow).where(ReviewRow.incident_id == incident_id).with_for_update()
                )
            ).first()
            current = row.version if row else 0
            retry = (
                row is not None
                and row.action_items == body.text
                and body.version in (current, current - 1)
            )  # the save that made this version, sent again: nothing changes
            if not retry:
                if body.version != current:
                    raise HTTPException(
                        status.HTTP_409_CONFLICT,
                        f"the action items are at version {current} (saved by "
                        f"{row.updated_by if row else 'nobody'}), not {body.version}: reload, "
                        "merge and save again",
                    )
                now = api.log.now()
                row = row or ReviewRow(
                    incident_id=incident_id,
                    action_items="",
                    version=0,
                    updated_by=principal.name,
                    updated_at=now,
                )
                row.action_items = body.text
                row.version = current + 1
                row.updated_by = principal.name
                row.updated_at = now
                session.add(row)
    except IntegrityError:
        # Two first saves at once: both found no row to lock, and the second insert lost.
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "the action items were saved by someone else at the same moment: reload, merge "
            "and save again",
        ) from None
    return await _review(api.sessions, incident_id)


async def _review(sessions: Sessions, incident_id: str) -> ReviewView:
    async with sessions() as session:
        incident = await session.get(IncidentRow, incident_id)
        if incident is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
        timeline = await IncidentStore(session).timeline(incident_id)
        pages = await PagingStore(session).notifications_of(incident_id)
        saved = await session.get(ReviewRow, incident_id)
    review = build_review(
        IncidentSummary(
            id=incident.id,
            title=incident.title,
            model=incident.model,
            model_version=incident.model_version,
            kind=incident.kind,
            severity=incident.severity,
            status=incident.status,
            tier=incident.tier,
            opened_at=incident.opened_at,
            resolved_at=incident.resolved_at,
            resolved_tier=incident.resolved_tier,
        ),
        [
            ReviewEntry(e.at, e.actor, e.action, e.to_status, e.to_tier, dict(e.details))
            for e in timeline
        ],
        [PageFact(p.person, p.channel, p.tier, p.reason, p.status, p.created_at) for p in pages],
        saved.action_items if saved else "",
    )
    return ReviewView(
        incident_id=incident_id,
        tiers={tier: TierTimesView(**vars(times)) for tier, times in review.tiers.items()},
        runbooks=[RunView(**vars(run)) for run in review.runbooks],
        decisions=[
            DecisionView(at=e.at, actor=e.actor, action=e.action, details=e.details)
            for e in review.decisions
        ],
        paged=[
            PagedView(
                person=person,
                tiers=sorted({p.tier for p in pages_of}),
                channels=sorted({p.channel or "none" for p in pages_of}),
                reasons=sorted({p.reason for p in pages_of}),
                outcomes=sorted({p.status for p in pages_of}),
            )
            for person, pages_of in review.paged.items()
        ],
        action_items=review.action_items,
        version=saved.version if saved else 0,
        updated_by=saved.updated_by if saved else None,
        updated_at=saved.updated_at if saved else None,
        markdown=review_markdown(review),
    )
