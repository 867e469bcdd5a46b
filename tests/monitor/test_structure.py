"""The monitor's pure modules stay pure, and its command is part of ``vigil``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services import cli
from services.runtime import free_port
from tests.test_architecture import imports_of

PURE = ["comparison", "domain", "join", "metrics", "thresholds", "windows"]
ADAPTER_LIBRARIES = {"faststream", "sqlmodel", "sqlalchemy", "httpx", "aiokafka", "fastapi"}
PACKAGE = Path(__file__).resolve().parents[2] / "services" / "monitor"


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_messaging_database_or_http_library(module: str) -> None:
    imported = {name.split(".")[0] for name in imports_of(PACKAGE / f"{module}.py")}
    assert not imported & ADAPTER_LIBRARIES, f"{module}.py imports {imported & ADAPTER_LIBRARIES}"


def test_vigil_probe_reports_an_unreachable_monitor_with_exit_status_2() -> None:
    cli._add_service_commands()
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli.app, ["probe", "breast-cancer", "--monitor-url", url])
    assert result.exit_code == 2
    assert "monitor unreachable" in result.output
