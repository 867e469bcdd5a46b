"""Calling a Vigil service's HTTP API from a command line or a script: base URL, bearer token,
and errors turned into one readable line (what the service said, and its status code).

URL and token come from what the person gives (an option, ``VIGIL_TOKEN``, the service's
``*_URL`` variable), else from the stack running on this machine
(:mod:`services.runtime.local_stack`), else the service's default loopback port."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from services.runtime.local_stack import find_local_stack
from services.runtime.names import ServiceName

__all__ = [
    "CLI_VARIABLES",
    "URL_VARIABLES",
    "ApiClient",
    "ApiError",
    "default_token",
    "service_url",
]

URL_VARIABLES = {
    ServiceName.RETRAINER: "VIGIL_REGISTRY_URL",
    ServiceName.INCIDENT_LOG: "VIGIL_INCIDENT_LOG_URL",
    ServiceName.SCORER: "VIGIL_SCORER_URL",
    ServiceName.MONITOR: "VIGIL_MONITOR_URL",
}
"""The variable naming the base URL of each service the command line calls (the retrainer's is
the registry's)."""

CLI_VARIABLES: tuple[tuple[str, str, str], ...] = (
    (
        "VIGIL_TOKEN",
        "the running local stack's admin token",
        "API token of the commands that change or read protected things (`--token`).",
    ),
    *(
        (
            variable,
            f"the running local stack's, else `http://127.0.0.1:{service.default_port}`",
            f"Base URL of the {service.value}'s HTTP API (`--url`).",
        )
        for service, variable in URL_VARIABLES.items()
    ),
    (
        "VIGIL_STATE_DIR",
        "`.vigil`, then `.vigil-demo`",
        "Where the command line looks for a running local stack (`stack.json`, "
        "`credentials.json`).",
    ),
)
"""Every variable the command line reads to reach a service, for the configuration reference."""


class ApiError(RuntimeError):
    """The service refused the request or could not be reached; the message says why."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def default_token(state_dir: Path | None = None) -> str | None:
    """The caller's token: ``VIGIL_TOKEN``; else the admin token of the stack running on this
    machine (``vigil up``, ``vigil demo``); else that of ``credentials.json`` in ``state_dir``
    (default ``$VIGIL_STATE_DIR`` or ``.vigil``), for a stack started elsewhere."""
    token = os.environ.get("VIGIL_TOKEN")
    if token:
        return token
    if state_dir is None and (stack := find_local_stack()) is not None:
        return stack.admin_token()
    folder = state_dir or Path(os.environ.get("VIGIL_STATE_DIR", ".vigil"))
    credentials = folder / "credentials.json"
    if credentials.exists():
        value = json.loads(credentials.read_text()).get("admin_token")
        return str(value) if value else None
    return None


def service_url(service: ServiceName) -> str:
    """A service's base URL: its variable (:data:`URL_VARIABLES`), else the running local
    stack's, else its default loopback port."""
    variable = URL_VARIABLES.get(service)
    given = os.environ.get(variable) if variable else None
    if given:
        return given
    stack = find_local_stack()
    found = stack.url(service) if stack is not None else None
    return found or f"http://127.0.0.1:{service.default_port}"


class ApiClient:
    """A small synchronous JSON client for one service."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._service = base_url
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout_s, transport=transport
        )

    def get(self, path: str, **params: Any) -> Any:
        """GET a path; query parameters that are ``None`` are left out."""
        clean = {key: value for key, value in params.items() if value is not None}
        return self._send("GET", path, params=clean)

    def get_bytes(self, path: str) -> bytes:
        """GET a path whose answer is not JSON (a dataset, an artifact)."""
        return self._request("GET", path).content

    def post(self, path: str, body: Any = None, *, headers: dict[str, str] | None = None) -> Any:
        """POST a JSON body (with extra headers, such as an ``Idempotency-Key``)."""
        return self._send("POST", path, json=body, headers=headers)

    def put(self, path: str, body: Any = None) -> Any:
        """PUT a JSON body."""
        return self._send("PUT", path, json=body)

    def upload(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> Any:
        """POST a multipart form: text fields and named files."""
        return self._send("POST", path, data=fields, files=files)

    def delete(self, path: str) -> Any:
        """DELETE a path."""
        return self._send("DELETE", path)

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(f"cannot reach {self._service}: {error}") from None
        if response.is_success:
            return response
        raise ApiError(
            f"{method} {path} → {response.status_code}: {_detail(response)}",
            status=response.status_code,
        )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg')}"
            for item in detail
        )
    return str(detail)
