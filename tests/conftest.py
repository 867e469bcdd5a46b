"""Shared fixtures: the real broker (embedded Tansu, once per session), a fresh database per test
(SQLite file, and PostgreSQL under the ``integration`` marker) with an engine on it, and fresh
names per test.

Set ``VIGIL_TEST_KAFKA_BOOTSTRAP`` to run the integration tests against another Kafka, and
``VIGIL_TEST_POSTGRES_URL`` (an administrative connection) to use another PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from services.runtime import (
    EmbeddedBroker,
    EventPublisher,
    KafkaProfile,
    KafkaSettings,
    ensure_topics,
    kafka_broker,
)
from services.runtime.database import Sessions, create_engine, session_factory
from services.runtime.migrations import SchemaHistory, migrate
from tests.database_tools import create_tables


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: `-p no:xdist` must still run
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """How ``make test`` (``--numprocesses``) spreads the suite over pytest-xdist's workers."""
    from tests.worker_scheduling import StacksOnOneWorker

    return StacksOnOneWorker(config, log)


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


@pytest.fixture
async def publisher(kafka_settings: KafkaSettings) -> AsyncIterator[EventPublisher]:
    """Publishes to the real broker in this test's topic namespace."""
    broker = kafka_broker(kafka_settings, client_id="test-publisher")
    await broker.connect()
    try:
        yield EventPublisher(broker, kafka_settings)
    finally:
        await broker.stop()


POSTGRES_ADMIN_URL = os.environ.get(
    "VIGIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> AsyncIterator[str]:
    """URL of an empty database of this test's own: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    name = f"vigil_test_{unique}"
    async with await psycopg.AsyncConnection.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with await psycopg.AsyncConnection.connect(
            POSTGRES_ADMIN_URL, autocommit=True
        ) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def schema() -> SchemaHistory | Sequence[type[SQLModel]] | None:
    """What :func:`engine` puts in the test's database: a service's migration history (migrated to
    its head, the path production takes), a list of tables no service owns (created), or nothing.
    A test module or a folder's ``conftest.py`` overrides this fixture to say which."""
    return None


@pytest.fixture
async def engine(
    database_url: str, schema: SchemaHistory | Sequence[type[SQLModel]] | None
) -> AsyncIterator[AsyncEngine]:
    """An engine on this test's own database holding :func:`schema`, disposed after the test."""
    created = create_engine(database_url)
    if isinstance(schema, SchemaHistory):
        await migrate(created, schema)
    elif schema is not None:
        await create_tables(created, schema)
    yield created
    await created.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> Sessions:
    """Sessions on :func:`engine`."""
    return session_factory(engine)
