"""``vigil runbooks``: validate, list and show the catalogue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from services.runbook_runner.cli import app
from services.runbook_runner.execution import sha256_of
from tests.runbook_runner.support import CATALOG_PATH, SCRIPTS

cli = CliRunner()


def test_validate_accepts_a_valid_catalogue_and_counts_its_runbooks() -> None:
    result = cli.invoke(app, ["validate", "--catalog", str(CATALOG_PATH)])
    assert result.exit_code == 0
    assert result.output.endswith("valid, 15 runbook(s)\n")


def test_validate_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "runbooks:\n"
        "  - {name: a, purpose: p, alert_kinds: [], tier: L5, command: [x.py],"
        " timeout_seconds: 1, verify: {command: [y.py], timeout_seconds: 0}}\n"
    )
    result = cli.invoke(app, ["validate", "--catalog", str(path)])
    assert result.exit_code == 1
    assert "runbooks[0] (a).tier" in result.output
    assert "runbooks[0] (a).verify.timeout_seconds" in result.output


def test_list_names_each_runbook_with_its_tier() -> None:
    result = cli.invoke(app, ["list", "--catalog", str(CATALOG_PATH)], terminal_width=200)
    assert result.exit_code == 0
    assert "level-two" in result.output
    assert " L2 " in result.output


def test_show_gives_the_commands_parameters_and_current_script_hashes() -> None:
    result = cli.invoke(app, ["show", "typed", "--catalog", str(CATALOG_PATH)], terminal_width=200)
    assert result.exit_code == 0
    assert f"show_argv.py sha256 {sha256_of(SCRIPTS / 'show_argv.py')}" in result.output
    assert "model_version" in result.output
    assert "^OPS-[0-9]{1,6}$" in result.output


def test_show_refuses_an_unknown_runbook() -> None:
    result = cli.invoke(app, ["show", "nothing", "--catalog", str(CATALOG_PATH)])
    assert result.exit_code == 3
    assert "no runbook 'nothing'" in result.output


def test_the_vigil_command_has_the_runbooks_group() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from services.cli import main; main()",
            "runbooks",
            "validate",
            "--catalog",
            str(CATALOG_PATH),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "valid, 15 runbook(s)" in completed.stdout
