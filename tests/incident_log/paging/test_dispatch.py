"""Paging on a real database (SQLite and PostgreSQL) with a real HTTP receiver and a real SMTP
server, on a simulated clock: who gets paged at each tier, reminders, acknowledge links, retries
while the receiver is down, giving up, storms folded into digests, overrides and hand-offs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from contracts import (
    AlertKind,
    DeliveryOutcome,
    EscalationTrigger,
    IncidentOpened,
    ModelRegistered,
    NotificationAttempted,
    alert_fingerprint,
)
from services.incident_log.domain import SYSTEM, Incident
from services.incident_log.paging.dispatcher import PagingConfig
from services.incident_log.permissions import Role
from services.incident_log.tables import TimelineRow
from services.incident_log.tokens import issue_token
from services.runtime import OutboxMessage
from services.stack.pager import verify_signature
from tests.clock import FakeClock
from tests.factories import make_alert, make_spec, make_version_record
from tests.incident_log.paging.harness import PagingWorld, paging_world
from tests.incident_log.policies import TIERS, make_policy

T9 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
TIERS_WITH_REMINDERS = {
    "L1": {**TIERS["L1"], "remind_every_minutes": 5},
    "L2": {**TIERS["L2"], "remind_every_minutes": 5},
    "L3": {**TIERS["L3"], "remind_every_minutes": 5},
}
POLICY = make_policy(
    routes=[
        {
            "name": "performance-decay",
            "match": {"kinds": ["metric_decay"]},
            "runbooks": ["rollback-model"],
            "tiers": TIERS_WITH_REMINDERS,
        },
        {"name": "default", "runbooks": [], "tiers": TIERS_WITH_REMINDERS},
    ]
)
FAST = PagingConfig(
    public_url="http://incident-log.test",
    retry_base=timedelta(seconds=2),
    retry_cap=timedelta(seconds=10),
    give_up_after=timedelta(minutes=5),
)


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[PagingWorld]:
    async with paging_world(database_url, POLICY, FakeClock(T9), config=FAST) as world:
        await world.person("ana", email=True)
        await world.person("bo")
        await world.person("carol")
        await world.schedule("ops", "L1", ["ana"])
        await world.schedule("ds", "L2", ["bo"])
        yield world


async def open_incident(world: PagingWorld, subject: str = "recall", model: str = "") -> str:
    alert = make_alert(
        model=model or "breast-cancer",
        fingerprint=alert_fingerprint(model or "breast-cancer", 3, AlertKind.METRIC_DECAY, subject),
    )
    await world.log.on_alerts([alert])
    async with world.sessions() as session:
        opened = (
            await session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.event_type == "incident.opened")
                .order_by(col(OutboxMessage.id).desc())
            )
        ).first()
    assert opened is not None
    return IncidentOpened.model_validate_json(opened.payload).incident_id


async def escalate(world: PagingWorld, incident_id: str) -> None:
    def up(incident: Incident, now: datetime) -> Any:
        return incident.escalate(SYSTEM, EscalationTrigger.NOT_ACKNOWLEDGED, "no answer", now)

    await world.log.act(incident_id, up)


async def timeline(world: PagingWorld, incident_id: str) -> list[TimelineRow]:
    async with world.sessions() as session:
        query = (
            select(TimelineRow)
            .where(TimelineRow.incident_id == incident_id)
            .order_by(col(TimelineRow.id))
        )
        return list((await session.exec(query)).all())


async def attempts(world: PagingWorld) -> list[NotificationAttempted]:
    async with world.sessions() as session:
        rows = (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.event_type == "notification.attempted")
            )
        ).all()
    return [NotificationAttempted.model_validate_json(row.payload) for row in rows]


async def test_level_one_is_paged_by_signed_webhook_and_email_and_it_is_recorded(
    world: PagingWorld,
) -> None:
    incident_id = await open_incident(world)
    await world.settle()

    (page,) = world.receiver.pages_for("ana", "page")
    assert page.verified is True
    assert page.body["incident"]["id"] == incident_id
    assert page.body["incident"]["tier"] == "L1"
    assert page.body["ack_url"].startswith("http://incident-log.test/ack/")
    # The signature verifies with the contact's secret and fails on a tampered body.
    secret = world.receiver.secrets["ana"]
    stamp = int(page.headers["x-vigil-timestamp"])
    signature = page.headers["x-vigil-signature"]
    now = int(world.clock.now.timestamp())
    assert verify_signature(secret, stamp, page.raw, signature, now=now)
    tampered = page.raw.replace(b'"L1"', b'"L3"')
    assert tampered != page.raw
    assert not verify_signature(secret, stamp, tampered, signature, now=now)

    (mail,) = world.mailbox.messages
    assert mail["X-Test-Rcpt"] == "ana@example.test"
    assert incident_id in mail["Subject"]
    parts = {part.get_content_type() for part in mail.walk()}
    assert {"text/plain", "text/html"} <= parts
    assert world.receiver.pages_for("bo") == []  # level two is not paged yet

    listed = await world.admin("GET", f"/incidents/{incident_id}/notifications")
    assert sorted((n["channel"], n["status"], n["attempts"]) for n in listed) == [
        ("email", "delivered", 1),
        ("webhook", "delivered", 1),
    ]
    actions = [(row.actor, row.action) for row in await timeline(world, incident_id)]
    assert ("system:pager", "paging") in actions
    assert actions.count(("system:pager", "notification")) == 2
    assert {(a.person, a.channel, a.outcome) for a in await attempts(world)} == {
        ("ana", "webhook", DeliveryOutcome.DELIVERED),
        ("ana", "email", DeliveryOutcome.DELIVERED),
    }


async def test_escalation_pages_each_tier_then_the_owners_and_resolution_tells_everyone(
    world: PagingWorld,
) -> None:
    spec = make_spec(owners=["carol", "a-team-nobody-knows"])
    await world.log.on_model_news(
        ModelRegistered(
            producer="retrainer",
            model="breast-cancer",
            record=make_version_record(version=3, spec=spec, incident_id=None),
        )
    )
    incident_id = await open_incident(world)
    await world.settle()
    await escalate(world, incident_id)
    await world.settle()
    assert len(world.receiver.pages_for("bo", "page")) == 1
    await escalate(world, incident_id)
    await world.settle()
    (owner_page,) = world.receiver.pages_for("carol", "page")
    assert owner_page.body["incident"]["tier"] == "L3"
    paging = [row for row in await timeline(world, incident_id) if row.action == "paging"]
    assert paging[-1].details["people"] == ["carol"]
    assert paging[-1].details["unresolved"] == [
        "owner a-team-nobody-knows: neither a person nor a schedule"
    ]

    await world.log.act(incident_id, lambda i, now: i.resolve("carol", "fixed", now, force=True))
    await world.settle()
    told = {a.hook for a in world.receiver.pages.values() if a.body["reason"] == "resolved"}
    assert told == {"ana", "bo"}  # carol resolved it herself
    assert world.mailbox.messages[-1]["Subject"].startswith("[Vigil L3] Resolved by carol")


async def test_a_link_acknowledges_once_stops_reminders_and_tells_the_others(
    world: PagingWorld,
) -> None:
    incident_id = await open_incident(world)
    await world.settle()
    await escalate(world, incident_id)
    await world.settle()
    (l1_page,) = world.receiver.pages_for("ana", "page")
    (l2_page,) = world.receiver.pages_for("bo", "page")

    world.clock.advance(timedelta(minutes=5))
    assert await world.log.fire_due_timers() >= 1
    await world.settle()
    assert len(world.receiver.pages_for("bo", "reminder")) == 1

    link = l2_page.body["ack_url"].removeprefix("http://incident-log.test")
    shown = await world.api.get(link)
    assert shown.status_code == 200
    assert "<form method='post'>" in shown.text
    assert (await world.admin("GET", f"/incidents/{incident_id}"))["status"] == "open"

    stale = l1_page.body["ack_url"].removeprefix("http://incident-log.test")
    refused = await world.api.post(stale)
    assert refused.status_code == 409
    assert "moved to L2" in refused.text

    used = await world.api.post(link)
    assert used.status_code == 200, used.text
    incident = await world.admin("GET", f"/incidents/{incident_id}")
    assert (incident["status"], incident["acknowledged_by"]) == ("acknowledged", "bo")
    again = await world.api.post(link)
    assert again.status_code == 410
    assert "used already" in again.text

    forged = await world.api.post(link[:-3] + ("xyz" if not link.endswith("xyz") else "abc"))
    assert forged.status_code == 400
    await world.settle()
    (told,) = world.receiver.pages_for("ana", "acknowledged")
    assert told.body["actor"] == "bo"
    assert world.receiver.pages_for("bo", "acknowledged") == []

    world.clock.advance(timedelta(minutes=30))
    await world.log.fire_due_timers()
    await world.settle()
    assert len(world.receiver.pages_for("bo", "reminder")) == 1  # no more reminders
    actions = [row.action for row in await timeline(world, incident_id)]
    assert "acknowledged_from_page" in actions


async def test_an_expired_link_changes_nothing(world: PagingWorld) -> None:
    incident_id = await open_incident(world)
    await world.settle()
    (page,) = world.receiver.pages_for("ana", "page")
    world.clock.advance(timedelta(hours=25))
    expired = await world.api.post(page.body["ack_url"].removeprefix("http://incident-log.test"))
    assert expired.status_code == 410
    assert "expired" in expired.text
    assert (await world.admin("GET", f"/incidents/{incident_id}"))["acknowledged_by"] is None


async def test_a_receiver_down_for_30_s_gets_every_page_once_when_it_returns(
    world: PagingWorld,
) -> None:
    world.receiver.down = True
    for n in range(5):
        await open_incident(world, subject=f"s{n}", model=f"model-{n}")
    await world.settle()
    for _ in range(15):
        world.clock.advance(timedelta(seconds=2))
        await world.settle()
    assert world.receiver.pages == {}
    world.receiver.down = False
    for _ in range(10):
        world.clock.advance(timedelta(seconds=2))
        await world.settle()
    assert len(world.receiver.pages_for("ana", "page")) == 5
    assert world.receiver.duplicates() == 0
    outcomes = [a.outcome for a in await attempts(world) if a.channel == "webhook"]
    assert outcomes.count(DeliveryOutcome.DELIVERED) == 5
    assert outcomes.count(DeliveryOutcome.RETRYING) >= 5


async def test_a_page_that_never_gets_through_is_marked_failed_and_recorded(
    world: PagingWorld,
) -> None:
    world.receiver.down = True
    incident_id = await open_incident(world)
    await world.settle()
    for _ in range(40):
        world.clock.advance(timedelta(seconds=10))
        await world.settle()
    listed = await world.admin("GET", f"/incidents/{incident_id}/notifications")
    webhook = next(n for n in listed if n["channel"] == "webhook")
    assert webhook["status"] == "failed"
    assert "503" in webhook["last_error"]
    failed = [a for a in await attempts(world) if a.outcome is DeliveryOutcome.FAILED]
    assert [(a.person, a.channel) for a in failed] == [("ana", "webhook")]


async def test_a_storm_of_200_incidents_gives_each_person_a_bounded_number_of_pages(
    world: PagingWorld,
) -> None:
    for n in range(200):
        await open_incident(world, subject=f"s{n}", model=f"model-{n}")
        if n % 50 == 0:
            await world.settle(passes=500)
    await world.settle(passes=500)
    assert len(world.receiver.pages_for("ana", "page")) == 5  # the rate limit
    world.clock.advance(timedelta(minutes=11))
    await world.settle(passes=500)
    (digest,) = world.receiver.pages_for("ana", "digest")
    assert len(digest.body["items"]) == 195
    assert len(world.receiver.pages_for("ana")) == 6  # five pages and one digest for 200


async def test_an_override_and_a_hand_off_change_who_is_paged_from_their_start(
    world: PagingWorld,
) -> None:
    await world.person("dee")
    await world.schedule("ops", "L1", ["ana", "dee"])  # daily, hands off at 09:00 UTC
    await world.admin(
        "POST",
        "/schedules/ops/overrides",
        json={
            "person": "carol",
            "starts_at": "2026-11-03T10:00:00Z",
            "ends_at": "2026-11-03T11:00:00Z",
        },
    )
    paged = []
    for minutes in (59, 60, 120):
        world.clock.now = T9 + timedelta(minutes=minutes)
        expected = (await world.admin("GET", "/oncall", params={"tier": "L1"}))[0]["person"]
        before = set(world.receiver.pages)
        await open_incident(world, subject=f"s{minutes}", model=f"m-{minutes}")
        await world.settle()
        (new,) = [world.receiver.pages[key] for key in set(world.receiver.pages) - before]
        assert new.hook == expected
        paged.append(new.hook)
    assert paged[0] != paged[1]  # the daily hand-off at 09:00
    assert set(paged[:2]) == {"ana", "dee"}
    assert paged[2] == "carol"  # the override from 10:00


async def test_a_page_that_reaches_nobody_fails_over_to_the_next_tier(world: PagingWorld) -> None:
    await world.admin("PUT", "/people/olga", json={})
    await world.admin(
        "POST",
        "/people/olga/contacts",
        json={"channel": "webhook", "address": "http://127.0.0.1:9/nothing-listens"},
    )
    await world.schedule("ops", "L1", ["olga"])
    incident_id = await open_incident(world)
    await world.settle()
    assert world.receiver.pages_for("bo") == []
    for _ in range(40):
        world.clock.advance(timedelta(seconds=10))
        await world.settle()
    (fail_over,) = world.receiver.pages_for("bo", "page")
    assert fail_over.body["incident"]["id"] == incident_id
    assert fail_over.body["incident"]["tier"] == "L2"
    actions = [row.action for row in await timeline(world, incident_id)]
    assert "page_failed_over" in actions
    incident = await world.admin("GET", f"/incidents/{incident_id}")
    assert incident["tier"] == "L1"  # the page fails over; the incident itself does not move


async def test_a_silenced_alert_pages_no_one(world: PagingWorld) -> None:
    await world.admin(
        "POST",
        "/silences",
        json={
            "matcher": {"models": ["breast-cancer"]},
            "duration_minutes": 60,
            "reason": "maintenance",
        },
    )
    await world.log.on_alerts([make_alert()])
    await world.settle()
    assert world.receiver.arrivals == []
    assert world.mailbox.messages == []


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        (
            "PUT",
            "/schedules/ops",
            {"layers": [{"name": "a", "members": ["x"], "start": "9999-12-31"}]},
            422,
        ),
        (
            "PUT",
            "/schedules/ops",
            {
                "layers": [
                    {
                        "name": "a",
                        "members": ["x"],
                        "start": "2026-01-01",
                        "timezone": "../../etc/passwd",
                    }
                ]
            },
            422,
        ),
        (
            "PUT",
            "/schedules/ops",
            {"layers": [{"name": "a", "members": ["x"] * 201, "start": "2026-01-01"}]},
            422,
        ),
        (
            "PUT",
            "/schedules/ops",
            {
                "layers": [
                    {"name": "a", "members": ["x"], "start": "2026-01-01", "handoff_weekday": "NaN"}
                ]
            },
            422,
        ),
        ("PUT", "/schedules/ops", {"layers": "everyone"}, 422),
        ("PUT", "/schedules/a%2Fb", {"layers": []}, 404),
        ("PUT", "/people/" + "x" * 101, {}, 422),
        ("PUT", "/people/ana", {"display_name": "x" * 201}, 422),
        (
            "POST",
            "/people/ana/contacts",
            {"channel": "webhook", "address": "file:///etc/passwd"},
            422,
        ),
        ("POST", "/people/ana/contacts", {"channel": "sms", "address": "+4912345"}, 422),
        (
            "POST",
            "/people/ana/contacts",
            {"channel": "pagerduty", "address": "http://127.0.0.1:9/"},
            422,
        ),
        ("POST", "/people/nobody/contacts", {"channel": "email", "address": "a@b.test"}, 404),
        (
            "POST",
            "/schedules/ops/overrides",
            {
                "person": "ana",
                "starts_at": "2026-11-03T10:00:00",
                "ends_at": "2026-11-03T11:00:00Z",
            },
            422,
        ),
        (
            "POST",
            "/schedules/ops/overrides",
            {
                "person": "ana",
                "starts_at": "2026-11-03T10:00:00Z",
                "ends_at": "2026-12-31T11:00:00Z",
            },
            422,
        ),
        (
            "POST",
            "/schedules/ops/overrides",
            {
                "person": "ana",
                "starts_at": "2026-11-03T10:00:00Z",
                "ends_at": "9999-11-03T11:00:00Z",
            },
            422,
        ),
        (
            "POST",
            "/schedules/nope/overrides",
            {
                "person": "ana",
                "starts_at": "2026-11-03T10:00:00Z",
                "ends_at": "2026-11-03T11:00:00Z",
            },
            404,
        ),
        (
            "POST",
            "/schedules/ops/overrides",
            {
                "person": "nobody",
                "starts_at": "2026-11-03T10:00:00Z",
                "ends_at": "2026-11-03T11:00:00Z",
            },
            404,
        ),
        ("GET", "/oncall?at=0001-01-01T00:00:00Z", None, 422),
        ("GET", "/oncall?at=9999-12-31T23:59:59Z", None, 422),
        ("GET", "/oncall?at=yesterday", None, 422),
        ("GET", "/schedules/nope", None, 404),
        ("DELETE", "/schedules/ops/overrides/ov-nope", None, 404),
        ("POST", "/ack/" + "A" * 5000, None, 400),
        ("POST", "/ack/not.a-link", None, 400),
    ],
)
async def test_hostile_paging_requests_get_a_clear_4xx_and_change_nothing(
    world: PagingWorld, method: str, path: str, body: Any, expected: int
) -> None:
    before = await world.admin("GET", "/schedules")
    response = await world.api.request(
        method, path, json=body, headers={"Authorization": "Bearer admin-secret"}
    )
    assert response.status_code == expected, response.text
    assert await world.admin("GET", "/schedules") == before
    assert (
        await world.api.get("/oncall", headers={"Authorization": "Bearer admin-secret"})
    ).status_code == 200


async def test_paging_routes_need_a_token_and_the_right_role(world: PagingWorld) -> None:
    async with world.sessions() as session, session.begin():
        viewer = await issue_token(session, "vic", Role.VIEWER, world.clock.now)
        l1 = await issue_token(session, "lee", Role.L1, world.clock.now)
    assert (await world.api.get("/oncall")).status_code == 401
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    as_l1 = {"Authorization": f"Bearer {l1}"}
    assert (await world.api.get("/oncall", headers=as_viewer)).status_code == 200
    assert (await world.api.get("/people", headers=as_l1)).status_code == 403
    assert (await world.api.put("/people/lee", json={}, headers=as_l1)).status_code == 403
    await world.admin("PUT", "/people/lee", json={})
    cover = {"starts_at": "2026-11-03T10:00:00Z", "ends_at": "2026-11-03T11:00:00Z"}
    mine = await world.api.post(
        "/schedules/ops/overrides", json={"person": "lee", **cover}, headers=as_l1
    )
    assert mine.status_code == 201, mine.text
    theirs = await world.api.post(
        "/schedules/ops/overrides", json={"person": "ana", **cover}, headers=as_l1
    )
    assert theirs.status_code == 403
    viewer_cover = await world.api.post(
        "/schedules/ops/overrides", json={"person": "vic", **cover}, headers=as_viewer
    )
    assert viewer_cover.status_code in (403, 404)
