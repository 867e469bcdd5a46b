"""A loop that waits with ``wait_at_most`` stops when cancelled, even when the event it waits
for is set at the same moment (``asyncio.wait_for`` on Python 3.11 loses that cancellation)."""

from __future__ import annotations

import asyncio

from services.runtime.waiting import wait_at_most


async def test_a_waiting_loop_woken_as_it_is_cancelled_still_stops() -> None:
    for _ in range(200):
        wake = asyncio.Event()
        loops = 0

        async def loop(wake: asyncio.Event = wake) -> None:
            nonlocal loops
            while True:
                loops += 1
                wake.clear()
                await wait_at_most(wake, 5.0)

        task = asyncio.create_task(loop())
        await asyncio.sleep(0)
        wake.set()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2.0)
        assert done == {task}, "the loop swallowed its cancellation"
        assert task.cancelled()


async def test_it_says_whether_the_event_came_or_the_time_ran_out() -> None:
    event = asyncio.Event()
    assert await wait_at_most(event, 0.01) is False
    event.set()
    assert await wait_at_most(event, 5.0) is True
