"""Who is calling the retrainer's HTTP API, for the registry's and the retraining routes alike.

Every change (register, deploy, traffic, promote, roll back, ask for a retrain, decide a promotion)
needs ``Authorization: Bearer <token>``; the incident log says whose token it is
(:mod:`services.runtime.identity`), and that name, never one from the request body, is recorded
as the actor. So does reading training data (``/datasets/{digest}``): role ``l2`` or scope
``datasets:read``.
A service's scoped token may make only the calls its scopes name (``services/runtime/scopes.py``).
The registry's other reads stay open to the services that poll it. 401 without a valid token,
403 for a role too low (saying which role is needed) or a call no scope of the token names, 503
when the identity provider cannot be reached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from services.runtime.app_state import AppState
from services.runtime.identity import BEARER, Identity, IdentityProvider, identify
from services.runtime.scopes import Scope, role_at_least, scopes_text

__all__ = ["Caller", "Person", "install_callers", "require_role"]


_IDENTITIES = AppState[IdentityProvider]("identities")


async def _caller(
    identities: Annotated[IdentityProvider, Depends(_IDENTITIES)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Identity:
    return await identify(identities, credentials)


Caller = Annotated[Identity, Depends(_caller)]
"""The caller, as the identity provider knows them (401 / 503 otherwise)."""


async def _person(who: Caller) -> Identity:
    if who.role is None:
        raise HTTPException(
            403,
            f"a token with scopes {scopes_text(who.scopes)} may not call this (a person's only)",
        )
    return who


Person = Annotated[Identity, Depends(_person)]
"""A caller with a role: a service's scoped token is refused (403)."""


def require_role(who: Identity, lowest: str, doing: str, *, scope: Scope | None = None) -> None:
    """Refuse with 403, naming what is needed, unless ``who`` ranks at or above ``lowest`` or
    (a service's scoped token) holds ``scope``, the scope that names this call."""
    if who.role is None:
        if scope is not None and scope.value in who.scopes:
            return
        needs = f"scope {scope.value}" if scope else "a person's token"
        raise HTTPException(
            403,
            f"a token with scopes {scopes_text(who.scopes) or '(none)'} may not {doing} "
            f"(needs {needs})",
        )
    if not role_at_least(who.role, lowest):
        raise HTTPException(403, f"role {who.role} may not {doing} (needs {lowest} or higher)")


def install_callers(app: FastAPI, identities: IdentityProvider) -> None:
    """Make :data:`Caller` work on an app: where identities come from."""
    _IDENTITIES.put(app, identities)
