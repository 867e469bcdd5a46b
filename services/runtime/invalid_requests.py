"""The 422 answer to a body that fails validation, safe for any input.

FastAPI's own answer echoes each bad value back, and a NaN or infinity there makes JSON encoding
fail, turning the refusal into a 500. Here non-finite numbers are echoed as text instead.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["answer_invalid_requests"]


def answer_invalid_requests(app: FastAPI) -> None:
    """Answer request validation errors with 422 whatever values they carry."""

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return JSONResponse({"detail": _printable(jsonable_encoder(error.errors()))}, 422)

    app.add_exception_handler(RequestValidationError, invalid)


def _printable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value
