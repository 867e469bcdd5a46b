"""The whole Vigil stack (`vigil up`: embedded broker, every service a real process) run from a
background thread with its own event loop, so synchronous fuzzers (schemathesis calls with
``requests``) can drive it over loopback HTTP without blocking the loop that supervises it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType

from services.runtime import ServiceName, free_port
from services.stack.stack import STARTUP_ORDER, RunningStack, StackSettings, running_stack

__all__ = ["StackThread"]


class StackThread:
    """``with StackThread(state_dir) as stack:`` — every service ready, stopped cleanly on exit."""

    def __init__(self, state_dir: Path, *, service_env: dict[str, str] | None = None) -> None:
        self._settings = StackSettings(
            state_dir=state_dir,
            broker_port=free_port(),
            ports={name: free_port() for name in STARTUP_ORDER},
            watch_port=free_port(),  # not the default: another test's stack may hold it
            service_env=service_env or {},
        )
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="vigil-stack", daemon=True)
        self.stack: RunningStack | None = None

    def url(self, name: ServiceName) -> str:
        """Base URL of a service's HTTP API."""
        return f"http://127.0.0.1:{self._settings.port(name)}"

    def __enter__(self) -> RunningStack:
        self._thread.start()
        if not self._ready.wait(timeout=300):
            raise RuntimeError("the stack did not start within 300 s")
        if self._failure is not None:
            raise RuntimeError("the stack failed to start") from self._failure
        assert self.stack is not None
        return self.stack

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=120)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported to the thread that waits for readiness
            self._failure = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_stack(self._settings) as stack:
            self.stack = stack
            self._ready.set()
            await self._stop.wait()
