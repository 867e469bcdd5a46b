"""What every runbook script shares: exit codes, Vigil's APIs from the run's environment, and
reading Vigil's topics as an outside consumer.

Scripts run with a sanitised environment (docs/runbooks.md): the service addresses, the runbook
token and the topics' location are all they get, and all they need.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import EVENT_TYPES, Envelope, Topic
from contracts.runbooks import NOTHING_TO_DO_EXIT
from services.runtime.api_client import ApiClient, ApiError

__all__ = [
    "API_ERROR",
    "DONE",
    "NOTHING_TO_DO",
    "NOT_APPLICABLE",
    "UNHEALTHY",
    "USAGE",
    "ApiError",
    "api",
    "fail",
    "read_events",
    "utc_now",
]

DONE = 0
"""The runbook did its job (a verification: the fix is confirmed)."""
UNHEALTHY = 1
"""A verification found the model still unhealthy."""
USAGE = 2
"""Bad arguments or a missing environment variable."""
NOT_APPLICABLE = 3
"""The runbook does not apply to the situation (nothing to roll back, no evidence in time)."""
API_ERROR = 4
"""A Vigil API refused or could not be reached."""
NOTHING_TO_DO = NOTHING_TO_DO_EXIT
"""The situation the run was asked for no longer holds (the version it was about no longer
serves): nothing was done. The runner reports the run ``skipped`` and does not verify it."""

_URLS = {
    "incident-log": "VIGIL_INCIDENT_LOG_URL",
    "registry": "VIGIL_REGISTRY_URL",
    "scorer": "VIGIL_SCORER_URL",
    "monitor": "VIGIL_MONITOR_URL",
    "drift-detector": "VIGIL_DRIFT_DETECTOR_URL",
}


def utc_now() -> datetime:
    """Now, timezone-aware."""
    return datetime.now(UTC)


def fail(code: int, message: str) -> NoReturn:
    """Print why on stderr and exit with a documented code."""
    print(message, file=sys.stderr)
    sys.exit(code)


def _variable(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        fail(USAGE, f"{name} is not set: run this script through the runbook runner")
    return value


@contextmanager
def api(service: str) -> Iterator[ApiClient]:
    """A client of one Vigil service's API with the runbook token; API errors exit with 4."""
    client = ApiClient(
        _variable(_URLS[service]), token=os.environ.get("VIGIL_RUNBOOK_TOKEN"), timeout_s=30
    )
    try:
        yield client
    except ApiError as error:
        fail(API_ERROR, f"{service}: {error}")
    finally:
        client.close()


def read_events(
    topic: Topic,
    keep: Callable[[Envelope], bool],
    *,
    until: Callable[[list[Envelope]], bool],
    timeout_s: float,
) -> list[Envelope]:
    """Read a topic from the beginning (no consumer group) and collect the events ``keep``
    accepts, until ``until`` is satisfied or the time is up."""
    return asyncio.run(_read_events(topic, keep, until, timeout_s))


async def _read_events(
    topic: Topic,
    keep: Callable[[Envelope], bool],
    until: Callable[[list[Envelope]], bool],
    timeout_s: float,
) -> list[Envelope]:
    name = os.environ.get("VIGIL_KAFKA_TOPIC_PREFIX", "") + topic.value
    consumer = AIOKafkaConsumer(
        bootstrap_servers=_variable("VIGIL_KAFKA_BOOTSTRAP_SERVERS"),
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    kept: list[Envelope] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and not until(kept):
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event = _decoded(record.value)
                    if event is not None and keep(event):
                        kept.append(event)
        return kept
    finally:
        await consumer.stop()


def _decoded(value: bytes | None) -> Envelope | None:
    import json

    if value is None:
        return None
    try:
        kind: Any = json.loads(value).get("type")
        return EVENT_TYPES[kind].model_validate_json(value)
    except (ValueError, KeyError, AttributeError):
        return None  # someone else's garbage: dead letters are not this script's concern
