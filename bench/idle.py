"""What idle consumers cost on the embedded broker, and how late an idle one hears of an event.

The embedded broker (Tansu) answers a waiting fetch by looking again at intervals instead of
waking it when records arrive, so services fetch with a short wait (20 ms) and every such fetch
costs the broker and the client CPU whether or not anything came. A consumer that found nothing
for a whole poll now fetches with a longer wait until records come
(``services/runtime/consumer.py``, ``_FetchPace``; ``idle_fetch_max_wait_ms`` in
``services/runtime/kafka.py``).

Each round runs the same set of idle consumers (the runtime's own ``EventConsumer``, one group
per consumer, each over several topics, as a service is) twice, once fetching at the short wait
throughout (``constant``, the code before) and once with the idle wait (``paced``), and measures:

- the CPU the broker and this process (the consumers) spent over a quiet spell, as a share of
  one core;
- the delay from producing an event to a consumer's handler after a quiet spell of 1.5-2.0 s
  (longer than a poll, so a paced consumer is idle), and after 0.2-0.5 s (shorter, so it is not);
  ``*_max_ms`` is the median over rounds of each round's largest.

All the consumers share this process's event loop (a stack runs them as processes of their own),
so in ``constant`` rounds the other consumers' fetches also slow the loop that handles a probe:
the latency ratios may understate what the idle wait adds.

Usage: ``PYTHONPATH=. python bench/idle.py [--quick]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from statistics import median
from typing import Any
from unittest import mock

from aiokafka import AIOKafkaProducer

from contracts import TOPICS, AlertRaised, Envelope, Topic
from contracts.wire import encode, key_for
from services.runtime import (
    KafkaSettings,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
    ensure_topics,
)
from services.runtime import consumer as consumer_module
from services.runtime.embedded_broker import EmbeddedBroker
from tests.factories import make_alert

CONSUMERS = 6  # the embedded stack's services, one consumer group each
TOPICS_EACH = 4
SETTINGS = ("constant", "paced")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pace(setting: str) -> contextlib.AbstractContextManager[object]:
    """Subscribe with the idle wait (``paced``, the code as it is) or without one (``constant``,
    the code before: the profile's wait throughout)."""
    if setting == "paced":
        return contextlib.nullcontext()
    return mock.patch.object(consumer_module, "idle_fetch_max_wait_ms", return_value=None)


@asynccontextmanager
async def _consumers(
    kafka: KafkaSettings, setting: str, on_probe: Callable[[Envelope], None]
) -> AsyncIterator[None]:
    """Run CONSUMERS runtimes, each a group of its own over TOPICS_EACH topics; the first one's
    alerts handler reports probes."""
    topics = [topic for topic in Topic if topic is not Topic.ALERTS]
    runtimes: list[ServiceRuntime] = []
    for index in range(CONSUMERS):
        runtime = ServiceRuntime(
            ServiceName.SCORER,
            ServiceSettings(kafka=kafka),
            group_id=f"bench-idle-{setting}-{index}-{time.time_ns()}",
        )
        chosen: list[Topic] = [
            topics[(index * TOPICS_EACH + k) % len(topics)] for k in range(TOPICS_EACH)
        ]
        if index == 0:
            chosen = [Topic.ALERTS, *chosen[1:]]
        for topic in chosen:
            event_type = TOPICS[topic].events[0]

            async def handle(event: Envelope) -> None:
                on_probe(event)

            runtime.consumer.on(event_type, handle)
        runtimes.append(runtime)
    async with contextlib.AsyncExitStack() as stack:
        with _pace(setting):  # the groups join at once, not one after another
            await asyncio.gather(*(stack.enter_async_context(r.running()) for r in runtimes))
        deadline = time.perf_counter() + 60
        while not all(runtime.assignment() for runtime in runtimes):  # every group has joined
            if time.perf_counter() > deadline:
                raise RuntimeError("the consumer groups did not all join within 60 s")
            await asyncio.sleep(0.05)
        yield


async def _round(
    broker: EmbeddedBroker, kafka: KafkaSettings, setting: str, quiet_s: float, probes: int
) -> dict[str, float]:
    arrived: dict[str, float] = {}

    def on_probe(event: Envelope) -> None:
        if isinstance(event, AlertRaised):
            arrived.setdefault(event.summary, time.perf_counter())

    # New groups read the alerts topic from its start, so each round's probes have names of their
    # own: an earlier round's probe must not count as this one's.
    tag = f"{setting}-{time.time_ns()}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        async with _consumers(kafka, setting, on_probe):
            # A probe handled, then more than a whole empty poll (1 s): a paced consumer is idle.
            await _probe(producer, kafka, arrived, f"{tag}-warm-up", gap_s=0.0)
            await asyncio.sleep(1.5)
            pid = broker.pid
            assert pid is not None, "the broker is not running"
            cpu_broker, cpu_self, started = _cpu_seconds(pid), time.process_time(), time.time()
            await asyncio.sleep(quiet_s)
            elapsed = time.time() - started
            broker_share = (_cpu_seconds(pid) - cpu_broker) / elapsed
            self_share = (time.process_time() - cpu_self) / elapsed
            rng = random.Random(7)
            after_idle = [
                await _probe(producer, kafka, arrived, f"{tag}-idle-{i}", rng.uniform(1.5, 2.0))
                for i in range(probes)
            ]
            after_busy = [
                await _probe(producer, kafka, arrived, f"{tag}-busy-{i}", rng.uniform(0.2, 0.5))
                for i in range(probes)
            ]
    finally:
        await producer.stop()
    return {
        "broker_cpu_share": round(broker_share, 4),
        "consumers_cpu_share": round(self_share, 4),
        "idle_cpu_share": round(broker_share + self_share, 4),
        "after_idle_p50_ms": round(median(after_idle), 2),
        "after_idle_max_ms": round(max(after_idle), 2),
        "after_busy_p50_ms": round(median(after_busy), 2),
        "after_busy_max_ms": round(max(after_busy), 2),
    }


async def _probe(
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    arrived: dict[str, float],
    name: str,
    gap_s: float,
) -> float:
    """After ``gap_s`` of quiet, produce an alert and return the ms until it was handled."""
    await asyncio.sleep(gap_s)
    alert = make_alert(summary=name)
    sent = time.perf_counter()
    await producer.send_and_wait(kafka.topic_name(Topic.ALERTS), encode(alert), key=key_for(alert))
    deadline = sent + 60
    while name not in arrived:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"probe {name} was not handled within 60 s")
        await asyncio.sleep(0.001)
    return (arrived[name] - sent) * 1000.0


