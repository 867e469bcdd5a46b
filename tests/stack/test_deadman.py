"""The dead man's switch against a real incident log process that is SIGKILLed (and not
restarted by anyone): heartbeats stop being echoed, the switch says so within two minutes, and
beats again once the incident log is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from services.stack.deadman import DeadMansSwitch, SwitchState
from tests.polling import eventually
from tests.processes import running_incident_log

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


async def state_becomes(switch: DeadMansSwitch, state: SwitchState, timeout_s: float) -> float:
    """Wait until the switch reports ``state``; return how long it took."""
    started = time.monotonic()
    while switch.report().state is not state:
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"the switch is {switch.report()}, not {state}")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_the_switch_stops_within_two_minutes_of_a_killed_incident_log_and_resumes(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    publisher = EventPublisher(kafka_broker(kafka_settings, client_id="switch"), kafka_settings)
    await publisher.start()
    switch = DeadMansSwitch(kafka_settings, publisher, interval_s=1.0, timeout_s=10.0)
    running = asyncio.create_task(switch.run())
    try:
        async with running_incident_log(kafka_settings, tmp_path, admin_token="t") as process:
            await state_becomes(switch, SwitchState.BEATING, 60)
            await process.kill()
            took = await state_becomes(switch, SwitchState.STOPPED, 120)
            assert took < 120
            silent = switch.report()
            assert silent.silent_for_s >= 10.0
            echoed, sent = silent.echoed, silent.sent
            await asyncio.sleep(3)  # room for an echo, had anything answered
            # Heartbeats still go out (each counted once the broker acknowledged it, which on a
            # loaded machine can take longer than the three seconds) ...
            later = await eventually(switch.report, lambda r: r.sent > sent, timeout_s=30)
            assert later.echoed == echoed  # ... and nothing answers

            process.start()
            await process.wait_ready()
            await state_becomes(switch, SwitchState.BEATING, 60)
            print(f"switch reported the SIGKILL after {took:.1f} s")  # noqa: T201
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await publisher.stop()
