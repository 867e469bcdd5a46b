"""One outbox relay in a process of its own, as a service replica runs it (for kill tests).

``python -m tests.runtime.relay_process DATABASE_URL BOOTSTRAP TOPIC_PREFIX`` relays until
killed; a failed pass (the broker busy) is retried, as the service runtime does. The test names
the relay's PostgreSQL connections with ``application_name`` in the URL, so it can tell which
process holds the relay's turn.
"""

from __future__ import annotations

import asyncio
import sys

from services.runtime import (
    EventPublisher,
    KafkaSettings,
    OutboxRelay,
    create_engine,
    kafka_broker,
    session_factory,
)


async def relay_forever(database_url: str, bootstrap: str, prefix: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    engine = create_engine(database_url)
    publisher = EventPublisher(kafka_broker(kafka, client_id="relay-process"), kafka)
    await publisher.start()
    relay = OutboxRelay(session_factory(engine), publisher, batch_size=5, poll_interval_s=0.05)
    _say("relaying")
    while True:
        try:
            await relay.run()
        except Exception as error:
            _say(f"pass failed: {error!r}")
            await asyncio.sleep(0.1)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(relay_forever(*sys.argv[1:4]))
