"""The retrainer's pure modules stay pure: no messaging, database or HTTP library."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_architecture import imports_of

PURE = [
    "canary",
    "dataset_changes",
    "gate",
    "pipeline",
    "promotions",
    "recipes",
    "training",
    "training_data",
    "triggers",
]
ADAPTER_LIBRARIES = {"faststream", "sqlmodel", "sqlalchemy", "httpx", "aiokafka", "fastapi"}
PACKAGE = Path(__file__).resolve().parents[2] / "services" / "retrainer"


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_messaging_database_or_http_library(module: str) -> None:
    imported = {name.split(".")[0] for name in imports_of(PACKAGE / f"{module}.py")}
    assert not imported & ADAPTER_LIBRARIES, f"{module}.py imports {imported & ADAPTER_LIBRARIES}"
