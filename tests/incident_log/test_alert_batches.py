"""A polled batch of alerts through the real consumer into the incident log, on SQLite and
PostgreSQL: a poison alert, a replayed alert and several alerts of one new incident in one batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, func, select

from contracts import (
    AlertKind,
    AlertRaised,
    DeadLetterReason,
    Envelope,
    MessageDeadLettered,
    alert_fingerprint,
)
from contracts.wire import encode, key_for
from services.incident_log.service import IncidentLog
from services.incident_log.store import IncidentStore
from services.incident_log.tables import AlertRow, IncidentRow, TimelineRow
from services.runtime import (
    EventConsumer,
    KafkaSettings,
    OutboxMessage,
    RetryPolicy,
    ServiceMetrics,
    Sessions,
    session_factory,
)
from tests.factories import MODEL, make_alert
from tests.incident_log.policies import make_policy


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Published:
    """What the consumer publishes itself (dead letters); the log's events go to its outbox."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def publish(self, event: Envelope) -> None:
        self.events.append(event)

    async def publish_many(self, events: Iterable[Envelope]) -> None:
        self.events.extend(events)

    @property
    def dead_letters(self) -> list[MessageDeadLettered]:
        return [e for e in self.events if isinstance(e, MessageDeadLettered)]


def consumer_of(
    log: IncidentLog,
    published: Published,
    handler: Callable[[list[AlertRaised]], Awaitable[None]] | None = None,
) -> EventConsumer:
    consumer = EventConsumer(
        service="incident-log",
        group_id="incident-log",
        publisher=published,
        metrics=ServiceMetrics("incident-log"),
        kafka=KafkaSettings(),
        retry=RetryPolicy(attempts=2, first_delay_s=0, backoff_initial_s=0.001, backoff_max_s=0.01),
    )
    consumer.on_batch(AlertRaised, handler or log.on_alerts)
    return consumer


def batch(alerts: list[AlertRaised], first_offset: int = 0) -> list[FakeRecord]:
    return [
        FakeRecord("alerts", 0, first_offset + n, encode(alert), key_for(alert))
        for n, alert in enumerate(alerts)
    ]


def on_version(version: int, summary: str) -> AlertRaised:
    fingerprint = alert_fingerprint(MODEL, version, AlertKind.METRIC_DECAY, "recall")
    return make_alert(model_version=version, fingerprint=fingerprint, summary=summary)


async def counts(sessions: Sessions) -> tuple[dict[str, int], int, int, int]:
    """Alert count per incident fingerprint, alerts logged, openings staged, ``opened`` entries."""
    async with sessions() as session:
        rows = (await session.exec(select(IncidentRow))).all()
        logged = (await session.exec(select(func.count()).select_from(AlertRow))).one()
        openings = (
            await session.exec(
                select(func.count()).where(col(OutboxMessage.event_type) == "incident.opened")
            )
        ).one()
        opened = (
            await session.exec(select(func.count()).where(col(TimelineRow.action) == "opened"))
        ).one()
    return {row.fingerprint: row.alert_count for row in rows}, logged, openings, opened


async def test_a_poison_a_replay_and_one_new_incident_in_one_batch(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy())
    published = Published()
    earlier = on_version(3, "earlier")
    await consumer_of(log, published).handle(batch([earlier]))

    # A person reported an incident by hand; an alert on Kafka then carries the same event id
    # with other content: the alert log refuses it (its key), in whatever batch it comes.
    reported = on_version(7, "reported by hand")
    await log.open_manual(reported)
    poison = on_version(8, "poison").model_copy(update={"event_id": reported.event_id})

    first, second, third = (on_version(5, f"new {n}") for n in range(3))
    polled = batch([first, earlier, poison, second, third, earlier], first_offset=10)
    # A consumer that restarted: it does not remember ``earlier`` being handled.
    await consumer_of(log, published).handle(polled)

    (letter,) = published.dead_letters
    assert letter.offset == 12
    assert letter.reason is DeadLetterReason.HANDLER_FAILED
    assert "IntegrityError" in letter.error
    per_incident, logged, openings, opened = await counts(sessions)
    assert per_incident == {earlier.fingerprint: 1, reported.fingerprint: 1, first.fingerprint: 3}
    assert (logged, openings, opened) == (5, 3, 3)

    # The same poll redelivered (the offsets were never committed): nothing happens twice.
    await consumer_of(log, published).handle(polled)
    assert await counts(sessions) == (per_incident, logged, openings, opened)
    async with sessions() as session:
        store = IncidentStore(session)
        (incident_id,) = (
            await session.exec(
                select(IncidentRow.id).where(IncidentRow.fingerprint == first.fingerprint)
            )
        ).all()
        timeline = [row.action for row in await store.timeline(incident_id)]
    assert timeline.count("opened") == 1


async def test_one_transaction_opens_an_incident_once_for_its_alerts_and_skips_a_replay(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    log = IncidentLog(sessions, make_policy())
    published = Published()
    earlier = on_version(3, "earlier")
    await consumer_of(log, published).handle(batch([earlier]))
    calls: list[int] = []

    async def counted(alerts: list[AlertRaised]) -> None:
        calls.append(len(alerts))
        await log.on_alerts(alerts)

    consumer = consumer_of(log, published, counted)
    new = [on_version(5, f"new {n}") for n in range(3)]
    await consumer.handle(batch([new[0], earlier, new[1], earlier, new[2]], first_offset=10))

    assert calls == [4]  # the in-batch copy of ``earlier`` never reaches the handler
    assert published.dead_letters == []
    per_incident, logged, openings, opened = await counts(sessions)
    assert per_incident == {earlier.fingerprint: 1, new[0].fingerprint: 3}
    assert (logged, openings, opened) == (4, 2, 2)
