"""Bodies of the scorer's HTTP API (``POST /predict``), shared by its clients: the monitor's
probe, runbook scripts, the demo and any synchronous caller.

Not events: these travel over HTTP and carry no envelope.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contracts.values import ClassLabel, Features, ModelName, Variant

__all__ = [
    "PROBE_REQUEST_ID_PREFIX",
    "Instance",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
]

PROBE_REQUEST_ID_PREFIX = "vigil-probe:"
"""Request ids of the monitor's golden-set probe start with this. The scorer answers and publishes
them like any other; the monitor leaves them out of live metrics (they never get labels)."""


class Instance(BaseModel):
    """One thing to score."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    request_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Caller's id; the scorer makes one up when absent.",
        examples=["req-000123"],
    )
    entity_id: str | None = Field(
        default=None,
        max_length=200,
        description="Stable id of the subject; traffic splits stick to it.",
        examples=["patient-881"],
    )
    features: Features


class PredictRequest(BaseModel):
    """Score one or more instances with the deployed version of a model."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    model: ModelName
    instances: list[Instance] = Field(
        min_length=1, max_length=1000, description="What to score, in order."
    )


class Prediction(BaseModel):
    """The answer for one instance."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    request_id: str = Field(description="The instance's request id.", examples=["req-000123"])
    model_version: int = Field(ge=1, description="Version that answered.", examples=[3])
    variant: Variant = Field(description="Deployment slot that answered.")
    predicted_class: ClassLabel
    probabilities: dict[str, float] = Field(
        description="Class to probability.", examples=[{"malignant": 0.12, "benign": 0.88}]
    )
    confidence: float = Field(ge=0, le=1, description="Probability of the class.", examples=[0.88])


class PredictResponse(BaseModel):
    """Predictions in the order of the request's instances."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    model: ModelName
    predictions: list[Prediction] = Field(description="One per instance, in order.")
