"""The retraining API: ask for a retrain, read runs, live data and evaluation records.

Asking needs a caller (:mod:`services.retrainer.callers`) of role ``l2`` or scope
``retrain:request``. Errors beyond the callers' 401 / 403 / 503: 404 for an unknown model, run or
evaluation, 409 when an ask's cause was already retrained for or conflicts with the queued run's
parameters, 422 for a malformed body or training parameters that make no recipe. Every ask,
refused or not, is also answered on ``models``. Promotion requests are decided through
:mod:`services.retrainer.rollout.api`.

The routes are module-level functions on :data:`router`; :func:`install_retraining_api` gives an
app what they act on (:data:`Api`), and the caller comes from
:data:`~services.retrainer.callers.Caller`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from contracts.registry import DatasetChanges, DatasetRef
from contracts.retraining import RetrainRefusal, RetrainTrigger
from contracts.values import FiniteJson, ModelName
from services.retrainer.callers import Caller, require_role
from services.retrainer.retraining.live_examples import LiveExamples
from services.retrainer.retraining.runs import AskRefused, RetrainRuns, Run, UnknownModel
from services.retrainer.retraining.triggers import RetrainAsk
from services.retrainer.rollout.governance import Governance
from services.retrainer.rollout.promotions import APPROVER_ROLE
from services.runtime.app_state import AppState
from services.runtime.scopes import Scope

__all__ = [
    "Api",
    "AskBody",
    "AskOut",
    "EvaluationOut",
    "LiveDataOut",
    "RetrainingApi",
    "RunOut",
    "install_retraining_api",
    "router",
]


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


@dataclass(frozen=True)
class RetrainingApi:
    """What the retraining routes act on: the runs, the gate's evaluations, the live examples
    kept, and the clock that stamps an ask."""

    runs: RetrainRuns
    governance: Governance
    live: LiveExamples
    clock: Callable[[], datetime]


_SLOT = AppState[RetrainingApi]("retraining_api")
Api = Annotated[RetrainingApi, Depends(_SLOT)]
"""The :class:`RetrainingApi` the app was given by :func:`install_retraining_api`."""

router = APIRouter(tags=["retraining"])


def install_retraining_api(
    app: FastAPI,
    *,
    runs: RetrainRuns,
    governance: Governance,
    live: LiveExamples,
    clock: Callable[[], datetime],
) -> None:
    """Add the retraining routes and their error mapping to an app (the caller is checked as
    :func:`~services.retrainer.callers.install_callers` set up on the app)."""
    _SLOT.put(app, RetrainingApi(runs, governance, live, clock))
    app.include_router(router)

    async def not_found(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 404)

    async def unprocessable(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AskRefused)
        conflict = error.refusal in (
            RetrainRefusal.ALREADY_RETRAINED,
            RetrainRefusal.CONFLICTING_PARAMETERS,
        )
        return JSONResponse({"detail": str(error)}, 409 if conflict else 422)

    app.add_exception_handler(UnknownModel, not_found)
    app.add_exception_handler(AskRefused, unprocessable)


@router.post(
    "/retrains",
    status_code=202,
    responses={404: {"description": "The registry has no such model."}},
)
async def ask(who: Caller, body: AskBody, api: Api) -> AskOut:
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
    admission = await api.runs.ask(
        RetrainAsk(
            model=body.model,
            cause=body.cause or f"manual:{uuid.uuid4().hex[:12]}",
            trigger=RetrainTrigger.MANUAL,
            requested_by=asker,
            reason=body.reason,
            at=api.clock(),
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
    api: Api, model: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[RunOut]:
    """Retraining runs, newest first."""
    return [RunOut.of(run) for run in await api.runs.recent(model=model, limit=limit)]


@router.get("/retrains/{run_id}")
async def show_run(run_id: str, api: Api) -> RunOut:
    """A run with the asks merged into it and how its data changed."""
    run = await api.runs.get(run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r}")
    return RunOut.of(run, await api.runs.asks(run_id))


@router.get("/live-data/{model}")
async def live_data(model: str, api: Api) -> LiveDataOut:
    """Labelled live examples kept for a model (the next snapshot's live rows, at most)."""
    labelled, rows = await api.live.count(model)
    return LiveDataOut(model=model, labelled=labelled, rows=rows)


@router.get("/evaluations/{evaluation_id}")
async def show_evaluation(evaluation_id: str, api: Api) -> EvaluationOut:
    """The gate's record: both versions, the data digest, the thresholds and every figure."""
    evaluation = await api.governance.evaluation(evaluation_id)
    if evaluation is None:
        raise HTTPException(404, f"no evaluation {evaluation_id!r}")
    return EvaluationOut(**vars(evaluation))
