"""API tokens: who is calling and with which role.

Tokens are random strings shown once when created; only their SHA-256 is stored. A request
without a valid ``Authorization: Bearer`` token gets 401; one whose role is too low gets 403
with the role it would need.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.incident_log.permissions import Role
from services.incident_log.tables import ApiTokenRow

__all__ = ["Principal", "find_principal", "issue_token", "token_digest"]


@dataclass(frozen=True)
class Principal:
    """The caller: the name recorded as actor, and the role checked."""

    name: str
    role: Role


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
