"""Import rules: contracts need pydantic only; services share nothing but contracts and runtime."""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

import pytest

from services.runtime.names import ServiceName

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)


def imports_of(path: Path, *, with_names: bool = False) -> set[str]:
    """The modules ``path`` imports (absolute imports); ``with_names`` adds ``package.name`` for
    each ``from package import name``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if with_names:
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def service_packages() -> list[Path]:
    return sorted(
        path
        for path in (ROOT / "services").iterdir()
        if path.is_dir() and (path / "__init__.py").exists() and path.name != "runtime"
    )


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((ROOT / "contracts").glob("*.py")) if p.name != "generate.py"],
    ids=lambda p: p.name,
)
def test_contracts_import_only_pydantic_and_the_standard_library(path: Path) -> None:
    allowed_roots = STDLIB | {"pydantic", "contracts", "__future__"}
    foreign = {name for name in imports_of(path) if name.split(".")[0] not in allowed_roots}
    assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_runtime_does_not_import_any_service() -> None:
    for path in (ROOT / "services" / "runtime").rglob("*.py"):
        bad = {
            name
            for name in imports_of(path)
            if name.startswith("services.") and not name.startswith("services.runtime")
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_a_service_imports_no_other_service() -> None:
    for package in service_packages():
        own = f"services.{package.name}"
        for path in package.rglob("*.py"):
            bad = {
                name
                for name in imports_of(path)
                if name.startswith("services.") and not name.startswith(("services.runtime", own))
            }
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


ADAPTER_LIBRARIES = frozenset(
    {
        "faststream",
        "aiokafka",
        "sqlmodel",
        "sqlalchemy",
        "alembic",
        "aiosqlite",
        "psycopg",
        "httpx",
        "fastapi",
        "starlette",
        "uvicorn",
        "typer",
        "rich",
        "prometheus_client",
        "aiosmtplib",
        "jinja2",
    }
)
"""Libraries that talk to the outside (Kafka, a database, HTTP, SMTP, a terminal, a page): a pure
module reaches none of them, not even through another module of the project."""

PURE_MODULES = frozenset(
    {
        # the drift detector: the statistics, the decision, the episodes and the report
        "services.drift_detector.correction",
        "services.drift_detector.detector",
        "services.drift_detector.encoding",
        "services.drift_detector.episodes",
        "services.drift_detector.lookup",
        "services.drift_detector.profiles",
        "services.drift_detector.reporting",
        "services.drift_detector.sequential",
        "services.drift_detector.settings",
        "services.drift_detector.stats",
        "services.drift_detector.tracking",
        "services.drift_detector.windows",
        # the incident log: the incident's life, triage, routing, paging plans, reviews
        "services.incident_log.approvals",
        "services.incident_log.changes",
        "services.incident_log.chart_views",
        "services.incident_log.charts",
        "services.incident_log.domain",
        "services.incident_log.lifecycle",
        "services.incident_log.manual",
        "services.incident_log.paging.links",
        "services.incident_log.paging.messages",
        "services.incident_log.paging.planning",
        "services.incident_log.paging.schedules",
        "services.incident_log.permissions",
        "services.incident_log.retrains",
        "services.incident_log.review",
        "services.incident_log.routing",
        "services.incident_log.runbook_choices",
        "services.incident_log.settings",
        "services.incident_log.stats",
        "services.incident_log.triage",
        # the monitor: joins, windows, metrics, thresholds, comparisons, estimates, its events
        "services.monitor.comparison",
        "services.monitor.domain",
        "services.monitor.estimation",
        "services.monitor.history",
        "services.monitor.join",
        "services.monitor.loss_estimation",
        "services.monitor.metrics",
        "services.monitor.reporting",
        "services.monitor.residuals",
        "services.monitor.settings",
        "services.monitor.thresholds",
        "services.monitor.windows",
        # the retrainer: the registry's rules, training, the gate, promotion and canary rules
        "services.retrainer.registry.deployments",
        "services.retrainer.retraining.dataset_changes",
        "services.retrainer.retraining.gate",
        "services.retrainer.retraining.pipeline",
        "services.retrainer.retraining.recipes",
        "services.retrainer.retraining.regression_metrics",
        "services.retrainer.retraining.training",
        "services.retrainer.retraining.training_data",
        "services.retrainer.retraining.triggers",
        "services.retrainer.rollout.canary",
        "services.retrainer.rollout.promotions",
        # the runbook runner: admission, the catalogue, the child's environment and capture
        "services.runbook_chains",
        "services.runbook_runner.admission",
        "services.runbook_runner.capture",
        "services.runbook_runner.catalog",
        "services.runbook_runner.environment",
        "services.runbook_runner.execution",
        "services.runbook_runner.runs",
        "services.runbook_runner.settings",
        # the runtime's own pure parts
        "services.runtime.alert_episodes",
        "services.runtime.calibration_quality",
        "services.runtime.dead_letter_alerts",
        "services.runtime.event_time",
        "services.runtime.local_stack",
        "services.runtime.model_artifacts",
        "services.runtime.model_inputs",
        "services.runtime.names",
        "services.runtime.processes",
        "services.runtime.request_signing",
        "services.runtime.scopes",
        "services.runtime.settings",
        "services.runtime.waiting",
        # the scorer: routing, features, scoring and the events it builds
        "services.scorer.deployments",
        "services.scorer.features",
        "services.scorer.predictions",
        "services.scorer.request_ids",
        "services.scorer.routing",
        "services.scorer.scoring",
        "services.scorer.settings",
        # the local stack's scripted parts
        "services.stack.chaos_runbook",
        "services.stack.scenario",
        "services.stack.training",
    }
)
"""Every pure module of the services (package ``__init__`` files aside): listed so that a module
that stops being pure fails here, and so that a new pure module is noticed and listed."""


@functools.cache
def _project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in sorted((ROOT / "services").rglob("*.py")) + sorted(
        (ROOT / "contracts").rglob("*.py")
    ):
        relative = path.relative_to(ROOT).with_suffix("")
        if {"migrations", "migration_env"} & set(relative.parts):
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        modules[".".join(parts)] = path
    return modules


@functools.cache
def impure_modules() -> dict[str, str]:
    """Every project module that reaches an adapter library, with the way it does: directly, or
    through the project modules it imports (a fixpoint over the import graph)."""
    modules = _project_modules()
    imports = {name: imports_of(path, with_names=True) for name, path in modules.items()}
    reach: dict[str, str] = {}
    for name, imported in imports.items():
        adapters = sorted(i for i in imported if i.split(".")[0] in ADAPTER_LIBRARIES)
        if adapters:
            reach[name] = adapters[0]
    changed = True
    while changed:
        changed = False
        for name, imported in imports.items():
            if name in reach:
                continue
            through = sorted(i for i in imported if i in reach and i != name)
            if through:
                reach[name] = f"{through[0]} → {reach[through[0]]}"
                changed = True
    return reach


@pytest.mark.parametrize("module", sorted(PURE_MODULES))
def test_a_pure_module_reaches_no_adapter_library(module: str) -> None:
    impure = impure_modules()
    assert module in _project_modules(), f"{module} does not exist"
    assert module not in impure, f"{module} reaches {impure[module]}"


def test_every_pure_module_is_listed() -> None:
    impure = impure_modules()
    pure = {
        name
        for name, path in _project_modules().items()
        if name.startswith("services.") and name not in impure and path.name != "__init__.py"
    }
    assert pure <= PURE_MODULES, f"pure, not listed in PURE_MODULES: {sorted(pure - PURE_MODULES)}"


def test_the_services_with_a_database_are_those_with_a_migration_history() -> None:
    with_history = {
        name
        for name in ServiceName
        if (ROOT / name.package.replace(".", "/") / "migrations").is_dir()
    }
    assert with_history == {name for name in ServiceName if name.has_database}
