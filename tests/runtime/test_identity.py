"""Who is calling, from the incident log's ``/whoami``: cached briefly, refused plainly."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest

from services.runtime.identity import Identity, IdentityError, IdentityProvider
from tests.clock import FakeClock
from tests.factories import T0


class Provider:
    """An identity provider double that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.people: dict[str, dict[str, object]] = {"t-ana": {"name": "ana", "role": "l2"}}
        self.broken = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.broken:
            return httpx.Response(500, text="boom")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.people:
            return httpx.Response(401, json={"detail": "unknown or revoked token"})
        return httpx.Response(200, json=self.people[token])


async def test_an_identity_is_asked_once_and_trusted_for_its_time_to_live() -> None:
    provider, clock = Provider(), FakeClock(0.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        identities = IdentityProvider(http, "http://log/", ttl_seconds=30, clock=clock)
        assert await identities.whoami("t-ana") == Identity("ana", "l2")
        assert await identities.whoami("t-ana") == Identity("ana", "l2")
        assert provider.calls == 1
        provider.people["t-ana"] = {"name": "ana", "role": "l1"}  # demoted
        clock.now = 31
        assert await identities.whoami("t-ana") == Identity("ana", "l1")
        assert provider.calls == 2


async def test_a_service_token_has_scopes_and_no_role() -> None:
    provider = Provider()
    provider.people["t-drift"] = {
        "name": "drift-detector",
        "role": None,
        "scopes": ["datasets:read"],
        "expires_at": None,
    }
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        identities = IdentityProvider(http, "http://log", ttl_seconds=5)
        assert await identities.whoami("t-drift") == Identity(
            "drift-detector", None, frozenset({"datasets:read"})
        )


async def test_an_identity_is_never_trusted_past_its_tokens_expiry() -> None:
    provider, clock = Provider(), FakeClock(0.0)
    expires = T0 + timedelta(seconds=2)
    provider.people["t-brief"] = {"name": "bo", "role": "l2", "expires_at": expires.isoformat()}
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        identities = IdentityProvider(
            http, "http://log", ttl_seconds=30, clock=clock, wall_clock=lambda: T0
        )
        assert (await identities.whoami("t-brief")).name == "bo"
        clock.now = 1.9
        await identities.whoami("t-brief")
        assert provider.calls == 1  # still cached: the token has not expired
        del provider.people["t-brief"]  # the incident log now says: expired
        clock.now = 2.0
        with pytest.raises(IdentityError) as expired:
            await identities.whoami("t-brief")
        assert expired.value.status == 401
        assert provider.calls == 2


async def test_unknown_tokens_and_an_unreachable_or_broken_provider_are_refused_plainly() -> None:
    provider = Provider()
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider.handle)) as http:
        identities = IdentityProvider(http, "http://log", ttl_seconds=0)
        with pytest.raises(IdentityError) as unknown:
            await identities.whoami("t-nobody")
        assert (unknown.value.status, str(unknown.value)) == (
            401,
            "unknown, revoked or expired token",
        )
        provider.broken = True
        with pytest.raises(IdentityError) as broken:
            await identities.whoami("t-ana")
        assert broken.value.status == 503

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(IdentityError) as unreachable:
            await IdentityProvider(http, "http://log").whoami("t-ana")
        assert unreachable.value.status == 503
        assert "unreachable" in str(unreachable.value)


async def test_a_connection_the_provider_closes_as_the_question_goes_out_is_asked_again() -> None:
    # A real server on loopback that reads a request and closes the connection unanswered, as a
    # server dropping an idle kept-alive connection does when the request meets it; it answers
    # only from its `answer_from`-th connection on.
    connections = 0
    answer_from = 2

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if connections >= answer_from:
            body = json.dumps({"name": "ana", "role": "l2"}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient() as http:
        identities = IdentityProvider(http, f"http://127.0.0.1:{port}", ttl_seconds=0)
        assert await identities.whoami("t-ana") == Identity("ana", "l2")
        assert connections == 2
        connections, answer_from = 0, 3  # dropped twice: the provider is not answering
        with pytest.raises(IdentityError) as dropped:
            await identities.whoami("t-ana")
        assert dropped.value.status == 503
        assert "unreachable" in str(dropped.value)
        assert connections == 2
