"""API tokens as records: issue, look up, list, revoke, and provision the ones settings give.

A token is a random string shown once; only its SHA-256 is stored, and its public ``id`` is the
first 16 hex digits of that hash (enough to name it, useless to forge it). Each token acts as a
name with either a role (a person) or scopes (a service, :mod:`services.runtime.scopes`), and
works until it is revoked or its expiry passes::

    issued ──revoke──▶ revoked        (401 from then on; revoking again changes nothing)
      └────expires_at──▶ expired       (401 from then on)

Tokens an admin creates expire within :data:`MAX_TOKEN_DAYS` (default
:data:`DEFAULT_TOKEN_DAYS`). Tokens given in settings (the services' own, ``created_by
"settings"``) never expire: a new one given for the same name revokes the one before, so
restarting ``vigil up`` rotates them. The bootstrap admin token is not a record at all
(``services/incident_log/auth.py``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.incident_log.permissions import Role
from services.incident_log.tables import ApiTokenRow
from services.runtime.database import Sessions
from services.runtime.scopes import Scope

__all__ = [
    "DEFAULT_TOKEN_DAYS",
    "LAST_USED_GRANULARITY",
    "MAX_TOKEN_DAYS",
    "PROVISIONED_BY",
    "ProvisionedToken",
    "TokenRecord",
    "active_token",
    "issue_token",
    "list_tokens",
    "mark_used",
    "provision_tokens",
    "revoke_token",
    "token_digest",
    "token_id",
]

MAX_TOKEN_DAYS = 366
"""The longest life an admin may give a token: a year (a longer-lived one is a service's, given
in settings)."""
DEFAULT_TOKEN_DAYS = 90
"""The life of a token created without one."""
LAST_USED_GRANULARITY = timedelta(minutes=1)
"""``last_used_at`` is written at most once a minute per token: a request costs no write."""
PROVISIONED_BY = "settings"
"""``created_by`` of the tokens provisioned from settings."""
ID_LENGTH = 16


@dataclass(frozen=True)
class TokenRecord:
    """What may be shown of a token: never the token, nor its whole hash."""

    id: str
    name: str
    role: Role | None
    scopes: frozenset[Scope] | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def active(self, now: datetime) -> bool:
        """Whether the token works now."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class ProvisionedToken:
    """A service's token as settings give it: only its hash."""

    name: str
    token_sha256: str
    role: Role | None = None
    scopes: frozenset[Scope] | None = None


def token_digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token_sha256: str) -> str:
    """A token's public id: the start of its hash."""
    return token_sha256[:ID_LENGTH]


async def issue_token(
    session: AsyncSession,
    name: str,
    role: Role | None,
    now: datetime,
    *,
    scopes: frozenset[Scope] | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> str:
    """Create a token for a name with a role or scopes (exactly one); return it (it is not
    stored in clear)."""
    if (role is None) == (scopes is None):
        raise ValueError("a token has a role or scopes, not both nor neither")
    token = f"vgl_{secrets.token_urlsafe(24)}"
    session.add(
        ApiTokenRow(
            token_sha256=token_digest(token),
            name=name,
            role=role.value if role else None,
            scopes=sorted(scopes) if scopes is not None else None,
            created_at=now,
            created_by=created_by,
            expires_at=expires_at,
        )
    )
    return token


async def active_token(session: AsyncSession, token: str, now: datetime) -> TokenRecord | None:
    """The record of a token that works now, or ``None`` (unknown, revoked or expired)."""
    row = (
        await session.exec(
            select(ApiTokenRow).where(
                ApiTokenRow.token_sha256 == token_digest(token),
                col(ApiTokenRow.revoked_at).is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    record = _record(row)
    return record if record.active(now) else None


async def mark_used(
    sessions: Sessions, token_sha256: str, last_used_at: datetime | None, now: datetime
) -> None:
    """Note that a token was used, unless that was noted less than a minute ago."""
    if last_used_at is not None and now - last_used_at < LAST_USED_GRANULARITY:
        return
    stale = now - LAST_USED_GRANULARITY
    async with sessions() as session, session.begin():
        await session.exec(
            update(ApiTokenRow)
            .where(
                col(ApiTokenRow.token_sha256) == token_sha256,
                or_(col(ApiTokenRow.last_used_at).is_(None), col(ApiTokenRow.last_used_at) < stale),
            )
            .values(last_used_at=now)
        )


async def list_tokens(session: AsyncSession, *, name: str | None = None) -> list[TokenRecord]:
    """Every token (or one name's), newest first."""
    query = select(ApiTokenRow).order_by(
        col(ApiTokenRow.created_at).desc(), col(ApiTokenRow.name), col(ApiTokenRow.token_sha256)
    )
    if name is not None:
        query = query.where(ApiTokenRow.name == name)
    return [_record(row) for row in (await session.exec(query)).all()]


async def revoke_token(
    session: AsyncSession, id_: str, *, by: str, now: datetime, name: str | None = None
) -> TokenRecord | None:
    """Revoke a token by id (only among ``name``'s, if given); ``None`` if there is no such
    token. Revoking a revoked token changes nothing."""
    if len(id_) != ID_LENGTH or not all(c in "0123456789abcdef" for c in id_):
        return None
    query = (
        select(ApiTokenRow).where(col(ApiTokenRow.token_sha256).startswith(id_)).with_for_update()
    )
    if name is not None:
        query = query.where(ApiTokenRow.name == name)
    rows = list((await session.exec(query)).all())
    if len(rows) != 1:
        return None  # two tokens sharing 64 bits of hash: name neither rather than guess
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = now
        row.revoked_by = by
        session.add(row)
    return _record(row)


async def provision_tokens(
    sessions: Sessions, tokens: Sequence[ProvisionedToken], now: datetime
) -> None:
    """Store the services' tokens settings give (by hash), and revoke the ones settings gave
    before for the same names. A token revoked by hand stays revoked. Safe to run from several
    replicas at once."""
    for token in tokens:
        try:
            async with sessions() as session, session.begin():
                if await session.get(ApiTokenRow, token.token_sha256) is None:
                    session.add(
                        ApiTokenRow(
                            token_sha256=token.token_sha256,
                            name=token.name,
                            role=token.role.value if token.role else None,
                            scopes=sorted(token.scopes) if token.scopes is not None else None,
                            created_at=now,
                            created_by=PROVISIONED_BY,
                        )
                    )
                await session.exec(
                    update(ApiTokenRow)
                    .where(
                        col(ApiTokenRow.name) == token.name,
                        col(ApiTokenRow.created_by) == PROVISIONED_BY,
                        col(ApiTokenRow.token_sha256) != token.token_sha256,
                        col(ApiTokenRow.revoked_at).is_(None),
                    )
                    .values(revoked_at=now, revoked_by=PROVISIONED_BY)
                )
        except IntegrityError:
            continue  # another replica stored it first


def _record(row: ApiTokenRow) -> TokenRecord:
    return TokenRecord(
        id=token_id(row.token_sha256),
        name=row.name,
        role=Role(row.role) if row.role else None,
        scopes=frozenset(Scope(s) for s in row.scopes if s in _SCOPES)
        if row.scopes is not None
        else None,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


_SCOPES = frozenset(Scope)
