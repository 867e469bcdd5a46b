"""Small value types shared by several event models."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    JsonValue,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

__all__ = [
    "ClassLabel",
    "FeatureValue",
    "Features",
    "FiniteJson",
    "ModelName",
    "Variant",
    "check_finite",
]


def check_finite(value: Any) -> Any:
    """Return a JSON-like value unchanged; ``ValueError`` if a float anywhere in it is NaN or
    infinite. Models refuse non-finite floats with ``allow_inf_nan=False``, but that does not
    reach into ``JsonValue`` or ``Any`` fields, so those walk here."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"NaN and infinite numbers are not allowed (got {item})")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return value


FiniteJson = Annotated[JsonValue, AfterValidator(check_finite)]
"""Any JSON value, with no NaN or infinity at any depth."""


def _label_to_str(value: Any) -> Any:
    # Labels arrive as 0/1, true/false or names depending on the client; one spelling keeps
    # predictions and ground truth comparable.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return value


ClassLabel = Annotated[
    str,
    BeforeValidator(_label_to_str),
    Field(
        min_length=1,
        description="A class of the model's label, as text (integers and booleans are converted).",
        examples=["malignant"],
    ),
]
"""A class label; ``1`` and ``"1"`` are the same class."""

ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="Registry name of the model; also the Kafka key of model-keyed topics.",
        examples=["breast-cancer"],
    ),
]

FeatureValue = float | int | str | bool | None
"""One feature value; ``None`` is a missing value."""


def _name_the_non_finite_feature(value: Any, validate: ValidatorFunctionWrapHandler) -> Any:
    # The features are validated entirely by pydantic's core (no Python per value: they are on
    # every prediction); only a refused dict is walked, so the refusal names the feature once
    # rather than once per member of the union of value types.
    try:
        return validate(value)
    except ValidationError:
        _refuse_non_finite(value)
        raise


def _refuse_non_finite(value: Any) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(
                    f"feature {name!r} is {item}: NaN and infinite numbers are not allowed "
                    "(null marks a missing value)"
                )


Features = Annotated[
    dict[str, Annotated[float, Field(allow_inf_nan=False)] | int | str | bool | None],
    WrapValidator(_name_the_non_finite_feature),
    Field(
        description="Feature name to value; null marks a missing value (never NaN).",
        examples=[{"mean radius": 14.2, "mean texture": 19.1}],
    ),
]


class Variant(StrEnum):
    """Which slot of a deployment served a prediction."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"
