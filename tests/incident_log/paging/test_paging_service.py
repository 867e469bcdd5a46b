"""Paging through the real incident log process on the real broker, with a real HTTP receiver
and SMTP server: the whole escalation on its own timers, and a SIGKILL in the middle of
deliveries that loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from contracts import (
    AlertKind,
    DeliveryOutcome,
    ModelRegistered,
    NotificationAttempted,
    Topic,
    alert_fingerprint,
)
from services.runtime import EventPublisher, KafkaSettings, ServiceName, free_port, kafka_broker
from services.stack.pager import PageReceiver
from tests.factories import make_alert, make_spec, make_version_record
from tests.http_tools import serving
from tests.incident_log.paging.harness import Mailbox
from tests.kafka_tools import read_until_quiet
from tests.processes import ServiceProcess, kafka_env, write_routing_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "test-admin-token"
FAST_TIERS = {
    "L1": {"ack_timeout_minutes": 0.1, "mitigate_timeout_minutes": 60},
    "L2": {"ack_timeout_minutes": 0.1, "mitigate_timeout_minutes": 60},
    "L3": {
        "ack_timeout_minutes": 60,
        "mitigate_timeout_minutes": 120,
        "remind_every_minutes": 0.05,
    },
}


@dataclass
class Stack:
    process: ServiceProcess
    receiver: PageReceiver
    receiver_url: str
    mailbox: Mailbox
    publisher: EventPublisher
    kafka: KafkaSettings

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.process.url, timeout=10) as client:
            response = await client.request(
                method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs
            )
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json() if response.content else None

    async def person(self, name: str, *, email: bool = False) -> None:
        await self.admin("PUT", f"/people/{name}", json={})
        contact = await self.admin(
            "POST",
            f"/people/{name}/contacts",
            json={"channel": "webhook", "address": f"{self.receiver_url}/hooks/{name}"},
        )
        self.receiver.secrets[name] = contact["secret"]
        if email:
            await self.admin(
                "POST",
                f"/people/{name}/contacts",
                json={"channel": "email", "address": f"{name}@example.test"},
            )

    async def schedule(self, name: str, tier: str, members: list[str]) -> None:
        layer = {"name": "primary", "members": members, "rotation": "weekly", "start": "2026-01-01"}
        await self.admin("PUT", f"/schedules/{name}", json={"tier": tier, "layers": [layer]})


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
async def stack(
    kafka_settings: KafkaSettings,
    database_url: str,
    tmp_path: Path,
    mailbox: tuple[Mailbox, int],
) -> AsyncIterator[Stack]:
    receiver = PageReceiver()
    box, smtp_port = mailbox
    policy = write_routing_policy(
        tmp_path,
        group_wait_seconds=0,
        routes=[
            {
                "name": "performance-decay",
                "match": {"kinds": ["metric_decay"]},
                "runbooks": ["rollback-model"],
                "tiers": FAST_TIERS,
            },
            {"name": "default", "runbooks": [], "tiers": FAST_TIERS},
        ],
    )
    process = ServiceProcess(
        ServiceName.INCIDENT_LOG,
        env=kafka_env(kafka_settings)
        | {
            "VIGIL_STATE_DIR": str(tmp_path / "state"),
            "VIGIL_INCIDENT_LOG_DATABASE_URL": database_url,
            "VIGIL_INCIDENT_LOG_POLICY_PATH": str(policy),
            "VIGIL_INCIDENT_LOG_ADMIN_TOKEN": ADMIN,
            "VIGIL_INCIDENT_LOG_TIMER_INTERVAL_S": "0.2",
            "VIGIL_INCIDENT_LOG_PAGE_RETRY_BASE_SECONDS": "0.5",
            "VIGIL_INCIDENT_LOG_PAGE_RETRY_CAP_SECONDS": "2",
            "VIGIL_INCIDENT_LOG_PAGES_PER_WINDOW": "1000",
            "VIGIL_INCIDENT_LOG_SMTP_HOST": "127.0.0.1",
            "VIGIL_INCIDENT_LOG_SMTP_PORT": str(smtp_port),
        },
        log_dir=tmp_path,
    )
    process.env["VIGIL_INCIDENT_LOG_PUBLIC_URL"] = process.url
    broker = kafka_broker(kafka_settings, client_id="test-publisher")
    await broker.connect()
    try:
        async with serving(receiver.app()) as url:
            process.start()
            await process.wait_ready()
            yield Stack(
                process, receiver, url, box, EventPublisher(broker, kafka_settings), kafka_settings
            )
    finally:
        process.ensure_dead()
        await broker.stop()


def decay(model: str = "breast-cancer", subject: str = "recall") -> Any:
    return make_alert(
        model=model, fingerprint=alert_fingerprint(model, 3, AlertKind.METRIC_DECAY, subject)
    )


@pytest.mark.timeout(120)
async def test_an_unacknowledged_incident_pages_each_tier_then_a_link_stops_the_reminders(
    stack: Stack,
) -> None:
    await stack.person("ana", email=True)
    await stack.person("bo")
    await stack.person("carol")
    await stack.schedule("ops", "L1", ["ana"])
    await stack.schedule("ds", "L2", ["bo"])
    owners = make_spec(owners=["carol"])
    await stack.publisher.publish(
        ModelRegistered(
            producer="retrainer",
            model="breast-cancer",
            record=make_version_record(version=3, spec=owners, incident_id=None),
        )
    )
    await stack.publisher.publish(decay())
    receiver = stack.receiver

    await receiver.wait_until(lambda: bool(receiver.pages_for("ana", "page")), 30)
    (l1,) = receiver.pages_for("ana", "page")
    assert l1.verified is True
    incident_id = l1.body["incident"]["id"]
    # Nobody acknowledges: six seconds later level two is paged, six more and the owners are.
    await receiver.wait_until(lambda: bool(receiver.pages_for("bo", "page")), 30)
    await receiver.wait_until(lambda: bool(receiver.pages_for("carol", "page")), 30)
    assert receiver.pages_for("carol", "page")[0].body["incident"]["tier"] == "L3"
    await receiver.wait_until(lambda: len(receiver.pages_for("carol", "reminder")) >= 1, 30)
    assert any(m["X-Test-Rcpt"] == "ana@example.test" for m in stack.mailbox.messages)

    async with httpx.AsyncClient(timeout=10) as client:
        link = receiver.pages_for("carol", "reminder")[-1].body["ack_url"]
        assert (await client.post(link)).status_code == 200
        assert (await client.post(link)).status_code == 410
    await receiver.wait_until(lambda: len(receiver.pages_for("ana", "acknowledged")) == 1, 30)
    await asyncio.sleep(6)  # two reminder intervals
    # Judged by the timeline (commit order), not by when reminders arrived: one that fell due
    # just before the link was followed may still be on its way when the link answers.
    timeline = await stack.admin("GET", f"/incidents/{incident_id}/timeline")
    actions = [entry["action"] for entry in timeline]
    acknowledged = actions.index("acknowledged")
    assert "reminder_due" not in actions[acknowledged:], actions
    due_to_carol = [
        entry
        for entry in timeline[:acknowledged]
        if entry["action"] == "reminder_due" and entry["details"]["tier"] == "L3"
    ]
    assert len(receiver.pages_for("carol", "reminder")) <= len(due_to_carol), actions

    await stack.admin(
        "POST", f"/incidents/{incident_id}/resolve", json={"reason": "fixed", "force": True}
    )
    await receiver.wait_until(
        lambda: (
            {a.hook for a in receiver.pages.values() if a.body["reason"] == "resolved"}
            == {"ana", "bo", "carol"}
        ),
        30,
    )
    assert receiver.refused == []
    assert receiver.duplicates() == 0
    published = [
        NotificationAttempted.model_validate_json(record.value)
        for record in await read_until_quiet(stack.kafka, Topic.NOTIFICATIONS, quiet_s=2.0)
    ]
    delivered = {p.idempotency_key for p in published if p.outcome is DeliveryOutcome.DELIVERED}
    assert delivered >= set(receiver.pages)


@pytest.mark.timeout(150)
async def test_a_kill_in_the_middle_of_deliveries_loses_no_page(stack: Stack) -> None:
    await stack.person("ana")
    await stack.schedule("ops", "L1", ["ana"])
    receiver = stack.receiver
    receiver.delay_s = 0.3  # deliveries stay in flight long enough to be cut
    await stack.publisher.publish_many(
        decay(model=f"model-{n}", subject=f"s{n}") for n in range(40)
    )
    await receiver.wait_until(lambda: len(receiver.arrivals) >= 5, 60)
    await stack.process.kill()
    arrived_before_kill = len(receiver.pages)
    stack.process.start()
    await stack.process.wait_ready()
    await receiver.wait_until(lambda: len(receiver.pages_for("ana", "page")) == 40, 90)
    assert arrived_before_kill < 40
    # At least once: a page in flight at the kill may arrive again, always under its own key.
    assert receiver.duplicates() <= 20  # the dispatcher's concurrency

    # A delivery cut by the kill stays `sending` until its lease ends, then goes again.
    async def statuses() -> list[str]:
        found = []
        for incident in await stack.admin("GET", "/incidents"):
            listed = await stack.admin("GET", f"/incidents/{incident['id']}/notifications")
            found += [n["status"] for n in listed]
        return found

    for _ in range(60):
        if await statuses() == ["delivered"] * 40:
            break
        await asyncio.sleep(1)
    assert await statuses() == ["delivered"] * 40
    assert set(receiver.pages) == {a.key for a in receiver.arrivals}
