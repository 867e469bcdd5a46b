"""The supervisor's HTTP endpoint, for an outside monitor: is Vigil's alert path alive?

It does not depend on the incident log, Kafka or any service (it is served by the ``vigil up``
process itself), so a monitor outside Vigil can scrape it when everything else is down:

- ``GET /deadman``: the dead man's switch (:mod:`services.stack.deadman`), 200 while heartbeats
  come through (or the first is awaited), 503 once they stopped;
- ``GET /services``: each supervised service's state, restarts and unready time;
- ``GET /metrics``: the same as Prometheus gauges (``vigil_heartbeat_ok``,
  ``vigil_heartbeat_silent_seconds``, ``vigil_service_ready``, ``vigil_service_restarts``,
  ``vigil_service_unready_seconds``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.stack.deadman import HeartbeatReport
from services.stack.supervisor import ChildState, ChildStatus

__all__ = ["watch_app"]


def watch_app(
    status: Callable[[], list[ChildStatus]], heartbeat: Callable[[], HeartbeatReport]
) -> Starlette:
    """The endpoint's ASGI app over the supervisor's status and the switch's report."""
    registry = CollectorRegistry()
    heartbeat_ok = Gauge(
        "vigil_heartbeat_ok",
        "1 while heartbeats come through alerts → incident log → paging, 0 once they stopped.",
        registry=registry,
    )
    silent = Gauge(
        "vigil_heartbeat_silent_seconds",
        "Seconds since the last heartbeat echo (since the start, before the first).",
        registry=registry,
    )
    ready = Gauge(
        "vigil_service_ready",
        "1 if the service answers /readyz 200.",
        ["service"],
        registry=registry,
    )
    restarts = Gauge(
        "vigil_service_restarts",
        "Times the supervisor restarted the service.",
        ["service"],
        registry=registry,
    )
    unready = Gauge(
        "vigil_service_unready_seconds",
        "Seconds the service has not been ready; 0 when ready.",
        ["service"],
        registry=registry,
    )

    async def deadman(_: Request) -> JSONResponse:
        report = heartbeat()
        body = asdict(report) | {"ok": report.ok, "summary": report.describe()}
        return JSONResponse(body, status_code=200 if report.ok else 503)

    async def services(_: Request) -> JSONResponse:
        return JSONResponse([asdict(row) for row in status()])

    async def metrics(_: Request) -> Response:
        report = heartbeat()
        heartbeat_ok.set(1 if report.ok else 0)
        silent.set(report.silent_for_s)
        for row in status():
            ready.labels(row.name).set(1 if row.state is ChildState.READY else 0)
            restarts.labels(row.name).set(row.restarts)
            unready.labels(row.name).set(row.unready_s or 0.0)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/deadman", deadman),
            Route("/services", services),
            Route("/metrics", metrics),
        ]
    )
