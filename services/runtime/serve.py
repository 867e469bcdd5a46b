"""Serving a service's HTTP app under uvicorn, which turns SIGTERM / SIGINT into a clean stop."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from services.runtime.observability import configure_logging
from services.runtime.settings import ServiceSettings

__all__ = ["serve"]


def serve(app: FastAPI, settings: ServiceSettings, *, service: str) -> None:
    """Serve until SIGTERM or SIGINT; in-flight events finish and their offsets are committed."""
    configure_logging(service, level=settings.log_level, fmt=settings.log_format)
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