async def _run(quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 5
    quiet_s = 5.0 if quick else 20.0
    probes = 5 if quick else 15
    runs: dict[str, list[dict[str, float]]] = {setting: [] for setting in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
        broker = EmbeddedBroker(log_path=Path(folder) / "tansu.log")
        await broker.start()
        try:
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix="idle.")
            await ensure_topics(broker.bootstrap_servers, prefix=kafka.topic_prefix)
            for number in range(rounds):  # the two settings alternate, under the same load,
                for setting in SETTINGS[:: 1 if number % 2 == 0 else -1]:  # first in turn
                    figures = await _round(broker, kafka, setting, quiet_s, probes)
                    runs[setting].append(figures)
                    print(f"round {number + 1} {setting:8s} {json.dumps(figures)}", flush=True)
        finally:
            await broker.stop()
    medians = {
        setting: {
            key: round(median(run[key] for run in runs[setting]), 4) for key in runs[setting][0]
        }
        for setting in SETTINGS
    }
    constant, paced = medians["constant"], medians["paced"]
    return {
        "benchmark": "idle",
        "quick": quick,
        "consumers": CONSUMERS,
        "topics_each": TOPICS_EACH,
        "rounds": rounds,
        "quiet_s": quiet_s,
        "probes": probes,
        "constant": constant,
        "paced": paced,
        "idle_cpu_ratio": round(paced["idle_cpu_share"] / constant["idle_cpu_share"], 3),
        "after_idle_p50_ratio": round(
            paced["after_idle_p50_ms"] / constant["after_idle_p50_ms"], 3
        ),
        "after_busy_p50_ratio": round(
            paced["after_busy_p50_ms"] / constant["after_busy_p50_ms"], 3
        ),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three rounds of 5 s quiet")
    args = parser.parse_args()
    figures = asyncio.run(_run(args.quick))
    for setting in SETTINGS:
        row = figures[setting]
        print(
            f"{setting:8s} idle CPU {100 * row['idle_cpu_share']:5.1f} % of a core "
            f"(broker {100 * row['broker_cpu_share']:.1f} %); after a quiet spell "
            f"p50 {row['after_idle_p50_ms']:.1f} ms, max {row['after_idle_max_ms']:.1f} ms; "
            f"between events p50 {row['after_busy_p50_ms']:.1f} ms"
        )
    print(
        f"paced / constant: idle CPU {figures['idle_cpu_ratio']}, after a quiet spell "
        f"{figures['after_idle_p50_ratio']}, between events {figures['after_busy_p50_ratio']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
