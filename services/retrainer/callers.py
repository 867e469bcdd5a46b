"""Who is calling the retrainer's HTTP API, for the registry's and the retraining routes alike.

Every change (register, deploy, traffic, promote, roll back, ask for a retrain, decide a promotion)
needs ``Authorization: Bearer <token>``; the incident log says whose token it is
(:mod:`.identity`), and that name, never one from the request body, is recorded as the actor.
Reads stay open to the services that poll the registry. 401 without a valid token, 403 for a
role too low (saying which role is needed), 503 when the identity provider cannot be reached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.retrainer.identity import Identity, IdentityError, IdentityProvider
from services.retrainer.promotions import role_at_least

__all__ = ["Caller", "install_callers", "require_role"]

_bearer = HTTPBearer(auto_error=False, description="An API token of the incident log.")


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    identities: IdentityProvider = request.app.state.identities
    return await identities.whoami(credentials.credentials)


Caller = Annotated[Identity, Depends(_caller)]
"""The person calling, as the identity provider knows them (401 / 503 otherwise)."""


def require_role(who: Identity, lowest: str, doing: str) -> None:
    """Refuse with 403, naming the role needed, unless ``who`` ranks at or above ``lowest``."""
    if not role_at_least(who.role, lowest):
        raise HTTPException(403, f"role {who.role} may not {doing} (needs {lowest} or higher)")


def install_callers(app: FastAPI, identities: IdentityProvider) -> None:
    """Make :data:`Caller` work on an app: where identities come from, and how refusals read."""
    app.state.identities = identities

    async def unidentified(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, IdentityError)
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse({"detail": str(error)}, error.status, headers=headers)

    app.add_exception_handler(IdentityError, unidentified)
