"""Fixtures shared by the incident log's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.incident_log.migrations import HISTORY
from services.runtime import create_engine
from services.runtime.migrations import migrate


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An incident-log database at the head of its migrations (SQLite and PostgreSQL)."""
    engine = create_engine(database_url)
    await migrate(engine, HISTORY)
    yield engine
    await engine.dispose()
