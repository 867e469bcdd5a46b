"""A producer that is not Vigil's (confluent-kafka, events written as plain JSON from the
published schemas) sends scoring requests and labels; the real scorer and retrainer, as
processes, accept them: a prediction for every request, every label handled, nothing
dead-lettered. The predictions are read back with the same outside client and validated against
the published JSON Schema."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.generate import SCHEMAS_DIR
from services.runtime import KafkaSettings
from tests.contracts.outside_client import Received, consume, produce, validate
from tests.e2e.scoring_stack import scoring_stack
from tests.model_builders import train
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

MODEL = "breast-cancer"
ADMIN = "outside-e2e-admin"
COUNT = 20
HANDLED = "vigil_messages_handled_total"


@pytest.fixture
async def scorer_and_retrainer(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> AsyncIterator[tuple[ServiceProcess, ServiceProcess]]:
    async with scoring_stack(
        kafka_settings, tmp_path, admin_token=ADMIN, model=MODEL, versions=[train()]
    ) as (retrainer, scorer, _):
        yield scorer, retrainer


def envelope(event_type: str) -> dict[str, Any]:
    """The envelope fields, as an outside producer writes them from the schema."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": datetime.now(UTC).isoformat(),
        "producer": "outside-team",
        "schema_version": 1,
    }


def handled(metrics: str, service: str, topic: str, name: str) -> float:
    pattern = (
        rf'^{name}\{{[^}}]*service="{service}"[^}}]*topic="{re.escape(topic)}"[^}}]*\}} (\S+)$'
    )
    return sum(float(m) for m in re.findall(pattern, metrics, flags=re.MULTILINE))


async def test_scoring_requests_and_labels_from_confluent_kafka_are_accepted(
    scorer_and_retrainer: tuple[ServiceProcess, ServiceProcess], kafka_settings: KafkaSettings
) -> None:
    scorer, retrainer = scorer_and_retrainer
    prefix = kafka_settings.topic_prefix
    bootstrap = kafka_settings.bootstrap_servers
    ids = [f"outside-{n}" for n in range(COUNT)]
    requests = [
        envelope("scoring.request")
        | {
            "model": MODEL,
            "request_id": request_id,
            "features": {"mean radius": 10.0 + n, "mean texture": 15.0},
        }
        for n, request_id in enumerate(ids)
    ]
    labels = [
        envelope("label.recorded")
        | {"model": MODEL, "request_id": request_id, "label": ("malignant", "benign")[n % 2]}
        for n, request_id in enumerate(ids)
    ]
    for event in requests + labels:
        validate(SCHEMAS_DIR, event)  # what the producer sends is what the schema says

    sent = await asyncio.to_thread(
        produce,
        bootstrap,
        [(prefix + "scoring.requests", MODEL, event) for event in requests]
        + [(prefix + "labels", MODEL, event) for event in labels],
    )
    assert sent == 2 * COUNT

    def all_scored(records: list[Received]) -> bool:
        return set(ids) <= {r.value["request_id"] for r in records if r.value["served"]}

    predictions = await asyncio.to_thread(
        consume, bootstrap, [prefix + "predictions"], done=all_scored, timeout_s=120
    )
    for record in predictions:
        validate(SCHEMAS_DIR, record.value)
        assert record.headers["ce_source"] == "/vigil/scorer"
        assert record.key == MODEL.encode()

    async with httpx.AsyncClient() as http:
        for _ in range(300):
            metrics = (await http.get(f"{retrainer.url}/metrics")).text
            if handled(metrics, "retrainer", prefix + "labels", HANDLED) >= COUNT:
                break
            await asyncio.sleep(0.2)
        scorer_metrics = (await http.get(f"{scorer.url}/metrics")).text
    lettered = "vigil_messages_dead_lettered_total"
    assert handled(metrics, "retrainer", prefix + "labels", HANDLED) >= COUNT
    assert handled(metrics, "retrainer", prefix + "labels", lettered) == 0
    assert handled(scorer_metrics, "scorer", prefix + "scoring.requests", lettered) == 0
