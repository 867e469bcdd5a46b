"""The request ids the scorer answers ``POST /predict`` with, pure: collision-proof per caller.

The id a client sends is its own name for the request; the id the scorer answers with (and puts
on the prediction, and that labels must carry) is issued by the scorer:

- ``vigil-req:<32 hex>``, a SHA-256 over the caller's namespace, the model, the client's id, the
  entity and the features. Another caller sending the same client id gets another id, so its
  labels cannot join this caller's prediction and its features cannot replace these in the
  retrainer's store; the same caller sending the same request again gets the same id (a replay
  is idempotent: predictions with the same event ids, which consumers discard); the same client
  id with other features is another request, with another id.
- ``vigil-req:<random>`` when the client sends no id.

The caller's namespace is the SHA-256 of its bearer token (scoring stays open: the token is not
looked up, it only keeps one caller's ids apart from another's); callers without one share the
anonymous namespace, where only the same request gives the same id.

Ids starting with :data:`~contracts.scoring_api.RESERVED_REQUEST_ID_PREFIX` (any case) are
Vigil's own: a client may not send one (422 over HTTP, dead letter over Kafka), except the
monitor's probe, which proves itself with the probe token and keeps its ``vigil-probe:`` ids
verbatim so the monitor can leave them out of live metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from uuid import UUID, uuid4, uuid5

from contracts.scoring_api import (
    ISSUED_REQUEST_ID_PREFIX,
    PROBE_REQUEST_ID_PREFIX,
    RESERVED_REQUEST_ID_PREFIX,
)
from contracts.values import Features

__all__ = [
    "ANONYMOUS",
    "Caller",
    "identify_caller",
    "is_reserved",
    "issue_request_id",
    "prediction_event_id",
    "refusal_of_reserved",
]

_EVENT_NAMESPACE = UUID("0d6c1f0e-7a52-4d4e-9a53-5f0c3f1c2b7e")


@dataclass(frozen=True)
class Caller:
    """Whose namespace a request's ids live in, and whether it is the monitor's probe."""

    namespace: str
    probe: bool = False


ANONYMOUS = Caller("anonymous")


def identify_caller(token: str | None, probe_token: str | None) -> Caller:
    """Return the caller a bearer token names (none: :data:`ANONYMOUS`)."""
    if not token:
        return ANONYMOUS
    if probe_token and hmac.compare_digest(token.encode(), probe_token.encode()):
        return Caller("probe", probe=True)
    return Caller("token:" + hashlib.sha256(token.encode()).hexdigest())


def is_reserved(request_id: str) -> bool:
    """Tell whether an id is in Vigil's own family (``vigil-…``, any case)."""
    return request_id[: len(RESERVED_REQUEST_ID_PREFIX)].lower() == RESERVED_REQUEST_ID_PREFIX


def refusal_of_reserved(request_id: str, caller: Caller) -> str | None:
    """Say why a caller may not send this id, or ``None`` if it may."""
    if not is_reserved(request_id):
        return None
    if caller.probe and request_id.startswith(PROBE_REQUEST_ID_PREFIX):
        return None
    return (
        f"request ids starting with {RESERVED_REQUEST_ID_PREFIX!r} are reserved for Vigil "
        "(the scorer issues them); choose another id"
    )


def issue_request_id(
    caller: Caller,
    model: str,
    client_id: str | None,
    entity_id: str | None,
    features: Features,
) -> str:
    """Return the id the scorer answers with for one instance (see the module docstring)."""
    if client_id is None:
        return f"{ISSUED_REQUEST_ID_PREFIX}{uuid4().hex}"
    if caller.probe and client_id.startswith(PROBE_REQUEST_ID_PREFIX):
        return client_id
    material = json.dumps(
        [caller.namespace, model, client_id, entity_id, features],
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return f"{ISSUED_REQUEST_ID_PREFIX}{hashlib.sha256(material.encode()).hexdigest()[:32]}"


def prediction_event_id(request_id: str) -> UUID:
    """Return the event id a request scored over HTTP stands for; the scorer derives its
    predictions' ids from it, so a replayed request publishes the same event ids again."""
    return uuid5(_EVENT_NAMESPACE, request_id)
