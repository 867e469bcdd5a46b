"""Who is calling, and whether they may: the bearer token of a request, checked.

A request without a valid ``Authorization: Bearer`` token (unknown, revoked or expired) gets 401;
one whose role is too low gets 403 with the role it would need; a scoped token (a service's)
gets 403 for any call its scopes do not name. The bootstrap admin token is given in settings
(in clear, or only its SHA-256) and compared in constant time; every other token is a record
(:mod:`services.incident_log.tokens`).

Routes take the caller as :data:`Caller`, a dependency that reads how to check tokens from the
app (:func:`install_authentication`), so a router can be a module-level object.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contracts.incidents import Tier
from services.incident_log.permissions import Permission, Role, grants, required_role
from services.incident_log.tokens import active_token, mark_used, token_digest
from services.runtime.app_state import AppState
from services.runtime.database import Sessions
from services.runtime.scopes import Scope, scopes_text

__all__ = [
    "Authentication",
    "Caller",
    "Principal",
    "ensure_allowed",
    "find_principal",
    "install_authentication",
]

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer …`")


@dataclass(frozen=True)
class Principal:
    """The caller: the name recorded as actor, and the role (a person) or scopes (a service)
    checked. ``token_id`` is None for the bootstrap admin token."""

    name: str
    role: Role | None
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    token_id: str | None = None
    expires_at: datetime | None = None

    @property
    def acts_for_others(self) -> bool:
        """Whether the caller may name a person it acts for (only a service token with scope
        ``retrain:on-behalf``, the runbook runner's; never a person's token)."""
        return Scope.RETRAIN_ON_BEHALF in self.scopes

    def allows(
        self, permission: Permission, tier: Tier | None = None, *, scope: Scope | None = None
    ) -> bool:
        """Whether this caller holds a permission (a scoped one: whether ``scope`` is its)."""
        return grants(self.role, self.scopes, permission, tier, scope=scope)


async def find_principal(
    sessions: Sessions, token: str, *, admin_sha256: str | None, now: datetime
) -> Principal | None:
    """Who a token belongs to, or ``None`` if it is unknown, revoked or expired.

    Tokens are ASCII; any other is unknown (the header arrives decoded as Latin-1). A token's
    use is noted (``last_used_at``, to the minute).
    """
    if not token.isascii():
        return None
    digest = token_digest(token)
    if admin_sha256 is not None and secrets.compare_digest(digest, admin_sha256):
        return Principal("admin", Role.ADMIN)
    async with sessions() as session:
        record = await active_token(session, token, now)
    if record is None:
        return None
    await mark_used(sessions, digest, record.last_used_at, now)
    return Principal(
        record.name,
        record.role,
        record.scopes or frozenset(),
        token_id=record.id,
        expires_at=record.expires_at,
    )


@dataclass(frozen=True)
class Authentication:
    """How an app checks bearer tokens: the token records, the bootstrap admin token's hash,
    and the clock that says whether a token has expired."""

    sessions: Sessions
    admin_sha256: str | None
    clock: Callable[[], datetime]

    async def principal(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        """The caller the credentials name, or 401."""
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = await find_principal(
            self.sessions, credentials.credentials, admin_sha256=self.admin_sha256, now=self.clock()
        )
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown, revoked or expired token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal


_AUTHENTICATION = AppState[Authentication]("authentication")


def install_authentication(
    app: FastAPI, sessions: Sessions, *, admin_sha256: str | None, clock: Callable[[], datetime]
) -> None:
    """Make :data:`Caller` work on an app: where tokens are looked up, and the admin's hash."""
    _AUTHENTICATION.put(app, Authentication(sessions, admin_sha256, clock))


async def _caller(
    authentication: Annotated[Authentication, Depends(_AUTHENTICATION)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await authentication.principal(credentials)


Caller = Annotated[Principal, Depends(_caller)]
"""The caller of a request (401 without a valid token); needs :func:`install_authentication`."""


def ensure_allowed(
    principal: Principal,
    permission: Permission,
    tier: Tier | None = None,
    *,
    scope: Scope | None = None,
) -> None:
    """Raise 403, naming what is needed, unless the caller holds the permission: by its role,
    or for a scoped token by ``scope`` (the scope that names this call; None: no scope does)."""
    if principal.allows(permission, tier, scope=scope):
        return
    what = permission.value.replace("_", " ")
    if tier and permission is Permission.ACT_ON_INCIDENT:
        what += f" an {tier.value} incident"
    elif tier and permission is Permission.TAKE_OVER:
        what = f"take over a claim on an {tier.value} incident"
    if principal.role is None:
        needs = f"scope {scope.value}" if scope else "a person's token"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a token with scopes {scopes_text(principal.scopes) or '(none)'} may not {what} "
            f"(needs {needs})",
        )
    needed = required_role(permission, tier)
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        f"role {principal.role.value} may not {what} (needs {needed.value} or higher)",
    )
