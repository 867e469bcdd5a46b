"""Serving an ASGI app over real loopback HTTP inside a test (uvicorn on a free port)."""

from __future__ import annotations

from services.runtime.serve import serving

__all__ = ["serving"]
