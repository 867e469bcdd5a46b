"""Where a model version's reference profile comes from: memory, the store, or the registry.

The first time a version is seen, its record (the monitoring spec says which features are
numeric and which categorical) and its training dataset (checked against its digest) are read
from the registry, the profile is computed once and stored; after that it is only loaded. The
store is this replica's cache of what the training data gives; the live score reference is kept
with the episodes in the shared database (:mod:`services.drift_detector.episode_store`). A
profile cached with its score reference (before the database kept them) is cached again without
it, once, and the reference handed over (:meth:`References.take_cached_scores`) to be stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from contracts.drift import FeatureKind
from contracts.registry import ModelVersionRecord
from services.drift_detector.encoding import parse_csv
from services.drift_detector.profiles import (
    ProfileError,
    ProfileStore,
    ReferenceProfile,
    build_profile,
)
from services.runtime.registry_client import IntegrityError, RegistryClient, RegistryNotFound

__all__ = ["ReferenceUnavailable", "References", "profile_from_training_data"]


class ReferenceUnavailable(Exception):
    """A model version has no usable reference: unknown to the registry, or bad training data.

    Events of such a version cannot be tested; retrying will not help.
    """


def profile_from_training_data(
    record: ModelVersionRecord, data: bytes, *, max_rows: int
) -> ReferenceProfile:
    """Compute a version's profile from its training CSV (features, then the label)."""
    spec = record.spec
    names = [feature.name for feature in spec.features]
    categorical = [f.name for f in spec.features if f.kind is FeatureKind.CATEGORICAL]
    table = parse_csv(
        data,
        categorical=categorical,
        columns=names,
        source=f"training dataset {record.dataset.digest}",
    )
    return build_profile(
        model=record.model,
        version=record.version,
        dataset_digest=record.dataset.digest,
        feature_order=names,
        numeric=table.numeric,
        categorical=table.categorical,
        known_levels={f.name: f.categories for f in spec.features if f.categories},
        positive_class=spec.positive_class,
        max_rows=max_rows,
    )


class References:
    """Profiles by model version, computed at most once each."""

    def __init__(self, store: ProfileStore, *, max_rows: int) -> None:
        self._store = store
        self._max_rows = max_rows
        self._profiles: dict[tuple[str, int], ReferenceProfile] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._cached_scores: dict[tuple[str, int], tuple[float, ...]] = {}

    async def get(self, registry: RegistryClient, model: str, version: int) -> ReferenceProfile:
        """Return a version's profile; :class:`ReferenceUnavailable` if it cannot have one.

        Other registry errors (unreachable, 5xx) propagate: the events are retried.
        """
        key = (model, version)
        if key in self._profiles:
            return self._profiles[key]
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key in self._profiles:
                return self._profiles[key]
            profile = await asyncio.to_thread(self._store.load, model, version)
            if profile is not None and profile.scores is not None:
                # Only once: a reference later deleted from the database is not proposed again.
                scores = profile.scores
                self._cached_scores[key] = tuple(
                    scores.sorted_values[0, : int(scores.counts[0])].tolist()
                )
                profile = replace(profile, scores=None)
                await asyncio.to_thread(self._store.save, profile)
            if profile is None:
                profile = await self._build(registry, model, version)
                await asyncio.to_thread(self._store.save, profile)
            self._profiles[key] = profile
            return profile

    def take_cached_scores(self, model: str, version: int) -> tuple[float, ...] | None:
        """Hand over (once) a score reference found in the profile cache, written there before
        the database kept them; sorted, as the cache kept it."""
        return self._cached_scores.pop((model, version), None)

    async def _build(self, registry: RegistryClient, model: str, version: int) -> ReferenceProfile:
        try:
            record = await registry.version(model, version)
            data = await registry.dataset(record.dataset.digest)
        except RegistryNotFound as error:
            raise ReferenceUnavailable(f"model {model} v{version}: {error}") from error
        except IntegrityError as error:
            raise ReferenceUnavailable(f"model {model} v{version}: {error}") from error
        try:
            return await asyncio.to_thread(
                profile_from_training_data, record, data, max_rows=self._max_rows
            )
        except ProfileError as error:
            raise ReferenceUnavailable(
                f"model {model} v{version}: its training data cannot be profiled: {error}"
            ) from error
