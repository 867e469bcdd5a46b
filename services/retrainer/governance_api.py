"""The retraining API: ask for a retrain, read runs and evaluation records, and decide promotion
requests as a person.

Deciding, asking and listing promotions need a caller (:mod:`.callers`): the name on
``model.approved`` / ``model.rejected`` is the identity provider's, never one from the request.
Errors beyond the callers' 401 / 403 / 503: 404 for an unknown id, 409 when the request is
decided, expired, or the approver asked for the retrain, or when an ask's cause was already
retrained for or conflicts with the queued run's parameters, 422 for a malformed body or training
parameters that make no recipe. Every ask, refused or not, is also answered on ``models``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from contracts.registry import DatasetChanges, DatasetRef
from contracts.retraining import RetrainRefusal, RetrainTrigger
from contracts.values import FiniteJson, ModelName
from services.retrainer.callers import Caller, Person, require_role
from services.retrainer.canary import Rollout
from services.retrainer.governance import Evaluation, Governance, PromotionView, UnknownPromotion
from services.retrainer.live_examples import LiveExamples
from services.retrainer.promotions import (
    APPROVER_ROLE,
    PromotionRefused,
    PromotionState,
)
from services.retrainer.runs import AskRefused, RetrainRuns, Run, UnknownModel
from services.retrainer.triggers import RetrainAsk
from services.runtime.identity import Identity
from services.runtime.scopes import Scope

__all__ = [
    "AskBody",
    "AskOut",
    "DecisionBody",
    "EvaluationOut",
    "LiveDataOut",
    "PromotionOut",
    "RunOut",
    "install_governance_api",
]


class DecisionBody(BaseModel):
    """A decision's comment (the decider is the token's owner)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    comment: str = Field(min_length=1, max_length=2000, examples=["gate passed, recall +0.02"])


class AskBody(BaseModel):
    """Ask for a retrain by hand."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: ModelName
    reason: str = Field(min_length=1, max_length=2000, examples=["new labels from the clinic"])
    cause: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Deduplication key (default: a new one, so the ask is never merged).",
    )
    incident_id: str | None = Field(default=None, examples=["inc-000042"])
    parameters: dict[str, FiniteJson] | None = Field(
        default=None,
        description="Training parameters to change for this run.",
        examples=[{"C": 0.5}],
    )
    on_behalf_of: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description=(
            "The person the caller asks for, recorded as the requester (403 unless the caller's "
            "token may act for others, as the runbook runner's may)."
        ),
    )


class AskOut(BaseModel):
    """What became of an ask."""

    admission: str
    run_id: str | None
    reason: str
    not_before: datetime | None


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


class EvaluationOut(BaseModel):
    """The gate's immutable record."""

    evaluation_id: str
    model: str
    candidate_version: int
    champion_version: int | None
    dataset_digest: str
    passed: bool
    figures: dict[str, Any]
    failures: list[str]
    summary: str
    incident_id: str | None
    run_id: str
    created_at: datetime


class RunOut(BaseModel):
    """A retraining run: its causes, data, steps and outcome."""

    run_id: str
    model: str
    state: str
    trigger: RetrainTrigger
    causes: list[str]
    requested_by: str
    requesters: list[str]
    reason: str
    incident_id: str | None
    parameters: dict[str, JsonValue] | None
    requested_at: datetime
    not_before: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dataset: DatasetRef | None
    candidate_version: int | None
    evaluation_id: str | None
    cached_steps: list[str]
    failure: str | None
    dataset_changes: DatasetChanges | None
    asks: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, run: Run, asks: list[dict[str, Any]] | None = None) -> RunOut:
        return cls(
            run_id=run.run_id,
            model=run.model,
            state=run.state.value,
            trigger=run.trigger,
            causes=run.causes,
            requested_by=run.requested_by,
            requesters=run.requesters,
            reason=run.reason,
            incident_id=run.incident_id,
            parameters=run.parameters,
            requested_at=run.requested_at,
            not_before=run.not_before,
            started_at=run.started_at,
            finished_at=run.finished_at,
            dataset=run.dataset,
            candidate_version=run.candidate_version,
            evaluation_id=run.evaluation_id,
            cached_steps=run.cached_steps,
            failure=run.failure,
            dataset_changes=run.dataset_changes,
            asks=asks or [],
        )


class LiveDataOut(BaseModel):
    """How much labelled live data the retrainer holds for a model."""

    model: str
    labelled: int = Field(description="Predictions joined with their label (usable rows).")
    rows: int = Field(description="All rows kept, joined or still waiting.")


