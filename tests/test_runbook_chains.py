"""A routing policy's level-one chains checked against the catalogue before either service starts
(``vigil runbooks check-routing``):
missing runbooks, runbooks for other alert kinds, above level one, needing approval, or needing a
person's value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from services.cli import _add_service_commands
from services.cli import app as vigil
from services.incident_log.routing import load_policy
from services.runbook_chains import chain_problems
from services.runbook_runner.catalog import Catalog, Runbook, load_catalog
from tests.incident_log.policies import TIERS, make_policy

RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"

_add_service_commands()


def runbook(name: str, kinds: list[str], tier: str = "L1", **fields: Any) -> Runbook:
    return Runbook.model_validate(
        {
            "name": name,
            "purpose": "p",
            "alert_kinds": kinds,
            "tier": tier,
            "command": ["python", "x.py"],
            "timeout_seconds": 1,
            "verify": {"command": ["python", "y.py"], "timeout_seconds": 1},
        }
        | fields
    )


CATALOG = Catalog(
    folder=Path("."),
    runbooks={
        "rollback-model": runbook("rollback-model", ["metric_decay", "challenger_worse"]),
        "recover-scorer": runbook("recover-scorer", ["probe_failed"]),
        "deep-dive": runbook("deep-dive", ["data_drift"], tier="L2"),
        "ask-first": runbook(
            "ask-first",
            ["metric_decay"],
            command=["python", "x.py", "{why}"],
            parameters={"why": {"type": "str", "required": True}},
        ),
        "four-eyes": runbook("four-eyes", ["metric_decay"], needs_approval=True),
    },
)


def routes(*chains: tuple[list[str], list[str]]) -> Any:
    return make_policy(
        routes=[
            {"name": f"r{n}", "match": {"kinds": kinds}, "runbooks": chain, "tiers": TIERS}
            for n, (kinds, chain) in enumerate(chains)
        ]
        + [{"name": "default", "runbooks": [], "tiers": TIERS}]
    )


def test_the_shipped_policy_and_catalogue_fit_together() -> None:
    policy = load_policy(RUNBOOKS / "routing.yaml")
    assert chain_problems(policy, load_catalog(RUNBOOKS / "catalog.yaml")) == []


def test_a_chain_that_fits_its_kinds_has_no_problem() -> None:
    assert chain_problems(routes((["metric_decay"], ["rollback-model"])), CATALOG) == []
    assert chain_problems(routes(([], ["rollback-model"])), CATALOG) == []  # any kind


def test_each_way_a_chain_cannot_run_is_named() -> None:
    problems = chain_problems(
        routes(
            (["metric_decay"], ["rolback-model"]),
            (["probe_failed"], ["rollback-model"]),
            (["data_drift"], ["deep-dive"]),
            (["metric_decay"], ["ask-first"]),
            (["metric_decay", "dead_letters"], ["rollback-model"]),
            (["metric_decay"], ["four-eyes"]),
        ),
        CATALOG,
    )
    assert problems == [
        "route 'r0': runbook 'rolback-model' is not in the catalogue",
        "route 'r1': runbook 'rollback-model' answers none of the route's alert kinds "
        "(probe_failed)",
        "route 'r2': runbook 'deep-dive' needs tier L2, but level-one chains run as L1",
        "route 'r3': runbook 'ask-first' needs parameter 'why', which only a person can give",
        "route 'r4': no runbook of its chain answers dead_letters",
        "route 'r5': runbook 'four-eyes' needs approval, "
        "but level-one chains run without a person to approve them",
    ]


def test_check_routing_reports_every_problem_and_exits_1(tmp_path: Path) -> None:
    policy = tmp_path / "routing.yaml"
    shipped = (RUNBOOKS / "routing.yaml").read_text()
    policy.write_text(shipped.replace("runbooks: [recover-scorer]", "runbooks: [recover-scorers]"))
    catalog = ["--catalog", str(RUNBOOKS / "catalog.yaml")]
    cli = CliRunner()

    def check(path: Path) -> Any:
        return cli.invoke(vigil, ["runbooks", "check-routing", "--policy", str(path), *catalog])

    good = check(RUNBOOKS / "routing.yaml")
    assert good.exit_code == 0, good.output
    assert "every level-one chain can run from" in good.output
    bad = check(policy)
    assert bad.exit_code == 1
    assert "route 'scorer-health': runbook 'recover-scorers' is not in the catalogue" in bad.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("routes: nope\n")
    invalid = check(broken)
    assert invalid.exit_code == 1
    assert "invalid routing policy" in invalid.output
