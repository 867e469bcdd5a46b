"""Two incident-log replicas on one database fire each due escalation timer, and expire each
held run nobody approved, once; a replica that dies while holding timers or held runs leaves
them to the other (rows claimed with SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts import AlertKind, alert_fingerprint
from services.incident_log.approval_store import ApprovalStore
from services.incident_log.approvals import ApprovalState, HeldRun
from services.incident_log.service import IncidentLog
from services.incident_log.store import IncidentStore
from services.incident_log.tables import IncidentRow, RunbookApprovalRow
from services.runtime import OutboxMessage, Sessions, create_engine, session_factory
from tests.clock import FakeClock
from tests.dying_connection import kill_connection
from tests.factories import T0, make_alert
from tests.incident_log.policies import make_policy

INCIDENTS = 12


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


async def open_incidents(sessions: Sessions, clock: FakeClock[datetime]) -> None:
    alerts = [
        make_alert(
            model=f"model-{n}",
            fingerprint=alert_fingerprint(f"model-{n}", 3, AlertKind.METRIC_DECAY, "recall"),
        )
        for n in range(INCIDENTS)
    ]
    await IncidentLog(sessions, make_policy(), clock=clock).on_alerts(alerts)


async def hold_runs(sessions: Sessions, clock: FakeClock[datetime]) -> None:
    """One run per open incident waiting for a second person's approval, due in 10 minutes."""
    async with sessions() as session, session.begin():
        incidents = (await session.exec(select(IncidentRow.id))).all()
        approvals = ApprovalStore(session)
        for incident_id in incidents:
            approvals.add(
                HeldRun(
                    run_id=f"run-{incident_id}",
                    incident_id=incident_id,
                    runbook="rollback-model",
                    parameters={},
                    reason="held for approval",
                    requested_by="ana",
                    requested_at=clock.now,
                    expires_at=clock.now + timedelta(minutes=10),
                )
            )


async def expired_runs(sessions: Sessions) -> int:
    async with sessions() as session:
        count = await session.exec(
            select(func.count()).where(col(RunbookApprovalRow.state) == ApprovalState.EXPIRED.value)
        )
        return int(count.one())


@dataclass(frozen=True)
class Loop:
    """One timed loop of the incident log: the rows it finds, how one pass runs, how many rows
    a replica has claimed and held, what has been done."""

    prepare: Callable[[Sessions, FakeClock[datetime]], Awaitable[None]]
    run: Callable[[IncidentLog, int], Awaitable[int]]
    hold: Callable[[AsyncSession, datetime, int], Awaitable[Sequence[object]]]
    done: Callable[[Sessions], Awaitable[int]]


async def prepare_held_runs(sessions: Sessions, clock: FakeClock[datetime]) -> None:
    await open_incidents(sessions, clock)
    await hold_runs(sessions, clock)


LOOPS = {
    "escalation timers": Loop(
        open_incidents,
        lambda log, limit: log.fire_due_timers(limit=limit),
        lambda session, now, limit: IncidentStore(session).due_timers(now, limit=limit),
        escalations,
    ),
    "approval expiry": Loop(
        prepare_held_runs,
        lambda log, limit: log.expire_approvals(limit=limit),
        lambda session, now, limit: ApprovalStore(session).due(now, limit=limit),
        expired_runs,
    ),
}


@pytest.mark.parametrize("loop", LOOPS.values(), ids=LOOPS.keys())
async def test_two_replicas_running_a_loop_at_once_act_on_each_row_once(
    replicas: list[Sessions], loop: Loop
) -> None:
    clock = FakeClock(T0)
    await loop.prepare(replicas[0], clock)
    clock.now += timedelta(minutes=11)  # past every acknowledgement timeout and approval window
    logs = [IncidentLog(sessions, make_policy(), clock=clock) for sessions in replicas]

    async def run_until_done(log: IncidentLog) -> int:
        acted = 0
        while (batch := await loop.run(log, 2)) > 0:
            acted += batch
        return acted

    acted = await asyncio.gather(*(run_until_done(log) for log in logs))
    assert sum(acted) == INCIDENTS
    assert await loop.done(replicas[1]) == INCIDENTS


@pytest.mark.parametrize("loop", LOOPS.values(), ids=LOOPS.keys())
async def test_rows_held_by_a_replica_that_dies_are_acted_on_by_the_other(
    replicas: list[Sessions], database_url: str, loop: Loop
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: no second replica to take over")
    clock = FakeClock(T0)
    await loop.prepare(replicas[0], clock)
    clock.now += timedelta(minutes=11)
    survivor = IncidentLog(replicas[1], make_policy(), clock=clock)
    async with replicas[0]() as dying:
        await dying.begin()
        held = await loop.hold(dying, clock.now, INCIDENTS // 2)
        assert len(held) == INCIDENTS // 2
        # While the first replica holds half the rows, the other acts on only the rest.
        assert await loop.run(survivor, INCIDENTS) == INCIDENTS - len(held)
        async with replicas[1]() as observer:  # its connection dies (as with SIGKILL)
            await kill_connection(dying, observer)
    assert await loop.run(survivor, INCIDENTS) == len(held)
    assert await loop.run(survivor, INCIDENTS) == 0
    assert await loop.done(replicas[1]) == INCIDENTS
