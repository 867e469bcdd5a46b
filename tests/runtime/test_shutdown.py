"""A service process stopped with SIGTERM finishes its in-flight event and commits it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.runtime import EventPublisher, KafkaSettings, free_port, kafka_broker
from tests.factories import make_alert

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_service(
    kafka: KafkaSettings, log: Path, group: str, port: int
) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VIGIL_KAFKA_PROFILE": kafka.profile.value,
        "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "SLOW_SERVICE_LOG": str(log),
        "SLOW_SERVICE_GROUP": group,
        "SLOW_SERVICE_SECONDS": "2",
        "SLOW_SERVICE_HTTP_PORT": str(port),
    }
    with (log.parent / "service.stderr").open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.runtime.slow_service"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


async def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            assert process.poll() is None, "service exited during start-up"
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("service never became ready")


def lines_of(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


async def wait_for_line(log: Path, line: str, timeout_s: float = 30) -> None:
    for _ in range(int(timeout_s * 10)):
        if line in await asyncio.to_thread(lines_of, log):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{line!r} not logged; log: {lines_of(log)}")


async def test_sigterm_finishes_the_in_flight_event_and_commits_it(
    kafka_settings: KafkaSettings, unique: str, tmp_path: Path
) -> None:
    log = tmp_path / "handled.log"
    group = f"slow-{unique}"
    broker = kafka_broker(kafka_settings, client_id="test")
    await broker.connect()
    publisher = EventPublisher(broker, kafka_settings)
    first, second = make_alert(), make_alert(summary="second")
    try:
        port = free_port()
        process = start_service(kafka_settings, log, group, port)
        await wait_ready(port, process)
        await publisher.publish(first)
        await wait_for_line(log, f"started {first.event_id}")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 40) == 0
        assert f"done {first.event_id}" in log.read_text().splitlines()

        port = free_port()
        process = start_service(kafka_settings, log, group, port)
        await wait_ready(port, process)
        await publisher.publish(second)
        await wait_for_line(log, f"done {second.event_id}")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 40) == 0
    finally:
        if process.poll() is None:
            process.kill()
        await broker.stop()

    lines = log.read_text().splitlines()
    assert lines.count(f"started {first.event_id}") == 1, lines
    assert lines.count(f"started {second.event_id}") == 1, lines
