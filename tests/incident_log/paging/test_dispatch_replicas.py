"""Two paging dispatchers (two incident-log replicas) on one database, each with its own
connections, HTTP client and SMTP relay, deliver every page and reminder once to a real webhook
receiver and real SMTP servers on loopback, and echo every heartbeat once; a replica whose
connection dies while holding pages, notifications or heartbeats leaves them to the other (rows
claimed with SKIP LOCKED in ``paging/store.py`` and ``Dispatcher.echo_heartbeats``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlmodel import col, func, select

from contracts import (
    AlertKind,
    AlertRaised,
    DeliveryOutcome,
    HeartbeatEchoed,
    NotificationAttempted,
    Severity,
    alert_fingerprint,
)
from services.incident_log.paging.channels import Channels, SmtpSettings
from services.incident_log.paging.dispatcher import Dispatcher, PagingConfig
from services.incident_log.paging.store import PagingStore
from services.incident_log.paging.tables import HeartbeatRow, NotificationRow
from services.incident_log.tables import TimelineRow
from services.runtime import OutboxMessage, create_engine, free_port, session_factory
from tests.clock import FakeClock
from tests.dying_connection import kill_connection
from tests.factories import make_alert
from tests.incident_log.paging.harness import Mailbox, PagingWorld, paging_world
from tests.incident_log.policies import TIERS, make_policy

T9 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
INCIDENTS = 8
HEARTBEATS = 6
POLICY = make_policy(
    routes=[
        {
            "name": "default",
            "runbooks": [],
            "tiers": {tier: {**TIERS[tier], "remind_every_minutes": 5} for tier in TIERS},
        }
    ]
)
# Small batches so the two dispatchers' passes interleave; no rate limit, so nothing is held.
CONFIG = PagingConfig(public_url="http://incident-log.test", batch_size=3, pages_per_window=1000)


@dataclass
class Replica:
    """The second incident log's dispatcher and the SMTP relay it sends through."""

    dispatcher: Dispatcher
    mailbox: Mailbox


@asynccontextmanager
async def second_replica(
    world: PagingWorld, database_url: str, config: PagingConfig = CONFIG
) -> AsyncIterator[Replica]:
    engine = create_engine(database_url)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            channels = Channels(
                http,
                SmtpSettings(host="127.0.0.1", port=port, sender="vigil@example.test"),
                clock=lambda: world.clock.now.timestamp(),
            )
            dispatcher = Dispatcher(session_factory(engine), channels, config, clock=world.clock)
            yield Replica(dispatcher, mailbox)
    finally:
        await asyncio.to_thread(controller.stop)
        await engine.dispose()


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[PagingWorld]:
    async with paging_world(database_url, POLICY, FakeClock(T9), config=CONFIG) as world:
        await world.person("ana", email=True)
        await world.schedule("ops", "L1", ["ana"])
        await world.schedule("ds", "L2", ["ana"])
        yield world


@pytest.fixture
async def replica(world: PagingWorld, database_url: str) -> AsyncIterator[Replica]:
    async with second_replica(world, database_url) as replica:
        yield replica


def heartbeat(n: int) -> AlertRaised:
    return AlertRaised(
        producer="supervisor",
        model="vigil",
        kind=AlertKind.HEARTBEAT,
        severity=Severity.INFO,
        fingerprint=alert_fingerprint("vigil", None, AlertKind.HEARTBEAT, f"supervisor-{n}"),
        summary="heartbeat",
    )


async def open_incidents(world: PagingWorld) -> None:
    """An incident per model (each pages ana) and heartbeats waiting for their echo."""
    alerts = [
        make_alert(
            model=f"model-{n}",
            fingerprint=alert_fingerprint(f"model-{n}", 3, AlertKind.METRIC_DECAY, "recall"),
        )
        for n in range(INCIDENTS)
    ]
    await world.log.on_alerts(alerts + [heartbeat(n) for n in range(HEARTBEATS)])


async def settle(dispatcher: Dispatcher) -> int:
    """Dispatcher passes until one does nothing; how much they did."""
    done = 0
    for _ in range(100):
        if not (did := await dispatcher.step()):
            return done
        done += did
    raise AssertionError("the dispatcher kept finding work")


async def deliver_all(dispatcher: Dispatcher) -> int:
    """Deliver batches of due notifications until none is left; how many were sent."""
    sent = 0
    while batch := await dispatcher.deliver_due():
        sent += batch
    return sent


async def settle_together(*dispatchers: Dispatcher) -> list[int]:
    """Both replicas' loops at once, then a pass of each that finds nothing left."""
    done = await asyncio.gather(*(settle(dispatcher) for dispatcher in dispatchers))
    assert [await dispatcher.step() for dispatcher in dispatchers] == [0] * len(dispatchers)
    return done


async def outbox(world: PagingWorld, event_type: str) -> list[str]:
    async with world.sessions() as session:
        rows = await session.exec(
            select(OutboxMessage.payload).where(col(OutboxMessage.event_type) == event_type)
        )
        return list(rows.all())


async def expansions(world: PagingWorld) -> int:
    """``paging`` lines on the timelines: one per page expanded."""
    async with world.sessions() as session:
        count = await session.exec(select(func.count()).where(col(TimelineRow.action) == "paging"))
        return int(count.one())


