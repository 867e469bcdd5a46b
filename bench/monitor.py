"""Events per second through the monitor's join and windowed metrics on the real (embedded)
broker, against the raw aiokafka pipe measured in the same run.

Both read the same pre-produced predictions and labels from the broker with a consumer group of
their own: the baseline only fetches the records; the monitor decodes and validates them, joins
labels with predictions, fills windows, computes scikit-learn metrics when windows close, judges
thresholds, and commits its state and handled ids to its SQLite database per batch. Each rate
counts from the first handled batch to the last event, so group joins do not count.

    python bench/monitor.py [--quick]

``--quick`` measures three times (raw, runtime, monitor back to back each time) and reports the
medians; each run's figures are kept under ``*_runs``.

All three run in this process under the garbage collector's policy of a served service
(:mod:`services.runtime.collector`), settled once the events are produced; ``--collector default``
keeps CPython's defaults instead, to measure what the policy is worth.

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry

from contracts import Envelope, LabelRecorded, PredictionMade, Topic
from contracts.wire import encode, headers_for, key_for
from services.monitor.app import create_app
from services.monitor.settings import Settings
from services.runtime import (
    EmbeddedBroker,
    KafkaSettings,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
    ensure_topics,
)
from services.runtime.collector import settle_collector
from services.runtime.kafka import consumer_options
from tests.factories import make_deployment, make_version_record
from tests.monitor.doubles import FakeRegistry
from tests.monitor.streams import Phase, interleaved, scored_stream

MODELS = ("bench-a", "bench-b", "bench-c", "bench-d")
TARGET = 0.5
FLOOR_TARGET = 0.7
RUNS = 3  # --quick repeats the measurement and reports the median


def bench_registry(models: Sequence[str] = MODELS) -> FakeRegistry:
    """The registry double the benchmark's monitor reads: version 1 of each model, deployed."""
    registry = FakeRegistry()
    for model in models:
        registry.add(make_version_record(model=model, version=1))
        registry.deploy(model, make_deployment(challenger=None, challenger_share=0.0))
    return registry


