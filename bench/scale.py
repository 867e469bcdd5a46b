"""Events per second of the monitor and of the scorer with one and with two replicas, measured
in the same run against the same embedded broker, and what they imply for a larger installation.

Each measurement gets topics of its own (a fresh prefix), starts its replicas as processes in
one consumer group, waits until the group holds them all, then produces the load and counts
the group's committed offsets (as an operator's lag view would) from the first commit to the
last event: the rate of the group as a whole, group joins not counted.

- monitor: ``bench/monitor.py``'s stream (predictions and labels, recall falling halfway) for
  twelve models, two per partition of ``predictions``/``labels`` so two replicas get equal
  shares; each replica is the monitor app with ``bench/monitor.py``'s registry double, on one
  fresh PostgreSQL database the replicas share (as in ``compose.yaml``);
- scorer: ``bench/scorer.py``'s requests and model, registered under the same twelve names in a
  real retrainer; each replica is ``python -m services.scorer``.

    python bench/scale.py [--quick] [--postgres URL]
    python bench/scale.py --estimate MONITOR_PER_S SCORER_PER_S [--models N] [--rate R]

``--quick`` repeats each measurement three times (one replica then two, back to back) and
reports medians; it takes about six minutes here (twelve measurements, each starting its own
replicas), more than the other benchmarks' minute. The efficiency of two replicas is
``rate_2 / (2 * rate_1)``: 1.0 is perfect scaling; on a machine with fewer free cores than
replicas plus broker plus PostgreSQL it measures contention, not scaling; the replicas' CPU
time per event does not. ``--estimate`` turns measured per-replica rates into replicas,
partitions and PostgreSQL transactions for N models at R requests/s each (:func:`estimate`).

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from monitor import bench_registry, produce, stream
from scorer import _processes, _requests, _wait_ready, start_registry
from sqlalchemy.engine import make_url

from contracts import Topic
from contracts.topics import TOPICS
from services.monitor.app import create_app
from services.monitor.settings import Settings
from services.runtime import EmbeddedBroker, KafkaSettings, ServiceName, ensure_topics, free_port

RUNS = 3
PARTITIONS = TOPICS[Topic.PREDICTIONS].partitions
TOPICS_PARTITIONS = PARTITIONS
"""``scoring.requests``, ``predictions`` and ``labels`` share the model-keyed partition count."""
MODELS_PER_PARTITION = 2
MONITOR_GROUP = "bench-monitor"
POSTGRES_ADMIN_URL = os.environ.get(
    "VIGIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def balanced_models(per_partition: int = MODELS_PER_PARTITION) -> list[str]:
    """Model names that Kafka's default partitioner spreads evenly over the model-keyed topics,
    so each of two replicas gets the same share of the load."""
    partitioner = DefaultPartitioner()
    partitions = list(range(PARTITIONS))
    chosen: dict[int, list[str]] = {p: [] for p in partitions}
    number = 0
    while any(len(names) < per_partition for names in chosen.values()):
        name = f"scale-{number}"
        partition = partitioner(name.encode(), partitions, partitions)
        if len(chosen[partition]) < per_partition:
            chosen[partition].append(name)
        number += 1
    return [name for p in partitions for name in chosen[p]]


# The measurement: a consumer group's progress, read from its committed offsets.


async def _committed(admin: AIOKafkaAdminClient, group: str, topics: set[str]) -> int:
    partitions = [
        TopicPartition(topic, p) for topic in sorted(topics) for p in range(TOPICS_PARTITIONS)
    ]
    # Tansu cannot encode the answer for all of a group's partitions: name them (KAFKA-ON-TANSU).
    offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return sum(max(meta.offset, 0) for meta in offsets.values())


async def wait_for_members(
    kafka: KafkaSettings, group: str, members: int, timeout_s: float = 300
) -> None:
    """Wait until the group is stable with ``members`` members, each with partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            described = await admin.describe_consumer_groups([group])
            groups = described[0].groups if described else []
            if groups and groups[0][2] == "Stable" and len(groups[0][5]) == members:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"group {group} never became stable with {members} members")
    finally:
        await admin.close()


@dataclass(frozen=True)
class Measured:
    """A group's rate (wall clock, all replicas together) and its replicas' CPU time per
    record over the same span: the second says what one replica would reach on a core of its
    own, whatever else shares the machine's cores."""

    per_s: float
    cpu_us_per_record: float


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time (user + system) the processes have used so far, from ``/proc`` (Linux)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def group_rate(
    kafka: KafkaSettings,
    group: str,
    topics: Sequence[Topic],
    total: int,
    pids: Sequence[int],
    timeout_s: float = 900,
) -> Measured:
    """Records per second the group commits, and its replicas' (``pids``) CPU time per record,
    from the first look at a commit to the group's last record."""
    names = {kafka.topic_name(topic) for topic in topics}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        first_at, first, first_cpu = 0.0, 0, 0.0
        while (done := await _committed(admin, group, names)) < total:
            if done and not first_at:
                first_at, first, first_cpu = time.perf_counter(), done, cpu_seconds(pids)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{group} committed {done} of {total} in {timeout_s:.0f} s")
            await asyncio.sleep(0.05)
        if not first_at:  # everything committed before the first look: too small to time
            raise RuntimeError(f"{group}: {total} records went by between two looks")
        return Measured(
            (total - first) / (time.perf_counter() - first_at),
            (cpu_seconds(pids) - first_cpu) / (total - first) * 1e6,
        )
    finally:
        await admin.close()


