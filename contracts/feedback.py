"""Ground truth that arrives after the prediction (minutes to days later)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.envelope import Envelope
from contracts.values import ClassLabel, ModelName

__all__ = ["LabelRecorded", "ValueRecorded"]


class LabelRecorded(Envelope):
    """The true class of an earlier scoring request became known."""

    type: Literal["label.recorded"] = "label.recorded"
    model: ModelName
    request_id: str = Field(
        min_length=1,
        max_length=200,
        description="Id of the scoring request this label belongs to: for a request scored over "
        "HTTP, the id the scorer answered with (not the caller's own).",
        examples=["req-000123"],
    )
    label: ClassLabel


class ValueRecorded(Envelope):
    """The true value of an earlier scoring request of a regression model became known."""

    type: Literal["value.recorded"] = "value.recorded"
    model: ModelName
    request_id: str = Field(
        min_length=1,
        max_length=200,
        description="Id of the scoring request this value belongs to: for a request scored over "
        "HTTP, the id the scorer answered with (not the caller's own).",
        examples=["req-000123"],
    )
    value: float = Field(description="The true value, in the target's unit.", examples=[142.0])
