"""An outside team's client of Vigil's topics, written with confluent-kafka (librdkafka) and only
what Vigil publishes: the AsyncAPI document and the JSON Schemas. It imports nothing of Vigil's
(``tests/contracts/test_outside_client.py`` checks), so it proves the contract is enough.

Broker notes that hold for any Kafka client on the embedded broker: no idempotent producer
(Tansu refuses its InitProducerId), ``auto.offset.reset=earliest`` (``latest`` is unreliable
there), short group sessions so a join takes about a second.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from confluent_kafka import Consumer, KafkaError, Producer

__all__ = ["Received", "consume", "produce", "published_topics", "validate"]


@dataclass(frozen=True)
class Received:
    """One record read: its topic, key, headers and decoded JSON value."""

    topic: str
    key: bytes | None
    headers: dict[str, str]
    value: dict[str, Any]


def published_topics(asyncapi: Path) -> dict[str, set[str]]:
    """Every topic the AsyncAPI document says Vigil sends to, with the event types on it."""
    document = yaml.safe_load(asyncapi.read_text())
    topics: dict[str, set[str]] = {}
    for operation in document["operations"].values():
        if operation["action"] != "send":
            continue
        channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]]
        messages = document["components"]["messages"]
        names = {
            messages[ref["$ref"].rsplit("/", 1)[-1]]["name"] for ref in channel["messages"].values()
        }
        topics[channel["address"]] = names
    return topics


def validate(schemas: Path, value: dict[str, Any]) -> None:
    """Validate an event against its published JSON Schema (``<type>.json``); raise if invalid."""
    schema = json.loads((schemas / f"{value['type']}.json").read_text())
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(value)


def consume(
    bootstrap: str,
    topics: Iterable[str],
    *,
    done: Any,
    timeout_s: float = 60.0,
    group_id: str | None = None,
) -> list[Received]:
    """Read the topics from the beginning in a consumer group until ``done(records)`` holds."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id or f"outside-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe(list(topics))
    records: list[Received] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(records):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"condition not met after {timeout_s} s with {len(records)} records"
                )
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(error))
            key, value = message.key(), message.value()
            headers = {name: _text(raw) for name, raw in _pairs(message.headers())}
            records.append(
                Received(
                    topic=str(message.topic()),
                    key=key.encode() if isinstance(key, str) else key,
                    headers=headers,
                    value=json.loads(value or b"null"),
                )
            )
    finally:
        consumer.close()
    return records


def _pairs(headers: Any) -> list[tuple[str, Any]]:
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or [])


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")


def produce(bootstrap: str, records: Iterable[tuple[str, str, dict[str, Any]]]) -> int:
    """Send ``(topic, key, event)`` records and wait until the broker acknowledged every one;
    return how many it acknowledged."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False, "linger.ms": 5}
    )
    acknowledged: list[str] = []
    failed: list[str] = []

    def on_delivery(error: Any, message: Any) -> None:
        (failed if error is not None else acknowledged).append(str(error or message.topic()))

    for topic, key, event in records:
        producer.produce(topic, json.dumps(event).encode(), key.encode(), on_delivery=on_delivery)
    producer.flush(30)
    if failed:
        raise RuntimeError(f"refused: {failed}")
    return len(acknowledged)
