"""Time from a retrain request to its candidate registered, on the demo data (scikit-learn's
breast-cancer set, 30 features), cold and fully cached, against plain scikit-learn measured in
the same run.

Each repetition starts a retrainer (in this process, SQLite in a fresh state folder, on the
embedded broker) with v1 registered and deployed and 143 labelled live examples stored, then
publishes a ``retrain.request`` and waits for ``retrain.finished`` naming the candidate on
``models``: cold (nothing cached: snapshot, split, train, gate with its paired bootstrap, register,
evaluation record, promotion request, all through the outbox), then a second request with another
cause and nothing changed (every step from the cache, the same artifact hash). The baseline is
what any retrain costs at least: fitting the same scikit-learn pipeline on the same rows and
saving it with skops.

    python bench/retrainer.py [--quick]

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sklearn
import skops.io
from aiokafka import AIOKafkaConsumer, TopicPartition
from sklearn.datasets import load_breast_cancer

from contracts import (
    FeatureKind,
    FeatureSpec,
    LabelRecorded,
    MetricTarget,
    ModelRegistered,
    MonitoringSpec,
    PredictionMade,
    RetrainFinished,
    RetrainRequest,
    RetrainTrigger,
    Topic,
    Variant,
)
from contracts.wire import decode
from services.retrainer.app import create_app
from services.retrainer.retraining.recipes import build_pipeline, parse_recipe
from services.retrainer.retraining.training_data import LabelledRows, to_csv, to_matrix
from services.retrainer.settings import Settings
from services.runtime import EmbeddedBroker, EventPublisher, KafkaSettings, ensure_topics

MODEL = "breast-cancer"
CLASSES = ("malignant", "benign")
LIVE_ROWS = 200  # at most; every fourth row is live: 143


def demo() -> tuple[MonitoringSpec, LabelledRows, LabelledRows]:
    """The spec, v1's training rows (every row but each fourth), and the live rows."""
    data = load_breast_cancer()
    names = [str(name) for name in data.feature_names]
    spec = MonitoringSpec(
        features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in names],
        label="diagnosis",
        classes=list(CLASSES),
        positive_class="malignant",
        key_metric="recall",
        metrics=[
            MetricTarget(metric="recall", baseline=0.95, threshold=0.9),
            MetricTarget(metric="accuracy", baseline=0.95, threshold=0.9),
        ],
    )
    rows = [tuple(float(v) for v in row) for row in data.data]
    labels = [CLASSES[t] for t in data.target]
    seed = [i for i in range(len(rows)) if i % 4]
    live = [i for i in range(len(rows)) if not i % 4][:LIVE_ROWS]
    return (
        spec,
        LabelledRows(tuple(rows[i] for i in seed), tuple(labels[i] for i in seed), len(seed)),
        LabelledRows(tuple(rows[i] for i in live), tuple(labels[i] for i in live), 0),
    )


def baseline_seconds(spec: MonitoringSpec, seed: LabelledRows, repeats: int) -> float:
    """Median time to fit the same pipeline on the seed rows and save it with skops."""
    recipe = parse_recipe({"C": 1.0})
    matrix, labels = to_matrix(seed, spec), np.array(seed.labels)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        skops.io.dumps(build_pipeline(recipe, spec).fit(matrix, labels))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


_BENCH_TOKEN = "bench"


def _bench_identity(request: httpx.Request) -> httpx.Response:
    """The identity provider's answer for the benchmark's one caller (no incident log runs)."""
    if request.headers.get("Authorization") != f"Bearer {_BENCH_TOKEN}":
        return httpx.Response(401, json={"detail": "unknown or revoked token"})
    return httpx.Response(200, json={"name": "bench", "role": "l2"})


async def register_v1(http: httpx.AsyncClient, spec: MonitoringSpec, seed: LabelledRows) -> None:
    model = build_pipeline(parse_recipe({"C": 1.0}), spec).fit(
        to_matrix(seed, spec), np.array(seed.labels)
    )
    metadata = {
        "sklearn_version": sklearn.__version__,
        "dataset_name": MODEL,
        "dataset_version": "1",
        "metrics": {"recall": 0.95},
        "parameters": {"C": 1.0},
        "code_version": "bench",
        "spec": spec.model_dump(mode="json"),
        "reason": "benchmark champion",
    }
    response = await http.post(
        f"/models/{MODEL}/versions",
        data={"metadata": json.dumps(metadata)},
        files={
            "artifact": ("m.skops", skops.io.dumps(model)),
            "training_data": ("t.csv", to_csv(seed, spec)),
        },
    )
    response.raise_for_status()
    body = {"champion": 1, "reason": "benchmark"}
    (await http.put(f"/models/{MODEL}/deployment", json=body)).raise_for_status()


def live_events(spec: MonitoringSpec, live: LabelledRows) -> list[Any]:
    names = [feature.name for feature in spec.features]
    events: list[Any] = []
    for i, (row, label) in enumerate(zip(live.rows, live.labels, strict=True)):
        request_id = f"live-{i}"
        events.append(
            PredictionMade(
                producer="scorer",
                model=MODEL,
                model_version=1,
                variant=Variant.CHAMPION,
                deployment_revision=1,
                request_id=request_id,
                features=dict(zip(names, row, strict=True)),
                predicted_class=label,
                probabilities={"malignant": 0.5, "benign": 0.5},
                confidence=0.5,
                latency_ms=1.0,
            )
        )
        events.append(
            LabelRecorded(producer="bench", model=MODEL, request_id=request_id, label=label)
        )
    return events


