"""The retrainer app running for a test: on FastStream's in-memory broker with an identity
provider double, or on the real broker served over loopback HTTP with the real incident log
answering ``/whoami``. Both give the same interface: publish events, wait for ``models`` events,
call the API as a person, move the clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlmodel import select

from contracts import Envelope, ModelRegistered, Topic
from contracts.wire import decode
from services.retrainer.app import create_app
from services.retrainer.retraining.live_examples import LiveExamples
from services.retrainer.settings import Settings
from services.runtime import (
    EventPublisher,
    KafkaSettings,
    ProcessedEvent,
    ServiceName,
    ServiceRuntime,
    create_engine,
    kafka_broker,
    session_factory,
)
from tests.clock import FakeClock
from tests.factories import T0
from tests.http_tools import serving
from tests.model_builders import train
from tests.processes import ROUTING_POLICY, ServiceProcess, issue_tokens, stack_env
from tests.registry_tools import bearer, deploy, identity_double, register
from tests.retrainer.retraining_data import SPEC, live_events

E = TypeVar("E", bound=Envelope)
MODEL = "breast-cancer"
READ = (Topic.MODELS, Topic.DEAD_LETTER)


def retrainer_settings(
    tmp_path: Path, kafka: KafkaSettings, database_url: str, **overrides: Any
) -> Settings:
    fields: dict[str, Any] = {
        "kafka": kafka,
        "state_dir": tmp_path / "state",
        "database_url": database_url,
        "cooldown_seconds": 0.0,
        "worker_poll_seconds": 0.2,
        "governance_interval_seconds": 0.2,
        "schedule_interval_seconds": 3600.0,
        "gate_resamples": 300,
        "identity_cache_seconds": 0.0,
        "incident_log_url": "http://identity",
    }
    return Settings(**(fields | overrides))


@dataclass
class Retrainer:
    """A running retrainer and the means to drive it."""

    settings: Settings
    clock: FakeClock[datetime]
    http: httpx.AsyncClient
    live: LiveExamples
    publish_events: Callable[[Sequence[Envelope]], Awaitable[None]]
    read_topic: Callable[[Topic], Awaitable[list[Envelope]]]
    database_url: str
    url: str
    tokens: dict[str, str] = field(default_factory=dict)

    async def read_models(self) -> list[Envelope]:
        """Every event on ``models`` so far."""
        return await self.read_topic(Topic.MODELS)

    async def publish(self, *events: Envelope) -> None:
        await self.publish_events(list(events))

    async def models(
        self, done: Callable[[list[Envelope]], bool], timeout_s: float = 90.0
    ) -> list[Envelope]:
        """Wait until the ``models`` events satisfy ``done``; return them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        events: list[Envelope] = []
        while loop.time() < deadline:
            events = await self.read_models()
            if done(events):
                return events
            await asyncio.sleep(0.1)
        kinds = [type(event).__name__ for event in events]
        raise AssertionError(f"models events never met the condition; got {kinds}")

    async def quiet_models(self, settle_s: float = 2.0) -> list[Envelope]:
        """Return the ``models`` events once no new one has come for ``settle_s``."""
        previous: list[Envelope] = []
        while True:
            await asyncio.sleep(settle_s)
            events = await self.read_models()
            if len(events) == len(previous):
                return events
            previous = events

    async def clock_tick(self) -> None:
        """Let the service work a little (real time; the fake clock does not move)."""
        await asyncio.sleep(0.1)

    def as_person(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def handled(self, event: Envelope, timeout_s: float = 60.0) -> None:
        """Wait until the retrainer has recorded an event id as handled."""
        engine = create_engine(self.database_url)
        try:
            sessions = session_factory(engine)
            for _ in range(int(timeout_s * 10)):
                async with sessions() as session:
                    query = select(ProcessedEvent).where(ProcessedEvent.event_id == event.event_id)
                    if (await session.exec(query)).first() is not None:
                        return
                await asyncio.sleep(0.1)
        finally:
            await engine.dispose()
        raise AssertionError(f"{event.type} {event.event_id} was never handled")

    async def with_live_data(self, start: int, stop: int) -> None:
        """Publish predictions and labels for breast-cancer rows and wait until all are joined."""
        predictions, labels = live_events(MODEL, start, stop)
        await self.publish(*predictions, *labels)
        for _ in range(600):
            joined, _ = await self.live.count(MODEL)
            if joined == stop - start:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"only {joined} of {stop - start} live examples joined")

    async def deployment(self) -> dict[str, Any]:
        response = await self.http.get(f"/models/{MODEL}/deployment")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


