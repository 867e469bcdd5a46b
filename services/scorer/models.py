"""Loading deployed versions from the registry: spec by version, artifact by hash, skops safely.

Estimators are cached by SHA-256 (two versions with the same artifact share one), specs by
(model, version). A deployment is taken into service only after every version in it is loaded,
so the swap itself is instant and no request waits on, or misses, a load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from contracts.registry import Deployment, ServedVersion
from services.runtime import (
    DEFAULT_TRUSTED_TYPES,
    RegistryClient,
    class_labels,
    load_model,
    mismatches_with_spec,
)
from services.scorer.scoring import LoadedVersion

__all__ = ["ModelLoader", "VersionMismatchError"]


class VersionMismatchError(RuntimeError):
    """A loaded artifact does not fit its version's record (hash or spec)."""


class ModelLoader:
    """Loads and keeps the versions the scorer serves."""

    def __init__(
        self, registry: RegistryClient, *, trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES
    ) -> None:
        self._registry = registry
        self._trusted_types = tuple(trusted_types)
        self._estimators: dict[str, Any] = {}
        self._versions: dict[tuple[str, int], LoadedVersion] = {}
        self._lock = asyncio.Lock()

    def loaded(self, model: str, version: int) -> LoadedVersion | None:
        """Return a loaded version, or ``None``."""
        return self._versions.get((model, version))

    async def load_deployment(self, model: str, deployment: Deployment) -> None:
        """Load every version of a deployment that is not loaded yet."""
        for served in (deployment.champion, deployment.challenger):
            if served is not None and (model, served.version) not in self._versions:
                await self._load(model, served)

    async def _load(self, model: str, served: ServedVersion) -> None:
        async with self._lock:
            if (model, served.version) in self._versions:
                return
            record = await self._registry.version(model, served.version)
            if record.artifact_sha256 != served.artifact_sha256:
                raise VersionMismatchError(
                    f"{model} v{served.version}: deployment names artifact "
                    f"{served.artifact_sha256}, the record {record.artifact_sha256}"
                )
            estimator = self._estimators.get(served.artifact_sha256)
            if estimator is None:
                content = await self._registry.artifact(served.artifact_sha256)
                estimator = await asyncio.to_thread(
                    load_model,
                    content,
                    sha256=served.artifact_sha256,
                    trusted=self._trusted_types,
                )
                problems = mismatches_with_spec(estimator, record.spec)
                if problems:
                    raise VersionMismatchError(f"{model} v{served.version}: {'; '.join(problems)}")
                self._estimators[served.artifact_sha256] = estimator
            self._versions[(model, served.version)] = LoadedVersion(
                model=model,
                version=served.version,
                spec=record.spec,
                estimator=estimator,
                classes=class_labels(estimator),
            )
