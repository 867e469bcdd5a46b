"""The catalogue is validated at start: every mistake is refused with the file and field named."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import AlertKind, Tier
from services.runbook_runner.catalog import (
    CatalogError,
    ParameterType,
    Source,
    load_catalog,
    placeholder_of,
)
from tests.runbook_runner.support import CATALOG_PATH

VALID: dict[str, Any] = {
    "name": "rollback-model",
    "purpose": "Roll back a model whose metrics fell right after a deployment.",
    "alert_kinds": ["metric_decay"],
    "tier": "L1",
    "command": ["python", "act.py", "--model", "{model}", "--to", "{to_version}"],
    "parameters": {
        "model": {"from": "model", "type": "str"},
        "to_version": {"type": "int", "minimum": 1, "required": True},
    },
    "timeout_seconds": 60,
    "verify": {"command": ["python", "check.py", "--model", "{model}"], "timeout_seconds": 30},
    "needs_approval": False,
    "max_concurrent_per_model": 1,
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for name in ("act.py", "check.py", "plain.sh"):
        (folder / name).write_text("print('hi')\n")
    tool = folder / "tool.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (tmp_path / "outside.py").write_text("print('outside')\n")
    return folder


def write(folder: Path, *runbooks: dict[str, Any]) -> Path:
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump({"runbooks": list(runbooks)}))
    return path


def changed(path: str, value: Any) -> dict[str, Any]:
    """The valid runbook with one field (dotted path; ``~`` deletes it) changed."""
    runbook = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target: Any = runbook
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value == "~":
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return runbook


def test_the_valid_runbook_loads_with_its_types(folder: Path) -> None:
    catalog = load_catalog(write(folder, VALID))
    runbook = catalog.runbooks["rollback-model"]
    assert runbook.tier is Tier.L1
    assert runbook.alert_kinds == [AlertKind.METRIC_DECAY]
    assert runbook.parameters["model"].source is Source.MODEL
    assert runbook.parameters["to_version"].type is ParameterType.INT
    assert catalog.script(runbook.command) == folder / "act.py"


def test_the_test_catalogue_and_the_shipped_one_load() -> None:
    assert len(load_catalog(CATALOG_PATH).runbooks) > 10
    shipped = load_catalog(Path(__file__).resolve().parents[2] / "runbooks" / "catalog.yaml")
    assert set(shipped.runbooks) == {
        "rollback-model",
        "recover-scorer",
        "replay-dead-letters",
        "drift-diagnosis",
        "request-retrain",
    }


def test_a_placeholder_is_a_whole_item() -> None:
    assert placeholder_of("{model}") == "model"
    assert placeholder_of("--model={model}") is None
    assert placeholder_of("{model}{model}") is None
    assert placeholder_of("{ model }") is None


INVALID_RUNBOOKS = {
    "unknown field": (changed("timeout_second", 5), "timeout_second: Extra inputs"),
    "missing field": (changed("verify", "~"), "verify: Field required"),
    "bad name": (changed("name", "Roll Back"), "name: String should match"),
    "unknown alert kind": (changed("alert_kinds", ["meltdown"]), "alert_kinds[0]: Input should be"),
    "unknown tier": (changed("tier", "L4"), "tier: Input should be"),
    "empty command": (changed("command", []), "command: List should have at least 1 item"),
    "zero timeout": (changed("timeout_seconds", 0), "timeout_seconds: Input should be greater"),
    "endless timeout": (changed("timeout_seconds", 86400), "timeout_seconds: Input should be less"),
    "verify timeout": (changed("verify.timeout_seconds", -1), "verify.timeout_seconds"),
    "no concurrency": (changed("max_concurrent_per_model", 0), "max_concurrent_per_model"),
    "approval not a flag": (changed("needs_approval", "maybe"), "needs_approval"),
    "python alone": (changed("command", ["python"]), "command: 'python' must be followed"),
    "python -c": (changed("command", ["python", "-c", "import os"]), "is an option"),
    "placeholder as program": (changed("command.1", "{model}"), "must be a literal script"),
    "placeholder inside an item": (
        changed("command.3", "--model={model}"),
        "a placeholder must be a whole item",
    ),
    "stray brace": (changed("command.2", "{oops"), "a placeholder must be a whole item"),
    "undeclared placeholder": (changed("command.5", "{version}"), "names no declared parameter"),
    "NUL in a literal": (changed("command.2", "--mo\x00del"), "contains a NUL byte"),
    "unused parameter": (
        changed("parameters.unused", {"type": "str", "default": "x"}),
        "parameters.unused: declared but used in neither command",
    ),
    "bad parameter name": (
        changed("parameters.Bad-Name", {"type": "str", "default": "x"}),
        "a name is lower case letters",
    ),
    "unknown parameter type": (
        changed("parameters.to_version.type", "uuid"),
        "parameters.to_version.type: Input should be",
    ),
    "unknown source": (
        changed("parameters.model.from", "hostname"),
        "parameters.model.from: Input should be",
    ),
    "source of the wrong type": (
        changed("parameters.model.type", "int"),
        "bound from model it must be of type str",
    ),
    "default for an always present source": (
        changed("parameters.model.default", "x"),
        "it is always present",
    ),
    "neither required nor default": (
        changed("parameters.to_version.required", False),
        "give either required: true or a default",
    ),
    "both required and default": (
        changed("parameters.to_version.default", 2),
        "give either required: true or a default",
    ),
    "default of the wrong type": (
        changed("parameters.to_version", {"type": "int", "default": "2"}),
        "default '2' is not of type int",
    ),
    "default below the minimum": (
        changed("parameters.to_version", {"type": "int", "minimum": 1, "default": 0}),
        "default 0 is below the minimum 1",
    ),
    "default not allowed": (
        changed("parameters.to_version", {"type": "int", "allowed": [1, 2], "default": 3}),
        "default 3 is not one of [1, 2]",
    ),
    "allowed of the wrong type": (
        changed("parameters.to_version", {"type": "int", "allowed": ["one"], "default": 1}),
        "allowed value 'one' is not of type int",
    ),
    "empty allowed": (
        changed("parameters.to_version", {"type": "int", "allowed": [], "default": 1}),
        "allowed: List should have at least 1 item",
    ),
    "pattern on a number": (
        changed("parameters.to_version.pattern", "^[0-9]+$"),
        "pattern applies to str parameters only",
    ),
    "invalid pattern": (
        changed("parameters.note", {"type": "str", "pattern": "([a-z", "default": "a"}),
        "pattern is not a valid regular expression",
    ),
    "default not matching the pattern": (
        changed("parameters.to_version", {"type": "str", "pattern": "^v[0-9]+$", "default": "2"}),
        "does not match",
    ),
    "max_length on a number": (
        changed("parameters.to_version.max_length", 10),
        "max_length applies to str parameters only",
    ),
    "bounds on a string": (
        changed("parameters.to_version", {"type": "str", "minimum": 1, "default": "a"}),
        "minimum and maximum apply to int and float parameters only",
    ),
    "minimum above maximum": (
        changed("parameters.to_version.maximum", 0),
        "minimum is greater than maximum",
    ),
    "absolute script": (changed("command.1", "/bin/sh"), "give the script relative to"),
    "script outside the folder": (
        changed("command.1", "../outside.py"),
        "command[1]: '../outside.py' lies outside the catalogue's folder",
    ),
    "missing script": (changed("command.1", "nothing.py"), "no such script"),
    "program not in the folder": (
        changed("command", ["sh", "-c", "{model}", "{to_version}"]),
        "command[0]: 'sh': no such script in the catalogue's folder (use 'python'",
    ),
    "script not executable": (
        changed("command", ["plain.sh", "{model}", "{to_version}"]),
        "is not executable",
    ),
    "verify script outside": (
        changed("verify.command.1", "../../etc/passwd"),
        "verify.command[1]: '../../etc/passwd' lies outside",
    ),
}


@pytest.mark.parametrize(
    ("runbook", "expected"), INVALID_RUNBOOKS.values(), ids=list(INVALID_RUNBOOKS)
)
def test_an_invalid_runbook_is_refused_naming_the_file_runbook_and_field(
    folder: Path, runbook: dict[str, Any], expected: str
) -> None:
    path = write(folder, runbook)
    with pytest.raises(CatalogError) as refused:
        load_catalog(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: invalid runbook catalogue")
    assert "runbooks[0] (" in message
    assert expected in message


def test_two_runbooks_with_one_name_are_refused(folder: Path) -> None:
    with pytest.raises(CatalogError, match=r"runbooks\[1\] \(rollback-model\)\.name: another"):
        load_catalog(write(folder, VALID, VALID))


def test_every_problem_is_listed_at_once(folder: Path) -> None:
    with pytest.raises(CatalogError) as refused:
        load_catalog(
            write(folder, changed("tier", "L9"), changed("name", "Other") | {"tier": "L0"})
        )
    message = str(refused.value)
    assert "runbooks[0] (rollback-model).tier" in message
    assert "runbooks[1] (Other).name" in message
    assert "runbooks[1] (Other).tier" in message

    missing_scripts = changed("command.1", "missing.py")
    missing_scripts["verify"]["command"][1] = "../x.py"
    with pytest.raises(CatalogError) as refused:
        load_catalog(write(folder, missing_scripts))
    message = str(refused.value)
    assert "runbooks[0] (rollback-model).command[1]: 'missing.py'" in message
    assert "runbooks[0] (rollback-model).verify.command[1]: '../x.py'" in message


def test_a_script_reached_through_a_symlink_out_of_the_folder_is_refused(folder: Path) -> None:
    (folder / "link.py").symlink_to(folder.parent / "outside.py")
    with pytest.raises(CatalogError, match=r"'link\.py' lies outside"):
        load_catalog(write(folder, changed("command.1", "link.py")))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("runbooks: [", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("runbooks: {name: x}\n", "runbooks: Input should be a valid list"),
        ("runbook: []\n", "runbook: Extra inputs are not permitted"),
    ],
    ids=["not yaml", "not a mapping", "runbooks not a list", "misspelt key"],
)
def test_a_malformed_file_is_refused(folder: Path, content: str, expected: str) -> None:
    path = folder / "catalog.yaml"
    path.write_text(content)
    with pytest.raises(CatalogError, match=expected) as refused:
        load_catalog(path)
    assert str(refused.value).startswith(str(path))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the runbook catalogue"):
        load_catalog(tmp_path / "nowhere.yaml")


def test_an_executable_script_may_run_without_the_interpreter(folder: Path) -> None:
    runbook = changed("command", ["tool.sh", "{model}", "{to_version}"])
    catalog = load_catalog(write(folder, runbook))
    assert os.access(catalog.script(catalog.runbooks["rollback-model"].command), os.X_OK)
