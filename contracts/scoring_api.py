"""Bodies of the scorer's HTTP API (``POST /predict``, ``POST /labels``), shared by its clients:
the monitor's probe, runbook scripts, the demo, ``vigil labels send`` and any synchronous caller.

Not events: these travel over HTTP and carry no envelope.
"""

from __future__ import annotations

from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts.values import ClassLabel, Features, ModelName, Variant

__all__ = [
    "ISSUED_REQUEST_ID_PREFIX",
    "MAX_LABELS_PER_REQUEST",
    "PROBE_REQUEST_ID_PREFIX",
    "RESERVED_REQUEST_ID_PREFIX",
    "Instance",
    "Label",
    "LabelsAccepted",
    "LabelsRequest",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
]

RESERVED_REQUEST_ID_PREFIX = "vigil-"
"""Request ids starting with this (in any case) are Vigil's own: no client may send one, over HTTP
(422) or Kafka (dead letter), except the monitor's probe with its token."""

ISSUED_REQUEST_ID_PREFIX = "vigil-req:"
"""The ids the scorer answers ``POST /predict`` with (and labels must carry) start with this."""

PROBE_REQUEST_ID_PREFIX = "vigil-probe:"
"""Request ids of the monitor's golden-set probe start with this. Only the probe, proving itself
with the probe token, may send them; the scorer answers and publishes them like any other and the
monitor leaves them out of live metrics (they never get labels)."""


class Instance(BaseModel):
    """One thing to score."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    request_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Caller's own id for the instance. The scorer answers with an id of its own "
        "(the same for the same caller and request, another for another caller); ids starting "
        "with 'vigil-' are reserved.",
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

    request_id: str = Field(
        description="The id the scorer issued for the instance: the prediction carries it and "
        "labels for it must refer to it.",
        examples=["vigil-req:6f1c0a9e2b7d4c3f8e5a1b2c3d4e5f60"],
    )
    client_request_id: str | None = Field(
        default=None,
        description="The id the caller sent for the instance, if any.",
        examples=["req-000123"],
    )
    model_version: int = Field(ge=1, description="Version that answered.", examples=[3])
    variant: Variant = Field(description="Deployment slot that answered.")
    predicted_class: ClassLabel | None = Field(
        default=None, description="The class (a classifier; null for a regressor)."
    )
    probabilities: dict[str, float] | None = Field(
        default=None,
        description="Class to probability (a classifier; null for a regressor).",
        examples=[{"malignant": 0.12, "benign": 0.88}],
    )
    confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Probability of the class (a classifier; null for a regressor).",
        examples=[0.88],
    )
    predicted_value: float | None = Field(
        default=None,
        description="The predicted number (a regressor; null for a classifier).",
        examples=[151.2],
    )


class PredictResponse(BaseModel):
    """Predictions in the order of the request's instances."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    model: ModelName
    predictions: list[Prediction] = Field(description="One per instance, in order.")


MAX_LABELS_PER_REQUEST = 1000
"""The most labels one ``POST /labels`` carries (send more in several requests)."""


class Label(BaseModel):
    """The truth about an earlier scoring request: the fields of a ``label.recorded`` event
    (a classifier's true class, ``label``) or of a ``value.recorded`` event (a regressor's true
    number, ``value``) that the caller knows; the scorer adds the envelope."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model: ModelName
    request_id: str = Field(
        min_length=1,
        max_length=200,
        description="Id of the scoring request this label belongs to: for a request scored over "
        "HTTP, the id the scorer answered with (not the caller's own).",
        examples=["vigil-req:6f1c0a9e2b7d4c3f8e5a1b2c3d4e5f60"],
    )
    label: ClassLabel | None = Field(
        default=None, description="The true class (a classifier's request).", examples=["benign"]
    )
    value: float | None = Field(
        default=None, description="The true number (a regressor's request).", examples=[142.0]
    )
    occurred_at: AwareDatetime | None = Field(
        default=None,
        description="When the truth became known, time-zone aware; default: when the scorer "
        "received it. At most a few minutes ahead of the scorer's clock.",
        examples=["2026-11-22T10:15:00Z"],
    )

    @model_validator(mode="after")
    def _one_truth(self) -> Self:
        if (self.label is None) == (self.value is None):
            raise ValueError("give exactly one of label (a class) and value (a number)")
        return self


class LabelsRequest(BaseModel):
    """Labels to publish on the ``labels`` topic, in order."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    labels: list[Label] = Field(min_length=1, max_length=MAX_LABELS_PER_REQUEST)


class LabelsAccepted(BaseModel):
    """The broker acknowledged every label of the request."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    published: int = Field(ge=0, description="Labels published (all of the request's).")
    event_ids: list[str] = Field(
        description="The event id of each label, in order. The same label sent again gets the "
        "same id, and consumers take an event id once: a retry after an error or a timeout "
        "counts once."
    )