async def register_champion(http: httpx.AsyncClient, token: str) -> None:
    """Register v1 (two features, trained on three quarters of the data) and deploy it, as the
    owner of ``token``."""
    response = await register(
        http,
        MODEL,
        train(),
        headers=bearer(token),
        spec=SPEC.model_dump(mode="json"),
        parameters={"estimator": "logistic_regression", "C": 1.0},
    )
    assert response.status_code == 201, response.text
    assert (await deploy(http, MODEL, 1, headers=bearer(token))).status_code == 200


def of_type(events: Iterable[Envelope], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def registered_versions(events: Iterable[Envelope]) -> list[int]:
    return [event.record.version for event in of_type(events, ModelRegistered)]


@asynccontextmanager
async def in_memory_retrainer(
    tmp_path: Path, database_url: str, people: dict[str, tuple[str, str]], **overrides: Any
) -> AsyncIterator[Retrainer]:
    """The retrainer on FastStream's in-memory broker with an identity provider double, served
    over loopback HTTP."""
    clock = FakeClock(T0)
    settings = retrainer_settings(tmp_path, KafkaSettings(), database_url, **overrides)
    app = create_app(
        settings,
        clock=clock,
        identity_transport=identity_double(people, acting_for_others=frozenset({"runbook-runner"})),
    )
    runtime: ServiceRuntime = app.state.runtime
    received: dict[Topic, list[Envelope]] = {topic: [] for topic in READ}

    def collector(topic: Topic) -> Callable[[KafkaMessage], Awaitable[None]]:
        async def collect(message: KafkaMessage) -> None:
            received[topic].append(decode(topic, message.body))

        return collect

    for topic in READ:
        runtime.broker.subscriber(settings.kafka.topic_name(topic))(collector(topic))
    publisher = EventPublisher(runtime.broker, settings.kafka)

    async def publish(events: Sequence[Envelope]) -> None:
        await publisher.publish_many(events)

    async def read(topic: Topic) -> list[Envelope]:
        return list(received[topic])

    async with (
        TestKafkaBroker(runtime.broker),
        app.router.lifespan_context(app),
        serving(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30.0) as http,
    ):
        tokens = {name: token for token, (name, _) in people.items()}
        await register_champion(http, tokens["ana"])
        yield Retrainer(
            settings, clock, http, app.state.live, publish, read, database_url, url, tokens=tokens
        )


@asynccontextmanager
async def real_retrainer(
    tmp_path: Path,
    kafka: KafkaSettings,
    database_url: str,
    incident_log_url: str,
    tokens: dict[str, str],
    **overrides: Any,
) -> AsyncIterator[Retrainer]:
    """The retrainer on the real broker, served over loopback HTTP; the incident log (a real
    process) tells who a token is."""
    clock = FakeClock(T0)
    settings = retrainer_settings(
        tmp_path, kafka, database_url, incident_log_url=incident_log_url, **overrides
    )
    app = create_app(settings, clock=clock)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(serving(app, lifespan="on"))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30.0))
        client_broker = kafka_broker(kafka, client_id="retrainer-test")
        await client_broker.connect()
        stack.push_async_callback(client_broker.stop)
        publisher = EventPublisher(client_broker, kafka, client_id="retrainer-test")
        await publisher.start()
        stack.push_async_callback(publisher.stop)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        stack.push_async_callback(consumer.stop)
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(kafka.topic_name(topic), p)
            for topic in READ
            for p in consumer.partitions_for_topic(kafka.topic_name(topic)) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        received: dict[Topic, list[Envelope]] = {topic: [] for topic in READ}
        seen: set[UUID] = set()

        async def read(topic: Topic) -> list[Envelope]:
            """Each event once, as a consumer takes them: the relay publishes at least once (a
            pass whose acknowledgement came late publishes its rows again, same event ids)."""
            batch = await consumer.getmany(timeout_ms=100)
            for part, records in batch.items():
                logical = kafka.logical_topic(part.topic)
                for record in records:
                    event = decode(logical, record.value)
                    if event.event_id not in seen:
                        seen.add(event.event_id)
                        received[logical].append(event)
            return list(received[topic])

        async def publish(events: Sequence[Envelope]) -> None:
            await publisher.publish_many(events)

        await register_champion(http, tokens["ana"])
        yield Retrainer(
            settings,
            clock,
            http,
            app.state.live,
            publish,
            read,
            database_url,
            url,
            tokens=tokens,
        )


