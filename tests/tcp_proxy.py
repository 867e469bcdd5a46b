"""A TCP proxy on loopback that a test can cut, to make a dependency (PostgreSQL, say) vanish.

While cut, it resets every open connection and every new one at once, as a crashed or restarting
server does; restored, it relays again. Run it in the test's event loop and point the service
under test at :attr:`TcpProxy.port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType

__all__ = ["TcpProxy"]

_CHUNK = 64 * 1024


class TcpProxy:
    """Relays ``127.0.0.1:<port>`` to ``upstream`` until :meth:`cut`, and again after
    :meth:`restore`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.available = True
        self.refused = 0
        """Connections reset on arrival while cut."""
        self.relayed = 0
        """Connections relayed to the upstream."""

    @property
    def port(self) -> int:
        """The port clients connect to."""
        assert self._server is not None, "proxy not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self._reset_all()
        await self._server.wait_closed()

    def cut(self) -> None:
        """Reset every open connection, and every new one until :meth:`restore`."""
        self.available = False
        self._reset_all()

    def restore(self) -> None:
        """Relay new connections again."""
        self.available = True

    def _reset_all(self) -> None:
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        if not self.available:
            self.refused += 1
            _reset(client)
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self._upstream)
        except OSError:
            _reset(client)
            return
        if not self.available:  # cut while connecting
            _reset(upstream)
            _reset(client)
            return
        self.relayed += 1
        self._open |= {client, upstream}
        pipes = [
            asyncio.create_task(_pipe(client_reader, upstream)),
            asyncio.create_task(_pipe(upstream_reader, client)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            for writer in (client, upstream):
                self._open.discard(writer)
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a vanished server's host answers."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
