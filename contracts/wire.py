"""How an event looks on Kafka: JSON value, key, headers; and decoding it back, strictly.

External consumers need none of this: the value is plain JSON with a ``type`` field. Vigil's own
consumers decode with :func:`decode`, which names every problem so a dead letter is readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Annotated, Any, Union
from urllib.parse import quote

from pydantic import Field, Json, TypeAdapter, ValidationError

from contracts.envelope import Envelope
from contracts.topics import TOPICS, Topic, topic_of

__all__ = [
    "CLOUDEVENTS_HEADERS",
    "CLOUDEVENTS_SPEC_VERSION",
    "CONTENT_TYPE",
    "HEADER_CORRELATION_ID",
    "HEADER_EVENT_ID",
    "HEADER_EVENT_TYPE",
    "HEADER_PRODUCER",
    "HEADER_SCHEMA_VERSION",
    "DecodeError",
    "cloudevents_source",
    "correlation_of",
    "decode",
    "decode_many",
    "encode",
    "headers_for",
    "kafka_headers",
    "key_for",
]

CONTENT_TYPE = "application/json"
HEADER_EVENT_TYPE = "vigil-event-type"
HEADER_EVENT_ID = "vigil-event-id"
HEADER_SCHEMA_VERSION = "vigil-schema-version"
HEADER_PRODUCER = "vigil-producer"
HEADER_CORRELATION_ID = "correlation_id"

CLOUDEVENTS_SPEC_VERSION = "1.0"
CLOUDEVENTS_HEADERS = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time")
"""The CloudEvents Kafka protocol binding's attribute headers (binary content mode); with
``content-type`` they make every Vigil event a CloudEvent to any consumer that parses them."""


class DecodeError(ValueError):
    """A message is not a valid event for its topic.

    ``undecodable`` is true when the bytes are not JSON at all, false when they are JSON that
    fails the topic's schema.
    """

    def __init__(self, message: str, *, undecodable: bool) -> None:
        super().__init__(message)
        self.undecodable = undecodable


def encode(event: Envelope) -> bytes:
    """Serialise an event to its JSON value."""
    return event.model_dump_json().encode()


def key_for(event: Envelope) -> bytes:
    """Return the Kafka key of an event, from its topic's key rule."""
    return TOPICS[topic_of(type(event))].key_of(event)


def kafka_headers(event: Envelope) -> list[tuple[str, bytes]]:
    """Return the Kafka headers of an event, encoded: Vigil's own and the CloudEvents binding's.

    On the publishing hot path: the headers that depend only on the event's type, version and
    producer are built once per combination; per event only its id, time and correlation are.
    """
    event_id = str(event.event_id).encode()
    correlation = event.correlation_id.encode() if event.correlation_id else event_id
    return [
        *_constant_headers(event.type, event.schema_version, event.producer),
        (HEADER_EVENT_ID, event_id),
        ("ce_id", event_id),
        ("ce_time", event.occurred_at.isoformat().encode()),
        (HEADER_CORRELATION_ID, correlation),
    ]


@lru_cache(maxsize=1024)
def _constant_headers(
    event_type: str, schema_version: int, producer: str
) -> tuple[tuple[str, bytes], ...]:
    return (
        ("content-type", CONTENT_TYPE.encode()),
        ("ce_specversion", CLOUDEVENTS_SPEC_VERSION.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", cloudevents_source(producer).encode()),
        (HEADER_EVENT_TYPE, event_type.encode()),
        (HEADER_SCHEMA_VERSION, str(schema_version).encode()),
        (HEADER_PRODUCER, producer.encode()),
    )


def cloudevents_source(producer: str) -> str:
    """Return the CloudEvents ``source`` of an event's producer: ``/vigil/<producer>``, a URI
    reference (the producer percent-encoded)."""
    return f"/vigil/{quote(producer, safe='')}"


def headers_for(event: Envelope) -> dict[str, str]:
    """Return the documented Kafka headers of an event, as text (see :func:`kafka_headers`)."""
    return {name: value.decode() for name, value in kafka_headers(event)}


def correlation_of(event: Envelope) -> str:
    """Return the correlation id an event travels under: its own, or else its event id."""
    return event.correlation_id or str(event.event_id)


def _event_type(topic: Topic) -> Any:
    events = TOPICS[topic].events
    if len(events) == 1:
        return events[0]
    union = Union[events]  # type: ignore[valid-type]  # noqa: UP007  # built from the topic's table at run time
    return Annotated[union, Field(discriminator="type")]


@cache
def _adapter(topic: Topic) -> TypeAdapter[Any]:
    return TypeAdapter(_event_type(topic))


@cache
def _batch_adapter(topic: Topic) -> TypeAdapter[list[Any]]:
    # Each element is parsed from its own bytes (``Json``), so one record's bytes can never
    # spill into its neighbour's, as they could if the values were joined into one JSON array.
    element: Any = Json[_event_type(topic)]  # type: ignore[misc]  # a type built at run time
    return TypeAdapter(list[element])


def decode(topic: Topic, value: bytes | None) -> Envelope:
    """Decode and validate a message of a topic; raise :class:`DecodeError` naming each problem."""
    if value is None:
        raise DecodeError("empty message (no value)", undecodable=True)
    try:
        event: Envelope = _adapter(topic).validate_json(value)
    except ValidationError as error:
        raise _decode_error(topic, error) from None
    return event


def decode_many(topic: Topic, values: Sequence[bytes | None]) -> list[Envelope | DecodeError]:
    """Decode the values of a batch of one topic, in order: each is its event, or the
    :class:`DecodeError` that :func:`decode` would raise for it.

    One validation call covers the whole batch; only a batch holding a bad value is decoded
    again value by value, to tell the bad from the good.
    """
    if None not in values:
        try:
            events: list[Envelope | DecodeError] = _batch_adapter(topic).validate_python(values)
        except ValidationError:
            pass
        else:
            return events
    return [_decode_or_error(topic, value) for value in values]


def _decode_or_error(topic: Topic, value: bytes | None) -> Envelope | DecodeError:
    try:
        return decode(topic, value)
    except DecodeError as error:
        return error


def _decode_error(topic: Topic, error: ValidationError) -> DecodeError:
    problems = error.errors(include_url=False)
    if any(problem["type"] == "json_invalid" for problem in problems):
        return DecodeError(f"not JSON: {problems[0]['msg']}", undecodable=True)
    event_types = [event.model_fields["type"].default for event in TOPICS[topic].events]
    parts = []
    for problem in problems:
        if problem["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            parts.append(
                f"type: not an event of topic {topic.value!r} "
                f"(expected one of {', '.join(event_types)})"
            )
            continue
        location = [str(part) for part in problem["loc"]]
        if location and location[0] in event_types:
            location = location[1:]  # the discriminator's tag, not a field
        got = problem.get("input")
        shown = "" if isinstance(got, dict) else f" (got {_short(got)})"
        parts.append(f"{'.'.join(location) or '(message)'}: {problem['msg']}{shown}")
    return DecodeError("; ".join(parts), undecodable=False)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
