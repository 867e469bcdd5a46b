"""Import rules: contracts need pydantic only; services share nothing but contracts and runtime."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
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
