"""Serving an ASGI app over real loopback HTTP inside a test (uvicorn on a free port), and
talking raw HTTP/1.1 to it (a head without its body, header bytes no client would send)."""

from __future__ import annotations

import asyncio

from services.runtime.serve import serving

__all__ = ["raw_exchange", "request_head", "serving"]


async def raw_exchange(
    base_url: str, request: bytes, *, timeout_s: float = 10.0
) -> tuple[int, bytes]:
    """Write ``request`` (a head, perhaps part of a body: the rest is never sent) on a new
    connection and return the answer's status and body; fails if none comes in ``timeout_s``."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await asyncio.wait_for(reader.readexactly(length), timeout_s)
        return status, body
    finally:
        writer.close()


def request_head(method: str, path: str, headers: dict[str, str | bytes]) -> bytes:
    """An HTTP/1.1 request head; header values given as bytes are sent as they are."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    for name, value in headers.items():
        raw = value if isinstance(value, bytes) else value.encode()
        lines.append(name.encode() + b": " + raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"
