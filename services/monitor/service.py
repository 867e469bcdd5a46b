"""The monitor's adapter: Kafka handlers, the probe schedule and the HTTP API call into the pure
:class:`~services.monitor.domain.Monitor` through here.

Every change goes through :meth:`MonitorService._apply`, one at a time: in one database
transaction it runs the pure step on the input events not handled before, records the ids of
those it did not refuse as handled, one row per batch (:class:`~services.runtime.HandledIds`; a
redelivered event changes nothing, a refused one is dead-lettered and taken if it is replayed
after a fix), writes the state it changed and stages its outputs in the outbox; after the
commit it publishes the staged outputs before returning, so the consumer commits offsets only
for inputs whose outputs are on the broker. A crash anywhere leaves the database either before or
after the whole step; the outbox relay publishes whatever a crash left staged. If the transaction
fails, the in-memory state (already changed) is thrown away and reloaded from the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.feedback import LabelRecorded, ValueRecorded
from contracts.monitoring import ProbeCompleted
from contracts.registry import (
    Deployment,
    ModelDeployed,
    ModelPromoted,
    ModelRegistered,
    ModelRolledBack,
    ModelVersionRecord,
)
from contracts.scoring import PredictionMade, ValuePredicted
from services.monitor.domain import Monitor, MonitorPolicy, Step, watched_targets
from services.monitor.history import MetricHistory
from services.monitor.ownership import advance_revisions, all_revisions
from services.monitor.probe import run_probe
from services.monitor.store import load_snapshot, save_changes
from services.runtime import (
    HandledIds,
    OutboxRelay,
    RegistryClient,
    RegistryError,
    Rejection,
    Sessions,
    stage,
)
from services.runtime.leases import Lease

__all__ = ["MonitorService", "NoGoldenSet", "NotDeployed"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")
E = TypeVar("E", PredictionMade | ValuePredicted, LabelRecorded | ValueRecorded)


def _fresh(events: Sequence[E], fresh: set[UUID]) -> Sequence[E]:
    """The events not handled before. As many fresh ids as events means every event is fresh
    (the ids were distinct and none was handled): the common case, with no lookup per event."""
    if len(fresh) == len(events):
        return events
    return [event for event in events if event.event_id in fresh]


class NotDeployed(LookupError):
    """The model has no champion to probe."""


class NoGoldenSet(LookupError):
    """The champion's maintenance instructions have no probe."""


