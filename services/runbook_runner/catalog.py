"""The runbook catalogue: the only things the runner will ever execute.

Loaded from YAML (``runbooks/catalog.yaml``) and validated when the runner starts; an invalid
catalogue stops it with every problem listed, each naming the file and the field. A runbook
declares

- ``name``, ``purpose``, the ``alert_kinds`` it answers (empty: run by hand only) and the lowest
  ``tier`` allowed to run it;
- ``command``: an argv list, run with no shell. The program is a script in the catalogue's folder
  (``python script.py`` runs it with the runner's own interpreter; a bare ``script.sh`` must be
  executable). Every other item is a literal or exactly ``"{parameter}"``, replaced as a whole by
  the bound value: values are never substituted inside a larger string;
- typed ``parameters``, each bound ``from`` a field of the request (``model``, ``model_version``,
  ``incident_id``, ``run_id``) or supplied by the person asking, with allowed values or a pattern,
  bounds, and either ``required: true`` or a ``default``;
- ``timeout_seconds``, a ``verify`` command with its own ``timeout_seconds``, ``needs_approval``
  and ``max_concurrent_per_model``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.alerts import AlertKind
from contracts.incidents import Tier

__all__ = [
    "PYTHON",
    "Catalog",
    "CatalogError",
    "Parameter",
    "ParameterType",
    "ParameterValue",
    "Runbook",
    "Source",
    "Verification",
    "load_catalog",
    "placeholder_of",
    "script_index",
]

ParameterValue = str | int | float | bool

PYTHON = "python"
"""A leading ``python`` in a command means the runner's own interpreter."""

_PLACEHOLDER = re.compile(r"^\{([a-z][a-z0-9_]*)\}$")
_PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_TIMEOUT_S = 3600.0


def placeholder_of(item: str) -> str | None:
    """Return the parameter an argv item stands for, or ``None`` for a literal.

    >>> placeholder_of("{model}"), placeholder_of("--model"), placeholder_of("--m={model}")
    ('model', None, None)
    """
    match = _PLACEHOLDER.match(item)
    return match.group(1) if match else None


