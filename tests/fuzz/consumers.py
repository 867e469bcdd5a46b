"""Every Vigil service that consumes Kafka, built by its own ``create_app`` and run (lifespan and
all) on FastStream's in-memory broker, with the in-process registry behind the ones that read it;
plus, per service, a good event that it handles (its counter of handled events goes up)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts import (
    Envelope,
    IncidentResolved,
    LabelRecorded,
    MessageDeadLettered,
    PredictionMade,
    Topic,
    Variant,
)
from contracts.topics import topic_of
from contracts.wire import decode, encode
from services.runtime import KafkaSettings, ServiceName, ServiceRuntime
from tests.factories import TEST_SIGNING_KEY, make_alert, make_scoring_request, sample_events
from tests.model_builders import train
from tests.registry_tools import PEOPLE, deploy, identity_double, register, registry

__all__ = ["CONSUMERS", "ConsumerUnderTest", "encoded", "good_event", "in_memory_service"]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "breast-cancer"


@dataclass
class ConsumerUnderTest:
    """A running service's consumer: where to send, what came back on ``dead-letter``."""

    service: ServiceName
    runtime: ServiceRuntime
    good: Callable[[], Envelope]
    dead: list[MessageDeadLettered] = field(default_factory=list)

    @property
    def topics(self) -> list[Topic]:
        return sorted(self.runtime.consumer.topics)

    def handled(self, topic: Topic) -> float:
        value = self.runtime.metrics.registry.get_sample_value(
            "vigil_messages_handled_total",
            {"service": self.service.value, "topic": topic.value},
        )
        return value or 0.0

    async def send(self, topic: Topic, value: bytes) -> None:
        await self.runtime.broker.publish(value, topic.value)

    def dead_letter_of(self, value: bytes, *, since: int = 0) -> MessageDeadLettered | None:
        """The dead letter of ``value`` among those that came after the first ``since``."""
        encoded = base64.b64encode(value).decode()
        return next((d for d in self.dead[since:] if d.original_value_b64 == encoded), None)


def _fresh(event: Envelope, **changes: Any) -> Envelope:
    return event.model_copy(update={"event_id": uuid4(), **changes})


def _sample(kind: type[Envelope]) -> Envelope:
    return next(event for event in sample_events() if isinstance(event, kind))


def good_event(service: ServiceName) -> Callable[[], Envelope]:
    """An event the service handles (fresh ids each time, so it is never a redelivery)."""
    if service is ServiceName.SCORER:
        return lambda: make_scoring_request(request_id=f"good-{uuid4().hex}")
    if service is ServiceName.INCIDENT_LOG:
        return lambda: make_alert(fingerprint=f"fuzz-{uuid4().hex}")
    if service is ServiceName.RUNBOOK_RUNNER:
        return lambda: _fresh(_sample(IncidentResolved), incident_id=f"i-{uuid4().hex[:8]}")
    if service is ServiceName.DRIFT_DETECTOR:
        return lambda: _fresh(
            _sample(PredictionMade),
            model=MODEL,
            model_version=1,
            variant=Variant.CHAMPION,
            served=True,
            request_id=f"r-{uuid4().hex}",
        )
    return lambda: LabelRecorded(
        producer="labeller", model=MODEL, request_id=f"r-{uuid4().hex}", label="benign"
    )


def _settings(service: ServiceName, state: Path) -> Any:
    common: dict[str, Any] = {
        "kafka": KafkaSettings(),
        "state_dir": state,
        "registry_url": "http://registry",
    }
    if service is ServiceName.SCORER:
        from services.scorer.settings import Settings as Scorer

        return Scorer(**common)
    if service is ServiceName.INCIDENT_LOG:
        from services.incident_log.settings import Settings as IncidentLog

        return IncidentLog(
            **common,
            policy_path=ROOT / "runbooks" / "routing.yaml",
            runbook_signing_key=TEST_SIGNING_KEY,
        )
    if service is ServiceName.RUNBOOK_RUNNER:
        from services.runbook_runner.settings import Settings as Runner

        return Runner(
            **common,
            catalog_path=ROOT / "runbooks" / "catalog.yaml",
            runbook_signing_key=TEST_SIGNING_KEY,
        )
    if service is ServiceName.MONITOR:
        from services.monitor.settings import Settings as Monitor

        return Monitor(**common, probes_enabled=False, scorer_url="http://scorer")
    if service is ServiceName.DRIFT_DETECTOR:
        from services.drift_detector.settings import Settings as Drift

        return Drift(**common)
    from services.retrainer.settings import Settings as Retrainer

    return Retrainer(**common, incident_log_url="http://identity", identity_cache_seconds=0.0)


CONSUMERS = [
    ServiceName.SCORER,
    ServiceName.MONITOR,
    ServiceName.DRIFT_DETECTOR,
    ServiceName.INCIDENT_LOG,
    ServiceName.RETRAINER,
    ServiceName.RUNBOOK_RUNNER,
]


@asynccontextmanager
async def in_memory_service(service: ServiceName, tmp: Path) -> AsyncIterator[ConsumerUnderTest]:
    """Run one service on the in-memory broker, the registry in-process behind it (model v1
    of breast-cancer registered and deployed)."""
    async with AsyncExitStack() as stack:
        reg = await stack.enter_async_context(registry(f"sqlite:///{tmp / 'reg.db'}"))
        transport = httpx.ASGITransport(app=reg.app)
        registry_http = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://registry")
        )
        assert (await register(registry_http, MODEL, train())).status_code == 201
        assert (await deploy(registry_http, MODEL, 1)).status_code == 200
        settings = _settings(service, tmp / "state")
        app = _create(service, settings, registry_http, transport)
        runtime: ServiceRuntime = app.state.runtime
        under_test = ConsumerUnderTest(service, runtime, good_event(service))

        @runtime.broker.subscriber("dead-letter")
        async def on_dead(message: KafkaMessage) -> None:
            letter = decode(Topic.DEAD_LETTER, message.body)
            if isinstance(letter, MessageDeadLettered):
                under_test.dead.append(letter)

        await stack.enter_async_context(TestKafkaBroker(runtime.broker))
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield under_test


def _create(
    service: ServiceName, settings: Any, registry_http: httpx.AsyncClient, transport: Any
) -> Any:
    if service is ServiceName.SCORER:
        from services.scorer.app import create_app as scorer

        return scorer(settings, registry_http=registry_http)
    if service is ServiceName.MONITOR:
        from services.monitor.app import create_app as monitor

        return monitor(settings, registry_transport=transport)
    if service is ServiceName.DRIFT_DETECTOR:
        from services.drift_detector.app import create_app as drift
        from services.runtime import RegistryClient

        # Reference data needs a token (role l2 or scope datasets:read); ana's is l2.
        reader = RegistryClient(registry_http, "http://registry", token="token-ana")
        return drift(settings, registry=reader)
    if service is ServiceName.INCIDENT_LOG:
        from services.incident_log.app import create_app as incident_log

        return incident_log(settings)
    if service is ServiceName.RUNBOOK_RUNNER:
        from services.runbook_runner.app import create_app as runner

        return runner(settings)
    from services.retrainer.app import create_app as retrainer

    return retrainer(settings, identity_transport=identity_double(PEOPLE))


def encoded(event: Envelope) -> tuple[Topic, bytes]:
    """The topic and bytes of an event, as a producer would write them."""
    return topic_of(type(event)), encode(event)
