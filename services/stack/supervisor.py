"""Running Vigil's services as child processes: start in order, watch health, restart what
crashes (with backoff), stop everything cleanly.

Each service runs as ``python -m services.<package>`` with its settings in the environment, its
output in ``<state>/logs/<service>.log``, and its readiness read from ``/readyz`` (every
``readiness_interval_s`` once it is up: a ready service that stops answering 200 is ``unready``
until it does again). A service's environment is the supervisor's own without any
``VIGIL_…TOKEN…`` or ``VIGIL_…SIGNING_KEY…`` variable (the operator's ``VIGIL_TOKEN`` must not
reach a service), plus the shared settings and its own, and ``MALLOC_ARENA_MAX=2`` unless the
operator set it (``_ALLOCATOR_DEFAULTS``). A service that exits is started again
after a delay that doubles with each crash in a row (up to a ceiling) and resets once it has
stayed ready for a while (a slow start does not count as staying up). What the status says
about readiness and crashes in a row is what ``services/stack/watchdog.py`` alerts on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx

from services.runtime.names import ServiceName
from services.runtime.processes import die_with_parent

__all__ = ["ChildState", "ServiceSpec", "Supervisor"]

log = logging.getLogger(__name__)


_ALLOCATOR_DEFAULTS = {"MALLOC_ARENA_MAX": "2"}
"""glibc gives each thread that allocates its own arena (up to eight per core), and freed memory
in one arena is not reused by another; two keep a service's resident memory down at no cost its
few threads notice (docs/adr/0016-hot-path.md, "The stack's memory"). The operator's own setting
wins."""


class ChildState(StrEnum):
    """Where a supervised service is."""

    STARTING = "starting"
    READY = "ready"
    UNREADY = "unready"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service."""

    name: ServiceName
    port: int
    env: Mapping[str, str]


@dataclass
class _Child:
    spec: ServiceSpec
    process: subprocess.Popen[bytes] | None = None
    state: ChildState = ChildState.STOPPED
    restarts: int = 0
    crashes_in_a_row: int = 0
    started_at: float = 0.0
    ready_since: float | None = None
    last_exit: int | None = None
    next_start_at: float = 0.0
    unready_since: float | None = None
    next_probe_at: float = 0.0


@dataclass(frozen=True)
class ChildStatus:
    """A snapshot of one supervised service, for the status view."""

    name: str
    pid: int | None
    port: int
    state: ChildState
    restarts: int
    uptime_s: float | None
    """Time since the process started, while it is ready."""
    last_exit: int | None
    crashes_in_a_row: int = 0
    ready_s: float | None = None
    """Time since it last became ready (while ready or unready-but-running)."""
    unready_s: float | None = None
    """How long the service has not been ready (starting, unready or restarting); None when
    ready or stopped on purpose."""


