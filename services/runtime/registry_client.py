"""The model registry's read API, as the scorer, monitor and drift detector use it.

The registry (owned by the retrainer) serves:

- ``GET /models/{model}/versions/{version}`` → :class:`contracts.ModelVersionRecord`
- ``GET /models/{model}/deployment`` → :class:`contracts.Deployment` (404: never deployed)
- ``GET /deployments`` → ``{model: Deployment}`` for every deployed model
- ``GET /artifacts/{sha256}`` → artifact bytes
- ``GET /datasets/{digest}`` → dataset bytes (CSV with a header row: features, then the label);
  training data, so it needs a token with scope ``datasets:read`` (the drift detector's own)

Everything fetched by content is checked against its hash before it is returned.
"""

from __future__ import annotations

import hashlib

import httpx
from pydantic import TypeAdapter

from contracts.registry import Deployment, ModelVersionRecord
from services.runtime.failures import Unavailable

__all__ = [
    "IntegrityError",
    "RegistryClient",
    "RegistryError",
    "RegistryNotFound",
    "RegistryUnavailable",
]

_DEPLOYMENTS = TypeAdapter(dict[str, Deployment])


class RegistryError(RuntimeError):
    """The registry answered with an error or could not be reached.

    ``status_code`` is the registry's HTTP status, or ``None`` when it could not be reached.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RegistryUnavailable(RegistryError, Unavailable):
    """The registry could not be reached, or answered that it cannot serve now (429 or 5xx: it is
    overloaded, restarting, or cannot reach its identity provider). Transient: a consumer holds
    the event and retries it instead of dead-lettering it."""


class RegistryNotFound(RegistryError):
    """The registry has no such model, version or content (it answered 404)."""


class IntegrityError(RegistryError):
    """Content fetched by hash does not have that hash."""


class RegistryClient:
    """Reads versions, deployments, artifacts and datasets from the registry over HTTP."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, *, token: str | None = None) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def version(self, model: str, version: int) -> ModelVersionRecord:
        """Return a version's record: lineage and maintenance instructions."""
        response = await self._require(f"/models/{model}/versions/{version}")
        return ModelVersionRecord.model_validate_json(response.content)

    async def deployment(self, model: str) -> Deployment | None:
        """Return what serves a model, or ``None`` if it was never deployed."""
        response = await self._get(f"/models/{model}/deployment", allow_missing=True)
        if response is None:
            return None
        return Deployment.model_validate_json(response.content)

    async def deployments(self) -> dict[str, Deployment]:
        """Return the deployment of every deployed model."""
        response = await self._require("/deployments")
        return _DEPLOYMENTS.validate_json(response.content)

    async def artifact(self, sha256: str) -> bytes:
        """Return an artifact's bytes, verified against its SHA-256."""
        content = (await self._require(f"/artifacts/{sha256}")).content
        actual = hashlib.sha256(content).hexdigest()
        if actual != sha256:
            raise IntegrityError(f"artifact {sha256} arrived with SHA-256 {actual}")
        return content

    async def dataset(self, digest: str) -> bytes:
        """Return a dataset's bytes (CSV), verified against its ``sha256:`` digest."""
        content = (await self._require(f"/datasets/{digest}")).content
        actual = "sha256:" + hashlib.sha256(content).hexdigest()
        if actual != digest:
            raise IntegrityError(f"dataset {digest} arrived with digest {actual}")
        return content

    async def _require(self, path: str) -> httpx.Response:
        response = await self._get(path)
        assert response is not None  # only allow_missing returns None
        return response

    async def _get(self, path: str, *, allow_missing: bool = False) -> httpx.Response | None:
        try:
            response = await self._http.get(self._base_url + path, headers=self._headers)
        except httpx.HTTPError as error:
            raise RegistryUnavailable(
                f"registry unreachable at {self._base_url}: {error}"
            ) from error
        if response.status_code == 404 and allow_missing:
            return None
        if response.status_code == 404:
            raise RegistryNotFound(
                f"registry has nothing at GET {path}: {response.text[:300]}", status_code=404
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise RegistryUnavailable(
                f"registry answered {response.status_code} to GET {path}: {response.text[:300]}",
                status_code=response.status_code,
            )
        if response.status_code != 200:
            raise RegistryError(
                f"registry answered {response.status_code} to GET {path}: {response.text[:300]}",
                status_code=response.status_code,
            )
        return response
