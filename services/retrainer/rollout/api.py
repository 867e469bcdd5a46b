"""The rollout API: list promotion requests and decide them as a person.

Every route needs a caller (:mod:`services.retrainer.callers`); deciding needs role ``l2`` or
higher, and the name on ``model.approved`` / ``model.rejected`` is the identity provider's, never
one from the request. Errors beyond the callers' 401 / 403 / 503: 404 for an unknown request, 409
when the request is decided or expired, or the approver asked for the retrain.

The routes are module-level functions on :data:`router`; :func:`install_rollout_api` gives an app
the governance they act on (:data:`Api`), and the caller comes from
:data:`~services.retrainer.callers.Person`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.retrainer.callers import Person
from services.retrainer.rollout.canary import Rollout
from services.retrainer.rollout.governance import (
    Evaluation,
    Governance,
    PromotionView,
    UnknownPromotion,
)
from services.retrainer.rollout.promotions import PromotionRefused, PromotionState
from services.runtime.app_state import AppState
from services.runtime.identity import Identity

__all__ = ["Api", "DecisionBody", "PromotionOut", "RolloutApi", "install_rollout_api", "router"]


class DecisionBody(BaseModel):
    """A decision's comment (the decider is the token's owner)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    comment: str = Field(min_length=1, max_length=2000, examples=["gate passed, recall +0.02"])


class PromotionOut(BaseModel):
    """A promotion request, its decision, the gate's figures, and the candidate's rollout."""

    request_id: str
    model: str
    version: int
    evaluation_id: str
    requested_by: str
    requesters: list[str]
    created_at: datetime
    expires_at: datetime
    summary: str
    state: PromotionState
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    incident_id: str | None
    rollout: Rollout | None
    rollout_reason: str | None
    rollout_at: datetime | None
    champion_version: int | None
    evidence: dict[str, Any] = Field(description="The gate's figures (the evaluation record).")

    @classmethod
    def of(cls, view: PromotionView, evaluation: Evaluation | None) -> PromotionOut:
        promotion = view.promotion
        return cls(
            request_id=promotion.request_id,
            model=promotion.model,
            version=promotion.version,
            evaluation_id=promotion.evaluation_id,
            requested_by=promotion.requested_by,
            requesters=sorted(promotion.requesters),
            created_at=promotion.created_at,
            expires_at=promotion.expires_at,
            summary=promotion.summary,
            state=promotion.state,
            decided_by=promotion.decided_by,
            decided_at=promotion.decided_at,
            comment=promotion.comment,
            incident_id=promotion.incident_id,
            rollout=view.rollout,
            rollout_reason=view.rollout_reason,
            rollout_at=view.rollout_at,
            champion_version=view.champion_version,
            evidence=evaluation.figures if evaluation is not None else {},
        )


@dataclass(frozen=True)
class RolloutApi:
    """What the promotion routes act on: the governance that keeps and decides requests."""

    governance: Governance


_SLOT = AppState[RolloutApi]("rollout_api")
Api = Annotated[RolloutApi, Depends(_SLOT)]
"""The :class:`RolloutApi` the app was given by :func:`install_rollout_api`."""

# Published under the retraining tag, as before the rooms were split: the API's grouping in its
# OpenAPI document is unchanged.
router = APIRouter(tags=["retraining"])


def install_rollout_api(app: FastAPI, *, governance: Governance) -> None:
    """Add the promotion routes and their error mapping to an app (the caller is checked as
    :func:`~services.retrainer.callers.install_callers` set up on the app)."""
    _SLOT.put(app, RolloutApi(governance))
    app.include_router(router)

    async def refused(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, PromotionRefused)
        return JSONResponse({"detail": str(error)}, error.status)

    async def not_found(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 404)

    app.add_exception_handler(PromotionRefused, refused)
    app.add_exception_handler(UnknownPromotion, not_found)


async def _out(api: RolloutApi, view: PromotionView) -> PromotionOut:
    return PromotionOut.of(view, await api.governance.evaluation(view.promotion.evaluation_id))


async def _decide(
    api: RolloutApi, request_id: str, who: Identity, body: DecisionBody, approve: bool
) -> PromotionOut:
    assert who.role is not None  # a Person
    view = await api.governance.decide(
        request_id, approve=approve, person=who.name, role=who.role, comment=body.comment
    )
    return await _out(api, view)


@router.get("/promotions")
async def list_promotions(
    _: Person,
    api: Api,
    model: str | None = None,
    state: PromotionState | None = None,
    incident_id: str | None = None,
) -> list[PromotionOut]:
    """Promotion requests, newest first (any valid token)."""
    views = await api.governance.promotions(model=model, state=state, incident_id=incident_id)
    return [await _out(api, view) for view in views]


@router.get("/promotions/{request_id}")
async def show_promotion(_: Person, request_id: Annotated[str, Path()], api: Api) -> PromotionOut:
    """One promotion request with the gate's figures."""
    return await _out(api, await api.governance.promotion(request_id))


@router.post(
    "/promotions/{request_id}/approve",
    responses={
        409: {"description": "The request is already decided or expired, or the rules forbid it."}
    },
)
async def approve(request_id: str, who: Person, body: DecisionBody, api: Api) -> PromotionOut:
    """Approve a candidate (role l2 or higher, not a requester of its retrain): it is
    deployed as challenger on the canary share of traffic."""
    return await _decide(api, request_id, who, body, approve=True)


@router.post(
    "/promotions/{request_id}/reject",
    responses={
        409: {"description": "The request is already decided or expired, or the rules forbid it."}
    },
)
async def reject(request_id: str, who: Person, body: DecisionBody, api: Api) -> PromotionOut:
    """Reject a candidate (same rules as approving)."""
    return await _decide(api, request_id, who, body, approve=False)
