"""API tokens: who is calling and with which role.

Tokens are random strings shown once when created; only their SHA-256 is stored. A request
without a valid ``Authorization: Bearer`` token gets 401; one whose role is too low gets 403
with the role it would need.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.incidents import Tier
from services.incident_log.permissions import Permission, Role, required_role, role_allows
from services.incident_log.tables import ApiTokenRow
from services.runtime.database import Sessions

__all__ = [
    "Principal",
    "bearer_principal",
    "ensure_allowed",
    "find_principal",
    "issue_token",
    "token_digest",
]


@dataclass(frozen=True)
class Principal:
    """The caller: the name recorded as actor, and the role checked. ``acts_for_others``: the
    caller may name a person it acts for (only configured component tokens, such as the runbook
    runner's, ever do; a token issued through the API never does)."""

    name: str
    role: Role
    acts_for_others: bool = False


def token_digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(session: AsyncSession, name: str, role: Role, now: datetime) -> str:
    """Create a token for a name and role; return it (it is not stored in clear)."""
    token = f"vgl_{secrets.token_urlsafe(24)}"
    session.add(
        ApiTokenRow(token_sha256=token_digest(token), name=name, role=role.value, created_at=now)
    )
    return token


async def find_principal(
    session: AsyncSession,
    token: str,
    *,
    admin_token: str | None,
    configured: Mapping[str, Principal] | None = None,
) -> Principal | None:
    """Who a token belongs to, or ``None`` if it is unknown or revoked.

    ``configured`` maps tokens given in settings (the admin's, Vigil's own components') to who
    they are; the others are looked up by their hash. Tokens are ASCII; any other is unknown
    (``compare_digest`` would raise on it, and the header arrives decoded as Latin-1).
    """
    if not token.isascii():
        return None
    given = token.encode()
    if admin_token is not None and secrets.compare_digest(given, admin_token.encode()):
        return Principal("admin", Role.ADMIN)
    for known, principal in (configured or {}).items():
        if secrets.compare_digest(given, known.encode()):
            return principal
    row = (
        await session.exec(
            select(ApiTokenRow).where(
                ApiTokenRow.token_sha256 == token_digest(token),
                col(ApiTokenRow.revoked_at).is_(None),
            )
        )
    ).first()
    return Principal(row.name, Role(row.role)) if row else None


def bearer_principal(
    sessions: Sessions,
    *,
    admin_token: str | None,
    configured: Mapping[str, Principal] | None = None,
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller of a request, or 401."""
    bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer …`")

    async def caller(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> Principal:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        async with sessions() as session:
            principal = await find_principal(
                session, credentials.credentials, admin_token=admin_token, configured=configured
            )
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal

    return caller


def ensure_allowed(principal: Principal, permission: Permission, tier: Tier | None = None) -> None:
    """Raise 403, naming the role needed, unless the caller's role holds the permission."""
    if not role_allows(principal.role, permission, tier):
        needed = required_role(permission, tier)
        what = permission.value.replace("_", " ")
        if tier and permission is Permission.ACT_ON_INCIDENT:
            what += f" an {tier.value} incident"
        elif tier and permission is Permission.TAKE_OVER:
            what = f"take over a claim on an {tier.value} incident"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {principal.role.value} may not {what} (needs {needed.value} or higher)",
        )
