"""Benchmark: alerts per second from Kafka into incidents, and the latency from an alert being
published to its ``incident.opened`` being on the broker — on SQLite and on PostgreSQL.

The incident log runs as its own process (as in production) on the embedded broker; the baseline,
measured in the same run, is the bare aiokafka pipe moving the same alert messages. Two phases per
database: a burst of N alerts over F fingerprints (throughput: until every alert is recorded), then
a fixed offered load in which one alert in ten is a new fingerprint (latency of the openings).

    python bench/incidents.py [--quick] [--databases sqlite,postgresql]

``--quick`` repeats each measurement three times and reports the medians (each run's figures are
kept under ``*_runs``). ``incident_log_cpu_us_per_alert`` is the incident log process's CPU time
over the throughput phase per alert: on a loaded machine it moves far less than the rates.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median, quantiles
from uuid import uuid4

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from raw_pipe import RawPipe, measure_raw_pipe
from sqlalchemy import text
from sqlalchemy.engine import make_url

from contracts import AlertKind, AlertRaised, IncidentOpened, Severity, alert_fingerprint
from services.runtime import EmbeddedBroker, create_engine, ensure_topics, free_port
from services.runtime.kafka import consumer_options
from services.runtime.settings import KafkaProfile

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "VIGIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RUNS = 3  # --quick repeats each measurement and reports the median
KINDS = [AlertKind.METRIC_DECAY, AlertKind.DATA_DRIFT, AlertKind.LOW_CONFIDENCE]


@dataclass(frozen=True)
class Figures:
    """What one database run measured."""

    database: str
    alerts: int
    fingerprints: int
    alerts_per_s: float
    offered_per_s: float
    openings: int
    p50_ms: float
    p99_ms: float
    cpu_us_per_alert: float = float("nan")


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from ``/proc`` (Linux); NaN elsewhere.
    A loaded machine stretches wall time far more than the CPU an alert costs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_alerts(
    count: int, fingerprints: int, seed: int, tag: str, *, first_version: int = 1
) -> list[AlertRaised]:
    """``count`` alerts over ``fingerprints`` signals, each on its own model version (100 models)
    so that none correlates with another: ``fingerprints`` incidents. Shuffled."""
    rng = random.Random(seed)
    signals = [
        (f"bench-{n % 100}", first_version + n // 100, KINDS[n % len(KINDS)], f"{tag}-{n}")
        for n in range(fingerprints)
    ]
    alerts = []
    for n in range(count):
        model, version, kind, subject = signals[n] if n < fingerprints else rng.choice(signals)
        alerts.append(
            AlertRaised(
                producer="bench",
                model=model,
                model_version=version,
                kind=kind,
                severity=Severity.WARNING,
                fingerprint=alert_fingerprint(model, version, kind, subject),
                summary=f"{kind.value} on {subject}",
                evidence={"value": rng.random()},
            )
        )
    rng.shuffle(alerts)
    return alerts


def encoded(alerts: list[AlertRaised]) -> list[tuple[bytes, bytes]]:
    return [(alert.model.encode(), alert.model_dump_json().encode()) for alert in alerts]


async def fresh_database(kind: str, workdir: Path, tag: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'{tag}.db'}"
    name = f"vigil_bench_{tag}"
    async with await psycopg.AsyncConnection.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = make_url(url).database
        async with await psycopg.AsyncConnection.connect(
            POSTGRES_ADMIN_URL, autocommit=True
        ) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def start_incident_log(
    bootstrap: str,
    prefix: str,
    database_url: str,
    workdir: Path,
    *,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """The incident log as its own process, ready; ``extra_env`` adds or overrides settings."""
    port = free_port()
    env = (
        os.environ
        | {
            "VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "VIGIL_KAFKA_TOPIC_PREFIX": prefix,
            "VIGIL_STATE_DIR": str(workdir / "state"),
            "VIGIL_INCIDENT_LOG_DATABASE_URL": database_url,
            "VIGIL_INCIDENT_LOG_POLICY_PATH": str(ROOT / "runbooks" / "routing.yaml"),
            "VIGIL_INCIDENT_LOG_HTTP_PORT": str(port),
            "VIGIL_INCIDENT_LOG_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "VIGIL_INCIDENT_LOG_LOG_LEVEL": "WARNING",
        }
        | (extra_env or {})
    )
    with (workdir / f"incident-log-{prefix.strip('.')}.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: ASYNC220  # returns at once; the wait is async below
            [sys.executable, "-m", "services.incident_log"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"incident log exited; see {workdir}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return process, port
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("incident log did not become ready")


async def recorded_alerts(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT count(*) FROM alerts"))).scalar_one())
    finally:
        await engine.dispose()


async def throughput(
    bootstrap: str, prefix: str, database_url: str, alerts: list[AlertRaised]
) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        sent = [
            await producer.send(f"{prefix}alerts", value, key=key) for key, value in encoded(alerts)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    while await recorded_alerts(database_url) < len(alerts):  # noqa: ASYNC110  # polling a database
        await asyncio.sleep(0.25)
    return len(alerts) / (time.perf_counter() - started)


async def latency(
    bootstrap: str, prefix: str, rate: float, seconds: float, seed: int
) -> tuple[int, list[float]]:
    """Offer ``rate`` alerts/s, one in ten a new fingerprint; return openings and their latency."""
    rng = random.Random(seed)
    consumer = AIOKafkaConsumer(
        f"{prefix}incidents",
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}bench-latency",
        **consumer_options(KafkaProfile.EMBEDDED),
    )
    await consumer.start()
    sent_at: dict[str, float] = {}
    received: dict[str, float] = {}

    async def receive() -> None:
        async for record in consumer:
            if b'"incident.opened"' in record.value:
                opened = IncidentOpened.model_validate_json(record.value)
                received.setdefault(opened.fingerprint, time.perf_counter())

    listener = asyncio.create_task(receive())
    await asyncio.sleep(2.0)  # let the listener join its group
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    known: list[AlertRaised] = []
    tick = 0.01
    per_tick = rate * tick
    owed = 0.0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            owed += per_tick
            while owed >= 1:
                owed -= 1
                if not known or rng.random() < 0.1:
                    # a version no earlier alert used: a new incident
                    (alert,) = make_alerts(1, 1, 0, "lat", first_version=10_000 + len(sent_at))
                    known.append(alert)
                    sent_at[alert.fingerprint] = time.perf_counter()
                else:
                    alert = rng.choice(known).model_copy(update={"event_id": uuid4()})
                await producer.send(
                    f"{prefix}alerts", alert.model_dump_json().encode(), key=alert.model.encode()
                )
            await asyncio.sleep(tick)
        await producer.flush()
        deadline = time.perf_counter() + 30
        while len(received) < len(sent_at) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await consumer.stop()
    delays = [(received[f] - sent_at[f]) * 1000 for f in sent_at if f in received]
    return len(sent_at), delays


async def run_database(
    kind: str,
    bootstrap: str,
    workdir: Path,
    *,
    alerts: int,
    fingerprints: int,
    rate: float,
    seconds: float,
) -> Figures:
    tag = f"{kind}{random.randrange(1 << 20):x}"
    prefix = f"bench{tag}."
    await ensure_topics(bootstrap, prefix=prefix)
    database_url = await fresh_database(kind, workdir, tag)
    process, _ = await start_incident_log(bootstrap, prefix, database_url, workdir)
    try:
        cpu_before = process_cpu_s(process.pid)
        alerts_per_s = await throughput(
            bootstrap, prefix, database_url, make_alerts(alerts, fingerprints, 1, tag)
        )
        cpu_us_per_alert = (process_cpu_s(process.pid) - cpu_before) / alerts * 1e6
        openings, delays = await latency(bootstrap, prefix, rate, seconds, 2)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)
        await drop_database(database_url)
    cuts = quantiles(delays, n=100) if len(delays) >= 2 else [float("nan")] * 99
    return Figures(
        kind,
        alerts,
        fingerprints,
        alerts_per_s,
        rate,
        openings,
        cuts[49],
        cuts[98],
        cpu_us_per_alert,
    )


def _median_figures(runs: list[Figures]) -> Figures:
    """One database's figures: the median of each over its repeated runs."""
    return Figures(
        runs[0].database,
        runs[0].alerts,
        runs[0].fingerprints,
        median(r.alerts_per_s for r in runs),
        runs[0].offered_per_s,
        round(median(r.openings for r in runs)),
        median(r.p50_ms for r in runs),
        median(r.p99_ms for r in runs),
        median(r.cpu_us_per_alert for r in runs),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    alerts, fingerprints, seconds = (20_000, 1_000, 5.0) if args.quick else (100_000, 1_000, 20.0)
    rate = 500.0
    repeats = RUNS if args.quick else 1

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        workdir = Path(tmp)
        async with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
            baselines = [
                await measure_raw_pipe(
                    broker.bootstrap_servers,
                    encoded(make_alerts(alerts, fingerprints, 1, f"raw{repeat}")),
                    topic=f"bench-raw-alerts-{repeat}",
                    partitions=3,
                )
                for repeat in range(repeats)
            ]
            repeated = {
                kind: [
                    await run_database(
                        kind,
                        broker.bootstrap_servers,
                        workdir,
                        alerts=alerts,
                        fingerprints=fingerprints,
                        rate=rate,
                        seconds=seconds,
                    )
                    for _ in range(repeats)
                ]
                for kind in args.databases.split(",")
            }
    baseline = RawPipe(
        alerts,
        median(b.produce_per_s for b in baselines),
        median(b.consume_per_s for b in baselines),
    )
    runs = [_median_figures(figures) for figures in repeated.values()]

    print(
        f"raw aiokafka pipe: {baseline.end_to_end_per_s:,.0f} msg/s end to end "
        f"(produce {baseline.produce_per_s:,.0f}/s, consume {baseline.consume_per_s:,.0f}/s)"
    )
    print(
        f"{'database':<11}{'alerts/s':>10}{'/ raw':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'openings':>10}{'CPU µs/alert':>14}"
    )
    for run in runs:
        ratio = run.alerts_per_s / baseline.end_to_end_per_s
        print(
            f"{run.database:<11}{run.alerts_per_s:>10,.0f}{ratio:>8.3f}"
            f"{run.p50_ms:>9.1f}{run.p99_ms:>9.1f}{run.openings:>10}"
            f"{run.cpu_us_per_alert:>14.1f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "incidents",
                "quick": args.quick,
                "alerts": alerts,
                "fingerprints": fingerprints,
                "raw_pipe_msgs_per_s": round(baseline.end_to_end_per_s, 1),
                "offered_alerts_per_s_for_latency": rate,
                "runs": {
                    run.database: {
                        "alerts_per_s": round(run.alerts_per_s, 1),
                        "ratio_to_raw_pipe": round(run.alerts_per_s / baseline.end_to_end_per_s, 4),
                        "openings": run.openings,
                        "open_latency_p50_ms": round(run.p50_ms, 1),
                        "open_latency_p99_ms": round(run.p99_ms, 1),
                        "alerts_per_s_runs": [
                            round(r.alerts_per_s, 1) for r in repeated[run.database]
                        ],
                        "open_latency_p99_ms_runs": [
                            round(r.p99_ms, 1) for r in repeated[run.database]
                        ],
                        "incident_log_cpu_us_per_alert": round(run.cpu_us_per_alert, 1),
                        "incident_log_cpu_us_per_alert_runs": [
                            round(r.cpu_us_per_alert, 1) for r in repeated[run.database]
                        ],
                    }
                    for run in runs
                },
                "repeats": repeats,
                "raw_pipe_msgs_per_s_runs": [round(b.end_to_end_per_s, 1) for b in baselines],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
