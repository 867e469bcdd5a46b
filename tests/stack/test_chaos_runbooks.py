"""The chaos suite's runbook folder: the runner and the incident log accept it, its alerts go to
its runbook, and the runbook's effects log counts every execution (so a double shows)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from contracts import AlertKind, Severity
from services.incident_log.routing import load_policy, route_for
from services.runbook_runner.catalog import load_catalog
from services.stack import chaos_runbook
from services.stack.chaos import ALERT_MODEL, RUNBOOK, effects_log, prepare_runbooks
from services.stack.stack import StackSettings


def test_the_chaos_folder_is_a_valid_catalogue_and_policy_routing_chaos_alerts_to_its_runbook(
    tmp_path: Path,
) -> None:
    folder = prepare_runbooks(tmp_path, StackSettings().runbooks_dir)

    catalog = load_catalog(folder / "catalog.yaml")
    policy = load_policy(folder / "routing.yaml")

    assert catalog.get(RUNBOOK) is not None
    assert catalog.get("rollback-model") is not None  # the shipped ones are still there
    chaos = route_for(policy, ALERT_MODEL, [(AlertKind.MANUAL, Severity.WARNING)])
    assert chaos.runbooks == [RUNBOOK]
    other = route_for(policy, "churn", [(AlertKind.MANUAL, Severity.WARNING)])
    assert other.runbooks != [RUNBOOK]


def test_the_effects_log_has_a_line_per_execution_and_verify_finds_it(tmp_path: Path) -> None:
    folder = prepare_runbooks(tmp_path, StackSettings().runbooks_dir)
    script = folder / "chaos_runbook.py"

    def run(*args: str) -> int:
        return subprocess.run([sys.executable, str(script), *args], check=False).returncode

    assert run("--run", "r-1", "--verify") == 1
    assert run("--run", "r-1") == 0
    assert run("--run", "r-2") == 0
    assert run("--run", "r-1") == 0  # a second execution of one run: the log shows it
    assert run("--run", "r-1", "--verify") == 0
    assert chaos_runbook.executed(effects_log(folder)) == ["r-1", "r-2", "r-1"]
    assert run("--verify") == 2  # no run id
