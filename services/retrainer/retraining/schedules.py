"""The maintenance schedule: ask for a retrain when a champion's ``retrain_every_hours`` has
passed since the model was last asked to retrain (or since the champion was registered).

With replicas, one checks: the ``retrainer-schedules`` lease (:mod:`services.runtime.leases`).
Two replicas checking at the same moment would both ask; the second ask merges into the queued
run, but is recorded and answered a second time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from contracts.retraining import RetrainTrigger
from services.retrainer.registry.store import RegistryStore
from services.retrainer.retraining.runs import AskRefused, RetrainRuns, UnknownModel
from services.retrainer.retraining.triggers import Admission, RetrainAsk, scheduled_cause
from services.runtime.leases import Lease, every_while_held

__all__ = ["SCHEDULE_ACTOR", "check_schedules", "run_schedules"]

log = logging.getLogger(__name__)

SCHEDULE_ACTOR = "system:schedule"


async def check_schedules(
    registry: RegistryStore, runs: RetrainRuns, now: datetime
) -> list[Admission]:
    """Ask for every scheduled retrain that is due; return the admissions."""
    admissions = []
    for model in await registry.models():
        deployment = model.deployment
        if deployment is None or deployment.champion is None:
            continue
        record = await registry.version(model.name, deployment.champion.version)
        every = record.spec.retrain_every_hours
        cause = scheduled_cause(
            every, last_asked=await runs.last_asked(model.name), since=record.registered_at, now=now
        )
        if cause is None:
            continue
        ask = RetrainAsk(
            model=model.name,
            cause=cause,
            trigger=RetrainTrigger.SCHEDULE,
            requested_by=SCHEDULE_ACTOR,
            reason=f"every {every:g} h, per v{record.version}'s maintenance instructions",
            at=now,
        )
        try:
            admissions.append(await runs.ask(ask))
        except (AskRefused, UnknownModel) as error:
            log.warning("scheduled retrain of %s not admitted: %s", model.name, error)
    return admissions


def run_schedules(
    registry: RegistryStore,
    runs: RetrainRuns,
    clock: Callable[[], datetime],
    every_s: float,
    lease: Lease,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The background task checking the schedules every ``every_s`` seconds in the replica that
    holds ``lease``."""
    return every_while_held(lease, lambda: check_schedules(registry, runs, clock()), every_s)
