"""Retraining asks, sent to the retrainer on ``retrain.requests``, and its answer to each.

Every ask gets exactly one :class:`RetrainAnswered` on ``models`` (keyed by model, so it comes
before the end of the run it names)::

    ask ──▶ queued   a new run (maybe not before the model's cooldown ends)  ┐ a run will train
        ──▶ joined   joined the model's queued run                          │ for it, until its
        ──▶ merged   its cause is already in a queued or running run        ┘ retrain.finished
        ──▶ refused  nothing will train for it (the reason says why)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from contracts.envelope import Envelope
from contracts.values import FiniteJson, ModelName

__all__ = [
    "RetrainAnswer",
    "RetrainAnswered",
    "RetrainRefusal",
    "RetrainRequest",
    "RetrainTrigger",
]


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
    requested_by: str = Field(
        min_length=1,
        description=(
            "Person or system that asked; when `via` is set, the person on whose behalf `via` "
            "asked. Recorded as a requester of the run: a requester may not approve its candidate."
        ),
        examples=["ana"],
    )
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
    via: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description=(
            "The component that asked on `requested_by`'s behalf (the runbook runner), if any; "
            "only a caller allowed to act for others can make such an ask."
        ),
        examples=["runbook-runner"],
    )


class RetrainAnswer(StrEnum):
    """What the retrainer did with an ask."""

    QUEUED = "queued"
    JOINED = "joined"
    MERGED = "merged"
    REFUSED = "refused"

    @property
    def in_flight(self) -> bool:
        """Whether a run will train for the ask (until its ``retrain.finished``)."""
        return self is not RetrainAnswer.REFUSED


class RetrainRefusal(StrEnum):
    """Why an ask was refused."""

    UNKNOWN_MODEL = "unknown_model"
    INVALID_PARAMETERS = "invalid_parameters"
    CONFLICTING_PARAMETERS = "conflicting_parameters"
    ALREADY_RETRAINED = "already_retrained"


class RetrainAnswered(Envelope):
    """The retrainer's answer to one retrain ask: which run trains for it, or why none does."""

    type: Literal["retrain.answered"] = "retrain.answered"
    model: ModelName
    ask_event_id: UUID | None = Field(
        default=None,
        description=(
            "`event_id` of the `retrain.request` (or, for the alert policy, the `alert.raised`) "
            "answered; null for asks made over HTTP or by the schedule."
        ),
        examples=["6f1c2a8e-3b7d-4c1e-9a55-0c1d2e3f4a5b"],
    )
    cause: str = Field(
        min_length=1, description="The ask's cause.", examples=["incident:inc-000042"]
    )
    answer: RetrainAnswer = Field(description="What became of it.", examples=["merged"])
    run_id: str | None = Field(
        default=None,
        description=(
            "The run that trains for it; for `already_retrained`, the finished run that did."
        ),
        examples=["rt-7f3a"],
    )
    not_before: AwareDatetime | None = Field(
        default=None,
        description="For `queued`: the run starts no earlier (the model's cooldown).",
        examples=["2026-11-22T10:25:00Z"],
    )
    refusal: RetrainRefusal | None = Field(
        default=None, description="For `refused`: why, as a code.", examples=[None]
    )
    reason: str = Field(
        min_length=1,
        description="The answer for a person.",
        examples=["incident:inc-000042 is in run rt-7f3a (running)"],
    )
    incident_id: str | None = Field(
        default=None, description="Incident behind the ask, if any.", examples=["inc-000042"]
    )
    requested_by: str = Field(min_length=1, description="Who asked.", examples=["ana"])
    via: str | None = Field(
        default=None, description="Who asked on their behalf, if anyone.", examples=[None]
    )
