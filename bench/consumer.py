"""CPU per record of the runtime's consumer itself, without a broker: decode, de-duplicate and
dispatch polled batches of the monitor's predictions and labels to handlers that do nothing.

The Kafka benchmarks measure wall time on a machine shared with other work; this one measures
the process's CPU time (best of five), so a change to ``services/runtime/consumer.py`` can be
compared run against run. Records come in fetch order (partition by partition), 500 a batch.

    python bench/consumer.py

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor import stream

from contracts import Envelope, LabelRecorded, PredictionMade
from contracts.wire import encode, key_for
from services.runtime import EventConsumer, KafkaSettings, ServiceMetrics

BATCH = 500
REPEATS = 5
PARTITIONS = 6


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


class Discard:
    """A publisher nothing is published to (a clean stream dead-letters nothing)."""

    async def publish(self, event: Envelope) -> None:
        raise AssertionError(f"unexpected publish: {event}")

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        for event in events:
            await self.publish(event)


def batches(events: list[Envelope]) -> list[list[Record]]:
    records = [
        Record(
            "predictions" if event.type == "prediction.made" else "labels",
            offset % PARTITIONS,
            offset,
            key_for(event),
            encode(event),
        )
        for offset, event in enumerate(events)
    ]
    return [
        sorted(records[start : start + BATCH], key=lambda r: (r.topic, r.partition))
        for start in range(0, len(records), BATCH)
    ]


async def cpu_per_record(polled: list[list[Record]]) -> float:
    async def nothing(events: list[Any]) -> None:
        return None

    best = float("inf")
    for _ in range(REPEATS):
        consumer = EventConsumer(
            service="monitor",
            group_id="bench",
            publisher=Discard(),
            metrics=ServiceMetrics("monitor"),
            kafka=KafkaSettings(bootstrap_servers="unused:9092"),
        )
        consumer.on_batch(PredictionMade, nothing)
        consumer.on_batch(LabelRecorded, nothing)
        started = time.process_time()
        for batch in polled:
            await consumer.handle(batch)
        best = min(best, time.process_time() - started)
    return best / sum(len(batch) for batch in polled)


def main() -> None:
    events, _ = stream(2_500)
    per_record = asyncio.run(cpu_per_record(batches(events)))
    print(f"runtime consumer, no-op handlers: {per_record * 1e6:.2f} µs CPU per record")
    print(
        json.dumps(
            {
                "benchmark": "consumer",
                "records": len(events),
                "batch": BATCH,
                "cpu_us_per_record": round(per_record * 1e6, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
