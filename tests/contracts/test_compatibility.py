"""The compatibility promise: today's contracts keep every schema of the last release, and the
check that says so fails on each kind of breaking change (a test of the test, on copies of a
contract) and passes on what the promise allows."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field

from contracts import TOPICS, LabelRecorded, Topic
from contracts.compatibility import (
    ACCEPTED_BREAKS,
    breaking_changes,
    check_release,
    latest_release,
)
from contracts.generate import SCHEMAS_DIR, event_schema, render

RELEASED = latest_release()


def released(event_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((RELEASED / f"{event_type}.json").read_text())
    return schema


def labels_schema(model: type[LabelRecorded]) -> dict[str, Any]:
    """The schema a copy of ``label.recorded`` would publish."""
    return event_schema(model, TOPICS[Topic.LABELS])


def test_the_last_release_is_kept_in_the_repository() -> None:
    assert RELEASED.name == "0.1.0"
    assert {path.stem for path in RELEASED.glob("*.json")} >= {"label.recorded", "alert.raised"}


def test_todays_contracts_keep_the_promise_of_the_last_release(tmp_path: Path) -> None:
    for path, text in render().items():
        if path.parent == SCHEMAS_DIR:
            (tmp_path / path.name).write_text(text)
    assert check_release(RELEASED, tmp_path) == {}


def test_every_accepted_break_is_real_and_has_a_reason(tmp_path: Path) -> None:
    """An accepted break that no longer happens (or never did) would hide a future one."""
    for path, text in render().items():
        if path.parent == SCHEMAS_DIR:
            (tmp_path / path.name).write_text(text)
    found = check_release(RELEASED, tmp_path, accepted={})
    for event_type, problems in ACCEPTED_BREAKS.items():
        for problem, reason in problems.items():
            assert problem in found.get(event_type, []), f"{event_type}: {problem} is not a break"
            assert len(reason) > 40, reason


# What the promise allows: an optional field, a new enum value.


class WithOptionalField(LabelRecorded):
    """``label.recorded`` with a new optional field."""

    confidence_source: str | None = Field(default=None, description="Who judged.")


def test_an_added_optional_field_keeps_the_promise() -> None:
    assert breaking_changes(released("label.recorded"), labels_schema(WithOptionalField)) == []


def test_a_new_enum_value_keeps_the_promise() -> None:
    schema = copy.deepcopy(released("alert.raised"))
    schema["$defs"]["AlertKind"]["enum"].append("a_new_kind")
    assert breaking_changes(released("alert.raised"), schema) == []


# What breaks it, each once.


class WithNewRequiredField(LabelRecorded):
    """``label.recorded`` with a new required field: an old producer's label lacks it."""

    judged_by: str = Field(description="Who judged.")


class WithNarrowedType(LabelRecorded):
    """``label.recorded`` whose ``request_id`` may no longer be longer than 8 characters."""

    request_id: str = Field(max_length=8, description="Shorter ids only.")


class WithRetypedField(LabelRecorded):
    """``label.recorded`` whose ``label`` became an integer."""

    label: int = Field(description="A class number.")  # type: ignore[assignment]  # the breakage under test


class WithOptionalRequestId(LabelRecorded):
    """``label.recorded`` whose ``request_id`` may be missing or null."""

    request_id: str | None = Field(default=None, description="Sometimes unknown.")  # type: ignore[assignment]  # the breakage under test


def _renamed(schema: dict[str, Any]) -> dict[str, Any]:
    renamed = copy.deepcopy(schema)
    renamed["properties"]["request"] = renamed["properties"].pop("request_id")
    renamed["required"] = ["request" if n == "request_id" else n for n in renamed["required"]]
    return renamed


def _removed(schema: dict[str, Any]) -> dict[str, Any]:
    removed = copy.deepcopy(schema)
    del removed["properties"]["request_id"]
    removed["required"].remove("request_id")
    return removed


