"""The AsyncAPI document is valid AsyncAPI 3.0 and says what the contracts say.

Validated offline against the official JSON Schema of AsyncAPI 3.0 (vendored from the npm package
``@asyncapi/specs``, see ``vendor/README.md``), plus the rules that schema leaves out: component,
channel and operation keys match ``^[a-zA-Z0-9\\.\\-_]+$`` and every ``$ref`` resolves.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from contracts import TOPICS, Topic
from contracts.generate import ASYNCAPI_PATH
from contracts.wire import kafka_headers
from tests.factories import sample_events

ASYNCAPI_SCHEMA = Path(__file__).parent / "vendor" / "asyncapi-3.0.0.schema.json"
KEY = re.compile(r"^[a-zA-Z0-9\.\-_]+$")


@cache
def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))


@cache
def _loaded() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(ASYNCAPI_PATH.read_text())
    return document


def _document() -> dict[str, Any]:
    """A copy of the checked-in document (parsed once: it is large)."""
    return copy.deepcopy(_loaded())


def problems(document: dict[str, Any]) -> list[str]:
    """Everything wrong with an AsyncAPI 3.0 document, readable."""
    found = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in _validator().iter_errors(document)
    ]
    for section in ("channels", "operations"):
        found += [f"{section}/{k}: bad key" for k in document.get(section, {}) if not KEY.match(k)]
    for kind, entries in document.get("components", {}).items():
        found += [f"components/{kind}/{k}: bad key" for k in entries if not KEY.match(k)]
    for ref in _refs(document):
        if _resolve(document, ref) is None:
            found.append(f"{ref}: does not resolve")
    return found


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def test_the_document_is_valid_asyncapi_3() -> None:
    document = _document()
    assert document["asyncapi"] == "3.0.0"
    assert problems(document) == []


def _rename_message_with_colon(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    messages["alerts:AlertRaised:Message"] = messages.pop("alert.raised")


def _publish_action(document: dict[str, Any]) -> None:
    document["operations"]["alerts.send"]["action"] = "publish"


def _dangling_ref(document: dict[str, Any]) -> None:
    document["channels"]["alerts"]["messages"]["alert.raised"]["$ref"] += "-gone"


def _bad_binding(document: dict[str, Any]) -> None:
    document["channels"]["alerts"]["bindings"]["kafka"]["partitions"] = 0


@pytest.mark.parametrize(
    "breakage", [_rename_message_with_colon, _publish_action, _dangling_ref, _bad_binding]
)
def test_the_validator_catches_what_asyncapi_3_forbids(
    breakage: Callable[[dict[str, Any]], None],
) -> None:
    document = _document()
    breakage(document)
    assert problems(document)


def test_one_channel_per_topic_listing_its_events_with_key_and_partitions() -> None:
    document = _document()
    assert set(document["channels"]) == {topic.value for topic in Topic}
    for spec in TOPICS.values():
        channel = document["channels"][spec.topic.value]
        assert channel["address"] == spec.topic.value
        assert channel["bindings"]["kafka"]["partitions"] == spec.partitions
        listed = {_resolve(document, ref["$ref"])["name"] for ref in channel["messages"].values()}
        assert listed == {event.model_fields["type"].default for event in spec.events}
        for ref in channel["messages"].values():
            key = _resolve(document, ref["$ref"])["bindings"]["kafka"]["key"]
            assert key["type"] == "string"
            assert spec.key_field in key["description"]


def test_operations_are_vigils_sends_and_receives() -> None:
    operations = _document()["operations"]
    actions = {
        (op["channel"]["$ref"].rsplit("/", 1)[-1], op["action"]) for op in operations.values()
    }
    assert ("scoring.requests", "receive") in actions
    assert ("labels", "receive") in actions
    assert ("scoring.requests", "send") not in actions
    assert ("labels", "send") not in actions
    assert ("incidents", "send") in actions
    assert ("drift", "receive") not in actions
    for spec in TOPICS.values():
        assert ((spec.topic.value, "send") in actions) is spec.vigil_sends
        assert ((spec.topic.value, "receive") in actions) is spec.vigil_receives


@pytest.mark.parametrize("event", sample_events(), ids=lambda event: event.type)
def test_the_headers_vigil_publishes_match_the_declared_header_schema(event: Any) -> None:
    message = _loaded()["components"]["messages"][event.type]
    headers = {name: value.decode() for name, value in kafka_headers(event)}
    checker = jsonschema.Draft7Validator(
        message["headers"], format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    assert [error.message for error in checker.iter_errors(headers)] == []
    assert set(message["headers"]["required"]) <= set(headers)


@pytest.mark.parametrize("event", sample_events(), ids=lambda event: event.type)
def test_every_event_is_valid_under_its_payload_schema(event: Any) -> None:
    document = _loaded()
    schema = {
        **_resolve(document, document["components"]["messages"][event.type]["payload"]["$ref"]),
        "components": document["components"],
    }
    payload = json.loads(event.model_dump_json())
    errors = jsonschema.Draft7Validator(schema).iter_errors(payload)
    assert [error.message for error in errors] == []
