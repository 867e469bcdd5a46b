"""Handled event ids recorded one batch per row, on SQLite and PostgreSQL: only committed
batches count, a restart remembers the newest ids, old rows are pruned."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlmodel import SQLModel, func, select

from contracts import utc_now
from services.runtime import (
    HandledBatch,
    HandledIds,
    Sessions,
)


@pytest.fixture
def schema() -> list[type[SQLModel]]:
    return [HandledBatch]


async def handle(sessions: Sessions, handled: HandledIds, ids: list[UUID]) -> list[UUID]:
    async with sessions() as session, session.begin():
        fresh = await handled.record(session, ids)
    handled.remember(fresh)
    return fresh


async def test_a_batch_records_only_ids_not_handled_before_in_one_row(sessions: Sessions) -> None:
    handled = HandledIds()
    first, second, third = uuid4(), uuid4(), uuid4()
    assert await handle(sessions, handled, [first, second, first]) == [first, second]
    assert await handle(sessions, handled, [second, third]) == [third]
    assert await handle(sessions, handled, [first, third]) == []
    async with sessions() as session:
        rows = (await session.exec(select(func.count()).select_from(HandledBatch))).one()
    assert rows == 2


async def test_a_rolled_back_batch_is_not_remembered(sessions: Sessions) -> None:
    handled = HandledIds()
    event_id = uuid4()

    async def fail_after_recording() -> None:
        async with sessions() as session, session.begin():
            assert await handled.record(session, [event_id]) == [event_id]
            raise RuntimeError("the batch's effects failed")

    with pytest.raises(RuntimeError):
        await fail_after_recording()
    assert event_id not in handled
    assert await handle(sessions, handled, [event_id]) == [event_id]


async def test_a_restart_remembers_the_newest_ids_up_to_the_capacity(sessions: Sessions) -> None:
    before = HandledIds(capacity=1_000)
    batches = [[uuid4() for _ in range(400)] for _ in range(4)]
    for batch in batches:
        await handle(sessions, before, batch)
    after = HandledIds(capacity=1_000)
    async with sessions() as session:
        await after.load(session)
    assert all(event_id in after for event_id in batches[-1] + batches[-2])
    assert await handle(sessions, after, batches[-1][:5] + batches[-2][:5]) == []
    assert not any(event_id in after for event_id in batches[0])


async def test_rows_older_than_the_cutoff_are_pruned(sessions: Sessions) -> None:
    handled = HandledIds()
    await handle(sessions, handled, [uuid4()])
    async with sessions() as session, session.begin():
        assert await HandledIds.forget_before(session, utc_now() - timedelta(hours=1)) == 0
        assert await HandledIds.forget_before(session, utc_now() + timedelta(seconds=1)) == 1
