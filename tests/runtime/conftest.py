"""Fixtures of the runtime's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime import create_engine


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two replicas' engines on one database."""
    engines = [create_engine(database_url) for _ in range(2)]
    yield engines
    for engine in engines:
        await engine.dispose()
