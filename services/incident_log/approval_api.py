"""HTTP routes of held runbook runs: list them, approve or reject one.

``POST /incidents/{id}/runbooks/{run_id}/approve`` publishes the signed request with
``approved_by``; ``.../reject`` closes it. Both need ``l2`` and a role at the runbook's and the
incident's tier; the requester may reject (withdraw) their own run but never approve it (403).
A run already decided, or whose approval expired, answers 409; an unknown one 404.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from contracts.incidents import Tier
from services.incident_log.approval_store import ApprovalStore
from services.incident_log.approvals import (
    ApprovalState,
    HeldRun,
    NotDecidable,
    SelfApproval,
)
from services.incident_log.auth import Caller, Principal, ensure_allowed
from services.incident_log.domain import DomainError, Incident
from services.incident_log.lifecycle import InvalidTransition
from services.incident_log.permissions import Permission, role_allows
from services.incident_log.service import IncidentLog, UnknownHeldRun, UnknownIncident
from services.incident_log.store import IncidentStore
from services.runtime.app_state import AppState
from services.runtime.database import Sessions
from services.runtime.scopes import Scope

__all__ = ["ApprovalApi", "HeldRunView", "install_approval_api", "router"]


class DecisionBody(BaseModel):
    """An approval or rejection, with an optional reason for the timeline."""

    model_config = ConfigDict(allow_inf_nan=False)

    reason: str | None = Field(default=None, min_length=1, max_length=2_000)


class HeldRunView(BaseModel):
    """A runbook run held for approval, and its decision."""

    run_id: str
    incident_id: str
    runbook: str
    parameters: dict[str, str | int | float | bool]
    reason: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    state: ApprovalState
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    runbook_tier: Tier = Field(description="The lowest tier allowed to run the runbook.")
    can_approve: bool = Field(description="Whether the caller may approve it now.")


@dataclass(frozen=True)
class ApprovalApi:
    """What the routes act on: the incident log and its database."""

    log: IncidentLog
    sessions: Sessions


_SLOT = AppState[ApprovalApi]("approval_api")
Api = Annotated[ApprovalApi, Depends(_SLOT)]
"""The :class:`ApprovalApi` the app was given by :func:`install_approval_api`."""

router = APIRouter(tags=["approvals"])


def install_approval_api(app: FastAPI, log: IncidentLog, sessions: Sessions) -> None:
    """Add the held-run routes to an app, bound to one incident log (the caller is checked as
    :func:`~services.incident_log.auth.install_authentication` set up on the app)."""
    _SLOT.put(app, ApprovalApi(log, sessions))
    app.include_router(router)


def _view(
    api: ApprovalApi, held: HeldRun, principal: Principal, incident_tier: Tier | None
) -> HeldRunView:
    tier = api.log.approvals.tier_of(held.runbook)
    return HeldRunView(
        **vars(held),
        runbook_tier=tier,
        can_approve=held.state is ApprovalState.PENDING
        and held.requested_by.casefold() != principal.name.casefold()
        and _may_decide(principal, tier, incident_tier),
    )


@router.get("/incidents/{incident_id}/approvals")
async def incident_approvals(api: Api, incident_id: str, principal: Caller) -> list[HeldRunView]:
    """An incident's held runbook runs, oldest first, pending or decided."""
    ensure_allowed(principal, Permission.READ, scope=Scope.INCIDENTS_READ)
    async with api.sessions() as session:
        incident = await IncidentStore(session).get(incident_id, for_update=False)
        if incident is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}")
        held = await ApprovalStore(session).of_incident(incident_id)
    return [_view(api, run, principal, incident.tier) for run in held]


@router.get("/approvals")
async def pending_approvals(
    api: Api, principal: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[HeldRunView]:
    """Runbook runs waiting for approval on any incident, oldest first."""
    ensure_allowed(principal, Permission.READ, scope=Scope.INCIDENTS_READ)
    async with api.sessions() as session:
        held = await ApprovalStore(session).pending(limit)
    return [_view(api, run, principal, None) for run in held]


async def _decide(
    api: ApprovalApi,
    incident_id: str,
    run_id: str,
    principal: Principal,
    decision: ApprovalState,
    body: DecisionBody | None,
) -> HeldRunView:
    def allowed(incident: Incident, held: HeldRun) -> None:
        # A decision is a person's: a service's scoped token never approves nor withdraws.
        ensure_allowed(principal, Permission.APPROVE_RUNBOOK)
        assert principal.role is not None
        withdrawing = (
            decision is ApprovalState.REJECTED
            and held.requested_by.casefold() == principal.name.casefold()
        )
        if withdrawing:
            return
        ensure_allowed(principal, Permission.ACT_ON_INCIDENT, incident.tier)
        tier = api.log.approvals.tier_of(held.runbook)
        if not role_allows(principal.role, Permission.ACT_ON_INCIDENT, tier):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value} may not decide on runbook {held.runbook!r} "
                f"(it runs at tier {tier.value}; needs {tier.value.lower()} or higher)",
            )

    reason = body.reason if body else None
    try:
        held = await api.log.decide_runbook(
            incident_id, run_id, decision, principal.name, reason, allowed=allowed
        )
    except UnknownIncident:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id!r}") from None
    except UnknownHeldRun:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"incident {incident_id!r} holds no run {run_id!r} for approval",
        ) from None
    except SelfApproval as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
    except (NotDecidable, DomainError, InvalidTransition) as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    return _view(api, held, principal, None)


@router.post("/incidents/{incident_id}/runbooks/{run_id}/approve")
async def approve(
    api: Api, incident_id: str, run_id: str, principal: Caller, body: DecisionBody | None = None
) -> HeldRunView:
    """Approve a held run (a second person): the signed request goes to the runner."""
    return await _decide(api, incident_id, run_id, principal, ApprovalState.APPROVED, body)


@router.post("/incidents/{incident_id}/runbooks/{run_id}/reject")
async def reject(
    api: Api, incident_id: str, run_id: str, principal: Caller, body: DecisionBody | None = None
) -> HeldRunView:
    """Reject a held run (or withdraw one's own): it never runs."""
    return await _decide(api, incident_id, run_id, principal, ApprovalState.REJECTED, body)


def _may_decide(principal: Principal, runbook_tier: Tier, incident_tier: Tier | None) -> bool:
    return principal.role is not None and (
        role_allows(principal.role, Permission.APPROVE_RUNBOOK)
        and role_allows(principal.role, Permission.ACT_ON_INCIDENT, runbook_tier)
        and (
            incident_tier is None
            or role_allows(principal.role, Permission.ACT_ON_INCIDENT, incident_tier)
        )
    )
