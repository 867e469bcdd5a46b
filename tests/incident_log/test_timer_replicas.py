"""Two incident-log replicas on one database fire each due escalation timer once, and a replica
that dies while holding timers leaves them to the other (rows claimed with SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from contracts import AlertKind, alert_fingerprint
from services.incident_log.operations import IncidentLog
from services.incident_log.store import IncidentStore
from services.runtime import OutboxMessage, Sessions, create_engine, session_factory
from tests.factories import T0, make_alert
from tests.incident_log.policies import make_policy

INCIDENTS = 12


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def replicas(engine: AsyncEngine, database_url: str) -> AsyncIterator[list[Sessions]]:
    """Two replicas' sessions, each on an engine (connections) of its own."""
    other = create_engine(database_url)
    yield [session_factory(engine), session_factory(other)]
    await other.dispose()


async def escalations(sessions: Sessions) -> int:
    async with sessions() as session:
        count = await session.exec(
            select(func.count()).where(col(OutboxMessage.event_type) == "incident.escalated")
        )
        return int(count.one())


async def open_incidents(sessions: Sessions, clock: Clock) -> None:
    alerts = [
        make_alert(
            model=f"model-{n}",
            fingerprint=alert_fingerprint(f"model-{n}", 3, AlertKind.METRIC_DECAY, "recall"),
        )
        for n in range(INCIDENTS)
    ]
    await IncidentLog(sessions, make_policy(), clock=clock).handle_alerts(alerts)


async def test_two_replicas_firing_at_once_escalate_each_incident_once(
    replicas: list[Sessions],
) -> None:
    clock = Clock()
    await open_incidents(replicas[0], clock)
    clock.now += timedelta(minutes=11)  # past every acknowledgement timeout
    logs = [IncidentLog(sessions, make_policy(), clock=clock) for sessions in replicas]

    async def fire_until_done(log: IncidentLog) -> int:
        fired = 0
        while (batch := await log.fire_due_timers(limit=2)) > 0:
            fired += batch
        return fired

    fired = await asyncio.gather(*(fire_until_done(log) for log in logs))
    assert sum(fired) == INCIDENTS
    assert await escalations(replicas[0]) == INCIDENTS


async def test_timers_held_by_a_replica_that_dies_are_fired_by_the_other(
    replicas: list[Sessions], database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: no second replica to take over")
    clock = Clock()
    await open_incidents(replicas[0], clock)
    clock.now += timedelta(minutes=11)
    survivor = IncidentLog(replicas[1], make_policy(), clock=clock)
    async with replicas[0]() as dying:
        await dying.begin()
        held = await IncidentStore(dying).due_timers(clock.now, limit=INCIDENTS // 2)
        assert len(held) == INCIDENTS // 2
        # While the first replica holds half the timers, the other fires only the rest.
        assert await survivor.fire_due_timers(limit=INCIDENTS) == INCIDENTS - len(held)
        connection = await dying.connection()
        await connection.invalidate()  # its connection dies (as with SIGKILL): locks released
    assert await survivor.fire_due_timers(limit=INCIDENTS) == len(held)
    assert await survivor.fire_due_timers(limit=INCIDENTS) == 0
    assert await escalations(replicas[1]) == INCIDENTS
