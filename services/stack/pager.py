"""A local pager: the webhook receiver the demo and the benchmarks own, built as a team's would be.

``POST /hooks/{name}`` takes Vigil's pages. For a name with a known secret it verifies the
signature (``X-Vigil-Signature`` over ``X-Vigil-Timestamp`` and the body) and refuses forgeries
and stale timestamps with 401; it keeps every arrival, and the first arrival of each
``Idempotency-Key`` as the page (a repeat is acknowledged with 200 and not counted again). Set
:attr:`PageReceiver.down` to answer 503, as a receiver being deployed would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.runtime.waiting import wait_at_most

__all__ = ["Arrival", "PageReceiver", "verify_signature"]

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"


def verify_signature(
    secret: str, timestamp: int, body: bytes, signature: str, *, now: int, tolerance_s: int = 300
) -> bool:
    """Check a page as docs/operations.md tells a receiver to: the HMAC-SHA256 of
    ``f"{timestamp}.{body}"`` under the contact's secret, and a timestamp within five minutes
    (written from the documentation, not imported from the incident log, on purpose)."""
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(f"v1={expected.hexdigest()}".encode(), signature.encode())


@dataclass(frozen=True)
class Arrival:
    """One request the receiver took."""

    hook: str
    key: str | None
    body: dict[str, Any]
    received_at: float
    verified: bool | None
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PageReceiver:
    """Receives pages; ``secrets`` maps hook names to their contact's signing secret."""

    secrets: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    down: bool = False
    delay_s: float = 0.0
    """How long each answer takes (a slow receiver keeps deliveries in flight)."""
    arrivals: list[Arrival] = field(default_factory=list)
    pages: dict[str, Arrival] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        """The ASGI app to serve."""
        return Starlette(routes=[Route("/hooks/{name}", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> JSONResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.down:
            return JSONResponse({"error": "receiver down"}, status_code=503)
        name = request.path_params["name"]
        raw = await request.body()
        verified: bool | None = None
        secret = self.secrets.get(name)
        if secret is not None:
            try:
                timestamp = int(request.headers.get(TIMESTAMP_HEADER, ""))
            except ValueError:
                timestamp = 0
            verified = verify_signature(
                secret,
                timestamp,
                raw,
                request.headers.get(SIGNATURE_HEADER, ""),
                now=int(self.clock()),
            )
            if not verified:
                self.refused.append(name)
                self._changed.set()
                return JSONResponse({"error": "bad signature"}, status_code=401)
        key = request.headers.get("Idempotency-Key")
        arrival = Arrival(
            name, key, json.loads(raw), self.clock(), verified, raw, dict(request.headers)
        )
        self.arrivals.append(arrival)
        if key is not None and key not in self.pages:
            self.pages[key] = arrival
        self._changed.set()
        return JSONResponse({"ok": True})

    def duplicates(self) -> int:
        """Arrivals beyond the first of their key (what an idempotent receiver drops)."""
        return len(self.arrivals) - len(self.pages)

    def pages_for(self, hook: str, reason: str | None = None) -> list[Arrival]:
        """The distinct pages one hook received (of one reason, if given)."""
        return [
            arrival
            for arrival in self.pages.values()
            if arrival.hook == hook and (reason is None or arrival.body.get("reason") == reason)
        ]

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``condition()`` holds; raise ``TimeoutError`` after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the receiver did not get what was expected in time")
            self._changed.clear()
            await wait_at_most(self._changed, min(remaining, 0.5))
