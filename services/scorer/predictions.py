"""The events a scored batch publishes (``prediction.made``, ``value.predicted``), built for the
whole batch at once: one validation over the batch, and ids derived without the standard
library's per-call Python.

Validated, not ``model_construct``-ed: the contract's checks (no NaN or infinity, confidence in
[0, 1], non-empty labels) stay the contract's, and one pydantic-core call over the batch costs
less than constructing each event unvalidated. A NaN or infinite answer never reaches this
point: :mod:`services.scorer.scoring` makes it that request's refusal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, TypeAdapter

from contracts.scoring import PredictionMade, ValuePredicted
from contracts.values import Variant
from services.scorer.scoring import Item, Scored

__all__ = ["prediction_events", "prediction_id"]

_EVENTS: TypeAdapter[list[PredictionMade | ValuePredicted]] = TypeAdapter(
    list[Annotated[PredictionMade | ValuePredicted, Field(discriminator="type")]]
)


def prediction_id(request_event_id: UUID, scored: Scored) -> UUID:
    """Return the event id of a prediction made for a request with an event id.

    Derived, not random: a request redelivered after a crash is scored again into predictions
    with the same event ids (when the same version answers), which consumers then discard. The
    id is ``uuid5(request_event_id, "<version>/<variant>/<served>")``, computed directly.
    """
    return _uuid5(request_event_id, _id_name(scored.version, scored.variant, scored.served))


@lru_cache(maxsize=4096)
def _id_name(version: int, variant: Variant, served: bool) -> bytes:
    return f"{version}/{Variant(variant).value}/{served}".encode()


def _uuid5(namespace: UUID, name: bytes) -> UUID:
    # What ``uuid.uuid5`` computes, without its import and text encoding on every call.
    digest = hashlib.sha1(namespace.bytes + name, usedforsecurity=False).digest()
    return UUID(bytes=digest[:16], version=5)


def prediction_events(
    items: Sequence[Item],
    scored: Sequence[Scored],
    *,
    producer: str,
    latency_ms: float,
    occurred_at: datetime,
    correlation_ids: Sequence[str | None] | None = None,
) -> list[PredictionMade | ValuePredicted]:
    """Return one event per scored answer, in the answers' order, validated as one batch.

    Every event of a batch shares the batch's time and latency (they were made together).
    """
    rows: list[dict[str, Any]] = []
    for answer in scored:
        item = items[answer.index]
        row: dict[str, Any] = {
            "occurred_at": occurred_at,
            "producer": producer,
            "correlation_id": correlation_ids[answer.index] if correlation_ids else None,
            "model": item.model,
            "model_version": answer.version,
            "variant": answer.variant,
            "served": answer.served,
            "deployment_revision": answer.revision,
            "request_id": item.request_id,
            "entity_id": item.entity_id,
            "features": item.features,
            "latency_ms": latency_ms,
        }
        if item.event_id is not None:
            row["event_id"] = prediction_id(item.event_id, answer)
        if answer.predicted_value is not None:
            row["type"] = "value.predicted"
            row["predicted_value"] = answer.predicted_value
        else:
            row["type"] = "prediction.made"
            row["predicted_class"] = answer.predicted_class
            row["probabilities"] = answer.probabilities
            row["confidence"] = min(1.0, max(0.0, answer.confidence))
        rows.append(row)
    return _EVENTS.validate_python(rows)