def request(cause: str) -> RetrainRequest:
    return RetrainRequest(
        producer="bench",
        model=MODEL,
        trigger=RetrainTrigger.MANUAL,
        cause=cause,
        requested_by="bench",
        reason="benchmark",
    )


async def wait_finished(consumer: AIOKafkaConsumer, seen: list[Any], count: int) -> None:
    """Read ``models`` into ``seen`` until it holds ``count`` retrain.finished events."""
    deadline = time.perf_counter() + 120
    while len([e for e in seen if isinstance(e, RetrainFinished)]) < count:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no retrain.finished within 120 s; saw {[e.type for e in seen]}")
        batch = await consumer.getmany(timeout_ms=50)
        for records in batch.values():
            seen.extend(decode(Topic.MODELS, record.value) for record in records)


async def repetition(
    bootstrap: str, spec: MonitoringSpec, seed: LabelledRows, live: LabelledRows
) -> dict[str, Any]:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, prefix=kafka.topic_prefix)
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(
            kafka=kafka,
            state_dir=Path(state),
            cooldown_seconds=0.0,
            worker_poll_seconds=0.05,
            incident_log_url="http://identity",
        )
        app = create_app(settings, identity_transport=httpx.MockTransport(_bench_identity))
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://retrainer",
                headers={"Authorization": f"Bearer {_BENCH_TOKEN}"},
            ) as http,
        ):
            await register_v1(http, spec, seed)
            publisher: EventPublisher = app.state.runtime.publisher
            await publisher.publish_many(live_events(spec, live))
            for _ in range(1200):
                joined, seen = await app.state.live.count(MODEL)
                if joined >= len(live):
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"only {joined} of {len(live)} live examples joined ({seen})")
            await consumer.start()
            try:
                name = kafka.topic_name(Topic.MODELS)
                await consumer._client.force_metadata_update()
                parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
                consumer.assign(parts)
                await consumer.seek_to_beginning(*parts)
                timings = []
                events: list[Any] = []
                for n, cause in enumerate(("bench:cold", "bench:cached"), start=1):
                    started = time.perf_counter()
                    await publisher.publish(request(cause))
                    await wait_finished(consumer, events, n)
                    timings.append(time.perf_counter() - started)
            finally:
                await consumer.stop()
    finished = [e for e in events if isinstance(e, RetrainFinished)]
    registered = [e for e in events if isinstance(e, ModelRegistered)]
    return {
        "cold_s": timings[0],
        "cached_s": timings[1],
        "cached_steps": finished[1].cached_steps,
        "same_candidate": finished[0].candidate_version == finished[1].candidate_version,
        "artifact_sha256": registered[-1].record.artifact_sha256,
    }


async def main(quick: bool) -> dict[str, Any]:
    repeats = 2 if quick else 5
    spec, seed, live = demo()
    base = baseline_seconds(spec, seed, 5 if quick else 20)
    print(
        f"baseline: fit + skops on {len(seed)} rows x {len(spec.features)} features: "
        f"{base * 1000:8.1f} ms"
    )
    broker = EmbeddedBroker()
    await broker.start()
    try:
        results = []
        for n in range(repeats):
            result = await repetition(broker.bootstrap_servers, spec, seed, live)
            results.append(result)
            print(
                f"repetition {n + 1}: cold {result['cold_s'] * 1000:8.1f} ms, "
                f"cached {result['cached_s'] * 1000:8.1f} ms "
                f"(cached steps: {', '.join(result['cached_steps'])})"
            )
    finally:
        await broker.stop()
    cold = statistics.median(r["cold_s"] for r in results)
    cached = statistics.median(r["cached_s"] for r in results)
    hashes = {r["artifact_sha256"] for r in results}
    print(
        f"median cold request → candidate:   {cold * 1000:8.1f} ms ({cold / base:.1f} x baseline)"
    )
    print(
        f"median cached request → candidate: {cached * 1000:8.1f} ms "
        f"({cached / base:.1f} x baseline)"
    )
    print(
        f"cached / cold: {cached / cold:.3f}; one artifact hash across "
        f"{repeats} fresh states: {len(hashes) == 1}"
    )
    return {
        "benchmark": "retrainer",
        "quick": quick,
        "repetitions": repeats,
        "seed_rows": len(seed),
        "live_rows": len(live),
        "features": len(spec.features),
        "baseline_fit_and_save_ms": round(base * 1000, 1),
        "cold_ms": round(cold * 1000, 1),
        "cached_ms": round(cached * 1000, 1),
        "cold_to_baseline": round(cold / base, 2),
        "cached_to_baseline": round(cached / base, 2),
        "cached_to_cold": round(cached / cold, 3),
        "all_steps_cached": all(len(r["cached_steps"]) == 5 for r in results),
        "same_artifact_every_repetition": len(hashes) == 1,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    logging.basicConfig(level=logging.WARNING)
    figures = asyncio.run(main(parser.parse_args().quick))
    print(json.dumps(figures))
