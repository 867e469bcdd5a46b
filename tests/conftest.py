"""Shared fixtures: the real broker (embedded Tansu, once per session) and fresh names per test.

Set ``VIGIL_TEST_KAFKA_BOOTSTRAP`` to run the integration tests against another Kafka instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.runtime import EmbeddedBroker, KafkaProfile, KafkaSettings, ensure_topics


@pytest.fixture(scope="session")
async def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Bootstrap servers of a real broker with every Vigil topic created."""
    external = os.environ.get("VIGIL_TEST_KAFKA_BOOTSTRAP")
    if external:
        await ensure_topics(external)
        yield external
        return
    log_path = Path(tmp_path_factory.mktemp("broker")) / "tansu.log"
    broker = EmbeddedBroker(log_path=log_path)
    await broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        await broker.stop()


@pytest.fixture
def unique() -> str:
    """A short random suffix for group ids, models and other names one test owns."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def kafka_settings(kafka_bootstrap: str, unique: str) -> KafkaSettings:
    """Client settings with a topic namespace of this test's own, its topics created."""
    prefix = f"t{unique}."
    await ensure_topics(kafka_bootstrap, prefix=prefix)
    profile = KafkaProfile(os.environ.get("VIGIL_TEST_KAFKA_PROFILE", KafkaProfile.EMBEDDED))
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, profile=profile, topic_prefix=prefix)
