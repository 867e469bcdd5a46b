"""Which catalogued runbooks a person may pick for an incident, and whether their values pass.

Pure (the file is read once, at start). The incident log never imports the runner: it reads the
runner's catalogue file (``catalog_path``) as the approvals do, keeping only what a person picks
by — name, purpose, the alert kinds it answers, tier, ``needs_approval`` — and the typed
parameters a person supplies (those not bound ``from`` a request field). The console builds
its form fields from them (allowed values as choices, patterns as the HTML ``pattern``), and
the API checks the values the same way before anything is published; the runner still checks
everything again when it admits the run.

A runbook *applies* to an incident when it answers one of the kinds of the incident's signals;
the runbooks the catalogue keeps for running by hand (no ``alert_kinds``) apply to every
incident. The others are still offered, apart, since a person may run any catalogued runbook.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.incidents import Tier

__all__ = [
    "CatalogView",
    "ChoiceParameter",
    "RunbookChoice",
    "load_catalog_view",
    "parameter_problems",
    "parse_form_value",
]

ParameterValue = str | int | float | bool


class ChoiceParameter(BaseModel):
    """A parameter a person supplies, with the rules its value must pass."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: Literal["str", "int", "float", "bool"]
    source: str | None = Field(default=None, alias="from")
    required: bool = False
    default: ParameterValue | None = None
    allowed: list[ParameterValue] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 256
    description: str = ""


class RunbookChoice(BaseModel):
    """One catalogued runbook as a person picks it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    purpose: str = ""
    alert_kinds: list[str] = Field(default_factory=list)
    tier: Tier = Tier.L1
    needs_approval: bool = False
    parameters: dict[str, ChoiceParameter] = Field(default_factory=dict)

    @property
    def supplied(self) -> dict[str, ChoiceParameter]:
        """The parameters a person gives (the others are bound from the request)."""
        return {name: p for name, p in self.parameters.items() if p.source is None}

    @property
    def bound(self) -> list[str]:
        """The parameters the runner binds from the request (model, incident id...)."""
        return [name for name, p in self.parameters.items() if p.source is not None]

    def applies_to(self, kinds: Collection[str]) -> bool:
        """Whether it answers one of these alert kinds, or is kept for running by hand."""
        return not self.alert_kinds or bool(set(self.alert_kinds) & set(kinds))


@dataclass(frozen=True)
class CatalogView:
    """The catalogue's runbooks by name, in the file's order."""

    runbooks: Mapping[str, RunbookChoice]

    def get(self, name: str) -> RunbookChoice | None:
        """The runbook of this name, or ``None``."""
        return self.runbooks.get(name)

    def for_kinds(self, kinds: Collection[str]) -> tuple[list[RunbookChoice], list[RunbookChoice]]:
        """The runbooks that apply to these kinds, and the others."""
        applicable = [r for r in self.runbooks.values() if r.applies_to(kinds)]
        others = [r for r in self.runbooks.values() if not r.applies_to(kinds)]
        return applicable, others

    def problems(self, name: str, values: Mapping[str, ParameterValue]) -> list[str]:
        """Why a request for this runbook with these values would be refused (empty: it
        would not be, as far as the catalogue says)."""
        runbook = self.get(name)
        if runbook is None:
            known = ", ".join(self.runbooks) or "none"
            return [f"runbook {name!r} is not in the catalogue (it has: {known})"]
        problems: list[str] = []
        for given in values:
            if given not in runbook.parameters:
                takes = ", ".join(runbook.supplied) or "none"
                problems.append(
                    f"runbook {name!r} takes no parameter {given!r} (it takes: {takes})"
                )
            elif runbook.parameters[given].source is not None:
                problems.append(
                    f"parameter {given!r} is bound from the incident's "
                    f"{runbook.parameters[given].source}: do not give it"
                )
        for parameter_name, parameter in runbook.supplied.items():
            if parameter_name in values:
                problems += [
                    f"parameter {parameter_name!r}: {problem}"
                    for problem in parameter_problems(parameter, values[parameter_name])
                ]
            elif parameter.required:
                problems.append(f"parameter {parameter_name!r} is required")
        return problems


def parameter_problems(parameter: ChoiceParameter, value: ParameterValue) -> list[str]:
    """Why a value breaks a parameter's type or rules (empty: it does not).

    >>> p = ChoiceParameter(type="str", pattern="^OPS-[0-9]{1,6}$")
    >>> parameter_problems(p, "OPS-12"), parameter_problems(p, "x")
    ([], ["'x' does not match '^OPS-[0-9]{1,6}$'"])
    >>> parameter_problems(ChoiceParameter(type="int", maximum=3), True)
    ['True is not of type int']
    """
    if not _accepts(parameter.type, value):
        return [f"{value!r} is not of type {parameter.type}"]
    problems: list[str] = []
    if isinstance(value, str):
        if len(value) > parameter.max_length:
            problems.append(f"is longer than {parameter.max_length} characters")
        elif parameter.pattern is not None and not re.fullmatch(parameter.pattern, value):
            problems.append(f"{value!r} does not match {parameter.pattern!r}")
        if value.startswith("-"):
            problems.append(f"{value!r} starts with '-' and would read as an option")
    elif not isinstance(value, bool):
        if parameter.minimum is not None and value < parameter.minimum:
            problems.append(f"{value!r} is below the minimum {parameter.minimum:g}")
        if parameter.maximum is not None and value > parameter.maximum:
            problems.append(f"{value!r} is above the maximum {parameter.maximum:g}")
    if parameter.allowed is not None and not any(
        value == allowed and isinstance(value, bool) == isinstance(allowed, bool)
        for allowed in parameter.allowed
    ):
        problems.append(f"{value!r} is not one of {parameter.allowed!r}")
    return problems


def _accepts(kind: str, value: object) -> bool:
    if isinstance(value, bool):
        return kind == "bool"
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, int | float) and math.isfinite(value)
    return kind == "str" and isinstance(value, str)


def parse_form_value(parameter: ChoiceParameter, text: str) -> ParameterValue:
    """The typed value of a form field's text; ``ValueError`` (saying why) if it has none.

    >>> parse_form_value(ChoiceParameter(type="float"), "0.5")
    0.5
    >>> parse_form_value(ChoiceParameter(type="bool"), "true")
    True
    """
    if parameter.type == "str":
        return text
    if parameter.type == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text == "true"
    try:
        number: int | float = int(text) if parameter.type == "int" else float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of type {parameter.type}") from None
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def load_catalog_view(path: Path) -> CatalogView:
    """Read the runner's catalogue file; ``ValueError`` if it cannot be read (the runner
    validates the rest of it)."""
    try:
        document: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read the runbook catalogue: {error}") from None
    listed = document.get("runbooks", []) if isinstance(document, dict) else None
    if not isinstance(listed, list):
        raise ValueError(f"{path}: the catalogue must be a mapping with a 'runbooks' list")
    runbooks: dict[str, RunbookChoice] = {}
    for index, entry in enumerate(listed):
        try:
            runbook = RunbookChoice.model_validate(entry)
        except ValidationError as error:
            raise ValueError(f"{path}: runbooks[{index}]: {error}") from None
        runbooks[runbook.name] = runbook
    return CatalogView(runbooks)