async def assert_each_once(
    world: PagingWorld, mailboxes: list[Mailbox], reasons: list[str]
) -> None:
    """Every page of each reason reached ana's webhook once and her inbox once, and each
    notification was recorded delivered once; every heartbeat was echoed once."""
    receiver = world.receiver
    assert receiver.duplicates() == 0
    assert len(receiver.arrivals) == INCIDENTS * len(reasons)
    for reason in reasons:
        incidents = [a.body["incident"]["id"] for a in receiver.pages_for("ana", reason)]
        assert len(set(incidents)) == len(incidents) == INCIDENTS
    mails = [m for box in mailboxes for m in box.messages]
    keys = Counter(m["X-Vigil-Idempotency-Key"] for m in mails)
    assert len(keys) == len(mails) == INCIDENTS * len(reasons)
    attempts = [
        NotificationAttempted.model_validate_json(payload)
        for payload in await outbox(world, "notification.attempted")
    ]
    assert {a.outcome for a in attempts} == {DeliveryOutcome.DELIVERED}
    assert len({a.idempotency_key for a in attempts}) == len(attempts) == 2 * len(mails)
    assert await expansions(world) == INCIDENTS * len(reasons)
    echoes = [
        HeartbeatEchoed.model_validate_json(payload)
        for payload in await outbox(world, "heartbeat.echoed")
    ]
    assert len({e.alert_event_id for e in echoes}) == len(echoes) == HEARTBEATS


async def test_two_dispatchers_at_once_deliver_each_page_and_reminder_once(
    world: PagingWorld, replica: Replica
) -> None:
    await open_incidents(world)
    await settle_together(world.dispatcher, replica.dispatcher)
    await assert_each_once(world, [world.mailbox, replica.mailbox], ["page"])

    world.clock.advance(timedelta(minutes=5))  # every incident's reminder is due
    assert await world.log.fire_due_timers() == INCIDENTS
    await settle_together(world.dispatcher, replica.dispatcher)
    await assert_each_once(world, [world.mailbox, replica.mailbox], ["page", "reminder"])


async def test_pages_and_heartbeats_held_by_a_replica_that_dies_go_out_from_the_other(
    world: PagingWorld, replica: Replica, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: no second replica to take over")
    await open_incidents(world)
    survivor = replica.dispatcher
    async with world.sessions() as dying:
        await dying.begin()
        held = await PagingStore(dying).pending_pages(limit=INCIDENTS // 2)
        beats = (
            await dying.exec(
                select(HeartbeatRow).limit(HEARTBEATS // 2).with_for_update(skip_locked=True)
            )
        ).all()
        assert (len(held), len(beats)) == (INCIDENTS // 2, HEARTBEATS // 2)
        # While the first replica holds them, the other pages and echoes only the rest (and
        # does not wait for the held ones: a wait would time out here).
        await asyncio.wait_for(settle(survivor), timeout=10)
        assert len(world.receiver.arrivals) == INCIDENTS - len(held)
        assert len(await outbox(world, "heartbeat.echoed")) == HEARTBEATS - len(beats)
        async with (
            world.sessions() as observer
        ):  # its connection dies (as with SIGKILL): locks freed
            await kill_connection(dying, observer)
    await settle_together(survivor)
    await assert_each_once(world, [replica.mailbox], ["page"])


async def test_notifications_held_by_a_replica_that_dies_are_sent_by_the_other(
    world: PagingWorld, replica: Replica, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a SQLite file belongs to one process: no second replica to take over")
    await open_incidents(world)
    survivor = replica.dispatcher
    while await survivor.expand_pages():
        pass
    while await survivor.echo_heartbeats():
        pass
    due = 2 * INCIDENTS  # a webhook and an e-mail per page
    async with world.sessions() as dying:
        await dying.begin()
        held = await PagingStore(dying).due_notifications(world.clock.now, limit=due // 2)
        assert len(held) == due // 2
        # While the first replica holds half the notifications, the other sends only the rest.
        sent = await asyncio.wait_for(deliver_all(survivor), timeout=10)
        assert sent == due - len(held)
        assert {a.key for a in world.receiver.arrivals}.isdisjoint(row.id for row in held)
        async with (
            world.sessions() as observer
        ):  # its connection dies (as with SIGKILL): locks freed
            await kill_connection(dying, observer)
    assert await deliver_all(survivor) == len(held)
    await settle_together(survivor)
    await assert_each_once(world, [replica.mailbox], ["page"])


RATE_LIMITED = PagingConfig(public_url="http://incident-log.test", batch_size=2, pages_per_window=3)


async def test_two_dispatchers_at_once_page_a_person_no_more_than_the_rate_allows(
    database_url: str,
) -> None:
    """Each dispatcher counts the person's pages in the rate window before adding its own; two
    counting at once must not both find room (``PagingStore.lock_rate_windows``)."""
    async with paging_world(database_url, POLICY, FakeClock(T9), config=RATE_LIMITED) as world:
        await world.person("ana", email=True)
        await world.schedule("ops", "L1", ["ana"])
        await world.schedule("ds", "L2", ["ana"])
        async with second_replica(world, database_url, RATE_LIMITED) as replica:
            await open_incidents(world)

            async def expand(dispatcher: Dispatcher) -> None:
                while await dispatcher.expand_pages():
                    pass

            await asyncio.gather(expand(world.dispatcher), expand(replica.dispatcher))
        async with world.sessions() as session:
            rows = (await session.exec(select(NotificationRow))).all()
    pages = {row.page_id for row in rows if row.person == "ana" and row.status != "held"}
    held = {row.page_id for row in rows if row.person == "ana" and row.status == "held"}
    assert (len(pages), len(held)) == (RATE_LIMITED.pages_per_window, INCIDENTS - 3)
