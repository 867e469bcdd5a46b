"""The token routes of the incident log's API: create (admin), list, revoke.

An admin creates tokens (a person's with a role, a service's with scopes; each expires within
:data:`~services.incident_log.tokens.MAX_TOKEN_DAYS`), lists every token and revokes any; anyone
with a role lists and revokes their own. A scoped token may do none of it (403). No answer ever
holds a token except the one that creates it. 401 without a valid token, 403 for a role too low,
404 for an unknown id (or another person's, to a non-admin), 422 for a malformed body.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.incident_log.auth import Caller, ensure_allowed
from services.incident_log.permissions import Permission, Role
from services.incident_log.tokens import (
    DEFAULT_TOKEN_DAYS,
    MAX_TOKEN_DAYS,
    TokenRecord,
    issue_token,
    list_tokens,
    revoke_token,
    token_digest,
)
from services.incident_log.tokens import token_id as id_of
from services.runtime.app_state import AppState
from services.runtime.database import Sessions
from services.runtime.scopes import Scope

__all__ = [
    "CreatedToken",
    "TokenApi",
    "TokenBody",
    "TokenView",
    "install_token_api",
    "router",
]

NAME_PATTERN = r"^[\w.@-]+$"


class TokenBody(BaseModel):
    """A token to create: for a person (``role``) or a service (``scopes``), and how long it
    lives."""

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    role: Role | None = None
    scopes: list[Scope] | None = Field(default=None, min_length=1, max_length=len(Scope))
    expires_in_days: float = Field(
        default=DEFAULT_TOKEN_DAYS,
        gt=0,
        le=MAX_TOKEN_DAYS,
        description=f"Days until it stops working (at most {MAX_TOKEN_DAYS}).",
    )

    @model_validator(mode="after")
    def _role_or_scopes(self) -> Self:
        if (self.role is None) == (self.scopes is None):
            raise ValueError("give exactly one of role (a person) and scopes (a service)")
        return self


class TokenView(BaseModel):
    """A token as it may be shown: never the token itself."""

    id: str
    name: str
    role: Role | None
    scopes: list[Scope] | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="To the minute.")
    revoked_at: datetime | None
    revoked_by: str | None
    state: Literal["active", "revoked", "expired"]


class CreatedToken(TokenView):
    """A created token: the only answer that holds it, shown once."""

    token: str


@dataclass(frozen=True)
class TokenApi:
    """What the routes act on: the token records, and the clock that dates and expires them."""

    sessions: Sessions
    clock: Callable[[], datetime]


_SLOT = AppState[TokenApi]("token_api")
Api = Annotated[TokenApi, Depends(_SLOT)]
"""The :class:`TokenApi` the app was given by :func:`install_token_api`."""

router = APIRouter(tags=["auth"])


def install_token_api(app: FastAPI, sessions: Sessions, *, clock: Callable[[], datetime]) -> None:
    """Add the token routes to an app (the caller is checked as
    :func:`~services.incident_log.auth.install_authentication` set up on the app)."""
    _SLOT.put(app, TokenApi(sessions, clock))
    app.include_router(router)


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(api: Api, principal: Caller, body: TokenBody) -> CreatedToken:
    """Create a token (admin only); it is shown once, in this answer."""
    ensure_allowed(principal, Permission.MANAGE_TOKENS)
    now = api.clock()
    try:
        expires_at = now + timedelta(days=body.expires_in_days)
    except OverflowError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "expiry past year 9999"
        ) from None
    async with api.sessions() as session, session.begin():
        token = await issue_token(
            session,
            body.name,
            body.role,
            now,
            scopes=frozenset(body.scopes) if body.scopes is not None else None,
            expires_at=expires_at,
            created_by=principal.name,
        )
    view = _view(
        TokenRecord(
            id=id_of(token_digest(token)),
            name=body.name,
            role=body.role,
            scopes=frozenset(body.scopes) if body.scopes is not None else None,
            created_at=now,
            created_by=principal.name,
            expires_at=expires_at,
            last_used_at=None,
            revoked_at=None,
            revoked_by=None,
        ),
        now,
    )
    return CreatedToken(**view.model_dump(), token=token)


@router.get("/tokens")
async def get_tokens(
    api: Api,
    principal: Caller,
    name: Annotated[
        str | None,
        Query(min_length=1, max_length=100, pattern=NAME_PATTERN, description="Admin only."),
    ] = None,
    include_inactive: Annotated[
        bool, Query(description="Also revoked and expired tokens.")
    ] = False,
) -> list[TokenView]:
    """Tokens, newest first: every one to an admin (or one name's), the caller's own to
    anyone else."""
    ensure_allowed(principal, Permission.READ)
    if principal.allows(Permission.MANAGE_TOKENS):
        owner = name
    elif name not in (None, principal.name):
        ensure_allowed(principal, Permission.MANAGE_TOKENS)
        owner = name
    else:
        owner = principal.name
    now = api.clock()
    async with api.sessions() as session:
        records = await list_tokens(session, name=owner)
    return [_view(record, now) for record in records if include_inactive or record.active(now)]


@router.delete("/tokens/{token_id}")
async def delete_token(
    api: Api, principal: Caller, token_id: Annotated[str, Path(min_length=1, max_length=100)]
) -> TokenView:
    """Revoke a token now (an admin any, anyone else their own); it answers 401 from then on
    (at the retrainer within its identity cache's time, docs/security.md)."""
    ensure_allowed(principal, Permission.READ)
    owner = None if principal.allows(Permission.MANAGE_TOKENS) else principal.name
    now = api.clock()
    async with api.sessions() as session, session.begin():
        record = await revoke_token(session, token_id, by=principal.name, now=now, name=owner)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id!r}")
    return _view(record, now)


def _view(record: TokenRecord, now: datetime) -> TokenView:
    if record.revoked_at is not None:
        state: Literal["active", "revoked", "expired"] = "revoked"
    elif record.active(now):
        state = "active"
    else:
        state = "expired"
    return TokenView(
        id=record.id,
        name=record.name,
        role=record.role,
        scopes=sorted(record.scopes) if record.scopes is not None else None,
        created_at=record.created_at,
        created_by=record.created_by,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
        revoked_by=record.revoked_by,
        state=state,
    )
