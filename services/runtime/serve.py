"""Serving HTTP apps under uvicorn: a service's own (SIGTERM / SIGINT become a clean stop), or
a small app on loopback inside a running event loop (the demo's pager, tests' receivers)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI

from services.runtime.collector import freeze_after_start_up
from services.runtime.embedded_broker import free_port
from services.runtime.observability import configure_logging
from services.runtime.settings import ServiceSettings

__all__ = ["serve", "serving"]


@asynccontextmanager
async def serving(app: Any, *, lifespan: Literal["on", "off"] = "off") -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block exits; yield its base URL."""
    port = free_port()
    # Idle connections stay open a minute: with uvicorn's 5 s default, a client reusing a pooled
    # connection just as the server closes it gets a ReadError (seen in tests that wait a while).
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started:
                break
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def serve(app: FastAPI, settings: ServiceSettings, *, service: str) -> None:
    """Serve until SIGTERM or SIGINT; in-flight events finish and their offsets are committed.

    The process serves only this app: once it has started, the collector settles
    (:mod:`services.runtime.collector`)."""
    configure_logging(service, level=settings.log_level, fmt=settings.log_format)
    freeze_after_start_up(app)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    # Uvicorn shuts down cleanly on SIGTERM / SIGINT, then re-raises the signal under the handlers
    # found at start. These make that an exit with status 0, so a supervisor can tell a clean stop
    # from a crash.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.Server(config).run()


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
