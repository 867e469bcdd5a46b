"""The scorer's adapter between the pure core and the outside: deployments from the registry and
``models`` events, batches scored and published (``prediction.made`` for a classifier,
``value.predicted`` for a regressor). Kafka and HTTP both go through :meth:`score`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from contracts.envelope import utc_now
from contracts.registry import Deployment, ModelTask
from contracts.scoring import PredictionMade, ValuePredicted
from services.runtime import (
    DEFAULT_TRUSTED_TYPES,
    Publisher,
    RegistryClient,
    RegistryError,
    ServiceName,
)
from services.scorer.deployments import DeploymentBook
from services.scorer.models import ModelLoader
from services.scorer.predictions import prediction_events
from services.scorer.scoring import Item, Result, score_batch

__all__ = ["Outcome", "ScoringService"]

log = logging.getLogger(__name__)

_PRODUCER = ServiceName.SCORER.value


@dataclass(frozen=True)
class Outcome:
    """A scored batch: the pure result, and the events published for it."""

    result: Result
    published: list[PredictionMade | ValuePredicted]


class ScoringService:
    """Serves deployments: keeps them current, scores batches, publishes the predictions."""

    def __init__(
        self,
        *,
        registry: RegistryClient,
        publisher: Publisher,
        unknown_model_recheck_s: float = 1.0,
        trusted_types: Sequence[str] = DEFAULT_TRUSTED_TYPES,
        monotonic: Callable[[], float] = time.monotonic,
        timer: Callable[[], float] = time.perf_counter,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.book = DeploymentBook()
        self.loader = ModelLoader(registry, trusted_types=trusted_types)
        self._registry = registry
        self._publisher = publisher
        self._recheck_s = unknown_model_recheck_s
        self._monotonic = monotonic
        self._timer = timer
        self._clock = clock
        self._looked_up: dict[str, float] = {}

    async def apply(self, model: str, deployment: Deployment) -> bool:
        """Serve a deployment if it is newer than the one held; load its versions first."""
        if not self.book.is_newer(model, deployment):
            return False
        await self.loader.load_deployment(model, deployment)
        taken = self.book.apply(model, deployment)
        if taken:
            log.info(
                "%s: serving revision %d (champion %s, challenger %s at %.0f %% %s)",
                model,
                deployment.revision,
                deployment.champion.version if deployment.champion else None,
                deployment.challenger.version if deployment.challenger else None,
                deployment.challenger_share * 100,
                deployment.mode.value,
            )
        return taken

    def task_of(self, model: str) -> ModelTask | None:
        """What the served champion of a model predicts (``None``: not served here)."""
        deployment = self.book.snapshot().get(model)
        champion = deployment.champion if deployment is not None else None
        loaded = self.loader.loaded(model, champion.version) if champion is not None else None
        return loaded.spec.task if loaded is not None else None

    async def sync(self) -> None:
        """Take every newer deployment the registry has."""
        for model, deployment in (await self._registry.deployments()).items():
            await self.apply(model, deployment)

    async def learn_unknown(self, models: Iterable[str], *, strict: bool = False) -> None:
        """Ask the registry about models the scorer does not know (at most once per recheck).

        Best effort by default: a registry outage must not hold the requests of the models the
        scorer serves, so the unknown one is refused as unknown (and can be replayed). With
        ``strict`` a registry error propagates and the model is asked about again next time: a
        caller answering "not served here" must not say it only because the registry was down.
        """
        now = self._monotonic()
        if len(self._looked_up) > 10_000:
            self._looked_up.clear()
        for model in set(models):
            if model in self.book:
                continue
            last = self._looked_up.get(model)
            if last is not None and now - last < self._recheck_s:
                continue
            self._looked_up[model] = now
            try:
                deployment = await self._registry.deployment(model)
            except RegistryError as error:
                if strict:
                    del self._looked_up[model]
                    raise
                log.warning("cannot ask the registry about %r: %s", model, error)
                continue
            if deployment is not None:
                await self.apply(model, deployment)

    async def score(
        self,
        items: Sequence[Item],
        *,
        correlation_ids: Sequence[str | None] | None = None,
        publish_if_refused: bool = True,
    ) -> Outcome:
        """Score a batch against one snapshot of the deployments and publish the predictions.

        With ``publish_if_refused=False`` nothing is published when any item is refused (HTTP
        answers all or nothing).
        """
        started = self._timer()
        await self.learn_unknown(item.model for item in items)
        result = score_batch(items, self.book.snapshot(), self.loader.loaded)
        latency_ms = (self._timer() - started) * 1000.0
        if result.refused and not publish_if_refused:
            return Outcome(result, [])
        events = prediction_events(
            items,
            result.scored,
            producer=_PRODUCER,
            latency_ms=latency_ms,
            occurred_at=self._clock(),
            correlation_ids=correlation_ids,
        )
        await self._publisher.publish_many(events)
        return Outcome(result, events)