# The monitor: replicas of the app as processes, on one PostgreSQL database.


async def serve_monitor(
    bootstrap: str, prefix: str, database_url: str, models: list[str], state_dir: str
) -> None:
    """One monitor replica (``--monitor-replica``) until SIGTERM."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix),
        consumer_group=MONITOR_GROUP,
        probes_enabled=False,
        registry_url="http://registry",
        database_url=database_url,
        state_dir=Path(state_dir),
    )
    app = create_app(settings, registry_transport=bench_registry(models).transport())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app.router.lifespan_context(app):
        await stop.wait()


@asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """A new PostgreSQL database, dropped afterwards."""
    name = f"vigil_bench_scale_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def measure_monitor(
    bootstrap: str, root: Path, replicas: int, run: int, per_model: int, postgres: str
) -> Measured:
    models = balanced_models()
    events, _ = stream(per_model, models)
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"m{replicas}-{run}.")
    await ensure_topics(bootstrap, prefix=kafka.topic_prefix)
    async with fresh_database(postgres) as database, _processes() as start:
        pids = []
        for index in range(replicas):
            argv = [sys.executable, __file__, "--monitor-replica", bootstrap, kafka.topic_prefix]
            argv += [database, json.dumps(models), str(root / f"monitor-{replicas}-{run}-{index}")]
            pids.append(start(argv, {}, str(root / f"monitor-{replicas}-{run}-{index}.log")).pid)
        group = kafka.group_name(MONITOR_GROUP)
        await wait_for_members(kafka, group, replicas)
        await produce(kafka, events)  # the replicas start on it; the timing starts after
        return await group_rate(kafka, group, (Topic.PREDICTIONS, Topic.LABELS), len(events), pids)


# The scorer: replicas of `python -m services.scorer`, one registry.


async def measure_scorer(
    bootstrap: str, root: Path, env: dict[str, str], replicas: int, run: int, count: int
) -> Measured:
    models = balanced_models()
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"s{replicas}-{run}.")
    await ensure_topics(bootstrap, prefix=kafka.topic_prefix)
    async with _processes() as start:
        pids = []
        for index in range(replicas):
            port, name = free_port(), f"scorer-{replicas}-{run}-{index}"
            log = root / f"{name}.log"
            process = start(
                [sys.executable, "-m", ServiceName.SCORER.package],
                env
                | {
                    "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
                    "VIGIL_SCORER_HTTP_PORT": str(port),
                    "VIGIL_STATE_DIR": str(root / name),
                },
                str(log),
            )
            await _wait_ready(f"http://127.0.0.1:{port}", process, log)
            pids.append(process.pid)
        group = kafka.group_name(ServiceName.SCORER.group_id)
        await wait_for_members(kafka, group, replicas)
        await _produce_requests(kafka, _requests(f"r{replicas}-{run}", count, models), models)
        return await group_rate(kafka, group, (Topic.SCORING_REQUESTS,), count, pids)


async def _produce_requests(
    kafka: KafkaSettings, requests: list[tuple[str, bytes]], models: list[str]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=5, max_batch_size=262144
    )
    await producer.start()
    try:
        topic = kafka.topic_name(Topic.SCORING_REQUESTS)
        for index, (_, value) in enumerate(requests):
            await producer.send(topic, value, key=models[index % len(models)].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def measure(quick: bool, postgres: str) -> dict[str, Any]:
    per_model = 1_000 if quick else 5_000
    requests = 30_000 if quick else 100_000
    rates: dict[str, list[Measured]] = {
        f"{s}_{n}": [] for s in ("monitor", "scorer") for n in (1, 2)
    }
    with tempfile.TemporaryDirectory(prefix="vigil-bench-scale-") as folder:
        root = Path(folder)
        broker = EmbeddedBroker(log_path=root / "tansu.log")
        await broker.start()
        try:
            bootstrap = broker.bootstrap_servers
            registry = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="registry.")
            await ensure_topics(bootstrap, prefix=registry.topic_prefix)
            async with _processes() as start:
                env = await start_registry(start, root, registry, balanced_models())
                for run in range(RUNS if quick else 1):
                    for replicas in (1, 2):
                        rates[f"monitor_{replicas}"].append(
                            await measure_monitor(
                                bootstrap, root, replicas, run, per_model, postgres
                            )
                        )
                    for replicas in (1, 2):
                        rates[f"scorer_{replicas}"].append(
                            await measure_scorer(bootstrap, root, env, replicas, run, requests)
                        )
                    print(
                        f"run {run + 1}: "
                        + ", ".join(
                            f"{key} {values[-1].per_s:,.0f}/s "
                            f"({values[-1].cpu_us_per_record:,.0f} CPU µs each)"
                            for key, values in rates.items()
                        ),
                        flush=True,
                    )
        finally:
            await broker.stop()
    medians = {
        key: round(statistics.median(m.per_s for m in values)) for key, values in rates.items()
    }
    cpu = {
        f"{key}_cpu_us_per_event": round(statistics.median(m.cpu_us_per_record for m in values), 1)
        for key, values in rates.items()
    }
    # One replica on a core of its own: a CPU-second divided by the CPU time per event.
    per_core = {
        f"{service}_per_core": round(1e6 / cpu[f"{service}_1_cpu_us_per_event"])
        for service in ("monitor", "scorer")
    }
    return {
        "benchmark": "scale",
        "quick": quick,
        **medians,
        "monitor_efficiency": round(medians["monitor_2"] / (2 * medians["monitor_1"]), 3),
        "scorer_efficiency": round(medians["scorer_2"] / (2 * medians["scorer_1"]), 3),
        **cpu,
        **per_core,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "runs": len(rates["monitor_1"]),
        "models": len(balanced_models()),
        "monitor_events": len(balanced_models()) * per_model * 2,
        "scorer_requests": requests,
        "database": "postgresql",
        **{f"{key}_runs": [round(m.per_s) for m in values] for key, values in rates.items()},
    }


# What the measured rates imply for a larger installation.


@dataclass(frozen=True)
class Capacity:
    """Replicas, partitions and PostgreSQL load for a given traffic (see :func:`estimate`)."""

    predictions_per_s: float
    monitor_events_per_s: float
    scorer_replicas: int
    monitor_replicas: int
    partitions: int
    monitor_transactions_per_s: float
    metrics_windows_per_s: float
    hottest_model_fits: bool


def estimate(
    *,
    models: int,
    requests_per_s: float,
    monitor_per_replica: float,
    scorer_per_replica: float,
    utilisation: float = 0.7,
    labelled: bool = True,
    batch_records: int = 2_000,
    window_events: int = 500,
) -> Capacity:
    """Replicas and partitions for ``models`` each scored ``requests_per_s`` times a second.

    The monitor reads each prediction and, if ``labelled``, its label; the scorer each request.
    Replicas run at ``utilisation`` of their measured rate (headroom for rebalances and bursts).
    ``scoring.requests``, ``predictions`` and ``labels`` need a partition per replica of their
    busiest consumer. The monitor commits one transaction per consumed batch, so at full batches
    of ``batch_records`` its PostgreSQL transactions/s are events/s ÷ ``batch_records`` (more when
    batches are smaller); each count window of ``window_events`` predictions adds one outbox row.
    A model's whole stream goes to one replica, so the hottest model must fit in one.

    >>> c = estimate(models=10, requests_per_s=10, monitor_per_replica=100,
    ...              scorer_per_replica=100, utilisation=1.0)
    >>> (c.scorer_replicas, c.monitor_replicas, c.partitions)
    (1, 2, 2)
    """
    given = (models, requests_per_s, monitor_per_replica, scorer_per_replica)
    if not all(math.isfinite(value) and value > 0 for value in given):
        raise ValueError("models, rates and per-replica rates must be positive and finite")
    if not 0 < utilisation <= 1:
        raise ValueError("utilisation must be in (0, 1]")
    predictions = models * requests_per_s
    monitor_events = predictions * (2 if labelled else 1)
    scorer_replicas = math.ceil(predictions / (scorer_per_replica * utilisation))
    monitor_replicas = math.ceil(monitor_events / (monitor_per_replica * utilisation))
    per_model_events = requests_per_s * (2 if labelled else 1)
    return Capacity(
        predictions_per_s=predictions,
        monitor_events_per_s=monitor_events,
        scorer_replicas=scorer_replicas,
        monitor_replicas=monitor_replicas,
        partitions=max(scorer_replicas, monitor_replicas),
        monitor_transactions_per_s=monitor_events / batch_records,
        metrics_windows_per_s=predictions / window_events,
        hottest_model_fits=per_model_events <= monitor_per_replica * utilisation
        and requests_per_s <= scorer_per_replica * utilisation,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three runs each, medians")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="administrative URL")
    parser.add_argument(
        "--estimate", nargs=2, type=float, metavar=("MONITOR_PER_S", "SCORER_PER_S")
    )
    parser.add_argument("--models", type=int, default=1_000, help="for --estimate")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s per model")
    parser.add_argument("--monitor-replica", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.monitor_replica:
        bootstrap, prefix, database, models, state = args.monitor_replica
        asyncio.run(serve_monitor(bootstrap, prefix, database, json.loads(models), state))
        return 0
    if args.estimate:
        capacity = estimate(
            models=args.models,
            requests_per_s=args.rate,
            monitor_per_replica=args.estimate[0],
            scorer_per_replica=args.estimate[1],
        )
        print(json.dumps({"benchmark": "scale-estimate"} | asdict(capacity)))
        return 0
    started = time.perf_counter()
    figures = asyncio.run(measure(args.quick, args.postgres))
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
