"""The incident log's part of the dead man's switch, as a process on the real broker: a
``heartbeat`` alert opens nothing and is echoed once on ``heartbeats`` by the paging loop, even
when replayed; a platform alert opens an incident on the ``platform`` route, at L2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from contracts import AlertKind, AlertRaised, HeartbeatEchoed, Severity, Topic, alert_fingerprint
from contracts.wire import decode
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.kafka_tools import read_events, read_events_until_quiet
from tests.processes import running_incident_log

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

ADMIN = "heartbeat-admin-token"


def heartbeat(source: str) -> AlertRaised:
    return AlertRaised(
        producer="supervisor",
        model="vigil",
        kind=AlertKind.HEARTBEAT,
        severity=Severity.INFO,
        fingerprint=alert_fingerprint("vigil", None, AlertKind.HEARTBEAT, source),
        summary="heartbeat",
    )


async def test_heartbeats_are_echoed_once_without_an_incident_and_platform_alerts_page_l2(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    first, second = heartbeat("supervisor-aa"), heartbeat("supervisor-bb")
    loop_alert = AlertRaised(
        producer="supervisor",
        model="vigil",
        kind=AlertKind.RESTART_LOOP,
        severity=Severity.CRITICAL,
        fingerprint=alert_fingerprint("vigil", None, AlertKind.RESTART_LOOP, "supervisor/scorer"),
        summary="scorer crashed 3 time(s) in a row",
    )
    async with running_incident_log(kafka_settings, tmp_path, admin_token=ADMIN) as process:
        broker = kafka_broker(kafka_settings, client_id="heartbeat-test")
        publisher = EventPublisher(broker, kafka_settings)
        await publisher.start()
        try:
            await publisher.publish_many([first, first, second, first])  # replays echo nothing
            await publisher.publish(loop_alert)
        finally:
            await publisher.stop()

        # Echoes come from the outbox, at least once: counted by event id (a replayed heartbeat
        # echoed again would be a new event and still fail the test).
        await read_events(kafka_settings, Topic.HEARTBEATS, count=2, timeout_s=60)
        echoes = [
            HeartbeatEchoed.model_validate(decode(Topic.HEARTBEATS, record.value))
            for record in await read_events_until_quiet(
                kafka_settings, Topic.HEARTBEATS, quiet_s=2.0
            )
        ]
        assert sorted((e.source, e.alert_event_id) for e in echoes) == [
            ("supervisor-aa", first.event_id),
            ("supervisor-bb", second.event_id),
        ]
        assert all(e.received_at >= e.sent_at for e in echoes)

        async with httpx.AsyncClient(
            base_url=process.url, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as http:
            for _ in range(100):
                incidents = (await http.get("/incidents")).json()
                if incidents and incidents[0]["tier"] == "L2":
                    break
                await asyncio.sleep(0.2)
            assert [(i["kind"], i["route"], i["tier"]) for i in incidents] == [
                ("restart_loop", "platform", "L2")
            ], json.dumps(incidents)