@dataclass
class GovernedProcesses:
    """The incident log (identity provider) and the retrainer as processes, v1 deployed."""

    incident_log: ServiceProcess
    retrainer: ServiceProcess
    env: dict[str, str]
    """What any further service of the stack needs: broker, state folder, registry, log."""
    tokens: dict[str, str]


@asynccontextmanager
async def governed_processes(
    kafka: KafkaSettings,
    folder: Path,
    *,
    admin_token: str,
    people: dict[str, str],
    gate_resamples: int,
    incident_log_env: dict[str, str] | None = None,
    retrainer_env: dict[str, str] | None = None,
    champion: Callable[[httpx.AsyncClient, str], Awaitable[None]] | None = None,
) -> AsyncIterator[GovernedProcesses]:
    """Start the incident log and the retrainer (no cooldown, a gate margin a few hundred
    held-out rows can show), issue a token per person (name → role; ``ana`` must be one, at
    l2: she registers and deploys v1), and stop both on exit. ``incident_log_env`` adds to or
    overrides the incident log's environment (its policy, its service tokens), ``retrainer_env``
    the retrainer's; ``champion`` registers and deploys v1 (default: the breast-cancer model)."""
    incident_log = ServiceProcess(ServiceName.INCIDENT_LOG, log_dir=folder)
    retrainer = ServiceProcess(ServiceName.RETRAINER, log_dir=folder)
    env = stack_env(kafka, folder / "state", retrainer.url) | {
        "VIGIL_INCIDENT_LOG_URL": incident_log.url,
    }
    incident_log.env = (
        env
        | {
            "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": admin_token,
            "VIGIL_INCIDENT_LOG_POLICY_PATH": str(ROUTING_POLICY),
        }
        | (incident_log_env or {})
    )
    retrainer.env = (
        env
        | {
            "VIGIL_RETRAINER_COOLDOWN_SECONDS": "0",
            "VIGIL_RETRAINER_GATE_RESAMPLES": str(gate_resamples),
            # A few hundred held-out rows cannot show non-inferiority within 0.02 of recall.
            "VIGIL_RETRAINER_GATE_MARGIN": "0.08",
            "VIGIL_RETRAINER_WORKER_POLL_SECONDS": "0.2",
        }
        | (retrainer_env or {})
    )
    try:
        incident_log.start()
        retrainer.start()
        await incident_log.wait_ready()
        await retrainer.wait_ready()
        tokens = await issue_tokens(incident_log.url, admin_token, people)
        async with httpx.AsyncClient(base_url=retrainer.url) as http:
            await (champion or register_champion)(http, tokens["ana"])
        yield GovernedProcesses(incident_log, retrainer, env, tokens)
    finally:
        for process in (retrainer, incident_log):
            await process.stop()


def dumps(events: Iterable[Envelope]) -> str:
    """Events as readable JSON lines (for assertion messages)."""
    return "\n".join(json.dumps(event.model_dump(mode="json"))[:300] for event in events)