class ParameterType(StrEnum):
    """The type of a parameter's value."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"

    def accepts(self, value: object) -> bool:
        """Whether a value is of this type (``bool`` is not a number; an ``int`` is a float)."""
        if isinstance(value, bool):
            return self is ParameterType.BOOL
        if self is ParameterType.INT:
            return isinstance(value, int)
        if self is ParameterType.FLOAT:
            return isinstance(value, int | float) and math.isfinite(value)
        if self is ParameterType.STR:
            return isinstance(value, str)
        return False


class Source(StrEnum):
    """A field of the request a parameter can be bound from."""

    MODEL = "model"
    MODEL_VERSION = "model_version"
    INCIDENT_ID = "incident_id"
    RUN_ID = "run_id"

    @property
    def value_type(self) -> ParameterType:
        """The type of the field."""
        return ParameterType.INT if self is Source.MODEL_VERSION else ParameterType.STR

    @property
    def always_present(self) -> bool:
        """Whether every request has the field (``model_version`` is optional)."""
        return self is not Source.MODEL_VERSION


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Parameter(_Strict):
    """One typed parameter of a runbook and the rules its value must pass."""

    type: ParameterType
    source: Source | None = Field(
        default=None, alias="from", description="Request field the value is bound from."
    )
    required: bool = False
    default: ParameterValue | None = None
    allowed: list[ParameterValue] | None = Field(default=None, min_length=1)
    pattern: str | None = Field(default=None, description="Regex the whole value must match.")
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = Field(default=256, ge=1, le=4096, description="For strings.")
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = list(self._problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _problems(self) -> Iterator[str]:
        if self.source is not None:
            if self.type is not self.source.value_type:
                yield f"bound from {self.source.value} it must be of type {self.source.value_type}"
            if self.source.always_present and (self.required or self.default is not None):
                yield f"bound from {self.source.value}, it is always present: drop required/default"
        needs_value = self.source is None or not self.source.always_present
        if needs_value and self.required == (self.default is not None):
            yield "give either required: true or a default (exactly one)"
        rules_valid = True
        if self.pattern is not None:
            if self.type is not ParameterType.STR:
                yield "pattern applies to str parameters only"
            try:
                re.compile(self.pattern)
            except re.error as error:
                rules_valid = False
                yield f"pattern is not a valid regular expression: {error}"
        if "max_length" in self.model_fields_set and self.type is not ParameterType.STR:
            yield "max_length applies to str parameters only"
        numeric = self.type in (ParameterType.INT, ParameterType.FLOAT)
        if (self.minimum is not None or self.maximum is not None) and not numeric:
            yield "minimum and maximum apply to int and float parameters only"
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            yield "minimum is greater than maximum"
        for value in self.allowed or ():
            if not self.type.accepts(value):
                yield f"allowed value {value!r} is not of type {self.type}"
        if self.default is not None:
            if not self.type.accepts(self.default):
                yield f"default {self.default!r} is not of type {self.type}"
            elif rules_valid:
                yield from (
                    f"default {self.default!r} {p}" for p in self.problems_with(self.default)
                )

    def problems_with(self, value: ParameterValue) -> list[str]:
        """Why a value of the right type breaks this parameter's rules (empty: it does not)."""
        problems: list[str] = []
        if isinstance(value, str):
            if len(value) > self.max_length:
                problems.append(f"is longer than {self.max_length} characters")
            elif self.pattern is not None and not re.fullmatch(self.pattern, value):
                problems.append(f"does not match {self.pattern!r}")
        elif not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                problems.append(f"is below the minimum {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                problems.append(f"is above the maximum {self.maximum:g}")
        if self.allowed is not None and not any(_same(value, a) for a in self.allowed):
            problems.append(f"is not one of {self.allowed!r}")
        return problems


def _same(a: ParameterValue, b: ParameterValue) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


class Verification(_Strict):
    """The command that confirms the runbook's effect (exit 0: confirmed)."""

    command: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(gt=0, le=_MAX_TIMEOUT_S)


class Runbook(_Strict):
    """One catalogued runbook: "if X, run Y, verify with Z"."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    purpose: str = Field(min_length=1)
    alert_kinds: list[AlertKind] = Field(description="Alert kinds it answers; empty: by hand only.")
    tier: Tier = Field(description="The lowest tier allowed to run it.")
    command: list[str] = Field(min_length=1)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    timeout_seconds: float = Field(gt=0, le=_MAX_TIMEOUT_S)
    verify: Verification
    needs_approval: bool = False
    max_concurrent_per_model: int = Field(default=1, ge=1, le=100)

    @model_validator(mode="after")
    def _commands_use_declared_parameters(self) -> Self:
        problems = [
            f"parameters.{name}: a name is lower case letters, digits and '_'"
            for name in self.parameters
            if not _PARAMETER_NAME.match(name)
        ]
        used: set[str] = set()
        for where, command in (("command", self.command), ("verify.command", self.verify.command)):
            if command == [PYTHON]:
                problems.append(f"{where}: 'python' must be followed by a script")
            for index in range(len(command)):
                problem = self._argv_problem(command, index, used)
                if problem:
                    problems.append(f"{where}[{index}]: {problem}")
        problems.extend(
            f"parameters.{name}: declared but used in neither command"
            for name in self.parameters
            if name not in used
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _argv_problem(self, command: list[str], index: int, used: set[str]) -> str | None:
        item = command[index]
        if "\x00" in item:
            return "contains a NUL byte"
        name = placeholder_of(item)
        if index == script_index(command) or (index == 0 and item == PYTHON):
            if name is not None or "{" in item:
                return f"{item!r}: the program must be a literal script path"
            if item.startswith("-"):
                return f"{item!r} is an option: the program must be a script path"
            return None
        if name is not None:
            if name not in self.parameters:
                return f"{item!r} names no declared parameter"
            used.add(name)
            return None
        if "{" in item or "}" in item:
            return (
                f"{item!r}: a placeholder must be a whole item like '{{model}}'; values are "
                "never substituted inside a larger string"
            )
        return None


def script_index(command: list[str]) -> int:
    """Position of the script in a command: after a leading ``python``, else first."""
    return 1 if command[0] == PYTHON else 0


class CatalogError(ValueError):
    """The catalogue is missing, not YAML, or invalid; the message names the file and fields."""


@dataclass(frozen=True)
class Catalog:
    """The validated runbooks by name, and the folder their scripts live in."""

    folder: Path
    runbooks: dict[str, Runbook] = field(default_factory=dict)

    def get(self, name: str) -> Runbook | None:
        """The runbook of this name, or ``None``."""
        return self.runbooks.get(name)

    def script(self, command: list[str]) -> Path:
        """The resolved path of a command's script (validated to lie in the folder)."""
        return (self.folder / command[script_index(command)]).resolve()


class _Document(_Strict):
    runbooks: list[Runbook] = Field(default_factory=list)


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalogue file, including that every script exists in its folder."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the runbook catalogue: {error}") from None
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise CatalogError(f"{path}: the catalogue must be a mapping with a 'runbooks' list")
    try:
        parsed = _Document.model_validate(document)
    except ValidationError as error:
        problems = [_describe(problem, document) for problem in error.errors(include_url=False)]
        raise CatalogError(_listing(path, problems)) from None
    folder = path.resolve().parent
    problems = []
    names: set[str] = set()
    for index, runbook in enumerate(parsed.runbooks):
        where = f"runbooks[{index}] ({runbook.name})"
        if runbook.name in names:
            problems.append(f"{where}.name: another runbook has this name")
        names.add(runbook.name)
        for label, command in (
            ("command", runbook.command),
            ("verify.command", runbook.verify.command),
        ):
            problem = _script_problem(folder, command)
            if problem:
                problems.append(f"{where}.{label}[{script_index(command)}]: {problem}")
    if problems:
        raise CatalogError(_listing(path, problems))
    return Catalog(folder=folder, runbooks={runbook.name: runbook for runbook in parsed.runbooks})


