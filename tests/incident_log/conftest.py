"""Fixtures shared by the incident log's tests."""

from __future__ import annotations

import pytest

from services.incident_log.migrations import HISTORY
from services.runtime.migrations import SchemaHistory


@pytest.fixture
def schema() -> SchemaHistory:
    """The incident log's tests run on its database at the head of its migrations."""
    return HISTORY