class Supervisor:
    """Starts services in order and keeps them running until :meth:`stop`."""

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        *,
        logs_dir: Path,
        base_env: Mapping[str, str],
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        stable_after_s: float = 60.0,
        ready_timeout_s: float = 120.0,
        readiness_interval_s: float = 1.0,
    ) -> None:
        self._children = {spec.name: _Child(spec) for spec in specs}
        self._logs_dir = logs_dir
        self._base_env = dict(base_env)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._stable_after_s = stable_after_s
        self._ready_timeout_s = ready_timeout_s
        self._readiness_interval_s = readiness_interval_s
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    def url(self, name: ServiceName) -> str:
        """Base URL of a supervised service's HTTP API."""
        return f"http://127.0.0.1:{self._children[name].spec.port}"

    def status(self) -> list[ChildStatus]:
        """Every service's current state."""
        now = time.monotonic()
        return [
            ChildStatus(
                name=child.spec.name.value,
                pid=child.process.pid if child.process and child.process.poll() is None else None,
                port=child.spec.port,
                state=child.state,
                restarts=child.restarts,
                uptime_s=now - child.started_at if child.state is ChildState.READY else None,
                last_exit=child.last_exit,
                crashes_in_a_row=child.crashes_in_a_row,
                ready_s=(
                    now - child.ready_since
                    if child.ready_since is not None and child.state is ChildState.READY
                    else None
                ),
                unready_s=(
                    now - child.unready_since
                    if child.unready_since is not None and not self._stopping
                    else None
                ),
            )
            for child in self._children.values()
        ]

    def pid(self, name: ServiceName) -> int | None:
        """The process id of a running service."""
        process = self._children[name].process
        return process.pid if process and process.poll() is None else None

    async def start(self) -> None:
        """Start every service in order, each ready before the next; then watch them."""
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        async with httpx.AsyncClient() as http:
            for child in self._children.values():
                self._spawn(child)
                await self._wait_ready(child, http)
        self._watcher = asyncio.create_task(self._watch(), name="supervisor")

    async def wait_ready(self, name: ServiceName, timeout_s: float | None = None) -> None:
        """Wait until a service answers ``/readyz`` (e.g. after a restart)."""
        deadline = time.monotonic() + (timeout_s or self._ready_timeout_s)
        while self._children[name].state is not ChildState.READY:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name.value} not ready")
            await asyncio.sleep(0.1)

    async def stop(self, *, timeout_s: float = 30.0) -> None:
        """SIGTERM every service in reverse order, wait for each, SIGKILL stragglers."""
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for child in reversed(list(self._children.values())):
            process = child.process
            if process is None or process.poll() is not None:
                child.state = ChildState.STOPPED
                continue
            child.state = ChildState.STOPPING
            process.send_signal(signal.SIGTERM)
            try:
                child.last_exit = await asyncio.to_thread(process.wait, timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.spec.name, timeout_s)
                process.kill()
                child.last_exit = await asyncio.to_thread(process.wait)
            child.state = ChildState.STOPPED

    def environment(self, name: ServiceName) -> dict[str, str]:
        """The environment a service is started with."""
        spec = self._children[name].spec
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not (key.startswith("VIGIL_") and ("TOKEN" in key or "SIGNING_KEY" in key))
        }
        return (
            _ALLOCATOR_DEFAULTS
            | inherited
            | self._base_env
            | dict(spec.env)
            | {f"{spec.name.env_prefix}HTTP_PORT": str(spec.port)}
        )

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        env = self.environment(spec.name)
        with (self._logs_dir / f"{spec.name.value}.log").open("ab") as output:
            child.process = subprocess.Popen(
                [sys.executable, "-m", spec.name.package],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops them in order
                preexec_fn=die_with_parent,
            )
        child.state = ChildState.STARTING
        child.started_at = time.monotonic()
        child.ready_since = None
        if child.unready_since is None:
            child.unready_since = child.started_at
        log.info("started %s (pid %d, port %d)", spec.name, child.process.pid, spec.port)

    async def _wait_ready(self, child: _Child, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            if await self._poll_ready(child, http):
                return
            if child.process is None or child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.spec.name.value} exited during start-up; see "
                    f"{self._logs_dir / (child.spec.name.value + '.log')}"
                )
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{child.spec.name.value} not ready within {self._ready_timeout_s} s")

    async def _poll_ready(self, child: _Child, http: httpx.AsyncClient) -> bool:
        with contextlib.suppress(httpx.TransportError):
            response = await http.get(f"http://127.0.0.1:{child.spec.port}/readyz", timeout=2.0)
            if response.status_code == 200:
                if child.state is not ChildState.READY:
                    if child.state is ChildState.STARTING:
                        child.ready_since = time.monotonic()
                    child.state = ChildState.READY
                    child.unready_since = None
                return True
        if child.state is ChildState.READY:
            child.state = ChildState.UNREADY
            child.unready_since = time.monotonic()
            log.warning("%s is no longer ready (/readyz)", child.spec.name)
        return False

    async def _watch(self) -> None:
        async with httpx.AsyncClient() as http:
            while not self._stopping:
                now = time.monotonic()
                for child in self._children.values():
                    await self._tend(child, http, now)
                await asyncio.sleep(0.2)

    async def _tend(self, child: _Child, http: httpx.AsyncClient, now: float) -> None:
        process = child.process
        if child.state is ChildState.RESTARTING:
            if now >= child.next_start_at:
                child.restarts += 1
                self._spawn(child)
            return
        if process is not None and process.poll() is not None:
            child.last_exit = process.returncode
            uptime = now - child.started_at
            stayed_ready = now - child.ready_since if child.ready_since is not None else 0.0
            child.crashes_in_a_row = (
                1 if stayed_ready >= self._stable_after_s else child.crashes_in_a_row + 1
            )
            delay = min(self._backoff_s * 2 ** (child.crashes_in_a_row - 1), self._max_backoff_s)
            child.next_start_at = now + delay
            if child.unready_since is None:
                child.unready_since = now
            child.state = ChildState.RESTARTING
            log.warning(
                "%s exited with %s after %.1f s; restarting in %.1f s",
                child.spec.name,
                process.returncode,
                uptime,
                delay,
            )
            return
        if child.state is ChildState.STARTING:
            await self._poll_ready(child, http)
        elif now >= child.next_probe_at:
            child.next_probe_at = now + self._readiness_interval_s
            await self._poll_ready(child, http)
