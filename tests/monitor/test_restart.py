"""A monitor process killed mid-stream (SIGKILL) and started again loses nothing and counts
nothing twice: waiting joins, open windows and alert episodes come back from its database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import AlertRaised, AlertRecovered, Envelope, MetricsComputed, Topic
from services.runtime import KafkaSettings, free_port
from services.runtime.processes import die_with_parent
from tests.factories import make_deployment, make_version_record
from tests.monitor.doubles import FakeRegistry, serving
from tests.monitor.real import handled_all, last_label_time, producer, read_events, wait_for
from tests.monitor.streams import Phase, interleaved, scored_stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "restarted"


def start_monitor(
    kafka: KafkaSettings, state_dir: Path, registry_url: str, group: str, port: int
) -> subprocess.Popen[bytes]:
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


def clock_at_least(at: datetime) -> Any:
    def reached(status: dict[str, Any]) -> bool:
        clock = status.get("clocks", {}).get(MODEL)
        return clock is not None and datetime.fromisoformat(clock) >= at

    return reached


async def test_a_monitor_killed_mid_stream_resumes_without_loss_or_double_counting(
    kafka_settings: KafkaSettings, tmp_path: Path, unique: str
) -> None:
    stream = scored_stream(
        [Phase(1000), Phase(700, recall=0.7), Phase(1300)],
        model=MODEL,
        label_delay=timedelta(seconds=50),
    )
    events: list[Envelope] = interleaved(stream, label_lag=50)
    first_part = int(len(events) * 0.6)
    registry = FakeRegistry().add(make_version_record(model=MODEL, version=1))
    registry.deploy(MODEL, make_deployment(challenger=None, challenger_share=0.0))
    state_dir, group = tmp_path / "state", f"monitor-{unique}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        async with serving(registry.app()) as registry_url, producer(kafka_settings) as publish:
            port = free_port()
            processes.append(start_monitor(kafka_settings, state_dir, registry_url, group, port))
            await wait_for(lambda: status_of(port, processes[-1]), lambda s: s["ready"])
            await publish(events[:first_part])
            await wait_for(
                lambda: status_of(port, processes[-1]),
                clock_at_least(events[first_part // 2].occurred_at),
                what="half of the first part handled",
            )
            processes[-1].send_signal(signal.SIGKILL)
            await asyncio.to_thread(processes[-1].wait, 10)

            port = free_port()
            processes.append(start_monitor(kafka_settings, state_dir, registry_url, group, port))
            await wait_for(lambda: status_of(port, processes[-1]), lambda s: s["ready"])
            await publish(events[first_part:])
            status = await wait_for(
                lambda: status_of(port, processes[-1]),
                handled_all({MODEL: last_label_time(events, MODEL)}),
                timeout_s=120,
                what="every event handled after the restart",
            )
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 40)

    windows = [
        m
        for m in await read_events(kafka_settings, Topic.METRICS)
        if isinstance(m, MetricsComputed)
    ]
    (still_open,) = status["open_windows"] or [{"predictions": 0, "labelled": 0}]
    assert sum(w.predictions for w in windows) + still_open["predictions"] == 3000
    assert sum(w.labelled for w in windows) + still_open["labelled"] == 3000
    alerts = [
        (type(a).__name__, a.fingerprint)
        for a in await read_events(kafka_settings, Topic.ALERTS)
        if isinstance(a, AlertRaised | AlertRecovered)
    ]
    fingerprint = f"{MODEL}:v1:metric_decay:recall"
    assert alerts == [("AlertRaised", fingerprint), ("AlertRecovered", fingerprint)]
