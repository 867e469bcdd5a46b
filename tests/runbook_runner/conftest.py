"""Fixtures of the runner's tests: the test catalogue and its scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runbook_runner.catalog import Catalog, load_catalog

# The scripts are programs the runner executes, not test modules: importing them would run them.
collect_ignore_glob = ["scripts/*"]

SCRIPTS = Path(__file__).resolve().parent / "scripts"
CATALOG_PATH = SCRIPTS / "catalog.yaml"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(CATALOG_PATH)
