"""Who is calling, from the incident log's ``/whoami``: cached briefly, refused plainly."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from services.runtime.identity import Identity, IdentityError, IdentityProvider
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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_an_identity_is_asked_once_and_trusted_for_its_time_to_live() -> None:
    provider, clock = Provider(), Clock()
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
    provider, clock = Provider(), Clock()
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
