"""Retraining asks, sent to the retrainer on ``retrain.requests``."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from contracts.envelope import Envelope
from contracts.values import FiniteJson, ModelName

__all__ = ["RetrainRequest", "RetrainTrigger"]


class RetrainTrigger(StrEnum):
    """What asked for the retrain."""

    INCIDENT = "incident"
    SCHEDULE = "schedule"
    POLICY = "policy"
    MANUAL = "manual"


class RetrainRequest(Envelope):
    """Retrain a model; requests with the same cause are merged into one run."""

    type: Literal["retrain.request"] = "retrain.request"
    model: ModelName
    trigger: RetrainTrigger = Field(description="What asked.", examples=[RetrainTrigger.INCIDENT])
    cause: str = Field(
        min_length=1,
        max_length=500,
        description="Deduplication key: requests with the same cause are one retrain.",
        examples=["incident:inc-000042"],
    )
    incident_id: str | None = Field(
        default=None, description="Incident behind it, if any.", examples=["inc-000042"]
    )
    requested_by: str = Field(min_length=1, description="Person or system.", examples=["ana"])
    reason: str = Field(
        min_length=1, description="Why, for a person.", examples=["drift on 3 features"]
    )
    parameters: dict[str, FiniteJson] | None = Field(
        default=None,
        description=(
            "Training parameters to change for this run, over the champion's registered ones "
            "(null: train as the champion was trained)."
        ),
        examples=[{"C": 0.5}],
    )
