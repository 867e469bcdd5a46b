"""Hypothesis against every service's consumer on the in-memory broker: whatever arrives on a
topic the service reads — random bytes, random JSON, an event of the topic's shape with one thing
wrong — goes to ``dead-letter`` with its reason and its bytes, and the consumer goes on to handle
the next good event. One service instance takes all the examples, as a real consumer takes all the
records of its partitions."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from contracts import DeadLetterReason, Topic
from contracts.wire import DecodeError, decode
from services.runtime import ServiceName
from tests.fuzz.consumers import CONSUMERS, ConsumerUnderTest, encoded, in_memory_service
from tests.fuzz.garbage import garbage_for

pytestmark = [pytest.mark.fuzz]

EXAMPLES = 25


@pytest.fixture(params=CONSUMERS, ids=[service.value for service in CONSUMERS])
async def consumer(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ConsumerUnderTest]:
    async with in_memory_service(request.param, tmp_path) as running:
        yield running


def _decodes(topic: Topic, value: bytes) -> bool:
    try:
        decode(topic, value)
    except DecodeError:
        return False
    return True


@pytest.mark.timeout(120)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_garbage_on_any_topic_is_dead_lettered_and_the_next_good_event_is_handled(
    consumer: ConsumerUnderTest, data: st.DataObject
) -> None:
    topic = data.draw(st.sampled_from(consumer.topics), label="topic")
    value = data.draw(garbage_for(topic), label="value")
    assume(not _decodes(topic, value))
    seen = len(consumer.dead)
    await consumer.send(topic, value)
    letter = consumer.dead_letter_of(value, since=seen)
    assert letter is not None, f"{value!r} on {topic.value} was not dead-lettered"
    assert letter.reason in (DeadLetterReason.UNDECODABLE, DeadLetterReason.INVALID)
    assert letter.error
    assert letter.original_topic == consumer.runtime.settings.kafka.topic_name(topic)
    assert base64.b64decode(letter.original_value_b64) == value

    good_topic, good = encoded(consumer.good())
    before, seen = consumer.handled(good_topic), len(consumer.dead)
    await consumer.send(good_topic, good)
    assert consumer.dead_letter_of(good, since=seen) is None, consumer.dead[seen:]
    assert consumer.handled(good_topic) >= before + 1


def test_every_service_is_fuzzed() -> None:
    assert set(CONSUMERS) == set(ServiceName)
