"""Fixtures of the runner's tests: the test catalogue and its scripts."""

from __future__ import annotations

import pytest

from services.runbook_runner.catalog import Catalog, load_catalog
from tests.runbook_runner.support import CATALOG_PATH

# The scripts are programs the runner executes, not test modules: importing them would run them.
collect_ignore_glob = ["scripts/*"]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(CATALOG_PATH)
