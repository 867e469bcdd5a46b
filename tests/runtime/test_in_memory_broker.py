"""The runtime wiring works on FastStream's in-memory test broker, for fast service tests."""

from __future__ import annotations

from faststream.kafka import TestKafkaBroker

from contracts import AlertKind, AlertRaised, Envelope, MessageDeadLettered
from services.runtime import KafkaSettings, ServiceName, ServiceRuntime, ServiceSettings
from tests.factories import make_alert


async def test_events_and_dead_letters_flow_through_the_in_memory_broker() -> None:
    runtime = ServiceRuntime(ServiceName.MONITOR, ServiceSettings(kafka=KafkaSettings()))
    handled: list[AlertRaised] = []
    dead: list[Envelope] = []

    async def on_alert(alert: AlertRaised) -> None:
        handled.append(alert)

    runtime.consumer.on(AlertRaised, on_alert)
    runtime.consumer.subscribe(runtime.broker)

    @runtime.broker.subscriber("dead-letter", batch=True)
    async def on_dead(letters: list[MessageDeadLettered]) -> None:
        dead.extend(letters)

    async with TestKafkaBroker(runtime.broker) as broker:
        alert = make_alert()
        await runtime.publisher.publish(alert)
        await broker.publish(b"{broken", "alerts")
        await runtime.publisher.publish(alert)

    own = [a for a in handled if a.kind is AlertKind.DEAD_LETTERS]
    assert [a for a in handled if a not in own] == [alert]
    assert len(dead) == 1
    (raised,) = own  # the runtime's alert about the dead letter, back to this consumer
    assert raised.evidence["count"] == 1
