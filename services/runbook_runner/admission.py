"""Whether a request may run, and the exact argv it runs with.

A request is admitted only if its runbook is catalogued, its tier is high enough, it carries the
approval the runbook needs, and every parameter binds and passes its rules. The argv is then built
item by item from the catalogue: literals stay, a ``"{parameter}"`` item becomes the bound value
as one item, so no value is ever interpreted by a shell or spliced into another argument.

Parameter values are refused when they cannot be passed safely even as one item: NUL and other
control characters, values longer than the parameter's ``max_length`` (the kernel caps one
argument at 128 KiB anyway), and strings starting with ``-``, which the script's own option parser
would read as an option.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from contracts.incidents import Tier
from contracts.runbooks import RunbookRequest
from services.runbook_runner.capture import printable
from services.runbook_runner.catalog import (
    PYTHON,
    Catalog,
    Parameter,
    ParameterType,
    ParameterValue,
    Runbook,
    Source,
    placeholder_of,
    script_index,
)

__all__ = [
    "Admitted",
    "Ask",
    "Refused",
    "admit",
    "as_recorded",
    "bind_parameters",
    "build_argv",
    "render",
    "request_problem",
    "shown",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TIER_RANK = {Tier.L1: 1, Tier.L2: 2, Tier.L3: 3}
_MAX_INCIDENT_ID = 200
_RECORDED_LIMIT = 200
_RECORDED_COUNT = 50


@dataclass(frozen=True)
class Ask:
    """What a request asks for, as admission reads it (from the event, or from a stored run)."""

    run_id: str
    incident_id: str
    model: str
    model_version: int | None
    runbook: str
    parameters: Mapping[str, ParameterValue]
    tier: Tier
    requested_by: str
    approved_by: str | None

    @classmethod
    def of(cls, request: RunbookRequest) -> Ask:
        """The ask of a request event."""
        return cls(
            run_id=request.run_id,
            incident_id=request.incident_id,
            model=request.model,
            model_version=request.model_version,
            runbook=request.runbook,
            parameters=dict(request.parameters),
            tier=request.tier,
            requested_by=request.requested_by,
            approved_by=request.approved_by,
        )

    def digest(self) -> str:
        """SHA-256 of the ask: two requests under one run id must have the same digest."""
        fields = asdict(self) | {"parameters": dict(self.parameters)}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Admitted:
    """A request that may run: its bound parameters and the two argument vectors."""

    runbook: Runbook
    parameters: dict[str, ParameterValue]
    argv: list[str]
    verify_argv: list[str]
    script: Path
    verify_script: Path


@dataclass(frozen=True)
class Refused:
    """A request that must not run, and why, for a person."""

    reason: str


class _Unbindable(ValueError):
    pass


def request_problem(request: RunbookRequest) -> str | None:
    """Why a request cannot even be recorded (its identifiers are unsafe to store), or ``None``.

    Such a request is dead-lettered rather than refused: a refusal is reported under the run id
    and incident id, which must themselves be sound.
    """
    identifiers = {
        "run_id": request.run_id,
        "incident_id": request.incident_id,
        "requested_by": request.requested_by,
        "approved_by": request.approved_by or "",
    }
    for name, value in identifiers.items():
        if _CONTROL.search(value):
            return f"{name} contains control characters"
    if len(request.incident_id) > _MAX_INCIDENT_ID:
        return f"incident_id is longer than {_MAX_INCIDENT_ID} characters"
    return None


def admit(catalog: Catalog, request: Ask, *, python: str) -> Admitted | Refused:
    """Decide whether a request may run; if so, bind its parameters and build its argv.

    ``python`` is the interpreter that replaces a leading ``python`` in a command.
    """
    runbook = catalog.get(request.runbook)
    if runbook is None:
        return Refused(f"runbook {shown(request.runbook)} is not in the catalogue")
    if _TIER_RANK[request.tier] < _TIER_RANK[runbook.tier]:
        return Refused(
            f"runbook {runbook.name!r} needs tier {runbook.tier.value} or higher; "
            f"the request runs as {request.tier.value}"
        )
    if runbook.needs_approval:
        if request.approved_by is None:
            return Refused(f"runbook {runbook.name!r} needs approval; the request has none")
        if request.approved_by.casefold() == request.requested_by.casefold():
            return Refused(
                f"runbook {runbook.name!r} needs approval by a second person; "
                f"{shown(request.requested_by)} approved their own request"
            )
    try:
        parameters = bind_parameters(runbook, request)
    except _Unbindable as error:
        return Refused(str(error))
    return Admitted(
        runbook=runbook,
        parameters=parameters,
        argv=build_argv(runbook.command, parameters, catalog, python=python),
        verify_argv=build_argv(runbook.verify.command, parameters, catalog, python=python),
        script=catalog.script(runbook.command),
        verify_script=catalog.script(runbook.verify.command),
    )


def bind_parameters(runbook: Runbook, request: Ask) -> dict[str, ParameterValue]:
    """Bind every declared parameter from the request; raise with the first problem."""
    unknown = sorted(set(request.parameters) - set(runbook.parameters))
    if unknown:
        takes = ", ".join(sorted(runbook.parameters)) or "none"
        raise _Unbindable(
            f"runbook {runbook.name!r} takes no parameter {shown(unknown[0])} (it takes: {takes})"
        )
    return {
        name: _checked(name, parameter, _value_for(name, parameter, request))
        for name, parameter in runbook.parameters.items()
    }


def _value_for(name: str, parameter: Parameter, request: Ask) -> ParameterValue:
    supplied = request.parameters.get(name)
    if parameter.source is not None:
        value = _field(request, parameter.source)
        if supplied is not None and (value is None or not _same(supplied, value)):
            raise _Unbindable(
                f"parameter {name!r} is bound from the request's {parameter.source.value} "
                f"({shown(value)}); a different value was supplied ({shown(supplied)})"
            )
        if value is None and parameter.required:
            raise _Unbindable(
                f"parameter {name!r} needs the request's {parameter.source.value}, which it lacks"
            )
    else:
        value = supplied
        if value is None and parameter.required:
            raise _Unbindable(f"parameter {name!r} is required")
    if value is None:
        assert parameter.default is not None  # the catalogue guarantees required or a default
        return parameter.default
    return value


def _same(a: ParameterValue, b: ParameterValue) -> bool:
    return type(a) is type(b) and a == b


def _field(request: Ask, source: Source) -> ParameterValue | None:
    value: ParameterValue | None = getattr(request, source.value)
    return value


def _checked(name: str, parameter: Parameter, value: ParameterValue) -> ParameterValue:
    if not parameter.type.accepts(value):
        raise _Unbindable(f"parameter {name!r}: {shown(value)} is not of type {parameter.type}")
    if isinstance(value, str):
        if "\x00" in value:
            raise _Unbindable(f"parameter {name!r}: {shown(value)} contains a NUL byte")
        if _CONTROL.search(value):
            raise _Unbindable(f"parameter {name!r}: {shown(value)} contains control characters")
        if value.startswith("-"):
            raise _Unbindable(
                f"parameter {name!r}: {shown(value)} starts with '-' and would read as an option"
            )
    problems = parameter.problems_with(value)
    if problems:
        raise _Unbindable(f"parameter {name!r}: {shown(value)} {problems[0]}")
    if parameter.type is ParameterType.FLOAT:
        return float(value)
    return value


def build_argv(
    command: list[str], parameters: dict[str, ParameterValue], catalog: Catalog, *, python: str
) -> list[str]:
    """Build the argument vector of a catalogued command with bound parameters.

    Each ``"{name}"`` item becomes exactly one item holding the rendered value; the script item
    becomes its resolved path; a leading ``python`` becomes ``python`` (the given interpreter).
    """
    program = script_index(command)
    argv = []
    for index, item in enumerate(command):
        name = placeholder_of(item)
        if index == 0 and item == PYTHON:
            argv.append(python)
        elif index == program:
            argv.append(str(catalog.script(command)))
        elif name is not None:
            argv.append(render(parameters[name]))
        else:
            argv.append(item)
    return argv


def render(value: ParameterValue) -> str:
    """The text of a value as one argument.

    >>> render(True), render(3), render(0.5), render("a b")
    ('true', '3', '0.5', 'a b')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def as_recorded(parameters: dict[str, ParameterValue]) -> dict[str, ParameterValue]:
    """Parameters as a refused request supplied them, made safe to store and publish: strings
    are cut to a few hundred characters and control characters replaced.

    >>> as_recorded({"model": "x" * 1000, "n": 3})["model"][-30:]
    'xxxx... [1000 characters, cut]'
    """
    return {
        printable(name)[:_RECORDED_LIMIT]: (
            _cut(printable(value)) if isinstance(value, str) else value
        )
        for name, value in list(parameters.items())[:_RECORDED_COUNT]
    }


def _cut(text: str) -> str:
    if len(text) <= _RECORDED_LIMIT:
        return text
    return f"{text[:_RECORDED_LIMIT]}... [{len(text)} characters, cut]"


def shown(value: object, limit: int = 60) -> str:
    """A short, printable rendering of a value for messages (long values are cut).

    >>> shown("x" * 100, limit=10)
    "'xxxxxxxxxx'... (100 characters)"
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return repr(value)