def _script_problem(folder: Path, command: list[str]) -> str | None:
    index = script_index(command)
    item = command[index]
    if Path(item).is_absolute():
        return f"{item!r}: give the script relative to the catalogue's folder"
    script = (folder / item).resolve()
    if not script.is_relative_to(folder):
        return f"{item!r} lies outside the catalogue's folder"
    if not script.is_file():
        hint = " (use 'python' for the runner's interpreter)" if index == 0 else ""
        return f"{item!r}: no such script in the catalogue's folder{hint}"
    if index == 0 and not os.access(script, os.X_OK):
        return f"{item!r} is not executable (make it so, or run it with 'python')"
    return None


def _describe(problem: Any, document: dict[str, Any]) -> str:
    location = problem["loc"]
    parts: list[str] = []
    for position, part in enumerate(location):
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
            if position == 1 and location[0] == "runbooks":
                parts[-1] += _name_of(document, part)
        else:
            parts.append(str(part))
    message = str(problem["msg"]).removeprefix("Value error, ")
    return f"{'.'.join(parts) or '(file)'}: {message}"


def _name_of(document: dict[str, Any], index: int) -> str:
    runbooks = document.get("runbooks")
    if isinstance(runbooks, list) and index < len(runbooks) and isinstance(runbooks[index], dict):
        name = runbooks[index].get("name")
        if isinstance(name, str):
            return f" ({name})"
    return ""


def _listing(path: Path, problems: list[str]) -> str:
    return f"{path}: invalid runbook catalogue:\n" + "\n".join(f"  - {p}" for p in problems)