def _moved(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "x-vigil-topic": "predictions"}


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        (lambda: labels_schema(WithNewRequiredField), "judged_by: new required field"),
        (lambda: labels_schema(WithNarrowedType), "request_id: maxLength tightened to 8"),
        (lambda: labels_schema(WithRetypedField), "label: no longer accepts string"),
        (lambda: labels_schema(WithOptionalRequestId), "request_id: may now be null"),
        (lambda: _renamed(labels_schema(LabelRecorded)), "request_id: removed (or renamed)"),
        (lambda: _removed(labels_schema(LabelRecorded)), "request_id: removed (or renamed)"),
        (lambda: _moved(labels_schema(LabelRecorded)), "x-vigil-topic changed"),
    ],
    ids=["new-required", "narrowed", "retyped", "now-optional", "renamed", "removed", "moved"],
)
def test_a_breaking_change_to_a_copy_of_a_contract_fails_the_check(
    changed: Any, reason: str
) -> None:
    problems = breaking_changes(released("label.recorded"), changed())
    assert any(reason in problem for problem in problems), problems


def test_a_dropped_enum_value_and_a_nested_change_fail_the_check() -> None:
    old = released("alert.raised")
    fewer = copy.deepcopy(old)
    fewer["$defs"]["AlertKind"]["enum"].remove("manual")
    assert breaking_changes(old, fewer) == ["kind: no longer accepts 'manual'"]
    nested = copy.deepcopy(released("model.registered"))
    del nested["$defs"]["DatasetRef"]["properties"]["digest"]
    problems = breaking_changes(released("model.registered"), nested)
    assert any("digest: removed" in problem for problem in problems), problems


class LabelRecordedV2(LabelRecorded):
    """A new model of ``label.recorded``: the breaking change, with its schema version bumped."""

    schema_version: Literal[2] = 2  # type: ignore[assignment]  # the bump under test
    label: int = Field(description="A class number.")  # type: ignore[assignment]  # the breakage a bump allows


def test_a_breaking_change_passes_when_the_schema_version_is_bumped_as_a_new_model() -> None:
    assert breaking_changes(released("label.recorded"), labels_schema(WithRetypedField))
    assert breaking_changes(released("label.recorded"), labels_schema(LabelRecordedV2)) == []


def test_the_release_check_names_a_broken_and_a_removed_event_type(tmp_path: Path) -> None:
    for path in RELEASED.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "label.recorded.json").write_text(json.dumps(labels_schema(WithRetypedField)))
    (tmp_path / "alert.raised.json").unlink()
    found = check_release(RELEASED, tmp_path)
    assert set(found) == {"label.recorded", "alert.raised"}
    assert found["alert.raised"] == ["event type removed"]


def test_an_enum_on_a_free_field_a_dropped_union_variant_and_new_item_rules_fail_the_check() -> (
    None
):
    """Narrowings the first version of the guard let through (found in review)."""
    old: dict[str, Any] = {
        "properties": {
            "schema_version": {"const": 1},
            "label": {"type": "string"},
            "step": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "source": {
                "anyOf": [
                    {
                        "title": "Person",
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                    },
                    {
                        "title": "Service",
                        "type": "object",
                        "properties": {"id": {"type": "string"}},
                    },
                ]
            },
        }
    }
    new = copy.deepcopy(old)
    new["properties"]["label"]["enum"] = ["benign", "malignant"]
    new["properties"]["step"]["multipleOf"] = 0.5
    new["properties"]["tags"]["uniqueItems"] = True
    new["properties"]["source"]["anyOf"].pop(0)
    assert sorted(breaking_changes(old, new)) == [
        "label: now limited to ['benign', 'malignant']",
        "source: no longer accepts the Person variant",
        "step: multipleOf changed to 0.5",
        "tags: items must now be unique",
    ]
    reordered = copy.deepcopy(old)
    reordered["properties"]["source"]["anyOf"].reverse()
    assert breaking_changes(old, reordered) == []  # variants pair by name, not by position
