"""Acceptance of issue 8 with every service involved as a process on the real broker: the incident
log (identity), the retrainer, the scorer and the monitor. Live traffic and its labels feed the
retrainer's data; a retrain request (as the incident log's level two sends it) becomes a
candidate; a level-two person approves it from the command line; the scorer serves it on 10 % of
traffic; the monitor's live comparison lets the retrainer promote it, and the scorer then serves
it as champion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from typer.testing import CliRunner

from contracts import (
    LabelRecorded,
    ModelApproved,
    ModelPromoted,
    PredictionMade,
    PromotionRequested,
    RetrainFinished,
    RetrainRequest,
    RetrainTrigger,
    ScoringRequest,
    Topic,
    VariantsCompared,
)
from contracts.wire import decode
from services.cli import _add_service_commands, app
from services.runtime import EventPublisher, KafkaSettings, ServiceName
from tests.kafka_tools import distinct_events, read_until
from tests.processes import ServiceProcess
from tests.retrainer.retrainer_harness import governed_processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

MODEL = "breast-cancer"
ADMIN = "e2e-admin-token"
CLASSES = ("malignant", "benign")
_add_service_commands()


@pytest.fixture
async def stack(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with governed_processes(
        kafka_settings,
        tmp_path,
        admin_token=ADMIN,
        people={"ana": "l2", "bo": "l2"},
        gate_resamples=500,
    ) as running:
        scorer = ServiceProcess(ServiceName.SCORER, env=running.env, log_dir=tmp_path)
        monitor = ServiceProcess(
            ServiceName.MONITOR,
            env=running.env
            | {
                "VIGIL_MONITOR_PROBES_ENABLED": "false",
                "VIGIL_MONITOR_COMPARISON_MIN_SAMPLES": "40",
                "VIGIL_MONITOR_WINDOW_MAX_EVENTS": "200",
            },
            log_dir=tmp_path,
        )
        try:
            scorer.start()
            monitor.start()
            await scorer.wait_ready()
            await monitor.wait_ready()
            yield {"retrainer": running.retrainer, "scorer": scorer, "tokens": running.tokens}
        finally:
            for process in (monitor, scorer):
                await process.stop()


def traffic(phase: str, count: int) -> tuple[list[ScoringRequest], list[LabelRecorded]]:
    """Requests for new patients and the labels that come back for them: drawn from a normal
    distribution per class fitted to the breast-cancer set, so live data is new to every model."""
    data = load_breast_cancer()
    features, target = data.data[:, :2], data.target
    rng = np.random.default_rng(len(phase))
    requests, labels = [], []
    for n in range(count):
        label = int(rng.random() < target.mean())
        rows = features[target == label]
        radius, texture = rng.multivariate_normal(rows.mean(axis=0), np.cov(rows.T))
        request_id = f"{phase}-{n}"
        requests.append(
            ScoringRequest(
                producer="clinic",
                model=MODEL,
                request_id=request_id,
                entity_id=f"patient-{phase}-{n}",
                features={"mean radius": float(radius), "mean texture": float(texture)},
            )
        )
        labels.append(
            LabelRecorded(
                producer="clinic", model=MODEL, request_id=request_id, label=CLASSES[label]
            )
        )
    return requests, labels


async def send(publisher: EventPublisher, kafka: KafkaSettings, phase: str, count: int) -> None:
    """Score requests, wait for their predictions, then send their labels."""
    requests, labels = traffic(phase, count)
    for start in range(0, count, 200):
        await publisher.publish_many(requests[start : start + 200])
    wanted = {r.request_id for r in requests}
    await read_until(
        kafka,
        Topic.PREDICTIONS,
        lambda records: (
            wanted <= {PredictionMade.model_validate_json(r.value).request_id for r in records}
        ),
        timeout_s=120,
    )
    for start in range(0, count, 200):
        await publisher.publish_many(labels[start : start + 200])


def models_events(records: list[Any]) -> list[Any]:
    """The distinct events of the records (services publish at least once: copies of an event
    id are left out, as consumers leave them out)."""
    return [decode(Topic.MODELS, record.value) for record in distinct_events(records)]


async def test_a_retrain_request_ends_with_the_candidate_promoted_by_live_evidence_after_approval(
    stack: dict[str, Any], kafka_settings: KafkaSettings, publisher: EventPublisher
) -> None:
    await send(publisher, kafka_settings, "before", 1000)
    async with httpx.AsyncClient(base_url=stack["retrainer"].url) as http:
        for _ in range(1200):  # until the retrainer has joined every label with its prediction
            held = (await http.get(f"/live-data/{MODEL}")).json()
            if held["labelled"] >= 1000:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the retrainer joined only {held}")
    await publisher.publish(
        RetrainRequest(
            producer="incident-log",
            model=MODEL,
            trigger=RetrainTrigger.INCIDENT,
            cause="incident:inc-e2e",
            incident_id="inc-e2e",
            correlation_id="inc-e2e",
            requested_by="ana",
            reason="recall decayed",
        )
    )
    records = await read_until(
        kafka_settings,
        Topic.MODELS,
        lambda rs: any(isinstance(e, RetrainFinished) for e in models_events(rs)),
        timeout_s=120,
    )
    events = models_events(records)
    [finished] = [e for e in events if isinstance(e, RetrainFinished)]
    assert finished.candidate_version == 2, finished
    assert finished.dataset_changes is not None
    assert finished.dataset_changes.live_rows > 0
    verdicts = [e for e in events if e.type == "candidate.evaluated"]
    assert all(v.passed for v in verdicts), [(v.failures, v.figures) for v in verdicts]
    [proposed] = [e for e in events if isinstance(e, PromotionRequested)]

    env = {"VIGIL_REGISTRY_URL": stack["retrainer"].url, "VIGIL_TOKEN": stack["tokens"]["bo"]}
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["approve", proposed.request_id, "--comment", "gate passed"],
        env=env,
    )
    assert result.exit_code == 0, result.output

    await send(publisher, kafka_settings, "canary", 2500)
    records = await read_until(
        kafka_settings,
        Topic.MODELS,
        lambda rs: any(isinstance(e, ModelPromoted) for e in models_events(rs)),
        timeout_s=180,
    )
    events = models_events(records)
    [approval] = [e for e in events if isinstance(e, ModelApproved)]
    assert (approval.approver, approval.incident_id) == ("bo", "inc-e2e")
    [promoted] = [e for e in events if isinstance(e, ModelPromoted)]
    assert (promoted.version, promoted.previous_version, promoted.incident_id) == (2, 1, "inc-e2e")
    comparisons = [
        decode(Topic.METRICS, r.value)
        for r in await read_until(kafka_settings, Topic.METRICS, lambda rs: len(rs) > 0)
    ]
    verdicts = [c for c in comparisons if isinstance(c, VariantsCompared)]
    assert any(c.challenger_version == 2 for c in verdicts)

    async with httpx.AsyncClient() as client:
        for _ in range(300):
            answer = await client.post(
                f"{stack['scorer'].url}/predict",
                json={
                    "model": MODEL,
                    "instances": [
                        {
                            "request_id": "after",
                            "features": {"mean radius": 14.0, "mean texture": 19.0},
                        }
                    ],
                },
            )
            served = answer.json()["predictions"][0]
            if (served["model_version"], served["variant"]) == (2, "champion"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the scorer never served v2 as champion: {served}")
