"""Answers every route of a service can give, written into its OpenAPI once.

The body limits (:mod:`.body_limits`) and the parsing of bodies happen before a route's own code,
so no route declares them; without this, a client (or a fuzzer) that reads the schema meets
statuses it was never told about.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["document_common_responses"]

_WITH_A_BODY: dict[str, str] = {
    "400": "The body could not be parsed (not UTF-8, or not the declared media type).",
    "413": "The body is larger than the service's limit (VIGIL_<SERVICE>_HTTP_MAX_BODY_BYTES).",
    "422": "The body does not validate, or nests JSON deeper than the service's limit.",
}


def document_common_responses(app: FastAPI) -> None:
    """Make ``app.openapi()`` list, on every operation that takes a body, the answers given
    before the route runs."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    if not isinstance(operation, dict) or "requestBody" not in operation:
                        continue
                    responses = operation.setdefault("responses", {})
                    for status, description in _WITH_A_BODY.items():
                        responses.setdefault(status, {"description": description})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
