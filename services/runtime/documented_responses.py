"""Answers every route of a service can give, written into its OpenAPI once.

Some answers come before a route's own code runs, or from rules every route shares, so no route
declares them; without this, a client (or a fuzzer) that reads the schema meets statuses it was
never told about:

- a body: 400 (not parseable), 413 (over the size limit, :mod:`.body_limits`), 422;
- a bearer token (the operation declares a security scheme): 401 (none, unknown or revoked) and
  403 (a role too low);
- a path parameter: 404 (nothing by that name or id).

Every error answer is ``{"detail": …}``: a message, or FastAPI's list of validation problems
(422 answers carry either, so the schema of ``detail`` says so).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["document_common_responses"]

_ERROR = "ErrorAnswer"

_WITH_A_BODY = {
    "400": "The body could not be parsed (not UTF-8, or not the declared media type).",
    "413": "The body is larger than the service's limit (VIGIL_<SERVICE>_HTTP_MAX_BODY_BYTES).",
    "422": "The body does not validate, or nests JSON deeper than the service's limit.",
}
_WITH_A_TOKEN = {
    "401": "No bearer token, or an unknown or revoked one.",
    "403": "The token's role may not do this (the answer names the role needed).",
}
_WITH_A_PATH_PARAMETER = {"404": "Nothing by that name or id."}


def document_common_responses(app: FastAPI) -> None:
    """Make ``app.openapi()`` list the shared answers on every operation they apply to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_common_responses(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _with_common_responses(schema: dict[str, Any]) -> dict[str, Any]:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas[_ERROR] = {
        "type": "object",
        "properties": {"detail": {"anyOf": [{"type": "string"}, {"type": "array"}, {}]}},
        "required": ["detail"],
        "title": _ERROR,
    }
    validation = schemas.get("HTTPValidationError")
    if validation is not None:  # routes also answer 422 with a message of their own
        validation["properties"]["detail"] = {
            "anyOf": [validation["properties"]["detail"], {"type": "string"}],
            "title": "Detail",
        }
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{_ERROR}"}}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            shared: dict[str, str] = {}
            if "requestBody" in operation:
                shared |= _WITH_A_BODY
            if operation.get("security"):
                shared |= _WITH_A_TOKEN
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                shared |= _WITH_A_PATH_PARAMETER
            responses = operation["responses"]
            for status, description in shared.items():
                responses.setdefault(status, {"description": description, "content": error})
    return schema
