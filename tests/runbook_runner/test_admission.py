"""Admission: which requests may run, how parameters bind, and the exact argv they run with."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from contracts import Tier
from services.runbook_runner.admission import (
    Admitted,
    Ask,
    Refused,
    admit,
    as_recorded,
    request_problem,
)
from services.runbook_runner.catalog import Catalog
from tests.factories import make_runbook_request
from tests.runbook_runner.support import SCRIPTS

PYTHON = sys.executable


def ask(**overrides: Any) -> Ask:
    return Ask.of(make_runbook_request(**overrides))


def admitted(catalog: Catalog, **overrides: Any) -> Admitted:
    result = admit(catalog, ask(**overrides), python=PYTHON)
    assert isinstance(result, Admitted), result
    return result


def refusal(catalog: Catalog, **overrides: Any) -> str:
    result = admit(catalog, ask(**overrides), python=PYTHON)
    assert isinstance(result, Refused), result
    return result.reason


def test_an_admitted_request_runs_the_catalogued_script_with_bound_values(
    catalog: Catalog,
) -> None:
    run = admitted(catalog, runbook="passes", model="churn", parameters={"to_version": 2})
    assert run.argv == [
        PYTHON,
        str(SCRIPTS / "show_argv.py"),
        "--model",
        "churn",
        "--to-version",
        "2",
    ]
    assert run.verify_argv == [PYTHON, str(SCRIPTS / "check.py"), "0"]
    assert run.parameters == {"model": "churn", "to_version": 2}
    assert run.script == SCRIPTS / "show_argv.py"


def test_a_runbook_outside_the_catalogue_is_refused(catalog: Catalog) -> None:
    assert refusal(catalog, runbook="rm-everything") == (
        "runbook 'rm-everything' is not in the catalogue"
    )


@pytest.mark.parametrize(
    ("tier", "admitted_"), [(Tier.L1, False), (Tier.L2, True), (Tier.L3, True)]
)
def test_a_runbook_runs_only_at_its_tier_or_higher(
    catalog: Catalog, tier: Tier, admitted_: bool
) -> None:
    result = admit(catalog, ask(runbook="level-two", parameters={}, tier=tier), python=PYTHON)
    assert isinstance(result, Admitted) is admitted_
    if not admitted_:
        assert isinstance(result, Refused)
        assert (
            result.reason == "runbook 'level-two' needs tier L2 or higher; the request runs as L1"
        )


def test_a_runbook_needing_approval_runs_only_when_a_second_person_approved(
    catalog: Catalog,
) -> None:
    base = {"runbook": "needs-approval", "parameters": {}, "requested_by": "ana"}
    assert (
        refusal(catalog, **base) == "runbook 'needs-approval' needs approval; the request has none"
    )
    assert "needs approval by a second person" in refusal(catalog, **base, approved_by="ana")
    assert "needs approval by a second person" in refusal(catalog, **base, approved_by="ANA")
    assert admitted(catalog, **base, approved_by="bo").argv[-1] == "0"


def test_typed_parameters_bind_from_the_request_defaults_and_supplied_values(
    catalog: Catalog,
) -> None:
    run = admitted(
        catalog,
        runbook="typed",
        model_version=7,
        parameters={"threshold": 1, "ticket": "OPS-42", "dry_run": True},
    )
    assert run.parameters == {
        "version": 7,
        "mode": "safe",
        "threshold": 1.0,
        "dry_run": True,
        "ticket": "OPS-42",
    }
    assert run.argv[2:] == ["7", "safe", "1.0", "true", "OPS-42"]


TYPED = {"threshold": 0.5, "ticket": "OPS-1"}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"parameters": TYPED | {"extra": 1}},
            "takes no parameter 'extra' (it takes: dry_run, mode",
        ),
        ({"parameters": {"ticket": "OPS-1"}}, "parameter 'threshold' is required"),
        ({"model_version": None}, "needs the request's model_version, which it lacks"),
        (
            {"model_version": None, "parameters": TYPED | {"version": 3}},
            "bound from the request's model_version (None); a different value was supplied (3)",
        ),
        ({"parameters": TYPED | {"version": 2}}, "a different value was supplied (2)"),
        (
            {"model_version": 1, "parameters": TYPED | {"version": True}},
            "a different value was supplied (True)",
        ),
        ({"parameters": TYPED | {"threshold": "0.5"}}, "'0.5' is not of type float"),
        ({"parameters": TYPED | {"threshold": True}}, "True is not of type float"),
        ({"parameters": TYPED | {"threshold": 1.5}}, "1.5 is above the maximum 1"),
        ({"parameters": TYPED | {"threshold": -0.1}}, "-0.1 is below the minimum 0"),
        ({"parameters": TYPED | {"dry_run": 1}}, "1 is not of type bool"),
        ({"parameters": TYPED | {"dry_run": "false"}}, "'false' is not of type bool"),
        ({"parameters": TYPED | {"mode": "reckless"}}, "'reckless' is not one of ['fast', 'safe']"),
        ({"parameters": TYPED | {"ticket": "OPS-1; rm -rf /"}}, "does not match"),
        ({"parameters": TYPED | {"ticket": "OPS-1\n"}}, "contains control characters"),
        ({"parameters": TYPED | {"ticket": "-OPS-1"}}, "starts with '-' and would read as an"),
    ],
    ids=[
        "unknown parameter",
        "missing required",
        "missing bound field",
        "supplied in place of a missing bound field",
        "supplied value contradicts the bound one",
        "supplied bool where the bound value is an int",
        "string for a float",
        "bool for a float",
        "above maximum",
        "below minimum",
        "int for a bool",
        "string for a bool",
        "not an allowed value",
        "pattern",
        "trailing newline",
        "leading dash",
    ],
)
def test_a_parameter_breaking_its_rules_refuses_the_request(
    catalog: Catalog, overrides: dict[str, Any], reason: str
) -> None:
    fields = {"runbook": "typed", "model_version": 3, "parameters": TYPED} | overrides
    assert reason in refusal(catalog, **fields)


def test_a_supplied_value_equal_to_the_bound_one_is_accepted(catalog: Catalog) -> None:
    run = admitted(catalog, runbook="typed", model_version=3, parameters=TYPED | {"version": 3})
    assert run.parameters["version"] == 3


HOSTILE_LITERALS = [
    "; rm -rf /",
    "$(touch pwned)",
    "`touch pwned`",
    "../../etc/passwd",
    "a b  c",
    "*",
    "$HOME ~ %s {model} {{value}}",
    "'single' \"double\" \\ | & > <",
    "ünïcødé ✓",
]


@pytest.mark.parametrize("value", HOSTILE_LITERALS)
def test_a_hostile_value_becomes_exactly_one_literal_argv_item(
    catalog: Catalog, value: str
) -> None:
    run = admitted(catalog, runbook="show-argv", parameters={"value": value})
    assert run.argv[2:4] == ["--value", value]
    assert len(run.argv) == 8


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x" * 1024 * 1024, "is longer than 4096 characters"),
        ("ok\x00; rm -rf /", "contains a NUL byte"),
        ("line\nbreak", "contains control characters"),
        ("\x1b[2J", "contains control characters"),
        ("--help", "starts with '-'"),
    ],
    ids=["one megabyte", "NUL byte", "newline", "terminal escape", "option"],
)
def test_a_value_that_cannot_be_one_safe_argument_is_refused(
    catalog: Catalog, value: str, reason: str
) -> None:
    message = refusal(catalog, runbook="show-argv", parameters={"value": value})
    assert reason in message
    assert len(message) < 300  # the value itself is quoted only in part


def test_a_request_field_bound_as_a_parameter_is_checked_like_any_value(
    catalog: Catalog,
) -> None:
    message = refusal(catalog, runbook="show-argv", incident_id="-rf", parameters={"value": "x"})
    assert "parameter 'incident_id': '-rf' starts with '-'" in message


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("run_id", "run\x00", "run_id contains control characters"),
        ("incident_id", "inc\n1", "incident_id contains control characters"),
        ("requested_by", "ana\x1b[31m", "requested_by contains control characters"),
        ("approved_by", "bo\x00", "approved_by contains control characters"),
        ("incident_id", "i" * 201, "incident_id is longer than 200 characters"),
    ],
)
def test_a_request_with_unsafe_identifiers_cannot_be_recorded(
    field: str, value: str, problem: str
) -> None:
    overrides: dict[str, Any] = {field: value}
    assert request_problem(make_runbook_request(**overrides)) == problem
    assert request_problem(make_runbook_request()) is None


def test_refused_parameters_are_recorded_cut_and_printable() -> None:
    recorded = as_recorded({"value": "x" * 1_000_000, "nul": "a\x00b", "n": 3, "flag": False})
    assert len(str(recorded["value"])) < 300
    assert recorded["nul"] == "a\ufffdb"
    assert recorded["n"] == 3
    assert recorded["flag"] is False


def test_the_digest_tells_different_requests_apart_under_one_run_id() -> None:
    assert ask().digest() == ask().digest()
    assert ask().digest() != ask(parameters={"to_version": 1}).digest()
    assert ask().digest() != ask(runbook="fails").digest()
