"""The example consumer in docs/events.md (``docs/examples/escalation_consumer.py``) is the file
shown there, and run as an outside team would run it, it reacts to ``incident.escalated`` only,
once per event."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from contracts import IncidentEscalated, Topic
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.factories import sample_events

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "escalation_consumer.py"
EVENTS_DOC = ROOT / "docs" / "events.md"


def test_events_md_shows_the_example_file_as_it_is() -> None:
    assert f"```python\n{EXAMPLE.read_text()}```" in EVENTS_DOC.read_text()


@pytest.mark.integration
async def test_the_example_reacts_to_each_escalation_once_and_ignores_other_incident_events(
    kafka_settings: KafkaSettings, unique: str
) -> None:
    incidents = [e for e in sample_events() if e.type.startswith("incident.")]
    (escalated,) = [e for e in incidents if isinstance(e, IncidentEscalated)]
    publisher = EventPublisher(kafka_broker(kafka_settings, client_id="test-doc"), kafka_settings)
    await publisher.start()
    try:
        await publisher.publish_many([*incidents, escalated])  # the escalation redelivered too
    finally:
        await publisher.stop()

    env = os.environ | {
        "KAFKA_BOOTSTRAP": kafka_settings.bootstrap_servers,
        "INCIDENTS_TOPIC": kafka_settings.topic_name(Topic.INCIDENTS),
        "GROUP_ID": f"doc-example-{unique}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), env=env, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        await asyncio.sleep(2.0)  # time to (wrongly) react to the redelivered copy or others
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 30)
    assert line.decode() == (
        f"{escalated.incident_id} ({escalated.model}) escalated from {escalated.from_tier}"
        f" to {escalated.tier}: {escalated.reason}\n"
    )
    assert rest == b""
    assert process.returncode == 0
