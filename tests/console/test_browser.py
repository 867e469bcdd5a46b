"""The on-call console in a real browser (Debian's Chromium, headless, driven by Playwright).

Screenshots land in ``test-artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.factories import make_alert
from tests.processes import issue_tokens, running_incident_log

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
ADMIN = "console-admin-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def incident_log(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[str]:
    async with running_incident_log(kafka_settings, tmp_path, admin_token=ADMIN) as process:
        yield process.url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def token_for(url: str, name: str, role: str) -> str:
    return (await issue_tokens(url, ADMIN, {name: role}))[name]


async def sign_in(browser: Browser, url: str, token: str) -> Page:
    page = await browser.new_page()
    await page.goto(f"{url}/console/")
    await expect(page).to_have_url(f"{url}/console/login")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{url}/console/")
    return page


async def test_an_alert_appears_live_and_level_one_acknowledges_and_comments(
    incident_log: str, kafka_settings: KafkaSettings, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await sign_in(browser, incident_log, await token_for(incident_log, "lee", "l1"))
    await expect(page.locator("#who")).to_have_text("lee")
    await expect(page.locator("tr[data-incident]")).to_have_count(0)
    await page.screenshot(path=ARTIFACTS / "01-empty.png", full_page=True)

    broker = kafka_broker(kafka_settings, client_id="console-test")
    await broker.connect()
    await EventPublisher(broker, kafka_settings).publish(make_alert())
    await broker.stop()

    row = page.locator("tr[data-incident]")
    await expect(row).to_have_count(1, timeout=30_000)  # no reload: the change feed updated it
    await page.screenshot(path=ARTIFACTS / "02-incident-appeared.png", full_page=True)
    await row.get_by_role("link").click()

    await page.get_by_role("button", name="Acknowledge").click()
    await expect(page.locator(".flash")).to_contain_text("acknowledge: done")
    await expect(page.locator("#status")).to_have_text("acknowledged")
    await page.get_by_label("Comment").fill("checking the scorer's inputs")
    await page.get_by_role("button", name="Add comment").click()
    await expect(page.locator(".flash")).to_contain_text("comment: done")

    acknowledged = page.locator('#timeline tr[data-action="acknowledged"]')
    commented = page.locator('#timeline tr[data-action="commented"]')
    await expect(acknowledged.locator(".actor")).to_have_text("lee")
    await expect(commented.locator(".actor")).to_have_text("lee")
    await expect(commented).to_contain_text("checking the scorer's inputs")
    await page.screenshot(path=ARTIFACTS / "03-acknowledged-and-commented.png", full_page=True)

    # Level one sees no control for level-two work.
    await expect(page.get_by_role("button", name="Request retrain")).to_have_count(0)
    await expect(page.get_by_role("button", name="Run")).to_have_count(0)


async def test_the_console_reads_without_javascript_and_refuses_a_bad_token(
    incident_log: str, browser: Browser
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{incident_log}/console/login")
    await page.get_by_label("API token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".flash")).to_contain_text("unknown, revoked or expired token")
    await page.get_by_label("API token").fill(await token_for(incident_log, "vic", "viewer"))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Incidents")).to_be_visible()
    await page.get_by_role("link", name="Stats").click()
    await expect(page.get_by_role("heading", name="Response statistics")).to_be_visible()
    await asyncio.sleep(0)
    await context.close()


async def test_the_on_call_page_shows_who_is_on_call_and_an_incident_shows_its_pages(
    incident_log: str, kafka_settings: KafkaSettings, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=incident_log, headers=admin) as api:
        for person in ("olivia", "dana"):
            (await api.put(f"/people/{person}", json={})).raise_for_status()
        # olivia's webhook answers nothing: her page shows as retrying, with the reason.
        contact = {"channel": "webhook", "address": "http://127.0.0.1:9/unreachable"}
        (await api.post("/people/olivia/contacts", json=contact)).raise_for_status()
        for name, tier, person in (("operations", "L1", "olivia"), ("data-science", "L2", "dana")):
            layer = {"name": "primary", "members": [person], "start": "2026-01-01"}
            schedule = {"tier": tier, "layers": [layer]}
            (await api.put(f"/schedules/{name}", json=schedule)).raise_for_status()
    page = await sign_in(browser, incident_log, await token_for(incident_log, "lee", "l1"))
    await page.get_by_role("link", name="On call").click()
    await expect(page.locator("tr[data-schedule='operations'] .person")).to_have_text("olivia")
    await expect(page.locator("tr[data-schedule='data-science'] .person")).to_have_text("dana")
    await page.screenshot(path=ARTIFACTS / "10-on-call.png", full_page=True)

    broker = kafka_broker(kafka_settings, client_id="console-test")
    await broker.connect()
    await EventPublisher(broker, kafka_settings).publish(make_alert())
    await broker.stop()
    await page.get_by_role("link", name="Incidents").click()
    await page.locator("tr[data-incident] a").first.click()
    row = page.locator("#pages tr.page").first
    await expect(row).to_contain_text("olivia", timeout=20_000)
    await expect(row).to_contain_text("retrying", timeout=20_000)
    await page.screenshot(path=ARTIFACTS / "11-incident-pages.png", full_page=True)


async def test_an_admin_manages_people_in_the_console_and_others_cannot(
    incident_log: str, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await sign_in(browser, incident_log, ADMIN)
    await page.get_by_role("link", name="People").click()
    await page.get_by_label("Name (as their API token carries it)").fill("zoe")
    await page.get_by_label("Display name").fill("Zoe Z")
    await page.get_by_role("button", name="Add person").click()
    await expect(page.locator(".flash")).to_contain_text("zoe saved")
    row = page.locator("tr[data-person='zoe']")
    await row.get_by_label("Address").fill("http://127.0.0.1:9/hooks/zoe")
    await row.get_by_role("button", name="Add contact").click()
    await expect(page.locator(".flash")).to_contain_text("signing secret (shown once): whsec_")
    await expect(page.locator("tr[data-person='zoe'] li.contact")).to_contain_text("webhook")
    await row.get_by_label("Address").fill("not-an-address")
    await row.get_by_label("Channel").select_option("email")
    await row.get_by_role("button", name="Add contact").click()
    await expect(page.locator(".flash")).to_contain_text("e-mail address")
    await page.screenshot(path=ARTIFACTS / "12-people.png", full_page=True)

    other = await sign_in(browser, incident_log, await token_for(incident_log, "lee", "l2"))
    await other.get_by_role("link", name="People").click()
    await expect(other.locator("main")).to_contain_text("needs the admin role")
    await expect(other.locator("#people")).to_have_count(0)
