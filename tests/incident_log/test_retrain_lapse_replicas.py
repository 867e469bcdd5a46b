"""Two incident-log replicas on one database end each retrain ask nobody answered once (one
``retrain_no_longer_in_flight`` on its incident's timeline), and a replica that dies while
holding asks leaves them to the other (rows claimed with SKIP LOCKED,
``IncidentLog.lapse_retrains``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from contracts import AlertKind, alert_fingerprint
from services.incident_log.service import IncidentLog
from services.incident_log.store import IncidentStore
from services.incident_log.tables import IncidentRow, RetrainRow, TimelineRow
from services.runtime import Sessions, create_engine, session_factory
from tests.clock import FakeClock
from tests.dying_connection import kill_connection
from tests.factories import T0, make_alert
from tests.incident_log.policies import make_policy

ASKS = 12
ANSWER_TIMEOUT = timedelta(minutes=5)


@pytest.fixture
async def replicas(engine: AsyncEngine, database_url: str) -> AsyncIterator[list[Sessions]]:
    """Two replicas' sessions, each on an engine (connections) of its own."""
    other = create_engine(database_url)
    yield [session_factory(engine), session_factory(other)]
    await other.dispose()


def incident_log(sessions: Sessions, clock: FakeClock[datetime]) -> IncidentLog:
    return IncidentLog(sessions, make_policy(retrain_answer_timeout_minutes=5), clock=clock)


async def ask_unanswered(sessions: Sessions, clock: FakeClock[datetime]) -> None:
    """One open incident per model, each with a retrain ask the retrainer never answers."""
    alerts = [
        make_alert(
            model=f"model-{n}",
            fingerprint=alert_fingerprint(f"model-{n}", 3, AlertKind.METRIC_DECAY, "recall"),
        )
        for n in range(ASKS)
    ]
    await incident_log(sessions, clock).on_alerts(alerts)
    async with sessions() as session, session.begin():
        incidents = (await session.exec(select(IncidentRow.id, IncidentRow.model))).all()
        assert len(incidents) == ASKS
        for incident_id, model in incidents:
            session.add(
                RetrainRow(
                    model=model,
                    cause="metric decay",
                    requested_at=clock.now,
                    incident_id=incident_id,
                )
            )


async def lapsed(sessions: Sessions) -> tuple[int, int]:
    """(asks ended, ``retrain_no_longer_in_flight`` entries on the timelines)."""
    async with sessions() as session:
        ended = await session.exec(
            select(func.count()).where(col(RetrainRow.finished_at).is_not(None))
        )
        noted = await session.exec(
            select(func.count()).where(col(TimelineRow.action) == "retrain_no_longer_in_flight")
        )
        return int(ended.one()), int(noted.one())


async def test_two_replicas_lapsing_at_once_end_each_ask_once(replicas: list[Sessions]) -> None:
    clock = FakeClock(T0)
    await ask_unanswered(replicas[0], clock)
    clock.now += ANSWER_TIMEOUT + timedelta(minutes=1)  # past every answer window
    logs = [incident_log(sessions, clock) for sessions in replicas]

    async def lapse_until_done(log: IncidentLog) -> int:
        ended = 0
        while (batch := await log.lapse_retrains(limit=2)) > 0:
            ended += batch
        return ended

    ended = await asyncio.gather(*(lapse_until_done(log) for log in logs))
    assert sum(ended) == ASKS
    assert await lapsed(replicas[1]) == (ASKS, ASKS)


async def test_asks_held_by_a_replica_that_dies_are_ended_by_the_other(
    replicas: list[Sessions], database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: no second replica to take over")
    clock = FakeClock(T0)
    await ask_unanswered(replicas[0], clock)
    clock.now += ANSWER_TIMEOUT + timedelta(minutes=1)
    survivor = incident_log(replicas[1], clock)
    policy = make_policy(retrain_answer_timeout_minutes=5)
    async with replicas[0]() as dying:
        await dying.begin()
        held = await IncidentStore(dying).lapsing_retrains(
            clock.now,
            answer_timeout=policy.retrain_answer_timeout,
            retrain_timeout=policy.retrain_timeout,
            limit=ASKS // 2,
        )
        assert len(held) == ASKS // 2
        # While the first replica holds half the asks, the other ends only the rest (and does
        # not wait for the held ones: a wait would time out here).
        ended = await asyncio.wait_for(survivor.lapse_retrains(limit=ASKS), timeout=10)
        assert ended == ASKS - len(held)
        async with replicas[1]() as observer:  # its connection dies (as with SIGKILL): locks freed
            await kill_connection(dying, observer)
    assert await survivor.lapse_retrains(limit=ASKS) == len(held)
    assert await survivor.lapse_retrains(limit=ASKS) == 0
    assert await lapsed(replicas[1]) == (ASKS, ASKS)
