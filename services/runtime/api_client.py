"""Calling a Vigil service's HTTP API from a command line or a script: base URL, bearer token,
and errors turned into one readable line (what the service said, and its status code)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ApiClient", "ApiError", "default_token"]


class ApiError(RuntimeError):
    """The service refused the request or could not be reached; the message says why."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def default_token(state_dir: Path | None = None) -> str | None:
    """The caller's token: ``VIGIL_TOKEN``, else the local stack's admin token (``vigil up``)."""
    token = os.environ.get("VIGIL_TOKEN")
    if token:
        return token
    folder = state_dir or Path(os.environ.get("VIGIL_STATE_DIR", ".vigil"))
    credentials = folder / "credentials.json"
    if credentials.exists():
        value = json.loads(credentials.read_text()).get("admin_token")
        return str(value) if value else None
    return None


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
