"""``POST /labels``: ground truth over HTTP, for clients that score over HTTP and have no Kafka.

The scorer takes labels because it is the service such clients already call (``/predict``
answers with the request ids the labels must carry). A label is published on ``labels`` as the
``label.recorded`` (a class) or ``value.recorded`` (a regressor's number) event a Kafka client
would write, and the route answers 200 only after the
broker acknowledged every label of the request (``acks=all``): an error or a timeout means
"send again". Nothing is kept in between (the scorer has no database, so there is no outbox to
lose), and a retry counts once, because a label's event id is derived from what it says
(:func:`label_event_id`) and every consumer takes an event id once (ADR 0003).

Who may send: a person's token of role ``l2`` or higher (as for registry writes) or a service's
token with scope ``labels:write`` (a labelling job); the incident log says whose token it is.
Labels for a model the scorer does not serve are refused (404), as are labels dated ahead of the
scorer's clock by more than the consumers' tolerance (they would be dead-lettered) and a truth of
the wrong kind for the served champion (a ``value`` for a classifier, a ``label`` for a
regressor: 422).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from uuid import UUID, uuid5

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from contracts.feedback import LabelRecorded, ValueRecorded
from contracts.registry import ModelTask
from contracts.scoring_api import Label, LabelsAccepted, LabelsRequest
from services.runtime import EventRefused, Publisher, RegistryError
from services.runtime.app_state import AppState
from services.runtime.event_time import EventTimeBounds
from services.runtime.identity import BEARER, Identity, IdentityProvider, identify
from services.runtime.scopes import Scope, scopes_text
from services.scorer.service import ScoringService

__all__ = [
    "LABELS_ROLE",
    "Api",
    "LabelsApi",
    "install_labels_api",
    "label_event_id",
    "recorded_labels",
    "router",
    "truth_mismatches",
]

LABELS_ROLE = "l2"
"""The lowest role of a person who may send labels (a service's token needs ``labels:write``)."""

_LABEL_IDS = UUID("1b0f3c52-6a1e-4d7b-9f0a-5c2e8d4b7a61")


def label_event_id(label: Label) -> UUID:
    """The event id of a label: the same model, request id and class (or value) give the same
    id, so a label sent twice (a retry) is taken once; a corrected class or value is a new event.

    >>> from contracts.scoring_api import Label
    >>> one = Label(model="m", request_id="r-1", label="yes")
    >>> label_event_id(one) == label_event_id(one.model_copy(update={"occurred_at": None}))
    True
    >>> label_event_id(one) == label_event_id(one.model_copy(update={"label": "no"}))
    False
    >>> valued = Label(model="m", request_id="r-1", value=1.5)
    >>> label_event_id(valued) == label_event_id(valued.model_copy(update={"value": 1.25}))
    False
    """
    truth = label.label if label.label is not None else f"value:{label.value!r}"
    return uuid5(_LABEL_IDS, "\x00".join((label.model, label.request_id, truth)))


def recorded_labels(
    labels: Sequence[Label], *, producer: str, now: datetime
) -> list[LabelRecorded | ValueRecorded]:
    """The events of a request's labels (pure): ``label.recorded`` for a class,
    ``value.recorded`` for a regressor's number."""
    return [_recorded(label, producer=producer, now=now) for label in labels]


def _recorded(label: Label, *, producer: str, now: datetime) -> LabelRecorded | ValueRecorded:
    envelope = {
        "event_id": label_event_id(label),
        "occurred_at": label.occurred_at or now,
        "producer": producer,
        "correlation_id": label.request_id,
        "model": label.model,
        "request_id": label.request_id,
    }
    if label.value is not None:
        return ValueRecorded(**envelope, value=label.value)
    return LabelRecorded(**envelope, label=label.label)


def truth_mismatches(
    labels: Sequence[Label], task_of: Callable[[str], ModelTask | None]
) -> list[dict[str, object]]:
    """Validation errors for labels whose kind of truth is not what their model predicts: a
    ``value`` for a classifier or a ``label`` for a regressor (the monitor could join neither).

    >>> tasks = {"churn": ModelTask.CLASSIFICATION, "price": ModelTask.REGRESSION}.get
    >>> [e["msg"] for e in truth_mismatches([Label(model="price", request_id="r", label="7")],
    ...                                     tasks)]
    ["model 'price' is a regression model: send its truth as value (a number), not label"]
    """
    issues: list[dict[str, object]] = []
    for index, label in enumerate(labels):
        task = task_of(label.model)
        if task is ModelTask.REGRESSION and label.label is not None:
            field, why = "label", "a regression model: send its truth as value (a number)"
        elif task is ModelTask.CLASSIFICATION and label.value is not None:
            field, why = "value", "a classifier: send its truth as label (a class)"
        else:
            continue
        issues.append(
            {
                "loc": ["body", "labels", index, field],
                "msg": f"model {label.model!r} is {why}, not {field}",
                "type": "value_error",
            }
        )
    return issues


@dataclass(frozen=True)
class LabelsApi:
    """What ``POST /labels`` acts on: the scoring service (which models are served, and what
    they predict), the publisher, who the tokens belong to, the clock and the time bounds."""

    service: ScoringService
    publisher: Publisher
    identities: IdentityProvider
    clock: Callable[[], datetime]
    bounds: EventTimeBounds = field(default_factory=EventTimeBounds)


_SLOT = AppState[LabelsApi]("labels_api")
Api = Annotated[LabelsApi, Depends(_SLOT)]
"""The :class:`LabelsApi` the app was given by :func:`install_labels_api`."""

router = APIRouter(tags=["labels"])


def install_labels_api(
    app: FastAPI,
    service: ScoringService,
    publisher: Publisher,
    identities: IdentityProvider,
    *,
    clock: Callable[[], datetime],
    bounds: EventTimeBounds | None = None,
) -> None:
    """Add ``POST /labels`` to an app, bound to one scoring service and publisher."""
    _SLOT.put(app, LabelsApi(service, publisher, identities, clock, bounds or EventTimeBounds()))
    app.include_router(router)


async def _caller(
    api: Api, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Identity:
    return await identify(api.identities, credentials)


@router.post(
    "/labels",
    responses={
        401: {"description": "No token, or an unknown, revoked or expired one."},
        403: {"description": "A role below l2, or a scoped token without labels:write."},
        404: {"description": "A label names a model the scorer does not serve."},
        422: {
            "description": "A label is malformed: wrong types, NaN, more than 1000 labels, "
            "an unknown field, or dated too far ahead; or it gives a value for a "
            "classifier or a label for a regression model."
        },
        503: {
            "description": "The broker or the identity provider is unavailable: nothing "
            "was acknowledged, send the same labels again."
        },
    },
)
async def post_labels(
    body: LabelsRequest, api: Api, who: Annotated[Identity, Depends(_caller)]
) -> LabelsAccepted:
    """Publish labels (ground truth of earlier predictions) on ``labels``; answers once the
    broker acknowledged all of them. A retry of the same labels counts once."""
    if not who.allows(LABELS_ROLE, Scope.LABELS_WRITE):
        held = f"role {who.role}" if who.role else f"scopes {scopes_text(who.scopes)}"
        raise HTTPException(
            403,
            f"a token with {held} may not send labels "
            f"(needs role {LABELS_ROLE} or higher, or scope {Scope.LABELS_WRITE.value})",
        )
    now = api.clock()
    dated = [
        {"loc": ["body", "labels", index, "occurred_at"], "msg": why, "type": "value_error"}
        for index, label in enumerate(body.labels)
        if label.occurred_at is not None
        and (why := api.bounds.out_of_bounds(label.occurred_at, now=now, clock=None))
    ]
    if dated:
        raise HTTPException(422, dated)
    service = api.service
    try:
        await service.learn_unknown((label.model for label in body.labels), strict=True)
    except RegistryError as error:
        raise HTTPException(503, str(error)) from None
    unknown = sorted({label.model for label in body.labels} - set(service.book.snapshot()))
    if unknown:
        raise HTTPException(404, f"not served here: {', '.join(map(repr, unknown))}")
    mismatched = truth_mismatches(body.labels, service.task_of)
    if mismatched:
        raise HTTPException(422, mismatched)
    events = recorded_labels(body.labels, producer=who.name, now=now)
    try:
        await api.publisher.publish_many(events)
    except EventRefused as error:
        raise HTTPException(422, str(error)) from None
    except Exception as error:  # anything else from the broker is transient: send again
        raise HTTPException(
            503, f"labels not acknowledged by the broker ({type(error).__name__}); send again"
        ) from None
    event_ids = [str(event.event_id) for event in events]
    return LabelsAccepted(published=len(events), event_ids=event_ids)
