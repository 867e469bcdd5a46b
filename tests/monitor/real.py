"""Helpers of the monitor's real-broker tests: an outside producer, waiting on the monitor, and
a monitor process killed mid-stream and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from contracts import Envelope, LabelRecorded, Topic
from contracts.wire import decode
from services.runtime import EventPublisher, KafkaSettings, free_port, kafka_broker
from services.runtime.processes import die_with_parent
from tests.kafka_tools import read_until_quiet
from tests.monitor.doubles import FakeRegistry, serving
from tests.polling import eventually


@asynccontextmanager
async def producer(
    kafka: KafkaSettings,
) -> AsyncIterator[Callable[[Sequence[Envelope]], Awaitable[None]]]:
    """Publish events as an outside client (the scorer, a labeller) would, in chunks."""
    broker = kafka_broker(kafka, client_id="test-producer")
    await broker.connect()
    publisher = EventPublisher(broker, kafka)

    async def publish(events: Sequence[Envelope]) -> None:
        for start in range(0, len(events), 200):
            await publisher.publish_many(events[start : start + 200])

    try:
        yield publish
    finally:
        await broker.stop()


def handled_all(models_and_last_label: dict[str, datetime]) -> Callable[[dict[str, Any]], bool]:
    """A status condition: no join waits, and each model's clock reached its last label."""

    def done(status: dict[str, Any]) -> bool:
        return (
            status["pending_predictions"] == 0
            and status["pending_labels"] == 0
            and all(
                status["clocks"].get(model) == last.isoformat()
                for model, last in models_and_last_label.items()
            )
        )

    return done


def last_label_time(events: Sequence[Envelope], model: str) -> datetime:
    return max(e.occurred_at for e in events if isinstance(e, LabelRecorded) and e.model == model)


async def read_events(kafka: KafkaSettings, topic: Topic) -> list[Envelope]:
    """Every event on a topic, each event id once (a crash may publish an outbox row twice)."""
    seen: dict[Any, Envelope] = {}
    for record in await read_until_quiet(kafka, topic):
        event = decode(topic, record.value)
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def start_monitor(
    kafka: KafkaSettings, state_dir: Path, registry_url: str, group: str, port: int
) -> subprocess.Popen[bytes]:
    """The monitor as its own process (count windows of 100, no probes), its log beside
    ``state_dir``."""
    env = os.environ | {
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VIGIL_KAFKA_PROFILE": kafka.profile.value,
        "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "VIGIL_STATE_DIR": str(state_dir),
        "VIGIL_REGISTRY_URL": registry_url,
        "VIGIL_MONITOR_HTTP_PORT": str(port),
        "VIGIL_MONITOR_CONSUMER_GROUP": group,
        "VIGIL_MONITOR_WINDOW_MAX_EVENTS": "100",
        "VIGIL_MONITOR_WINDOW_SECONDS": "none",
        "VIGIL_MONITOR_MIN_LABELLED": "20",
        "VIGIL_MONITOR_MIN_PREDICTIONS": "20",
        "VIGIL_MONITOR_PROBES_ENABLED": "false",
    }
    with (state_dir.parent / "monitor.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.monitor"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=die_with_parent,  # a killed test leaves no monitor behind
        )


async def status_of(port: int, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The monitor's ``/status``, with ``ready``; ``{"ready": False}`` until it answers."""
    assert process.poll() is None, "the monitor process exited"
    async with httpx.AsyncClient() as client:
        try:
            ready = await client.get(f"http://127.0.0.1:{port}/readyz")
            if ready.status_code != 200:
                return {"ready": False}
            status: dict[str, Any] = (await client.get(f"http://127.0.0.1:{port}/status")).json()
            return status | {"ready": True}
        except httpx.TransportError:
            return {"ready": False}


def clock_at_least(model: str, at: datetime) -> Callable[[dict[str, Any]], bool]:
    """A status condition: the model's event-time clock reached ``at``."""

    def reached(status: dict[str, Any]) -> bool:
        clock = status.get("clocks", {}).get(model)
        return clock is not None and datetime.fromisoformat(clock) >= at

    return reached


async def killed_mid_stream(
    kafka: KafkaSettings,
    folder: Path,
    group: str,
    registry: FakeRegistry,
    events: Sequence[Envelope],
    *,
    model: str,
    last: datetime,
) -> dict[str, Any]:
    """Publish 60 % of ``events`` to a monitor process, SIGKILL it once its clock passed half of
    them, start another on the same state, publish the rest; return its status once it handled
    every event up to ``last`` (the model's last truth)."""
    first_part = int(len(events) * 0.6)
    state_dir = folder / "state"
    processes: list[subprocess.Popen[bytes]] = []

    async def started(registry_url: str) -> int:
        port = free_port()
        processes.append(start_monitor(kafka, state_dir, registry_url, group, port))
        await eventually(
            lambda: status_of(port, processes[-1]), lambda s: s["ready"], timeout_s=60, every_s=0.2
        )
        return port

    try:
        async with serving(registry.app()) as registry_url, producer(kafka) as publish:
            port = await started(registry_url)
            await publish(events[:first_part])
            await eventually(
                lambda: status_of(port, processes[-1]),
                clock_at_least(model, events[first_part // 2].occurred_at),
                what="half of the first part handled",
                timeout_s=60,
                every_s=0.2,
            )
            processes[-1].send_signal(signal.SIGKILL)
            await asyncio.to_thread(processes[-1].wait, 10)

            port = await started(registry_url)
            await publish(events[first_part:])
            return await eventually(
                lambda: status_of(port, processes[-1]),
                handled_all({model: last}),
                timeout_s=120,
                what="every event handled after the restart",
                every_s=0.2,
            )
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 40)