class MonitorService:
    """Feeds events, probe runs and deployments to the monitor, and persists what it decides."""

    def __init__(
        self,
        policy: MonitorPolicy,
        *,
        sessions: Sessions,
        relay: OutboxRelay,
        registry: RegistryClient,
        scorer: httpx.AsyncClient,
        scorer_url: str,
        probe_token: str | None = None,
        clock: Clock,
        seed: int = 0,
        handled_memory: int = 200_000,
    ) -> None:
        self._policy = policy
        self._seed = seed
        self._sessions = sessions
        self._relay = relay
        self._registry = registry
        self._scorer = scorer
        self._scorer_url = scorer_url
        self._probe_token = probe_token
        self._clock = clock
        self._records: dict[tuple[str, int], ModelVersionRecord] = {}
        self._handled_memory = handled_memory
        self._handled = HandledIds(handled_memory)
        self._revisions: dict[str, int] = {}
        """Per model, the revision of the stored state the memory continues."""
        self._stale = False
        """A step changed the memory and did not commit: restore before the next one."""
        self._monitor = Monitor(policy, seed=seed)
        self._history = MetricHistory()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Restore the state the database holds, and the newest handled event ids."""
        async with self._lock:
            await self._reload()

    # ------------------------------------------------------------------ Kafka handlers

    async def on_predictions(
        self, events: Sequence[PredictionMade | ValuePredicted]
    ) -> Sequence[Rejection]:
        """Handle a run of predictions: ``prediction.made`` or ``value.predicted`` (a regressor's;
        the consumer hands each type its own runs, both come here)."""
        in_use = await self._read(self._monitor.versions_in_use, {e.model for e in events})
        await self._learn({(e.model, e.model_version) for e in events} | in_use)
        now = self._clock()
        step = await self._apply(
            {event.model for event in events},
            [event.event_id for event in events],
            lambda fresh: self._monitor.add_predictions(_fresh(events, fresh), now=now),
        )
        return [Rejection(refusal.event_id, refusal.reason) for refusal in step.refusals]

    async def on_labels(
        self, events: Sequence[LabelRecorded | ValueRecorded]
    ) -> Sequence[Rejection]:
        """Handle a run of truths: ``label.recorded`` or ``value.recorded``."""
        await self._learn(
            await self._read(self._monitor.versions_in_use, {e.model for e in events})
        )
        now = self._clock()
        step = await self._apply(
            {event.model for event in events},
            [event.event_id for event in events],
            lambda fresh: self._monitor.add_labels(_fresh(events, fresh), now=now),
        )
        return [Rejection(refusal.event_id, refusal.reason) for refusal in step.refusals]

    async def on_registered(self, event: ModelRegistered) -> None:
        self._know(event.record)

    async def on_deployment_changed(
        self, event: ModelDeployed | ModelPromoted | ModelRolledBack
    ) -> None:
        await self._deploy(
            event.model, event.deployment, at=event.occurred_at, ids=[event.event_id]
        )

    # ------------------------------------------------------------------ background tasks

    async def load_deployments(self) -> None:
        """Learn every deployment from the registry (raises, to be retried, while it is down)."""
        deployments = await self._registry.deployments()
        now = self._clock()
        for model, deployment in deployments.items():
            await self._deploy(model, deployment, at=now, ids=[])
        log.info("monitor knows %d deployed model(s)", len(deployments))

    async def run_probes(self, tick_seconds: float, lease: Lease | None = None) -> None:
        """Run each deployed champion's golden-set probe on its schedule, until cancelled; with
        a lease, only while this replica holds it (one replica probes)."""
        last_run: dict[str, float] = {}
        try:
            while True:
                if lease is not None and not await lease.held():
                    await asyncio.sleep(tick_seconds)
                    continue
                due = []
                deployments = await self._read(self._monitor.deployments)
                for model, deployment in sorted(deployments.items()):
                    if deployment.champion is None:
                        continue
                    try:
                        record = await self._record(model, deployment.champion.version)
                    except RegistryError as error:
                        log.warning("cannot read %s's probe: %s", model, error)
                        continue
                    probe = record.spec.probe
                    previous = last_run.get(model)
                    if probe is not None and (
                        previous is None or time.monotonic() - previous >= probe.interval_seconds
                    ):
                        due.append(model)
                for model in due:
                    last_run[model] = time.monotonic()
                results = await asyncio.gather(
                    *(self.probe(model, manual=False) for model in due), return_exceptions=True
                )
                for model, result in zip(due, results, strict=True):
                    if isinstance(result, Exception):
                        log.warning("probe of %s could not run: %s", model, result)
                await asyncio.sleep(tick_seconds)
        finally:
            if lease is not None:
                await lease.release()  # a stand-by takes over at once

    # ------------------------------------------------------------------ API

    async def probe(self, model: str, *, manual: bool) -> ProbeCompleted:
        """Probe a model's champion now; publish the run and raise or recover its alert."""
        deployment = await self._read(self._monitor.deployment, model)
        if deployment is None:
            deployment = await self._registry.deployment(model)
        if deployment is None or deployment.champion is None:
            raise NotDeployed(f"model {model!r} has no deployed champion to probe")
        version = deployment.champion.version
        record = await self._record(model, version)
        if record.spec.probe is None:
            raise NoGoldenSet(f"{model!r} version {version} has no probe in its instructions")
        result = await run_probe(
            self._scorer,
            self._scorer_url,
            model,
            record.spec.probe,
            token=self._probe_token,
            manual=manual,
            now=self._clock(),
        )
        now = self._clock()
        await self._apply(
            {model}, [], lambda _: self._monitor.record_probe(result, version=version, now=now)
        )
        return result

    async def status(self) -> dict[str, Any]:
        """Return what waits, what is open, and what alerts."""
        return await self._read(self._monitor.status)

    async def series(self, model: str) -> dict[str, Any] | None:
        """The model's recent windows and episodes (see :mod:`services.monitor.history`), with
        each version's watched metrics: baseline, threshold and direction."""
        found = await self._read(self._history.series, model)
        if found is None:
            return None
        versions = sorted({w["version"] for w in found["windows"]})
        found["targets"] = {
            str(version): {
                "key_metric": record.spec.key_metric,
                "metrics": [t.model_dump(mode="json") for t in watched_targets(record)],
            }
            for version in versions
            if (record := self._records.get((model, version))) is not None
        }
        return found

    async def recent_windows(self, model: str) -> list[dict[str, Any]] | None:
        """Return a model's recent windows, estimated beside realised; ``None``: unknown model."""
        if not any(known == model for known, _ in self._records):
            return None
        return await self._read(self._monitor.recent_windows, model)

    # ------------------------------------------------------------------ internals

    async def _apply(
        self, models: set[str], event_ids: list[UUID], compute: Callable[[set[UUID]], Step]
    ) -> Step:
        async with self._lock:
            try:
                async with self._sessions() as session, session.begin():
                    # Another replica stepped one of these models since (a rebalance moved its
                    # partition): restore first, under the row locks it would need too.
                    had = await advance_revisions(session, models, self._revisions)
                    if self._stale:
                        log.info("the last step did not commit: restoring")
                        await self._restore(session)
                    elif any(self._revisions.get(m, 0) != r for m, r in had.items()):
                        log.info("models %s changed elsewhere: restoring", sorted(models))
                        await self._restore(session)
                    fresh = [i for i in dict.fromkeys(event_ids) if i not in self._handled]
                    # The step may run scikit-learn and permutation tests: off the event loop,
                    # so heartbeats and HTTP keep going. The lock keeps it the only writer.
                    step = await asyncio.to_thread(compute, set(fresh))
                    refused = {refusal.event_id for refusal in step.refusals}
                    handled = await self._handled.record(
                        session, [i for i in fresh if i not in refused]
                    )
                    await save_changes(session, self._monitor.drain_changes())
                    stage(session, step.outputs)
                    revisions = {model: revision + 1 for model, revision in had.items()}
            except Exception:
                self._stale = True
                await self._reload()
                raise
            except BaseException:
                # Cancelled (at shutdown) mid-step: the memory may hold what the database does
                # not. No await here (the task is being cancelled): the next step restores.
                self._stale = True
                raise
            self._handled.remember(handled)
            self._revisions.update(revisions)
            self._history.observe(step.outputs)
        if step.outputs:
            # A pass settling less than a full batch read every row pending after this commit
            # (ours included): one pass, not a second one that finds nothing.
            while await self._relay.publish_pending() >= self._relay.batch_size:
                pass
        return step

    async def _read(self, look: Callable[..., T], *args: Any) -> T:
        """Read the monitor's state while no step changes it (steps run in a worker thread)."""
        async with self._lock:
            return look(*args)

    async def _reload(self) -> None:
        async with self._sessions() as session:
            await self._restore(session)

    async def _restore(self, session: AsyncSession) -> None:
        """Replace the memory with the database's state, and the handled ids other replicas
        recorded. Revisions first: a step committed in between makes the memory look stale (one
        restore too many), never current when it is not."""
        revisions = await all_revisions(session)
        monitor = Monitor(self._policy, seed=self._seed)
        monitor.restore(await load_snapshot(session))
        monitor.keep_recent_of(self._monitor)
        for record in self._records.values():
            monitor.know(record)
        handled = HandledIds(self._handled_memory)
        await handled.load(session)
        self._monitor, self._handled, self._revisions = monitor, handled, revisions
        self._stale = False

    async def _deploy(
        self, model: str, deployment: Deployment, *, at: datetime, ids: list[UUID]
    ) -> None:
        served = (deployment.champion, deployment.challenger)
        await self._learn({(model, slot.version) for slot in served if slot is not None})
        now = self._clock()
        await self._apply(
            {model},
            ids,
            lambda fresh: (
                self._monitor.apply_deployment(model, deployment, at=at, now=now)
                if fresh or not ids
                else Step()
            ),
        )

    async def _learn(self, versions: Iterable[tuple[str, int]]) -> None:
        """Make sure the monitor knows these versions' records; unknown ones stay unknown (the
        monitor refuses their events), an unreachable registry raises (the batch is retried)."""
        missing = sorted({key for key in versions if key not in self._records})
        if not missing:
            return
        results = await asyncio.gather(
            *(self._registry.version(model, version) for model, version in missing),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, ModelVersionRecord):
                self._know(result)
            elif isinstance(result, RegistryError) and result.status_code == 404:
                continue
            elif isinstance(result, BaseException):
                raise result

    async def _record(self, model: str, version: int) -> ModelVersionRecord:
        record = self._records.get((model, version))
        if record is None:
            record = await self._registry.version(model, version)
            self._know(record)
        return record

    def _know(self, record: ModelVersionRecord) -> None:
        self._records[(record.model, record.version)] = record
        self._monitor.know(record)
