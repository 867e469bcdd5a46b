"""Model artifacts: checked when registered (safe skops load, fits the spec) and stored by hash."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from contracts.registry import MonitoringSpec
from services.retrainer.content import ContentStore
from services.runtime import (
    DEFAULT_TRUSTED_TYPES,
    UnsafeArtifactError,
    load_model,
    mismatches_with_spec,
)

__all__ = ["ArtifactError", "ArtifactStore", "check_artifact"]


class ArtifactError(ValueError):
    """An uploaded artifact cannot be registered; the message says why."""


def check_artifact(
    content: bytes, spec: MonitoringSpec, *, trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES
) -> Any:
    """Load an artifact safely and check it fits the spec; return the estimator."""
    try:
        estimator = load_model(content, trusted=trusted_types)
    except UnsafeArtifactError as error:
        raise ArtifactError(str(error)) from None
    problems = mismatches_with_spec(estimator, spec)
    if problems:
        raise ArtifactError("; ".join(problems))
    return estimator


class ArtifactStore(ContentStore):
    """Artifacts (skops files) in the retrainer's database, named ``sha256/<hex>.skops``."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, kind="artifact", suffix=".skops")
