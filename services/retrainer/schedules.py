"""The maintenance schedule: ask for a retrain when a champion's ``retrain_every_hours`` has
passed since the model was last asked to retrain (or since the champion was registered)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from contracts.retraining import RetrainTrigger
from services.retrainer.runs import AskRefused, RetrainRuns, UnknownModel
from services.retrainer.store import RegistryStore
from services.retrainer.triggers import Admission, RetrainAsk, scheduled_cause

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


async def run_schedules(
    registry: RegistryStore, runs: RetrainRuns, clock: Callable[[], datetime], every_s: float
) -> None:
    """Check the schedules every ``every_s`` seconds until cancelled."""
    while True:
        await check_schedules(registry, runs, clock())
        await asyncio.sleep(every_s)