def stream(per_model: int, models: Sequence[str] = MODELS) -> tuple[list[Envelope], FakeRegistry]:
    """Each model's predictions and labels (recall falls in the second half), interleaved."""
    events: list[Envelope] = []
    for model in models:
        scored = scored_stream(
            [Phase(per_model // 2), Phase(per_model - per_model // 2, recall=0.8)],
            model=model,
            prefix=model,
        )
        events += interleaved(scored, label_lag=1000)
    return events, bench_registry(models)


async def produce(kafka: KafkaSettings, events: list[Envelope]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks="all",
        linger_ms=10,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = [
            await producer.send(
                kafka.topic_name(
                    Topic.PREDICTIONS if event.type == "prediction.made" else Topic.LABELS
                ),
                encode(event),
                key=key_for(event),
                headers=[(k, v.encode()) for k, v in headers_for(event).items()],
            )
            for event in events
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(events) / (time.perf_counter() - started)


@dataclass(frozen=True)
class Rate:
    """How fast a consumer went: events per second of wall time, and this process's CPU time
    per event (a loaded machine slows the first down far more than it changes the second)."""

    per_s: float
    cpu_s_per_event: float


async def raw_pipe(kafka: KafkaSettings, total: int, group: str = "bench-raw") -> Rate:
    consumer = AIOKafkaConsumer(
        kafka.topic_name(Topic.PREDICTIONS),
        kafka.topic_name(Topic.LABELS),
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        max_poll_records=500,
        **consumer_options(kafka.profile),
    )
    await consumer.start()
    try:
        seen, first_at, first_count, first_cpu = 0, 0.0, 0, 0.0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000)
            got = sum(len(records) for records in batch.values())
            if got and not first_at:
                first_at, first_count = time.perf_counter(), got
                first_cpu = time.process_time()
            seen += got
            if got:
                await consumer.commit()
        return Rate(
            (total - first_count) / (time.perf_counter() - first_at),
            (time.process_time() - first_cpu) / (total - first_count),
        )
    finally:
        await consumer.stop()


async def handled_rate(
    metrics: CollectorRegistry, service: str, kafka: KafkaSettings, total: int
) -> Rate:
    """Events per second handled by a service, from its first handled batch to the last event
    (read from its Prometheus counter, as an operator would)."""

    def handled() -> int:
        return int(
            sum(
                metrics.get_sample_value(
                    "vigil_messages_handled_total",
                    {"service": service, "topic": kafka.topic_name(topic)},
                )
                or 0
                for topic in (Topic.PREDICTIONS, Topic.LABELS)
            )
        )

    first_at, first_count, first_cpu = 0.0, 0, 0.0
    deadline = time.perf_counter() + 600
    while (done := handled()) < total:
        if done and not first_at:
            first_at, first_count, first_cpu = time.perf_counter(), done, time.process_time()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{service} handled {done} of {total} events in 600 s")
        await asyncio.sleep(0.005)
    return Rate(
        (total - first_count) / (time.perf_counter() - first_at),
        (time.process_time() - first_cpu) / (total - first_count),
    )


async def runtime_floor(
    kafka: KafkaSettings, total: int, max_records: int, group: str = "bench-floor"
) -> Rate:
    """The shared runtime's consumer with handlers that do nothing: decoding, validation and
    dispatch only — the most any service on the runtime can reach."""
    runtime = ServiceRuntime(
        ServiceName.MONITOR,
        ServiceSettings(kafka=kafka),
        group_id=group,
        max_records=max_records,
    )

    async def nothing(events: list[Any]) -> None:
        return None

    runtime.consumer.on_batch(PredictionMade, nothing)
    runtime.consumer.on_batch(LabelRecorded, nothing)
    async with runtime.running():
        return await handled_rate(runtime.metrics.registry, "monitor", kafka, total)


async def monitor_pipe(
    settings: Settings, registry: FakeRegistry, total: int, state_dir: Path
) -> tuple[Rate, dict[str, Any]]:
    """The monitor as deployed (its defaults), on a SQLite file of its own."""
    settings = settings.model_copy(update={"state_dir": state_dir})
    app = create_app(settings, registry_transport=registry.transport())
    async with app.router.lifespan_context(app):
        rate = await handled_rate(
            app.state.runtime.metrics.registry, "monitor", settings.kafka, total
        )
        status = await app.state.service.status()
    return rate, status


async def main(quick: bool, collector: str = "service") -> dict[str, Any]:
    per_model = 2_500 if quick else 25_000
    events, registry = stream(per_model)
    broker = EmbeddedBroker()
    await broker.start()
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix="bench.")
        await ensure_topics(kafka.bootstrap_servers, prefix=kafka.topic_prefix)
        settings = Settings(
            kafka=kafka,
            consumer_group="bench-monitor",
            probes_enabled=False,
            registry_url="http://registry",
        )
        produced_per_s = await produce(kafka, events)
        print(f"produced {len(events):,} events ({produced_per_s:,.0f}/s)")
        if collector == "service":
            settle_collector()
        raws: list[Rate] = []
        floors: list[Rate] = []
        monitors: list[Rate] = []
        for run in range(RUNS if quick else 1):
            # Each run reads the same events with consumer groups of its own; the three
            # measurements of one run are taken back to back, so their ratios compare like.
            raws.append(await raw_pipe(kafka, len(events), f"bench-raw-{run}"))
            floors.append(
                await runtime_floor(
                    kafka, len(events), settings.consumer_max_records, f"bench-floor-{run}"
                )
            )
            with tempfile.TemporaryDirectory() as state:
                rate, status = await monitor_pipe(
                    settings.model_copy(update={"consumer_group": f"bench-monitor-{run}"}),
                    registry,
                    len(events),
                    Path(state),
                )
            monitors.append(rate)
            print(
                f"run {run + 1}: raw {raws[-1].per_s:,.0f}, runtime no-op {floors[-1].per_s:,.0f}, "
                f"monitor {monitors[-1].per_s:,.0f} events/s; CPU per event "
                f"{raws[-1].cpu_s_per_event * 1e6:.1f} / {floors[-1].cpu_s_per_event * 1e6:.1f} / "
                f"{monitors[-1].cpu_s_per_event * 1e6:.1f} µs"
            )
        raw = median(r.per_s for r in raws)
        floor = median(r.per_s for r in floors)
        monitored = median(r.per_s for r in monitors)
        cpu = {
            name: median(r.cpu_s_per_event for r in rates) * 1e6
            for name, rates in (("raw", raws), ("runtime_noop", floors), ("monitor", monitors))
        }
        print(f"raw aiokafka pipe:                 {raw:>10,.0f} events/s (median)")
        print(f"runtime consumer, no-op handlers:  {floor:>10,.0f} events/s (median)")
        print(f"monitor (join + metrics + state):  {monitored:>10,.0f} events/s (median)")
        # Ratios are the medians of each run's ratio (its figures were measured back to back).
        ratio = median(m.per_s / r.per_s for m, r in zip(monitors, raws, strict=True))
        floor_ratio = median(f.per_s / r.per_s for f, r in zip(floors, raws, strict=True))
        to_floor = median(m.per_s / f.per_s for m, f in zip(monitors, floors, strict=True))
        print(f"ratio monitor / raw:               {ratio:>10.3f}  (target >= {TARGET})")
        print(
            f"ratio runtime no-op / raw:         {floor_ratio:>10.3f}  (target >= {FLOOR_TARGET})"
        )
        print(f"ratio monitor / runtime floor:     {to_floor:>10.3f}")
        print(
            "CPU per event (this process):      "
            f"raw {cpu['raw']:.1f} µs, runtime no-op {cpu['runtime_noop']:.1f} µs, "
            f"monitor {cpu['monitor']:.1f} µs"
        )
    finally:
        await broker.stop()
    return {
        "benchmark": "monitor",
        "quick": quick,
        "events": len(events),
        "models": len(MODELS),
        "raw_events_per_s": round(raw),
        "runtime_noop_events_per_s": round(floor),
        "monitor_events_per_s": round(monitored),
        "ratio": round(ratio, 3),
        "ratio_to_runtime_noop": round(to_floor, 3),
        "runtime_noop_ratio": round(floor_ratio, 3),
        "runtime_noop_target": FLOOR_TARGET,
        "runs": len(raws),
        "raw_events_per_s_runs": [round(rate.per_s) for rate in raws],
        "runtime_noop_events_per_s_runs": [round(rate.per_s) for rate in floors],
        "monitor_events_per_s_runs": [round(rate.per_s) for rate in monitors],
        # CPU time of this process per event: steadier than rates on a loaded machine.
        "raw_cpu_us_per_event": round(cpu["raw"], 2),
        "runtime_noop_cpu_us_per_event": round(cpu["runtime_noop"], 2),
        "monitor_cpu_us_per_event": round(cpu["monitor"], 2),
        "runtime_noop_cpu_ratio": round(cpu["raw"] / cpu["runtime_noop"], 3),
        "monitor_cpu_ratio": round(cpu["raw"] / cpu["monitor"], 3),
        "consumer_max_records": settings.consumer_max_records,
        "target": TARGET,
        "pending_after": status["pending_predictions"] + status["pending_labels"],
        "collector": collector,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument(
        "--collector",
        choices=("service", "default"),
        default="service",
        help="the garbage collector's policy: a served service's (default) or CPython's",
    )
    logging.basicConfig(level=logging.WARNING)
    arguments = parser.parse_args()
    figures = asyncio.run(main(arguments.quick, arguments.collector))
    print(json.dumps(figures))
