"""Generate the checked-in JSON Schemas and AsyncAPI document: ``python -m contracts.generate``.

A build tool, not part of the contracts' runtime surface: it alone imports PyYAML. The AsyncAPI
3.0 document is built here directly from :data:`contracts.topics.TOPICS`: one channel per topic
listing its messages, a ``send`` operation for each topic Vigil's services publish to and a
``receive`` operation for each they consume, every message's headers and Kafka key as schemas
(``tests/contracts/test_asyncapi.py`` validates it against the official AsyncAPI 3.0 schema).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from contracts.envelope import Envelope
from contracts.topics import TOPICS, TopicSpec
from contracts.wire import (
    CLOUDEVENTS_SPEC_VERSION,
    CONTENT_TYPE,
    HEADER_CORRELATION_ID,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_PRODUCER,
    HEADER_SCHEMA_VERSION,
)

__all__ = ["ASYNCAPI_PATH", "REFERENCE_PATH", "SCHEMAS_DIR", "event_schema", "render", "write"]

HERE = Path(__file__).parent
SCHEMAS_DIR = HERE / "schemas"
ASYNCAPI_PATH = HERE / "asyncapi.yaml"
REFERENCE_PATH = HERE.parent / "docs" / "event-reference.md"

_KAFKA_BINDING = "0.5.0"

_DESCRIPTION = f"""Every Vigil topic and the events it carries. Operations are Vigil's: it `send`s
to a topic when one of its services publishes there, and `receive`s from it when one consumes it
(clients send `scoring.requests` and `labels`; everything Vigil sends, anyone may read).

Values are UTF-8 JSON objects with a `type` field naming the event. Keys are the UTF-8 of one
field of the event, given per topic below, so that per-model (or per-incident) order holds across
partitions. Every event Vigil publishes carries the CloudEvents Kafka binding's headers
(`ce_specversion`, `ce_id`, `ce_type`, `ce_source`, `ce_time`, `content-type`) and Vigil's own
(`{HEADER_EVENT_TYPE}`, `{HEADER_EVENT_ID}`, `{HEADER_SCHEMA_VERSION}`, `{HEADER_PRODUCER}`,
`{HEADER_CORRELATION_ID}`). Within a `schema_version` an event only gains optional fields and
enum values (docs/events.md, "Compatibility").

| topic | key field | partitions |
|---|---|---|
""" + "".join(
    f"| {spec.topic.value} | {spec.key_field} | {spec.partitions} |\n" for spec in TOPICS.values()
)


def _event_type(event: type[Envelope]) -> str:
    return str(event.model_fields["type"].default)


def event_schema(event: type[Envelope], spec: TopicSpec) -> dict[str, Any]:
    """The published JSON Schema of an event type (``contracts/schemas/<type>.json``)."""
    schema = event.model_json_schema(mode="serialization")
    schema["x-vigil-topic"] = spec.topic.value
    schema["x-vigil-key-field"] = spec.key_field
    return schema


def _json_schemas() -> dict[Path, str]:
    return {
        SCHEMAS_DIR / f"{_event_type(event)}.json": json.dumps(event_schema(event, spec), indent=2)
        + "\n"
        for spec in TOPICS.values()
        for event in spec.events
    }


def _headers(event: type[Envelope], *, published: bool) -> dict[str, Any]:
    """The headers of one event type as a schema: required on what Vigil publishes; on what
    clients send (scoring requests, labels) Vigil reads only the value."""
    event_type = _event_type(event)
    text = {"type": "string"}
    properties: dict[str, Any] = {
        "content-type": {"const": CONTENT_TYPE, "description": "CloudEvents `datacontenttype`."},
        "ce_specversion": {"const": CLOUDEVENTS_SPEC_VERSION, "description": "CloudEvents."},
        "ce_id": {**text, "format": "uuid", "description": "The event's `event_id`."},
        "ce_type": {"const": event_type, "description": "The event's `type`."},
        "ce_source": {
            **text,
            "format": "uri-reference",
            "description": "`/vigil/` and the event's `producer`.",
            "examples": ["/vigil/monitor"],
        },
        "ce_time": {**text, "format": "date-time", "description": "The event's `occurred_at`."},
        HEADER_EVENT_TYPE: {"const": event_type, "description": "The event's `type`."},
        HEADER_EVENT_ID: {**text, "format": "uuid", "description": "The event's `event_id`."},
        HEADER_SCHEMA_VERSION: {
            **text,
            "pattern": "^[0-9]+$",
            "description": "The event's `schema_version`.",
        },
        HEADER_PRODUCER: {**text, "description": "The event's `producer`."},
        HEADER_CORRELATION_ID: {
            **text,
            "description": "The event's `correlation_id`, or its `event_id` when it has none.",
        },
    }
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties) if published else [],
    }


def _message(spec: TopicSpec, event: type[Envelope]) -> dict[str, Any]:
    doc = (event.__doc__ or "").strip()
    return {
        "name": _event_type(event),
        "title": event.__name__,
        "summary": doc.split("\n\n")[0].replace("\n", " "),
        "description": doc,
        "contentType": CONTENT_TYPE,
        "headers": _headers(event, published=spec.vigil_sends),
        "payload": {"$ref": f"#/components/schemas/{event.__name__}"},
        "correlationId": {
            "description": "Shared by the events of one chain (an incident, a request).",
            "location": f"$message.header#/{HEADER_CORRELATION_ID}",
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": f"UTF-8 of the event's `{spec.key_field}` field.",
                },
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }


def _payload_schemas() -> dict[str, Any]:
    """Every event's JSON Schema and the models nested in them, referenced in components."""
    schemas: dict[str, Any] = {}
    for spec in TOPICS.values():
        for event in spec.events:
            schema = event.model_json_schema(
                mode="serialization", ref_template="#/components/schemas/{model}"
            )
            for name, nested in {**schema.pop("$defs", {}), event.__name__: schema}.items():
                if schemas.setdefault(name, nested) != nested:
                    raise ValueError(f"two different schemas are both named {name!r}")
    return dict(sorted(schemas.items()))


