"""Benchmark: the scorer pipeline against the raw Kafka pipe, in one run on the embedded broker.

(a) raw pipe: a load generator produces ScoringRequest JSON to ``scoring.requests``; a bare
    aiokafka process (consume with ``getmany``, produce the same bytes, commit) moves it to
    ``predictions``; a reader in this process timestamps arrivals.
(b) scorer: the same messages, the same topics (in another namespace), but the hop is the real
    scorer process (``python -m services.scorer``) serving a model the real retrainer process
    registered and deployed: decode, validate, route, ``predict_proba``, publish PredictionMade.
    The retrainer runs on topics of its own, so nothing but the reader consumes the predictions.

Both hops are separate processes, so (b)/(a) isolates the scorer's own cost. Each pipeline gets a
saturation phase (N requests as fast as the generator can send; throughput = N / time until the
last output), a fixed offered load (1,000 requests/s; p50 / p99 of send → output arrival) and a
sparse phase (``SPARSE_REQUESTS`` requests one at a time, each after a quiet gap of 0.25 to 0.6 s:
``sparse_p50_ms`` / ``sparse_max_ms``, what the hop adds when it is idle).

    python bench/scorer.py [--quick]

``--quick`` measures three times (raw hop then scorer, back to back each time) and reports the
medians; each run's figures are kept under ``raw_pipe_runs`` / ``scorer_runs``. Each hop's
``cpu_us_per_request`` is its process's CPU time (``/proc``, Linux) over the saturation phase per
request: on a shared machine it swings far less than the wall-clock rates.

``--baseline DIR`` also runs the scorer of another source tree (a ``git archive`` of ``main``,
say) as a third hop in every run, on topics of its own, right after the scorer:
``throughput_ratio_vs_baseline`` and ``cpu_ratio_vs_baseline`` compare the two in the same runs.

The last line printed is one JSON object of the figures. Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sklearn
import skops.io
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contracts import ScoringRequest, Topic
from services.runtime import (
    EmbeddedBroker,
    KafkaSettings,
    ServiceName,
    ensure_topics,
    free_port,
)
from services.runtime.kafka import consumer_options
from services.runtime.settings import KafkaProfile

MODEL = "bench"
RUNS = 3  # --quick repeats the measurement and reports the median
SPARSE_REQUESTS = 25  # the idle phase: one request at a time, after a quiet gap
FEATURES = ["mean radius", "mean texture", "mean perimeter", "mean area"]


def _requests(prefix: str, count: int, models: Sequence[str] = (MODEL,)) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(7)
    values = rng.normal([14, 19, 92, 650], [3.5, 4.3, 24, 350], size=(count, 4))
    out = []
    for n in range(count):
        request = ScoringRequest(
            producer="bench",
            model=models[n % len(models)],
            request_id=f"{prefix}-{n}",
            entity_id=f"e-{n}",
            features=dict(zip(FEATURES, (round(float(v), 3) for v in values[n]), strict=True)),
        )
        out.append((request.request_id, request.model_dump_json().encode()))
    return out


class Reader:
    """Reads the output topic and records when each request id arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self.arrived: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        await consumer.start()
        await consumer._client.force_metadata_update()
        parts = [TopicPartition(self._topic, p) for p in consumer.partitions_for_topic(self._topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        request_id = json.loads(record.value)["request_id"]
                        self.arrived.setdefault(request_id, now)
        finally:
            await consumer.stop()

    async def wait_for(self, ids: list[str], timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while not all(i in self.arrived for i in ids):
            if time.perf_counter() > deadline:
                missing = sum(1 for i in ids if i not in self.arrived)
                raise RuntimeError(f"{missing} of {len(ids)} outputs missing after {timeout_s} s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _phase_saturation(
    producer: AIOKafkaProducer, reader: Reader, topic: str, messages: list[tuple[str, bytes]]
) -> float:
    started = time.perf_counter()
    for _, value in messages:
        await producer.send(topic, value, key=MODEL.encode())
    await producer.flush()
    await reader.wait_for([i for i, _ in messages], timeout_s=120)
    finished = max(reader.arrived[i] for i, _ in messages)
    return len(messages) / (finished - started)


async def _phase_fixed_load(
    producer: AIOKafkaProducer,
    reader: Reader,
    topic: str,
    messages: list[tuple[str, bytes]],
    rate: int,
) -> list[float]:
    sent: dict[str, float] = {}
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    started = time.perf_counter()
    for start in range(0, len(messages), per_tick):
        due = started + (start // per_tick) * tick
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for request_id, value in messages[start : start + per_tick]:
            sent[request_id] = time.perf_counter()
            await producer.send(topic, value, key=MODEL.encode())
    await producer.flush()
    await reader.wait_for(list(sent), timeout_s=120)
    return [(reader.arrived[i] - t) * 1000.0 for i, t in sent.items()]


async def _phase_sparse(
    producer: AIOKafkaProducer, reader: Reader, topic: str, messages: list[tuple[str, bytes]]
) -> list[float]:
    """One request at a time, each sent after its predecessor arrived and a quiet gap (0.25 to
    0.6 s, drawn): the latency a hop adds when it is idle, as a lightly used scorer is."""
    rng = np.random.default_rng(11)
    latencies = []
    for request_id, value in messages:
        await asyncio.sleep(float(rng.uniform(0.25, 0.6)))
        sent = time.perf_counter()
        await producer.send_and_wait(topic, value, key=MODEL.encode())
        await reader.wait_for([request_id], timeout_s=30)
        latencies.append((reader.arrived[request_id] - sent) * 1000.0)
    return latencies


def _cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) a process has used so far, from ``/proc`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


async def _measure(
    name: str, kafka: KafkaSettings, saturation: int, load_seconds: int, rate: int, hop: int
) -> dict[str, float]:
    """Measure one hop (process ``hop``): its saturation throughput with the CPU it spent per
    request meanwhile, then its latency at a fixed offered load."""
    requests_topic = kafka.topic_name(Topic.SCORING_REQUESTS)
    reader = Reader(kafka.bootstrap_servers, kafka.topic_name(Topic.PREDICTIONS))
    await reader.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=2, max_batch_size=262144
    )
    await producer.start()
    try:
        warm = _requests(f"{name}-warm", 300)
        for _, value in warm:
            await producer.send(requests_topic, value, key=MODEL.encode())
        await producer.flush()
        await reader.wait_for([i for i, _ in warm], timeout_s=60)
        messages = _requests(f"{name}-sat", saturation)
        cpu_before = _cpu_seconds(hop)
        throughput = await _phase_saturation(producer, reader, requests_topic, messages)
        cpu_us = (_cpu_seconds(hop) - cpu_before) / saturation * 1e6
        latencies = await _phase_fixed_load(
            producer, reader, requests_topic, _requests(f"{name}-load", rate * load_seconds), rate
        )
        sparse = await _phase_sparse(
            producer, reader, requests_topic, _requests(f"{name}-sparse", SPARSE_REQUESTS)
        )
    finally:
        await producer.stop()
        await reader.stop()
    return {
        "throughput_per_s": round(throughput, 1),
        "p50_ms": round(_percentile(latencies, 50), 2),
        "p99_ms": round(_percentile(latencies, 99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "cpu_us_per_request": round(cpu_us, 1),
        "sparse_p50_ms": round(_percentile(sparse, 50), 2),
        "sparse_max_ms": round(max(sparse), 2),
    }


# The raw hop, run as its own process: `python bench/scorer.py --relay BOOTSTRAP IN OUT GROUP`.


async def _relay(bootstrap: str, source: str, target: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        max_poll_records=500,
        **consumer_options(KafkaProfile.EMBEDDED),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=262144
    )
    await consumer.start()
    await producer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            futures = [
                await producer.send(target, record.value, key=record.key)
                for records in batch.values()
                for record in records
            ]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


# The scorer pipeline's set-up: a registered, deployed model in a real retrainer.


def _model_files() -> tuple[bytes, bytes, dict[str, Any]]:
    data = load_breast_cancer()
    features = data.data[:, :4]
    labels = np.array(["malignant", "benign"])[data.target]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES, "diagnosis"])
    writer.writerows([*map(float, row), label] for row, label in zip(features, labels, strict=True))
    meta = {
        "sklearn_version": sklearn.__version__,
        "dataset_name": "breast-cancer",
        "dataset_version": "1",
        "code_version": "bench",
        "reason": "benchmark",
        "spec": {
            "features": [{"name": name, "kind": "numeric"} for name in FEATURES],
            "label": "diagnosis",
            "classes": ["malignant", "benign"],
            "positive_class": "malignant",
            "key_metric": "recall",
            "metrics": [{"metric": "recall", "baseline": 0.9, "threshold": 0.85}],
        },
    }
    return skops.io.dumps(model), out.getvalue().encode(), meta


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)


def _tail(log: Path) -> str:
    return log.read_text()[-2000:]


async def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(3000):  # five minutes: a loaded machine starts services slowly
            if process.poll() is not None:
                raise RuntimeError(f"process exited: {_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"not ready: {_tail(log)}")


Start = Callable[[list[str], dict[str, str], str], Any]
"""Starts a process (argv, environment, log file) that ``_processes`` stops at the end."""


async def start_registry(
    start: Start, root: Path, kafka: KafkaSettings, models: Sequence[str] = (MODEL,)
) -> dict[str, str]:
    """Start an incident log (only to say who the registry's caller is) and the retrainer, each
    on a free port; register and deploy the benchmark model under each name in ``models``.
    Return the environment a scorer on ``kafka`` needs (without its own port)."""
    registry_port, identity_port = free_port(), free_port()
    registry_url = f"http://127.0.0.1:{registry_port}"
    identity_url = f"http://127.0.0.1:{identity_port}"
    admin_token = f"bench-{uuid.uuid4().hex}"
    env = {
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "VIGIL_STATE_DIR": str(root / "state"),
        "VIGIL_REGISTRY_URL": registry_url,
        "VIGIL_RETRAINER_HTTP_PORT": str(registry_port),
        "VIGIL_INCIDENT_LOG_URL": identity_url,
        "VIGIL_LOG_LEVEL": "WARNING",
    }
    identity_log = root / "incident-log.log"
    identity = start(
        [sys.executable, "-m", ServiceName.INCIDENT_LOG.package],
        env
        | {
            "VIGIL_INCIDENT_LOG_HTTP_PORT": str(identity_port),
            "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": admin_token,
        },
        str(identity_log),
    )
    await _wait_ready(identity_url, identity, identity_log)
    retrainer_log = root / "retrainer.log"
    retrainer = start(
        [sys.executable, "-m", ServiceName.RETRAINER.package], env, str(retrainer_log)
    )
    await _wait_ready(registry_url, retrainer, retrainer_log)
    artifact, training, meta = _model_files()
    async with httpx.AsyncClient(
        base_url=registry_url, timeout=60, headers={"Authorization": f"Bearer {admin_token}"}
    ) as http:
        for model in models:
            registered = await http.post(
                f"/models/{model}/versions",
                data={"metadata": json.dumps(meta)},
                files={"artifact": artifact, "training_data": training},
            )
            registered.raise_for_status()
            deployed = await http.put(
                f"/models/{model}/deployment", json={"champion": 1, "reason": "benchmark"}
            )
            deployed.raise_for_status()
    return env


@asynccontextmanager
async def _processes() -> AsyncIterator[Callable[[list[str], dict[str, str], str], Any]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        process = _spawn(argv, env, Path(log))
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


async def _run(
    quick: bool, saturation: int | None = None, baseline: Path | None = None
) -> dict[str, Any]:
    saturation = saturation or (10_000 if quick else 50_000)
    load_seconds = 5 if quick else 20
    rate = 1000
    raw_runs: list[dict[str, float]] = []
    scorer_runs: list[dict[str, float]] = []
    baseline_runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as folder:
        root = Path(folder)
        broker = EmbeddedBroker(log_path=root / "tansu.log")
        await broker.start()
        try:
            async with _processes() as start:
                raw = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix="raw.")
                await ensure_topics(broker.bootstrap_servers, prefix=raw.topic_prefix)
                relay_argv = [
                    sys.executable,
                    __file__,
                    "--relay",
                    broker.bootstrap_servers,
                    raw.topic_name(Topic.SCORING_REQUESTS),
                    raw.topic_name(Topic.PREDICTIONS),
                    "bench-relay",
                ]
                relay = start(relay_argv, {}, str(root / "relay.log"))

                kafka = KafkaSettings(
                    bootstrap_servers=broker.bootstrap_servers, topic_prefix="scorer."
                )
                await ensure_topics(broker.bootstrap_servers, prefix=kafka.topic_prefix)
                # The registry on topics of its own: on the scorer's, the retrainer consumed every
                # prediction the scorer made, on the same two cores, while the scorer was timed.
                registry = KafkaSettings(
                    bootstrap_servers=broker.bootstrap_servers, topic_prefix="registry."
                )
                await ensure_topics(broker.bootstrap_servers, prefix=registry.topic_prefix)
                scorer_port = free_port()
                env = await start_registry(start, root, registry) | {
                    "VIGIL_SCORER_HTTP_PORT": str(scorer_port),
                    "VIGIL_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
                }
                scorer_log = root / "scorer.log"
                scorer = start(
                    [sys.executable, "-m", ServiceName.SCORER.package], env, str(scorer_log)
                )
                await _wait_ready(f"http://127.0.0.1:{scorer_port}", scorer, scorer_log)
                baseline_hop = None
                if baseline is not None:  # the other code's scorer, on topics of its own
                    base = KafkaSettings(
                        bootstrap_servers=broker.bootstrap_servers, topic_prefix="baseline."
                    )
                    await ensure_topics(broker.bootstrap_servers, prefix=base.topic_prefix)
                    base_port = free_port()
                    base_log = root / "baseline-scorer.log"
                    baseline_hop = start(
                        [sys.executable, "-m", ServiceName.SCORER.package],
                        env
                        | {
                            "VIGIL_SCORER_HTTP_PORT": str(base_port),
                            "VIGIL_KAFKA_TOPIC_PREFIX": base.topic_prefix,
                            "PYTHONPATH": str(baseline),
                            "PYTHONSAFEPATH": "1",  # not the working folder's code
                        },
                        str(base_log),
                    )
                    await _wait_ready(f"http://127.0.0.1:{base_port}", baseline_hop, base_log)
                # Every hop stays up; each run measures the raw hop then the scorer back to back,
                # so a run's ratio compares figures taken under the same load.
                for run in range(RUNS if quick else 1):
                    raw_runs.append(
                        await _measure(f"raw{run}", raw, saturation, load_seconds, rate, relay.pid)
                    )
                    scorer_runs.append(
                        await _measure(
                            f"scorer{run}", kafka, saturation, load_seconds, rate, scorer.pid
                        )
                    )
                    if baseline_hop is not None:
                        baseline_runs.append(
                            await _measure(
                                f"base{run}", base, saturation, load_seconds, rate, baseline_hop.pid
                            )
                        )
                    print(
                        f"run {run + 1}: raw {raw_runs[-1]['throughput_per_s']:,.0f} msg/s, "
                        f"p99 {raw_runs[-1]['p99_ms']:.1f} ms; scorer "
                        f"{scorer_runs[-1]['throughput_per_s']:,.0f} msg/s, "
                        f"p99 {scorer_runs[-1]['p99_ms']:.1f} ms",
                        flush=True,
                    )
        finally:
            await broker.stop()
    raw_figures, scorer_figures = _medians(raw_runs), _medians(scorer_runs)
    pairs = list(zip(scorer_runs, raw_runs, strict=True))
    return {
        "benchmark": "scorer",
        "quick": quick,
        "saturation_messages": saturation,
        "offered_load_per_s": rate,
        "load_seconds": load_seconds,
        "raw_pipe": raw_figures,
        "scorer": scorer_figures,
        # Medians of each run's ratio (both figures of a run were taken back to back).
        "throughput_ratio": round(
            statistics.median(s["throughput_per_s"] / r["throughput_per_s"] for s, r in pairs), 3
        ),
        "p99_ratio": round(statistics.median(s["p99_ms"] / r["p99_ms"] for s, r in pairs), 3),
        "runs": len(pairs),
        # CPU time of the hop's process per request during saturation (medians of the runs).
        "cpu_ratio": round(
            scorer_figures["cpu_us_per_request"] / raw_figures["cpu_us_per_request"], 3
        ),
        "raw_pipe_runs": raw_runs,
        "scorer_runs": scorer_runs,
    } | _against_baseline(scorer_runs, baseline_runs)


def _against_baseline(
    scorer_runs: list[dict[str, float]], baseline_runs: list[dict[str, float]]
) -> dict[str, Any]:
    """The scorer against another code's scorer measured in the same runs (``--baseline``)."""
    if not baseline_runs:
        return {}
    pairs = list(zip(scorer_runs, baseline_runs, strict=True))
    return {
        "baseline_scorer": _medians(baseline_runs),
        "baseline_scorer_runs": baseline_runs,
        "throughput_ratio_vs_baseline": round(
            statistics.median(s["throughput_per_s"] / b["throughput_per_s"] for s, b in pairs), 3
        ),
        "cpu_ratio_vs_baseline": round(
            statistics.median(s["cpu_us_per_request"] / b["cpu_us_per_request"] for s, b in pairs),
            3,
        ),
    }


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="finish in under a minute")
    parser.add_argument(
        "--saturation", type=int, help="requests in each saturation phase (default 10,000 quick)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a source tree (say, a git archive of main) whose scorer is measured in the same "
        "runs, after the scorer, on topics of its own",
    )
    parser.add_argument("--relay", nargs=4, metavar=("BOOTSTRAP", "IN", "OUT", "GROUP"))
    args = parser.parse_args()
    if args.relay:
        asyncio.run(_relay(*args.relay))
        return
    started = time.perf_counter()
    figures = asyncio.run(_run(args.quick, args.saturation, args.baseline))
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    for name in ("raw_pipe", "scorer"):
        row = figures[name]
        print(
            f"{name:9s} saturation {row['throughput_per_s']:>9.1f} msg/s   "
            f"at {figures['offered_load_per_s']}/s: p50 {row['p50_ms']:.1f} ms  "
            f"p99 {row['p99_ms']:.1f} ms"
        )
    print(
        f"ratio (scorer / raw): throughput {figures['throughput_ratio']}, "
        f"p99 {figures['p99_ratio']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
