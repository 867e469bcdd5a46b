"""The scorer's HTTP API: ``POST /predict``, the same scoring as Kafka, answered synchronously,
and the operations routes (what is served, and a way to make it catch up with the registry now;
the recover-scorer runbook uses both).

The routes are module-level functions on :data:`router`; :func:`install_scoring_api` gives an app
the scoring service they act on (:data:`Api`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException

from contracts.registry import Deployment
from contracts.scoring import PredictionMade, ValuePredicted
from contracts.scoring_api import Prediction, PredictRequest, PredictResponse
from services.runtime import RegistryError
from services.runtime.app_state import AppState
from services.scorer.request_ids import (
    identify_caller,
    issue_request_id,
    prediction_event_id,
    refusal_of_reserved,
)
from services.scorer.scoring import Item, NotLoadedError, Refusal
from services.scorer.service import ScoringService

__all__ = ["Api", "ScoringApi", "install_scoring_api", "router"]

_AUTHORIZATION = Header(
    description="Optional 'Bearer <token>'. Scoring is open: any token only names the caller's "
    "own namespace of request ids; the monitor's probe token also allows 'vigil-probe:' ids.",
)


@dataclass(frozen=True)
class ScoringApi:
    """What the routes act on: the scoring service, and the token the monitor's probe proves
    itself with (none: no caller may send reserved ids)."""

    service: ScoringService
    probe_token: str | None = None


_SLOT = AppState[ScoringApi]("scoring_api")
Api = Annotated[ScoringApi, Depends(_SLOT)]
"""The :class:`ScoringApi` the app was given by :func:`install_scoring_api`."""

router = APIRouter()


def install_scoring_api(
    app: FastAPI, service: ScoringService, *, probe_token: str | None = None
) -> None:
    """Add ``POST /predict`` and the operations routes to an app, bound to one scoring service."""
    _SLOT.put(app, ScoringApi(service, probe_token))
    app.include_router(router)


@router.post(
    "/predict",
    tags=["scoring"],
    responses={
        404: {"description": "The model is not deployed."},
        422: {
            "description": "A feature is missing, unknown, of the wrong type or NaN; the "
            "model fails on an instance or predicts a NaN or an infinity; or a request id is "
            "reserved ('vigil-…')."
        },
        503: {"description": "The deployed version is not loaded yet, or the registry is down."},
    },
)
async def predict(
    body: PredictRequest,
    api: Api,
    authorization: Annotated[str | None, _AUTHORIZATION] = None,
) -> PredictResponse:
    """Score instances with the deployed version(s); publishes every prediction (shadow ones
    too) on ``predictions`` (``prediction.made``, or ``value.predicted`` for a regression
    model) and returns the served ones in order, each with the request id the scorer issued
    for it (``services/scorer/request_ids.py``): a classifier's class, probabilities and
    confidence, or a regressor's ``predicted_value``."""
    caller = identify_caller(_bearer_token(authorization), api.probe_token)
    reserved = [
        {
            "loc": ["body", "instances", index, "request_id"],
            "msg": why,
            "type": "value_error",
        }
        for index, instance in enumerate(body.instances)
        if instance.request_id is not None
        and (why := refusal_of_reserved(instance.request_id, caller)) is not None
    ]
    if reserved:
        raise HTTPException(422, reserved)
    items = []
    for instance in body.instances:
        request_id = issue_request_id(
            caller, body.model, instance.request_id, instance.entity_id, instance.features
        )
        items.append(
            Item(
                model=body.model,
                request_id=request_id,
                entity_id=instance.entity_id,
                features=instance.features,
                event_id=prediction_event_id(request_id),
            )
        )
    client_ids = {
        item.request_id: i.request_id for item, i in zip(items, body.instances, strict=True)
    }
    try:
        outcome = await api.service.score(items, publish_if_refused=False)
    except (NotLoadedError, RegistryError) as error:
        raise HTTPException(503, str(error)) from None
    refused = outcome.result.refused
    if any(refusal.unknown_model for refusal in refused):
        raise HTTPException(404, f"model {body.model!r} is not deployed")
    if refused:
        raise HTTPException(422, [issue for r in refused for issue in _issues(r)])
    return PredictResponse(
        model=body.model,
        predictions=[
            _answer(event, client_ids.get(event.request_id))
            for event in outcome.published
            if event.served
        ],
    )


def _issues(refusal: Refusal) -> list[dict[str, Any]]:
    """A refusal as validation errors: one per feature problem, else the instance itself (the
    model failed on it: raised, or predicted a NaN or an infinity)."""
    if not refusal.problems:
        return [
            {
                "loc": ["body", "instances", refusal.index],
                "msg": refusal.message,
                "type": "value_error",
            }
        ]
    return [
        {
            "loc": ["body", "instances", refusal.index, "features", problem.feature],
            "msg": problem.message,
            "type": "value_error",
        }
        for problem in refusal.problems
    ]


def _answer(event: PredictionMade | ValuePredicted, client_request_id: str | None) -> Prediction:
    """The HTTP answer of a served prediction: the fields of its kind, the others null."""
    common = {
        "request_id": event.request_id,
        "client_request_id": client_request_id,
        "model_version": event.model_version,
        "variant": event.variant,
    }
    if isinstance(event, ValuePredicted):
        return Prediction(**common, predicted_value=event.predicted_value)
    return Prediction(
        **common,
        predicted_class=event.predicted_class,
        probabilities=event.probabilities,
        confidence=event.confidence,
    )


def _bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@router.get("/deployments", tags=["operations"])
async def serving(api: Api) -> dict[str, Deployment]:
    """The deployment the scorer serves for each model (its revision, versions, split)."""
    return dict(api.service.book.snapshot())


@router.post(
    "/deployments/sync",
    tags=["operations"],
    responses={503: {"description": "The registry is down."}},
)
async def sync(api: Api) -> dict[str, Deployment]:
    """Take every newer deployment the registry has, loading its versions; answer what is
    served afterwards."""
    try:
        await api.service.sync()
    except RegistryError as error:
        raise HTTPException(503, str(error)) from None
    return dict(api.service.book.snapshot())
