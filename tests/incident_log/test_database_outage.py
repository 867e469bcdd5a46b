"""A PostgreSQL outage under the incident log loses nothing: the acceptance test of the consumer's
transient-failure rule (docs/adr/0003-delivery-rules.md).

The incident log runs as a real process whose database connections go through a TCP proxy the
test controls. The proxy resets every connection for 10 s while alerts keep arriving on the real
broker; afterwards every alert has its incident, nothing was dead-lettered, nothing duplicated,
and ``/readyz`` said "not ready" during the outage and "ready" after it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from contracts import AlertKind, AlertRaised, IncidentOpened, Topic, alert_fingerprint
from services.runtime import EventPublisher, KafkaSettings, ServiceName
from tests.factories import make_alert
from tests.kafka_tools import (
    distinct_events,
    read_events_until_quiet,
    read_until,
    read_until_quiet,
)
from tests.polling import eventually
from tests.processes import ServiceProcess, kafka_env, write_routing_policy
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "test-admin-token"
OUTAGE_S = 10.0


def alert_number(n: int) -> AlertRaised:
    """Alerts on different models, so each opens an incident of its own."""
    model = f"outage-model-{n}"
    return make_alert(
        model=model,
        fingerprint=alert_fingerprint(model, 3, AlertKind.METRIC_DECAY, "recall"),
        summary=f"alert {n}",
    )


async def get(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path, headers={"Authorization": f"Bearer {ADMIN}"})
    response.raise_for_status()
    return response.json()


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz", timeout=5)
    return response.status_code, response.json()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_alerts_sent_while_postgresql_is_away_all_become_incidents_once(
    kafka_settings: KafkaSettings,
    database_url: str,
    publisher: EventPublisher,
    tmp_path: Path,
) -> None:
    real = make_url(database_url)
    async with TcpProxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
        service = ServiceProcess(
            ServiceName.INCIDENT_LOG,
            env=kafka_env(kafka_settings)
            | {
                "VIGIL_STATE_DIR": str(tmp_path / "state"),
                "VIGIL_INCIDENT_LOG_DATABASE_URL": real.set(port=proxy.port).render_as_string(
                    hide_password=False
                ),
                "VIGIL_INCIDENT_LOG_POLICY_PATH": str(write_routing_policy(tmp_path)),
                "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": ADMIN,
                "VIGIL_INCIDENT_LOG_CONSUMER_BACKOFF_INITIAL_S": "0.1",
                "VIGIL_INCIDENT_LOG_CONSUMER_BACKOFF_MAX_S": "1",
            },
            log_dir=tmp_path,
        )
        service.start()
        try:
            await service.wait_ready()
            async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
                await outage_scenario(proxy, publisher, client, kafka_settings)
        except BaseException:
            print(service.log_tail(80))  # noqa: T201  # the service's side of a failure
            raise
        finally:
            service.ensure_dead()


async def outage_scenario(
    proxy: TcpProxy,
    publisher: EventPublisher,
    client: httpx.AsyncClient,
    kafka: KafkaSettings,
) -> None:
    loop = asyncio.get_running_loop()
    status, body = await readiness(client)
    assert status == 200, body
    assert body["checks"] == {"database": "ok", "consumer": "ok"}

    before = [alert_number(n) for n in range(5)]
    await publisher.publish_many(before)

    async def incidents(count: int) -> list[dict[str, Any]] | None:
        listed: list[dict[str, Any]] = await get(client, "/incidents?limit=1000")
        return listed if len(listed) >= count else None

    await eventually(lambda: incidents(len(before)), timeout_s=30, every_s=0.2)

    proxy.cut()
    cut_at = loop.time()
    during = [alert_number(n) for n in range(5, 25)]
    not_ready: list[dict[str, Any]] = []
    for alert in during:  # alerts keep flowing through the outage, 2 a second
        await publisher.publish(alert)
        status, body = await readiness(client)
        if status == 503:
            not_ready.append(body)
        await asyncio.sleep(OUTAGE_S / len(during) / 2)
    while loop.time() - cut_at < OUTAGE_S:
        status, body = await readiness(client)
        if status == 503:
            not_ready.append(body)
        await asyncio.sleep(0.5)
    assert proxy.available is False
    proxy.restore()

    assert not_ready, "/readyz never said not ready while the database was away"
    assert any(body["checks"]["database"] != "ok" for body in not_ready), not_ready
    assert any(
        body["checks"]["consumer"].startswith("blocked on a transient failure since")
        for body in not_ready
    ), not_ready
    assert proxy.refused > 0  # the service did try the database during the outage

    sent = before + during
    listed = await eventually(lambda: incidents(len(sent)), timeout_s=40, every_s=0.2)

    async def ready_again() -> bool:
        status, _ = await readiness(client)
        return status == 200

    await eventually(ready_again, timeout_s=20, every_s=0.2)

    # Every alert has its incident, exactly one, counted once.
    assert sorted(incident["model"] for incident in listed) == sorted(a.model for a in sent)
    assert all(incident["alert_count"] == 1 for incident in listed), listed
    alerts: list[dict[str, Any]] = await get(client, "/alerts?limit=1000")
    assert sorted(a["event_id"] for a in alerts) == sorted(str(a.event_id) for a in sent)
    assert all(a["incident_id"] is not None for a in alerts)

    # Nothing was dead-lettered, and each incident was announced once (the outbox relay, a
    # background task with its own restart backoff, may publish a few seconds later). Once by
    # event id: a relay pass that published just before the cut could not mark its rows sent,
    # and publishes them again after the outage.
    def opened_in(records: list[Any]) -> list[IncidentOpened]:
        return [
            IncidentOpened.model_validate_json(record.value)
            for record in records
            if b'"incident.opened"' in record.value
        ]

    await read_until(
        kafka,
        Topic.INCIDENTS,
        lambda records: len(opened_in(distinct_events(records))) >= len(sent),
        timeout_s=40,
    )
    opened = opened_in(await read_events_until_quiet(kafka, Topic.INCIDENTS, quiet_s=2.0))
    assert sorted(event.model for event in opened) == sorted(a.model for a in sent)
    assert await read_until_quiet(kafka, Topic.DEAD_LETTER, quiet_s=1.0) == []
