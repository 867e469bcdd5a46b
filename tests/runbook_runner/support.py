"""What the runner's tests share: where the test catalogue lives, and how to tell a process died."""

from __future__ import annotations

import asyncio
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "scripts"
CATALOG_PATH = SCRIPTS / "catalog.yaml"


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_dead(pid: int, timeout_s: float = 20.0) -> bool:
    """Wait until a process is gone; ``False`` if it still runs after the timeout."""
    for _ in range(int(timeout_s * 10)):
        if not alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


def started_pid(marker: Path) -> int | None:
    """The process id the ``sleeps`` script wrote to its marker file, once it has."""
    if not marker.exists() or not marker.read_text().endswith("\n"):
        return None
    return int(marker.read_text().split()[1])


async def wait_started(marker: Path, timeout_s: float = 60.0) -> int:
    """Wait until the ``sleeps`` script started; return its process id."""
    for _ in range(int(timeout_s * 10)):
        pid = started_pid(marker)
        if pid is not None:
            return pid
        await asyncio.sleep(0.1)
    raise AssertionError(f"the script never started (no line in {marker})")
