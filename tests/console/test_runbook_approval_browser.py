"""A runbook run that needs approval, in a real browser: the requester sees it held and may only
withdraw it; a second person approves it with a button, and the signed request goes out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from contracts import RunbookRequest, Topic
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from services.runtime.request_signing import SigningKeys, verification_problem
from tests.console.test_browser import ARTIFACTS, browser, sign_in  # noqa: F401  # fixture
from tests.factories import TEST_SIGNING_KEY, make_alert
from tests.kafka_tools import distinct_events, read_until
from tests.processes import issue_tokens, running_incident_log

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ADMIN = "console-approval-admin"
CATALOG = Path(__file__).resolve().parents[1] / "runbook_runner" / "scripts" / "catalog.yaml"


@pytest.fixture
async def incident_log(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[str]:
    env = {
        "VIGIL_INCIDENT_LOG_CATALOG_PATH": str(CATALOG),
        "VIGIL_RUNBOOK_SIGNING_KEY": TEST_SIGNING_KEY,
    }
    async with running_incident_log(
        kafka_settings, tmp_path, admin_token=ADMIN, env=env
    ) as process:
        yield process.url


async def test_a_second_person_approves_a_held_run_in_the_console(
    incident_log: str,
    kafka_settings: KafkaSettings,
    browser: Browser,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tokens = await issue_tokens(incident_log, ADMIN, {"ann": "l2", "bo": "l2"})
    broker = kafka_broker(kafka_settings, client_id="console-approval")
    await broker.connect()
    await EventPublisher(broker, kafka_settings).publish(make_alert())
    await broker.stop()
    async with httpx.AsyncClient(
        base_url=incident_log, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as http:
        for _ in range(300):
            listed = (await http.get("/incidents")).json()
            if listed:
                break
            await asyncio.sleep(0.2)
    incident_id = listed[0]["id"]

    ann = await sign_in(browser, incident_log, tokens["ann"])
    await ann.goto(f"{incident_log}/console/incidents/{incident_id}")
    await ann.locator("#other-runbooks > summary").click()  # a decay alert: not its kind
    picked = ann.locator('#runbook-picker details[data-runbook="needs-approval"]')
    await picked.locator("summary").click()
    await picked.get_by_label("Reason").fill("clear the poisoned cache")
    await picked.get_by_role("button", name="Run needs-approval").click()
    await expect(ann.locator(".flash")).to_contain_text("waits for a second person's approval")
    held = ann.locator("#held-runs tr[data-run]")
    await expect(held).to_have_count(1)
    await expect(held).to_contain_text("pending")
    await expect(held).to_contain_text("a second person must approve it")
    await expect(held.get_by_role("button", name="Approve run")).to_have_count(0)
    await expect(held.get_by_role("button", name="Withdraw")).to_have_count(1)
    await ann.screenshot(path=ARTIFACTS / "20-run-held-for-approval.png", full_page=True)
    run_id = await held.get_attribute("data-run")
    assert run_id is not None

    bo = await sign_in(browser, incident_log, tokens["bo"])
    await bo.goto(f"{incident_log}/console/incidents/{incident_id}")
    row = bo.locator(f'#held-runs tr[data-run="{run_id}"]')
    await row.get_by_label("approval reason").fill("checked with ann")
    await row.get_by_role("button", name="Approve run").click()
    await expect(bo.locator(".flash")).to_contain_text(f"run {run_id}: approved")
    await expect(row).to_contain_text("approved by bo")
    approved = bo.locator('#timeline tr[data-action="runbook_approved"]')
    await expect(approved.locator(".actor")).to_have_text("bo")
    await bo.screenshot(path=ARTIFACTS / "21-run-approved.png", full_page=True)

    records = await read_until(
        kafka_settings,
        Topic.RUNBOOK_REQUESTS,
        lambda got: any(run_id.encode() in record.value for record in got),
        timeout_s=30,
    )
    (request,) = [
        request
        for request in (
            RunbookRequest.model_validate_json(r.value) for r in distinct_events(records)
        )
        if request.run_id == run_id
    ]
    assert (request.run_id, request.requested_by, request.approved_by) == (run_id, "ann", "bo")
    keys = SigningKeys.parse(TEST_SIGNING_KEY)
    assert verification_problem(request, keys, now=request.occurred_at) is None
