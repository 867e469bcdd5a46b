"""Generate the checked-in JSON Schemas and AsyncAPI document: ``python -m contracts.generate``.

A build tool, not part of the contracts' runtime surface: it alone imports FastStream (to render
AsyncAPI from a declaration-only broker) and PyYAML.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contracts.topics import TOPICS
from contracts.wire import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_PRODUCER,
    HEADER_SCHEMA_VERSION,
)

__all__ = ["ASYNCAPI_PATH", "REFERENCE_PATH", "SCHEMAS_DIR", "render", "write"]

HERE = Path(__file__).parent
SCHEMAS_DIR = HERE / "schemas"
ASYNCAPI_PATH = HERE / "asyncapi.yaml"
REFERENCE_PATH = HERE.parent / "docs" / "event-reference.md"

_DESCRIPTION = f"""Every Vigil topic and the events it carries.

Values are UTF-8 JSON objects with a `type` field naming the event. Keys are the UTF-8 of one
field of the event, given per topic below, so that per-model (or per-incident) order holds across
partitions. Headers: `content-type: application/json`, `{HEADER_EVENT_TYPE}`, `{HEADER_EVENT_ID}`,
`{HEADER_SCHEMA_VERSION}`, `{HEADER_PRODUCER}`, and `correlation_id` (the event's correlation id,
or its event id when it has none).

| topic | key field | partitions |
|---|---|---|
""" + "".join(
    f"| {spec.topic.value} | {spec.key_field} | {spec.partitions} |\n" for spec in TOPICS.values()
)


def _json_schemas() -> dict[Path, str]:
    files = {}
    for spec in TOPICS.values():
        for event in spec.events:
            schema = event.model_json_schema(mode="serialization")
            schema["x-vigil-topic"] = spec.topic.value
            schema["x-vigil-key-field"] = spec.key_field
            event_type = event.model_fields["type"].default
            files[SCHEMAS_DIR / f"{event_type}.json"] = json.dumps(schema, indent=2) + "\n"
    return files


def _asyncapi() -> str:
    import yaml
    from faststream.kafka import KafkaBroker
    from faststream.specification import AsyncAPI

    broker = KafkaBroker("kafka:9092", description="Apache Kafka, or the embedded Tansu broker.")
    for spec in TOPICS.values():
        for event in spec.events:
            broker.publisher(
                spec.topic.value,
                schema=event,
                title=f"{spec.topic.value}:{event.__name__}",
                description=f"{(event.__doc__ or '').strip()} Key: `{spec.key_field}`.",
            )
    document = AsyncAPI(broker, title="Vigil events", version="1", description=_DESCRIPTION)
    # FastStream orders channels differently from run to run: sort them for a stable file.
    content = json.loads(document.to_specification().to_json())
    return str(yaml.safe_dump(content, sort_keys=True, allow_unicode=True, width=100))


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
            event_type = event.model_fields["type"].default
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