def _asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in TOPICS.values():
        name = spec.topic.value
        channels[name] = {
            "address": name,
            "title": name,
            "description": f"{spec.description} Key: `{spec.key_field}`.",
            "messages": {
                _event_type(event): {"$ref": f"#/components/messages/{_event_type(event)}"}
                for event in spec.events
            },
            "bindings": {
                "kafka": {
                    "topic": name,
                    "partitions": spec.partitions,
                    "bindingVersion": _KAFKA_BINDING,
                }
            },
        }
        messages |= {_event_type(event): _message(spec, event) for event in spec.events}
        listed = [
            {"$ref": f"#/channels/{name}/messages/{_event_type(event)}"} for event in spec.events
        ]
        for action, done in (("send", spec.vigil_sends), ("receive", spec.vigil_receives)):
            if done:
                operations[f"{name}.{action}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{name}"},
                    "summary": f"Vigil {action}s {', '.join(channels[name]['messages'])}.",
                    "messages": listed,
                }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Vigil events", "version": "1", "description": _DESCRIPTION},
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "Apache Kafka, or the embedded Tansu broker.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _payload_schemas()},
    }


def _asyncapi() -> str:
    import yaml

    document = _asyncapi_document()
    return str(yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100))


def _reference() -> str:
    """Every event's fields, topic by topic, as Markdown (from the same JSON Schemas)."""
    lines = [
        "# Event reference",
        "",
        "Generated from `contracts/` by `make schemas`; see [events.md](events.md) for the",
        "conventions (envelope, keys, headers, compatibility, dead letters). Every event also",
        "carries the envelope: `event_id`, `type`, `occurred_at`, `producer`, `correlation_id`,",
        "`schema_version`.",
        "",
    ]
    envelope = {"event_id", "type", "occurred_at", "producer", "correlation_id", "schema_version"}
    for spec in TOPICS.values():
        lines += [
            f"## `{spec.topic.value}`",
            "",
            f"{spec.description} Key: `{spec.key_field}`.",
            "",
        ]
        for event in spec.events:
            schema = event.model_json_schema(mode="serialization")
            required = set(schema.get("required", []))
            event_type = _event_type(event)
            lines += [
                f"### `{event_type}` — {event.__name__}",
                "",
                (event.__doc__ or "").strip(),
                "",
                "| field | type | required | meaning |",
                "|---|---|---|---|",
            ]
            for name, prop in schema["properties"].items():
                if name in envelope:
                    continue
                meaning = str(prop.get("description", "")).replace("|", "\\|").replace("\n", " ")
                lines.append(
                    f"| `{name}` | {_type_of(prop)} | {'yes' if name in required else 'no'} "
                    f"| {meaning} |"
                )
            lines.append("")
    return "\n".join(lines)


def _type_of(prop: dict[str, object]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        options = [_type_of(option) for option in prop["anyOf"]]  # type: ignore[attr-defined]
        return " or ".join(dict.fromkeys(options))
    if prop.get("type") == "array":
        return f"list of {_type_of(prop.get('items', {}))}"  # type: ignore[arg-type]
    if "const" in prop:
        return f"`{prop['const']}`"
    return str(prop.get("type", "any"))


def render() -> dict[Path, str]:
    """Return every generated file's path and content."""
    return {**_json_schemas(), ASYNCAPI_PATH: _asyncapi(), REFERENCE_PATH: _reference()}


def write() -> list[Path]:
    """Write the generated files, remove stale schemas, and return what changed."""
    files = render()
    changed = [
        path for path, text in files.items() if not path.exists() or path.read_text() != text
    ]
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
    for stale in set(SCHEMAS_DIR.glob("*.json")) - set(files):
        stale.unlink()
        changed.append(stale)
    return changed


if __name__ == "__main__":
    for path in write():
        sys.stdout.write(f"wrote {path.relative_to(HERE.parent)}\n")
