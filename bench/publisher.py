"""Benchmark: what publishing an event costs, against a bare aiokafka producer in the same run.

Both publish the same predictions (the monitor benchmark's stream: four models, each its own
key) to the embedded broker in rounds of ``--batch`` events and wait for every acknowledgement
after each round, as a handler's ``publish_many`` does:

(a) raw: ``AIOKafkaProducer.send`` of bytes encoded before the clock starts, with the same key
    and headers: only the client and the broker;
(b) publisher: ``EventPublisher.publish_many`` of the events (encoding, key and headers
    included), with the producer settings every service uses.

Figures are CPU time of this process per event (steadier than wall time on a shared machine)
and events per second; ``cpu_ratio`` is raw CPU / publisher CPU (1.0 would be free).

    python bench/publisher.py [--quick] [--batch 500]

``--quick`` alternates the two three times over 5,000 predictions and reports medians (without
it: once over 50,000). The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from statistics import median
from typing import Any

from aiokafka import AIOKafkaProducer
from monitor import stream  # bench/ is on the path when this file runs as a script

from contracts import Envelope, Topic
from contracts.wire import encode, kafka_headers, key_for
from services.runtime import EmbeddedBroker, EventPublisher, KafkaSettings, ensure_topics
from services.runtime.kafka import kafka_broker, producer_options

RUNS = 3


async def timed(events: int, publish: Callable[[], Awaitable[None]]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await publish()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"per_s": events / wall, "cpu_us": cpu / events * 1e6}


async def raw(kafka: KafkaSettings, events: list[Envelope], batch: int) -> dict[str, float]:
    topic = kafka.topic_name(Topic.PREDICTIONS)
    prepared = [(encode(e), key_for(e), kafka_headers(e)) for e in events]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, **producer_options(kafka.profile)
    )
    await producer.start()

    async def publish() -> None:
        for start in range(0, len(prepared), batch):
            futures = [
                await producer.send(topic, value, key=key, headers=headers)
                for value, key, headers in prepared[start : start + batch]
            ]
            await asyncio.gather(*futures)

    try:
        return await timed(len(events), publish)
    finally:
        await producer.stop()


async def vigil(kafka: KafkaSettings, events: list[Envelope], batch: int) -> dict[str, float]:
    broker = kafka_broker(kafka, client_id="bench-publisher")
    await broker.connect()
    publisher = EventPublisher(broker, kafka)
    await publisher.start()

    async def publish() -> None:
        for start in range(0, len(events), batch):
            await publisher.publish_many(events[start : start + batch])

    try:
        return await timed(len(events), publish)
    finally:
        await publisher.stop()
        await broker.stop()


async def main(quick: bool, batch: int) -> dict[str, Any]:
    events, _ = stream(1_250 if quick else 12_500)
    predictions = [e for e in events if e.type == "prediction.made"]
    broker = EmbeddedBroker()
    await broker.start()
    raws: list[dict[str, float]] = []
    ours: list[dict[str, float]] = []
    try:
        for run in range(RUNS if quick else 1):
            kafka = KafkaSettings(
                bootstrap_servers=broker.bootstrap_servers, topic_prefix=f"bench{run}."
            )
            await ensure_topics(kafka.bootstrap_servers, prefix=kafka.topic_prefix)
            raws.append(await raw(kafka, predictions, batch))
            ours.append(await vigil(kafka, predictions, batch))
            print(
                f"run {run + 1}: raw {raws[-1]['cpu_us']:.2f} µs/event "
                f"({raws[-1]['per_s']:,.0f}/s), publisher {ours[-1]['cpu_us']:.2f} µs/event "
                f"({ours[-1]['per_s']:,.0f}/s)"
            )
    finally:
        await broker.stop()
    raw_cpu, our_cpu = median(r["cpu_us"] for r in raws), median(r["cpu_us"] for r in ours)
    return {
        "benchmark": "publisher",
        "quick": quick,
        "events": len(predictions),
        "batch": batch,
        "runs": len(raws),
        "raw_cpu_us_per_event": round(raw_cpu, 2),
        "publisher_cpu_us_per_event": round(our_cpu, 2),
        "cpu_ratio": round(raw_cpu / our_cpu, 3),
        "raw_events_per_s": round(median(r["per_s"] for r in raws)),
        "publisher_events_per_s": round(median(r["per_s"] for r in ours)),
        "raw_runs": raws,
        "publisher_runs": ours,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three short runs, medians")
    parser.add_argument("--batch", type=int, default=500, help="events per publish_many")
    logging.basicConfig(level=logging.WARNING)
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments.quick, arguments.batch))))
