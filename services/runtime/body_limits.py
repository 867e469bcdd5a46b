"""Bounds on what a request body may cost a service, enforced before any route reads it.

An ASGI middleware every service's HTTP app wears (:meth:`ServiceRuntime.http_app`):

- a declared ``Content-Length`` above the limit is answered 413 before a byte of the body is
  read; a chunked body is counted as it arrives and refused with 413 once it passes the limit;
- a JSON body nested deeper than the bound is refused with 422 while it streams in (Python's
  parser would otherwise recurse until it fails with a 500).

A route that must take bigger bodies (the registry's uploads) gets its own limit with
:class:`LargerBody`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimits", "BodyRefused", "JsonDepth", "LargerBody"]

_STRUCTURE = re.compile(rb'[\\"\[\]{}]')
_PLAIN_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_BACKSLASH, _QUOTE = ord("\\"), ord('"')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")


class BodyRefused(HTTPException):
    """A body over a limit. An ``HTTPException`` so that FastAPI's body parsing lets it through
    to the exception handlers instead of calling it a malformed body (400)."""


@dataclass(frozen=True)
class LargerBody:
    """A route whose bodies may be bigger than the service's limit (``path`` is matched in full)."""

    method: str
    path: re.Pattern[str]
    max_bytes: int


class JsonDepth:
    """Tracks how deeply a JSON text is nested as its bytes arrive, chunk by chunk."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.depth = 0
        self._in_string = False
        self._escaped = False  # the previous chunk ended inside a string, on a backslash

    def feed(self, chunk: bytes) -> None:
        """Account for the next bytes; ``ValueError`` once nesting passes the bound."""
        if b"\\" in chunk or self._escaped:
            self._feed_escaped(chunk)
            return
        # No escapes: strings end at the next quote, so C-speed passes drop them and keep
        # only the brackets (this is the common case, and several times faster).
        if self._in_string:
            end = chunk.find(b'"')
            if end < 0:
                return
            chunk, self._in_string = chunk[end + 1 :], False
        outside = _PLAIN_STRING.sub(b"", chunk)
        cut = outside.find(b'"')
        if cut >= 0:
            outside, self._in_string = outside[:cut], True
        for byte in outside.translate(None, _NOT_BRACKETS):
            self._step(byte)

    def _feed_escaped(self, chunk: bytes) -> None:
        skip = 0 if self._escaped else -1
        self._escaped = False
        for match in _STRUCTURE.finditer(chunk):
            at = match.start()
            if at == skip:
                continue
            byte = chunk[at]
            if self._in_string:
                if byte == _BACKSLASH:
                    skip = at + 1
                    self._escaped = skip == len(chunk)
                elif byte == _QUOTE:
                    self._in_string = False
            elif byte == _QUOTE:
                self._in_string = True
            elif byte in _OPEN or byte in _CLOSE:
                self._step(byte)

    def _step(self, bracket: int) -> None:
        if bracket in _OPEN:
            self.depth += 1
            if self.depth > self.max_depth:
                raise ValueError(f"JSON nested deeper than {self.max_depth} levels")
        else:
            self.depth -= 1


class BodyLimits:
    """ASGI middleware: refuse bodies over ``max_bytes`` (413) and JSON nested deeper than
    ``max_json_depth`` (422)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        max_json_depth: int,
        larger: Sequence[LargerBody] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_depth = max_json_depth
        self.larger = tuple(larger)

    def limit_for(self, method: str, path: str) -> int:
        """The most bytes a request's body may have."""
        for route in self.larger:
            if route.method == method and route.path.fullmatch(path):
                return route.max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        headers = {name.lower(): value for name, value in scope["headers"]}
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _answer(send, 413, _too_large(limit))
                return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        depth = (
            JsonDepth(self.max_json_depth)
            if content_type == b"application/json" or content_type.endswith(b"+json")
            else None
        )
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    raise BodyRefused(413, _too_large(limit))
                if depth is not None:
                    try:
                        depth.feed(chunk)
                    except ValueError as error:
                        raise BodyRefused(422, str(error)) from None
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except BodyRefused as refusal:
            if started:
                raise
            await _answer(send, refusal.status_code, refusal.detail)


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
