"""Who is calling: the incident log is Vigil's identity provider (for the retrainer's APIs and
the scorer's ``POST /labels``).

``GET {incident_log_url}/whoami`` with the caller's bearer token answers ``{"name", "role",
"scopes", "expires_at", "acts_for_others"}`` (a person's token has a role; a service's has scopes
instead; ``acts_for_others``: it may name a person it asks for, the runbook runner's), or 401
for an unknown, revoked or expired token. Answers are kept briefly (by the token's SHA-256, never
the token), so a burst of calls costs one lookup: a token revoked at the incident log stops
working here within ``ttl_seconds`` (``VIGIL_RETRAINER_IDENTITY_CACHE_SECONDS``,
``VIGIL_SCORER_IDENTITY_CACHE_SECONDS``, default 5), and
an answer is never kept past the token's own expiry.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.runtime.scopes import role_at_least

__all__ = ["BEARER", "Identity", "IdentityError", "IdentityProvider", "identify"]

BEARER = HTTPBearer(auto_error=False, description="An API token of the incident log.")
"""The bearer scheme of the routes whose callers the incident log identifies (a missing token is
answered by :func:`identify`, with the reason, not by FastAPI's bare 403)."""

_MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class Identity:
    """A caller's name (recorded as actor) and role (checked), or, for a service's token, no
    role and the scopes naming the only calls it may make; ``acts_for_others``: the caller may
    name a person it asks for (the runbook runner)."""

    name: str
    role: str | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    acts_for_others: bool = False

    def allows(self, lowest_role: str, scope: str) -> bool:
        """Whether this caller may make a call that needs ``lowest_role`` of a person, or
        ``scope`` of a service's token."""
        if self.role is None:
            return scope in self.scopes
        return role_at_least(self.role, lowest_role)


class IdentityError(Exception):
    """The caller could not be identified; ``status`` is 401 (bad token) or 503 (provider
    unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class IdentityProvider:
    """Asks the incident log who a token belongs to, and remembers the answer briefly."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + "/whoami"
        self._ttl = ttl_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._known: dict[str, tuple[float, Identity]] = {}

    async def whoami(self, token: str) -> Identity:
        """Return the token's identity, or raise :class:`IdentityError`."""
        if not token.isascii():  # no token is; and it cannot travel in an HTTP header
            raise IdentityError(401, "unknown, revoked or expired token")
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        cached = self._known.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        response = await self._ask(token)
        if response.status_code == 401:
            self._known.pop(key, None)
            raise IdentityError(401, "unknown, revoked or expired token")
        if response.status_code != 200:
            raise IdentityError(
                503, f"identity provider answered {response.status_code}: {response.text[:200]}"
            )
        try:
            body = response.json()
            role, scopes = body["role"], body.get("scopes")
            identity = Identity(
                name=str(body["name"]),
                role=None if role is None else str(role),
                scopes=frozenset(str(s) for s in scopes or ()) if role is None else frozenset(),
                acts_for_others=body.get("acts_for_others") is True,
            )
            expires = body.get("expires_at")
            left = (
                (datetime.fromisoformat(expires) - self._wall_clock()).total_seconds()
                if expires
                else self._ttl
            )
        except (ValueError, KeyError, TypeError):
            raise IdentityError(503, "identity provider gave an unreadable answer") from None
        keep = min(self._ttl, left)
        if keep > 0:
            if len(self._known) >= _MAX_REMEMBERED:
                self._known = {k: v for k, v in self._known.items() if v[0] > now}
            self._known[key] = (now + keep, identity)
        return identity

    async def _ask(self, token: str) -> httpx.Response:
        """``GET /whoami``, asked once more on a fresh connection when the provider closed a
        kept-alive one as the question went out (both sides drop idle connections after about
        five seconds, so a call after a pause can meet a connection the server is closing); the
        question changes nothing, so asking twice is safe."""
        headers = {"Authorization": f"Bearer {token}"}
        try:
            try:
                return await self._http.get(self._url, headers=headers)
            except httpx.RemoteProtocolError:
                return await self._http.get(self._url, headers=headers)
        except httpx.HTTPError as error:
            raise IdentityError(503, f"identity provider unreachable: {error}") from None


async def identify(
    identities: IdentityProvider, credentials: HTTPAuthorizationCredentials | None
) -> Identity:
    """The caller of an HTTP request, as an HTTP answer when there is none: 401 (with the
    ``WWW-Authenticate`` challenge) without a token or for a bad one, 503 when the provider
    cannot say."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return await identities.whoami(credentials.credentials)
    except IdentityError as error:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        raise HTTPException(error.status, str(error), headers=headers) from None
