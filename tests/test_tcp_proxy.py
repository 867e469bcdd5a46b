"""The test TCP proxy relays both ways, resets everything while cut, and relays again after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.tcp_proxy import TcpProxy


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()


async def test_the_proxy_relays_cuts_and_restores(echo_port: int) -> None:
    async with TcpProxy("127.0.0.1", echo_port) as proxy:
        big = bytes(range(256)) * 1024  # larger than one read
        assert await round_trip(proxy.port, big) == big

        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"open")
        assert await reader.readexactly(4) == b"open"
        proxy.cut()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        writer.close()

        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await round_trip(proxy.port, b"while cut")
        assert proxy.refused == 1

        proxy.restore()
        assert await round_trip(proxy.port, b"back") == b"back"
        assert proxy.relayed == 3
