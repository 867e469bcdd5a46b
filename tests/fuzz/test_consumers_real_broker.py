"""The same garbage on the real broker, once per service of a running `vigil up` stack: a handful
of bad records, then a good one, on one partition of a topic the service reads. Every bad record
comes back on ``dead-letter`` from that service's consumer group with its bytes, and the good one
behind them is handled (the service's ``vigil_messages_handled_total`` for the topic goes up; the
scorer also publishes its prediction)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from uuid import uuid4

import httpx
import pytest

from contracts import Envelope, MessageDeadLettered, PredictionMade, Topic
from contracts.wire import DecodeError, decode, encode
from services.runtime import KafkaProfile, KafkaSettings, ServiceName
from services.stack.stack import RunningStack
from tests.factories import make_scoring_request
from tests.fuzz.consumers import MODEL, good_event
from tests.fuzz.garbage import samples_of
from tests.fuzz.stack_thread import StackThread
from tests.kafka_tools import read_until, write_raw
from tests.model_builders import train
from tests.registry_tools import bearer, deploy, register

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

TOPIC_OF = {
    ServiceName.SCORER: Topic.SCORING_REQUESTS,
    ServiceName.MONITOR: Topic.LABELS,
    ServiceName.DRIFT_DETECTOR: Topic.PREDICTIONS,
    ServiceName.INCIDENT_LOG: Topic.ALERTS,
    ServiceName.RETRAINER: Topic.LABELS,
    ServiceName.RUNBOOK_RUNNER: Topic.INCIDENTS,
}


def handful_of_garbage(topic: Topic, tag: str) -> list[bytes]:
    """Bytes, JSON that is no event, and events of the topic's shape with one thing wrong."""
    event = samples_of(topic)[0]
    sample = json.loads(event.model_dump_json())
    required = next(name for name, field in type(event).model_fields.items() if field.is_required())
    garbage = [
        f"\x00\xff not json {tag}".encode(),
        json.dumps([tag, None, {"a": 1}]).encode(),
        json.dumps(sample | {"event_id": f"not-a-uuid-{tag}"}).encode(),
        json.dumps({k: v for k, v in sample.items() if k != required} | {"x": tag}).encode(),
        json.dumps(sample | {"type": f"no.such.{tag}"}).encode(),
        json.dumps(sample | {"schema_version": "NaN-placeholder", "x": tag})
        .replace('"NaN-placeholder"', "NaN")
        .encode(),
    ]
    for value in garbage:
        with pytest.raises(DecodeError):
            decode(topic, value)
    return garbage


async def handled(http: httpx.AsyncClient, url: str, service: ServiceName, topic: Topic) -> float:
    text = (await http.get(f"{url}/metrics")).text
    wanted = f'vigil_messages_handled_total{{service="{service.value}",topic="{topic.value}"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def good_for(
    service: ServiceName, running: RunningStack, http: httpx.AsyncClient
) -> Envelope:
    if service is not ServiceName.SCORER:
        return good_event(service)()
    token = bearer(running.credentials.admin_token)
    registry = running.supervisor.url(ServiceName.RETRAINER)
    async with httpx.AsyncClient(base_url=registry, timeout=60) as reg:
        versions = (await reg.get(f"/models/{MODEL}/versions", headers=token)).status_code
        if versions == 404:
            assert (await register(reg, MODEL, train(), headers=token)).status_code == 201
            assert (await deploy(reg, MODEL, 1, headers=token)).status_code == 200
    scorer = running.supervisor.url(ServiceName.SCORER)
    for _ in range(300):  # the scorer learns the deployment from the models topic
        served = (await http.get(f"{scorer}/deployments")).json()
        if MODEL in served:
            break
        await asyncio.sleep(0.1)
    return make_scoring_request(request_id=f"good-{uuid4().hex}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", list(TOPIC_OF), ids=[s.value for s in TOPIC_OF])
async def test_garbage_then_a_good_event_on_the_real_broker(
    stack: tuple[StackThread, RunningStack], service: ServiceName
) -> None:
    harness, running = stack
    kafka = KafkaSettings(
        bootstrap_servers=running.bootstrap_servers, profile=KafkaProfile.EMBEDDED
    )
    topic = TOPIC_OF[service]
    url = harness.url(service)
    tag = uuid4().hex
    garbage = handful_of_garbage(topic, tag)
    async with httpx.AsyncClient(timeout=30) as http:
        good = await good_for(service, running, http)
        before = await handled(http, url, service, topic)
        await write_raw(kafka, topic, [*garbage, encode(good)], key=tag.encode())

        def mine(records: list[Any]) -> list[MessageDeadLettered]:
            letters = [decode(Topic.DEAD_LETTER, record.value) for record in records]
            return [
                letter
                for letter in letters
                if isinstance(letter, MessageDeadLettered)
                and letter.consumer_group == service.group_id
                and base64.b64decode(letter.original_value_b64) in garbage
            ]

        dead = mine(await read_until(kafka, Topic.DEAD_LETTER, lambda rs: len(mine(rs)) >= 6))
        assert sorted(base64.b64decode(d.original_value_b64) for d in dead) == sorted(garbage)
        assert all(d.reason.value in ("undecodable", "invalid") and d.error for d in dead)

        for _ in range(600):
            if await handled(http, url, service, topic) >= before + 1:
                break
            await asyncio.sleep(0.1)
        assert await handled(http, url, service, topic) >= before + 1
        if service is ServiceName.SCORER:

            def predicted(records: list[Any]) -> bool:
                events = [decode(Topic.PREDICTIONS, record.value) for record in records]
                return any(
                    isinstance(e, PredictionMade) and e.request_id == good.request_id  # type: ignore[attr-defined]
                    for e in events
                )

            await read_until(kafka, Topic.PREDICTIONS, predicted)
        assert (await http.get(f"{url}/healthz")).status_code == 200