def install_governance_api(
    app: FastAPI,
    *,
    runs: RetrainRuns,
    governance: Governance,
    live: LiveExamples,
    clock: Callable[[], datetime],
) -> None:
    """Add the retraining routes and their error mapping to an app."""
    router = APIRouter(tags=["retraining"])

    async def out(view: PromotionView) -> PromotionOut:
        return PromotionOut.of(view, await governance.evaluation(view.promotion.evaluation_id))

    @router.get("/promotions")
    async def list_promotions(
        _: Person,
        model: str | None = None,
        state: PromotionState | None = None,
        incident_id: str | None = None,
    ) -> list[PromotionOut]:
        """Promotion requests, newest first (any valid token)."""
        views = await governance.promotions(model=model, state=state, incident_id=incident_id)
        return [await out(view) for view in views]

    @router.get("/promotions/{request_id}")
    async def show_promotion(_: Person, request_id: Annotated[str, Path()]) -> PromotionOut:
        """One promotion request with the gate's figures."""
        return await out(await governance.promotion(request_id))

    async def decide(
        request_id: str, who: Identity, body: DecisionBody, approve: bool
    ) -> PromotionOut:
        assert who.role is not None  # a Person
        view = await governance.decide(
            request_id, approve=approve, person=who.name, role=who.role, comment=body.comment
        )
        return await out(view)

    @router.post(
        "/promotions/{request_id}/approve",
        responses={
            409: {
                "description": "The request is already decided or expired, or the rules forbid it."
            }
        },
    )
    async def approve(request_id: str, who: Person, body: DecisionBody) -> PromotionOut:
        """Approve a candidate (role l2 or higher, not a requester of its retrain): it is
        deployed as challenger on the canary share of traffic."""
        return await decide(request_id, who, body, approve=True)

    @router.post(
        "/promotions/{request_id}/reject",
        responses={
            409: {
                "description": "The request is already decided or expired, or the rules forbid it."
            }
        },
    )
    async def reject(request_id: str, who: Person, body: DecisionBody) -> PromotionOut:
        """Reject a candidate (same rules as approving)."""
        return await decide(request_id, who, body, approve=False)

    @router.post(
        "/retrains",
        status_code=202,
        responses={404: {"description": "The registry has no such model."}},
    )
    async def ask(who: Caller, body: AskBody) -> AskOut:
        """Ask for a retrain (role l2 or higher, or scope retrain:request); the caller is recorded
        as the requester, or the person it names in ``on_behalf_of`` (then "via" the caller) if
        it may act for others (scope retrain:on-behalf)."""
        require_role(who, APPROVER_ROLE, "ask for a retrain", scope=Scope.RETRAIN_REQUEST)
        asker, via = who.name, None
        if body.on_behalf_of is not None:
            if not who.acts_for_others:
                raise HTTPException(
                    403,
                    f"{who.name} may not ask on behalf of someone else "
                    "(only a token allowed to act for others, such as the runbook runner's)",
                )
            asker, via = body.on_behalf_of, who.name
        admission = await runs.ask(
            RetrainAsk(
                model=body.model,
                cause=body.cause or f"manual:{uuid.uuid4().hex[:12]}",
                trigger=RetrainTrigger.MANUAL,
                requested_by=asker,
                reason=body.reason,
                at=clock(),
                incident_id=body.incident_id,
                parameters=body.parameters,
                via=via,
            )
        )
        return AskOut(
            admission=admission.kind.value,
            run_id=admission.run_id,
            reason=admission.reason,
            not_before=admission.not_before,
        )

    @router.get("/retrains")
    async def list_runs(
        model: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[RunOut]:
        """Retraining runs, newest first."""
        return [RunOut.of(run) for run in await runs.recent(model=model, limit=limit)]

    @router.get("/retrains/{run_id}")
    async def show_run(run_id: str) -> RunOut:
        """A run with the asks merged into it and how its data changed."""
        run = await runs.get(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}")
        return RunOut.of(run, await runs.asks(run_id))

    @router.get("/live-data/{model}")
    async def live_data(model: str) -> LiveDataOut:
        """Labelled live examples kept for a model (the next snapshot's live rows, at most)."""
        labelled, rows = await live.count(model)
        return LiveDataOut(model=model, labelled=labelled, rows=rows)

    @router.get("/evaluations/{evaluation_id}")
    async def show_evaluation(evaluation_id: str) -> EvaluationOut:
        """The gate's record: both versions, the data digest, the thresholds and every figure."""
        evaluation = await governance.evaluation(evaluation_id)
        if evaluation is None:
            raise HTTPException(404, f"no evaluation {evaluation_id!r}")
        return EvaluationOut(**vars(evaluation))

    app.include_router(router)

    async def refused(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, PromotionRefused)
        return JSONResponse({"detail": str(error)}, error.status)

    async def not_found(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 404)

    async def unprocessable(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AskRefused)
        conflict = error.refusal in (
            RetrainRefusal.ALREADY_RETRAINED,
            RetrainRefusal.CONFLICTING_PARAMETERS,
        )
        return JSONResponse({"detail": str(error)}, 409 if conflict else 422)

    app.add_exception_handler(PromotionRefused, refused)
    app.add_exception_handler(UnknownPromotion, not_found)
    app.add_exception_handler(UnknownModel, not_found)
    app.add_exception_handler(AskRefused, unprocessable)
