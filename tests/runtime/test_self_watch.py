"""A service's self-watch on the real broker: a stalled consumer raises ``consumer_lag``, an
outbox that does not publish raises ``outbox_stalled``, set-aside rows raise ``outbox_poison``;
each recovers when its condition clears."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import delete
from sqlmodel import SQLModel

from contracts import AlertKind, LabelRecorded, Topic
from services.runtime import (
    OUTBOX_TABLES,
    KafkaSettings,
    OutboxMessage,
    OutboxPoison,
    ProcessedEvent,
    ServiceName,
    ServiceRuntime,
    ServiceSettings,
    Sessions,
    stage,
)
from tests.factories import MODEL, make_alert
from tests.kafka_tools import read_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def platform_alerts(records: list[Any], kind: AlertKind) -> list[dict[str, Any]]:
    """The alert.raised / alert.recovered documents of one kind, in order."""
    documents = [json.loads(record.value) for record in records]
    return [document for document in documents if document["kind"] == kind.value]


def raised_then_recovered(kind: AlertKind) -> Any:
    def done(records: list[Any]) -> bool:
        types = [document["type"] for document in platform_alerts(records, kind)]
        return "alert.raised" in types and "alert.recovered" in types[types.index("alert.raised") :]

    return done


async def test_a_stalled_consumer_raises_consumer_lag_and_recovers_when_it_catches_up(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    group = f"test-{unique}"
    runtime = ServiceRuntime(
        ServiceName.MONITOR,
        ServiceSettings(
            kafka=kafka_settings,
            self_watch_interval_s=0.5,
            consumer_lag_alert_records=5,
            consumer_lag_alert_after_s=1.0,
        ),
        group_id=group,
    )
    release = asyncio.Event()
    handled: list[LabelRecorded] = []

    async def on_label(label: LabelRecorded) -> None:
        await release.wait()  # the consumer is stuck while traffic flows
        handled.append(label)

    runtime.consumer.on(LabelRecorded, on_label)
    async with runtime.running():
        for number in range(20):  # one record batch each: the embedded broker's end offset
            await runtime.publisher.publish(  # is the start of the last batch
                LabelRecorded(producer="client", model=MODEL, request_id=f"r{number}", label=1)
            )
        records = await read_until(
            kafka_settings,
            Topic.ALERTS,
            lambda rs: bool(platform_alerts(rs, AlertKind.CONSUMER_LAG)),
            timeout_s=60,
        )
        (raised,) = platform_alerts(records, AlertKind.CONSUMER_LAG)
        assert raised["type"] == "alert.raised"
        assert raised["model"] == "vigil"
        assert raised["evidence"]["group"] == kafka_settings.group_name(group)
        assert raised["evidence"]["topic"] == "labels"
        assert raised["evidence"]["lag"] > 5
        assert raised["fingerprint"] == (
            f"vigil:v-:consumer_lag:monitor/{kafka_settings.group_name(group)}/labels"
        )

        release.set()
        records = await read_until(
            kafka_settings, Topic.ALERTS, raised_then_recovered(AlertKind.CONSUMER_LAG)
        )
    alerts = platform_alerts(records, AlertKind.CONSUMER_LAG)
    assert [a["type"] for a in alerts] == ["alert.raised", "alert.recovered"]
    assert alerts[1]["fingerprint"] == raised["fingerprint"]
    assert alerts[1]["evidence"]["lag"] <= 5
    assert len(handled) == 20


@pytest.fixture
def schema() -> list[type[SQLModel]]:
    return [ProcessedEvent, *OUTBOX_TABLES]


async def test_an_outbox_that_does_not_publish_raises_outbox_stalled_then_recovers(
    kafka_settings: KafkaSettings, sessions: Sessions
) -> None:
    runtime = ServiceRuntime(
        ServiceName.INCIDENT_LOG,
        ServiceSettings(kafka=kafka_settings, self_watch_interval_s=0.3, outbox_age_alert_s=1.0),
    )
    relay = runtime.outbox_relay(sessions)  # built, but nothing runs it: rows wait
    async with runtime.running():
        async with sessions() as session, session.begin():
            stage(session, [make_alert(summary="waits in the outbox")])
        records = await read_until(
            kafka_settings,
            Topic.ALERTS,
            lambda rs: bool(platform_alerts(rs, AlertKind.OUTBOX_STALLED)),
            timeout_s=30,
        )
        (raised,) = platform_alerts(records, AlertKind.OUTBOX_STALLED)
        assert raised["type"] == "alert.raised"
        assert raised["evidence"]["pending"] == 1
        assert raised["evidence"]["oldest_pending_s"] > 1.0
        assert raised["fingerprint"] == "vigil:v-:outbox_stalled:incident-log/outbox"

        assert await relay.publish_pending() == 1  # the relay works again
        records = await read_until(
            kafka_settings, Topic.ALERTS, raised_then_recovered(AlertKind.OUTBOX_STALLED)
        )
    stalled = platform_alerts(records, AlertKind.OUTBOX_STALLED)
    assert [a["type"] for a in stalled] == ["alert.raised", "alert.recovered"]
    assert [a["summary"] for a in platform_alerts(records, AlertKind.METRIC_DECAY)] == [
        "waits in the outbox"
    ]


async def test_rows_set_aside_raise_outbox_poison_until_an_operator_clears_them(
    kafka_settings: KafkaSettings, sessions: Sessions
) -> None:
    runtime = ServiceRuntime(
        ServiceName.RETRAINER,
        ServiceSettings(kafka=kafka_settings, self_watch_interval_s=0.3),
    )
    relay = runtime.outbox_relay(sessions)
    async with runtime.running():
        async with sessions() as session, session.begin():
            alert = make_alert()
            session.add(
                OutboxMessage(
                    event_id=alert.event_id,
                    event_type="no.such.event",
                    topic="alerts",
                    payload="{}",
                )
            )
        assert await relay.publish_pending() == 1  # set aside, not published
        records = await read_until(
            kafka_settings,
            Topic.ALERTS,
            lambda rs: bool(platform_alerts(rs, AlertKind.OUTBOX_POISON)),
            timeout_s=30,
        )
        (raised,) = platform_alerts(records, AlertKind.OUTBOX_POISON)
        assert raised["evidence"] == {"service": "retrainer", "rows": 1}

        async with sessions() as session, session.begin():
            await session.exec(delete(OutboxPoison))
        records = await read_until(
            kafka_settings, Topic.ALERTS, raised_then_recovered(AlertKind.OUTBOX_POISON)
        )
    poison = platform_alerts(records, AlertKind.OUTBOX_POISON)
    assert [a["type"] for a in poison] == ["alert.raised", "alert.recovered"]
    assert platform_alerts(records, AlertKind.OUTBOX_STALLED) == []
