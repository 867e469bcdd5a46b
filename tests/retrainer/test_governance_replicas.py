"""Two retrainer replicas on one database run each of the governance's timed loops once — the
expiry of lapsed promotion requests (``Governance.expire_due``) and the withdrawal of canaries whose
challenger left the deployment (``Governance.reconcile_canaries``) — and a replica that dies
holding rows leaves them to the other (rows claimed with SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from services.retrainer.migrations import HISTORY
from services.retrainer.registry.store import RegistryStore
from services.retrainer.rollout.canary import Rollout
from services.retrainer.rollout.governance import Governance
from services.retrainer.rollout.promotions import PromotionState
from services.retrainer.rollout.tables import PromotionRow
from services.runtime import OutboxMessage, Sessions, create_engine, session_factory
from services.runtime.migrations import migrate
from tests.dying_connection import kill_connection
from tests.factories import T0

ROWS = 12
NOW = T0 + timedelta(hours=2)  # past every request's expiry


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two replicas' engines (connections of their own) on one migrated database."""
    engines = [create_engine(database_url) for _ in range(2)]
    await migrate(engines[0], HISTORY)
    yield engines
    for engine in engines:
        await engine.dispose()


def governance(engine: AsyncEngine) -> Governance:
    sessions = session_factory(engine)
    return Governance(
        sessions,
        RegistryStore(sessions, producer="retrainer"),
        producer="retrainer",
        clock=lambda: NOW,
        promotion_ttl=timedelta(hours=1),
        canary_share=0.1,
        canary_min_labels=20,
    )


async def add_requests(sessions: Sessions, *, in_canary: bool = False, **fields: Any) -> None:
    """``ROWS`` promotion requests of one model each, with ``fields`` set on every one (and, in
    canary, the model's canary marker)."""
    async with sessions() as session, session.begin():
        for n in range(ROWS):
            session.add(
                PromotionRow(
                    request_id=f"pr-{n:03d}",
                    model=f"model-{n}",
                    version=2,
                    evaluation_id=f"ev-{n:03d}",
                    requested_by="ana",
                    requesters=json.dumps(["ana"]),
                    summary="candidate passed the gate",
                    created_at=T0,
                    expires_at=T0 + timedelta(hours=1),
                    canary_model=f"model-{n}" if in_canary else None,
                    **fields,
                )
            )


async def open_requests(sessions: Sessions) -> None:
    await add_requests(sessions, state=PromotionState.PENDING.value)


async def start_canaries(sessions: Sessions) -> None:
    """Approved requests in canary whose challenger is no longer deployed (someone took it out)."""
    await add_requests(
        sessions,
        state=PromotionState.APPROVED.value,
        decided_by="ben",
        decided_at=T0,
        rollout=Rollout.CANARY.value,
        rollout_reason="serving 10% of traffic",
        rollout_at=T0,
        champion_version=1,
        in_canary=True,
    )


async def expiries(sessions: Sessions) -> int:
    """Requests marked expired, checked against the ``promotion.expired`` events staged."""
    async with sessions() as session:
        events = await session.exec(
            select(func.count()).where(col(OutboxMessage.event_type) == "promotion.expired")
        )
        rows = await session.exec(
            select(func.count()).where(col(PromotionRow.state) == PromotionState.EXPIRED.value)
        )
        expired, staged = int(rows.one()), int(events.one())
    assert staged == expired, "one promotion.expired event per expired request"
    return expired


async def withdrawals(sessions: Sessions) -> int:
    """Canaries marked withdrawn now, checked against the canaries left open (none may be)."""
    async with sessions() as session:
        marked = await session.exec(
            select(func.count()).where(
                col(PromotionRow.rollout) == Rollout.WITHDRAWN.value,
                col(PromotionRow.rollout_at) == NOW,
            )
        )
        still = await session.exec(
            select(func.count()).where(col(PromotionRow.canary_model).is_not(None))
        )
        withdrawn, left = int(marked.one()), int(still.one())
    assert left == ROWS - withdrawn
    return withdrawn


@dataclass(frozen=True)
class Loop:
    """One timed loop of the governance: what it finds, how it runs, what it has done."""

    prepare: Callable[[Sessions], Awaitable[None]]
    run: Callable[[Governance], Awaitable[int]]
    done: Callable[[Sessions], Awaitable[int]]


LOOPS = {
    "promotion expiry": Loop(open_requests, lambda g: g.expire_due(), expiries),
    "canary reconciliation": Loop(start_canaries, lambda g: g.reconcile_canaries(), withdrawals),
}


@pytest.mark.parametrize("loop", LOOPS.values(), ids=LOOPS.keys())
async def test_two_replicas_running_a_loop_at_once_act_on_each_row_once(
    engines: list[AsyncEngine], loop: Loop
) -> None:
    await loop.prepare(session_factory(engines[0]))
    replicas = [governance(engine) for engine in engines]
    acted = await asyncio.gather(*(loop.run(replica) for replica in replicas))
    assert sum(acted) == ROWS
    assert await asyncio.gather(*(loop.run(replica) for replica in replicas)) == [0, 0]
    assert await loop.done(session_factory(engines[1])) == ROWS


@pytest.mark.parametrize("loop", LOOPS.values(), ids=LOOPS.keys())
async def test_rows_held_by_a_replica_that_dies_are_acted_on_by_the_other(
    engines: list[AsyncEngine], database_url: str, loop: Loop
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: no second replica to take over")
    await loop.prepare(session_factory(engines[0]))
    survivor = governance(engines[1])
    async with session_factory(engines[0])() as dying:
        await dying.begin()
        held = (
            await dying.exec(
                select(PromotionRow)
                .order_by(col(PromotionRow.request_id))
                .limit(ROWS // 2)
                .with_for_update(skip_locked=True)
            )
        ).all()
        assert len(held) == ROWS // 2
        # While the first replica holds half the rows, the other acts on only the rest (and
        # does not wait for the held ones: a wait would time out here).
        assert await asyncio.wait_for(loop.run(survivor), timeout=10) == ROWS - len(held)
        async with session_factory(engines[1])() as observer:  # it dies (as with SIGKILL)
            await kill_connection(dying, observer)
    assert await loop.run(survivor) == len(held)
    assert await loop.run(survivor) == 0
    assert await loop.done(session_factory(engines[1])) == ROWS
