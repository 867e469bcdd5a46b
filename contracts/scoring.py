"""Scoring: requests for a prediction, and the predictions the scorer made."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.envelope import Envelope
from contracts.values import ClassLabel, Features, ModelName, Variant

__all__ = ["PredictionMade", "ScoringRequest", "ValuePredicted"]


class ScoringRequest(Envelope):
    """A client asks the scorer for a prediction from the deployed version of a model."""

    type: Literal["scoring.request"] = "scoring.request"
    model: ModelName
    request_id: str = Field(
        min_length=1,
        max_length=200,
        description="Client's id of this request; labels for it refer to the same id. Ids "
        "starting with 'vigil-' (any case) are reserved: such a request is dead-lettered.",
        examples=["req-000123"],
    )
    entity_id: str | None = Field(
        default=None,
        max_length=200,
        description="Stable id of the scored subject; traffic splits stick to it when given.",
        examples=["patient-881"],
    )
    features: Features


class _Prediction(Envelope):
    """What every prediction carries, whatever the model predicts."""

    model: ModelName
    model_version: int = Field(ge=1, description="Registry version that scored it.", examples=[3])
    variant: Variant = Field(
        description="Deployment slot that scored it.", examples=[Variant.CHAMPION]
    )
    served: bool = Field(
        default=True,
        description="False for a shadow prediction: scored and published, never returned.",
        examples=[True],
    )
    deployment_revision: int = Field(
        ge=0,
        description="Revision of the deployment that routed the request; rises with every change.",
        examples=[7],
    )
    request_id: str = Field(min_length=1, description="The request's id.", examples=["req-000123"])
    entity_id: str | None = Field(
        default=None, description="The request's entity id, if any.", examples=["patient-881"]
    )
    features: Features
    latency_ms: float = Field(
        ge=0.0,
        description="Time from the request reaching the scorer to the prediction, in milliseconds.",
        examples=[3.4],
    )


class PredictionMade(_Prediction):
    """The scorer predicted a class for one request with one model version (a classifier)."""

    type: Literal["prediction.made"] = "prediction.made"
    predicted_class: ClassLabel
    probabilities: dict[str, float] = Field(
        description="Class to predicted probability; sums to 1.",
        examples=[{"malignant": 0.12, "benign": 0.88}],
    )
    confidence: float = Field(
        ge=0.0,
        le=1.0,
        description="Probability of the predicted class.",
        examples=[0.88],
    )


class ValuePredicted(_Prediction):
    """The scorer predicted a number for one request with one model version (a regressor)."""

    type: Literal["value.predicted"] = "value.predicted"
    predicted_value: float = Field(
        description="The model's prediction, in the target's unit.", examples=[151.2]
    )
