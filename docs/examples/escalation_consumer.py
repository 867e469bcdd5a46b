"""React when a Vigil incident escalates. Needs only `pip install confluent-kafka`.

KAFKA_BOOTSTRAP=kafka:9092 python escalation_consumer.py
"""

import json
import os
import signal

from confluent_kafka import Consumer


def on_escalated(incident: dict) -> None:
    """Our team's reaction (page our rota, open a ticket…); here, one line on standard output."""
    print(
        f"{incident['incident_id']} ({incident['model']}) escalated from {incident['from_tier']}"
        f" to {incident['tier']}: {incident['reason']}",
        flush=True,
    )


def main() -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            "group.id": os.environ.get("GROUP_ID", "our-team-escalations"),
            "auto.offset.reset": "earliest",  # a new group starts at the oldest incident kept
            "enable.auto.commit": False,  # commit after reacting: at least once
        }
    )
    consumer.subscribe([os.environ.get("INCIDENTS_TOPIC", "incidents")])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    seen = set()  # event ids: a redelivered event is handled once (keep them durably in practice)
    try:
        while not stopping:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            headers = dict(message.headers() or [])
            if headers.get("ce_type") == b"incident.escalated":  # or the value's "type"
                event = json.loads(message.value())
                if event["event_id"] not in seen:
                    seen.add(event["event_id"])
                    on_escalated(event)
            consumer.commit(message, asynchronous=False)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
