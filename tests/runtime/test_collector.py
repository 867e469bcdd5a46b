"""The collector's policy in a served process (services/runtime/collector.py): what start-up
kept is frozen, what it dropped is freed, and cycles made later are still collected.

Each test runs in its own process: freezing is for the whole process, and must not reach the
test runner's."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time

import httpx

from services.runtime import free_port
from services.runtime.collector import OLDEST_GENERATION_THRESHOLD


def test_a_served_process_freezes_what_its_start_up_kept_and_still_collects_cycles() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.collected_service"],
        env=os.environ | {"COLLECTED_SERVICE_HTTP_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        report = _ask(f"http://127.0.0.1:{port}/collector", process)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    young, middle, _ = gc.get_threshold()  # the runner's own, untouched: CPython's defaults
    assert report == {
        "frozen": report["frozen"],
        "threshold": [young, middle, OLDEST_GENERATION_THRESHOLD],
        "start_up_garbage_freed": True,
        "start_up_object_frozen": True,
        "later_object_tracked": True,
        "later_cycle_freed": True,
    }
    frozen = report["frozen"]
    assert isinstance(frozen, int)
    assert frozen > 10_000  # the imports: FastAPI, pydantic, SQLAlchemy, ...
    assert gc.get_freeze_count() == 0


def _ask(url: str, process: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the process exited during start-up"
        try:
            answer = httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result
    raise AssertionError("the process never answered")
