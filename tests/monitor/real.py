"""Helpers of the monitor's real-broker tests: an outside producer, and waiting on the monitor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from contracts import Envelope, LabelRecorded, Topic
from contracts.wire import decode
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.kafka_tools import read_until_quiet


@asynccontextmanager
async def producer(
    kafka: KafkaSettings,
) -> AsyncIterator[Callable[[Sequence[Envelope]], Awaitable[None]]]:
    """Publish events as an outside client (the scorer, a labeller) would, in chunks."""
    broker = kafka_broker(kafka, client_id="test-producer")
    await broker.connect()
    publisher = EventPublisher(broker, kafka)

    async def publish(events: Sequence[Envelope]) -> None:
        for start in range(0, len(events), 200):
            await publisher.publish_many(events[start : start + 200])

    try:
        yield publish
    finally:
        await broker.stop()


async def wait_for(
    probe: Callable[[], Awaitable[Any]],
    condition: Callable[[Any], bool],
    *,
    timeout_s: float = 60.0,
    what: str = "condition",
) -> Any:
    """Poll ``probe`` until ``condition`` holds for its value; fail with the last value."""
    value = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        value = await probe()
        if condition(value):
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout_s} s; last: {value}")


def handled_all(models_and_last_label: dict[str, datetime]) -> Callable[[dict[str, Any]], bool]:
    """A status condition: no join waits, and each model's clock reached its last label."""

    def done(status: dict[str, Any]) -> bool:
        return (
            status["pending_predictions"] == 0
            and status["pending_labels"] == 0
            and all(
                status["clocks"].get(model) == last.isoformat()
                for model, last in models_and_last_label.items()
            )
        )

    return done


def last_label_time(events: Sequence[Envelope], model: str) -> datetime:
    return max(e.occurred_at for e in events if isinstance(e, LabelRecorded) and e.model == model)


async def read_events(kafka: KafkaSettings, topic: Topic) -> list[Envelope]:
    """Every event on a topic, each event id once (a crash may publish an outbox row twice)."""
    seen: dict[Any, Envelope] = {}
    for record in await read_until_quiet(kafka, topic):
        event = decode(topic, record.value)
        seen.setdefault(event.event_id, event)
    return list(seen.values())
