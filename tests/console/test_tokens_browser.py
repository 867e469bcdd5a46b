"""The console's Tokens page in a real browser: an admin creates a token (shown once, never in a
URL) and revokes another's; a person sees and revokes only their own, and a revoked token's
session ends on the next page; a service's token cannot sign in. Screenshots land in
``test-artifacts/console/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from services.runtime import KafkaSettings
from tests.console.test_browser import (  # noqa: F401  # browser: the fixture
    ARTIFACTS,
    browser,
    sign_in,
    token_for,
)
from tests.processes import running_incident_log

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

ADMIN = "console-admin-token"  # the one token_for issues with


@pytest.fixture
async def incident_log(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[str]:
    async with running_incident_log(kafka_settings, tmp_path, admin_token=ADMIN) as process:
        yield process.url


async def test_an_admin_creates_and_revokes_tokens_and_a_person_sees_only_their_own(
    incident_log: str,
    browser: Browser,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lee_token = await token_for(incident_log, "lee", "l1")
    admin = await sign_in(browser, incident_log, ADMIN)
    await admin.get_by_role("link", name="Tokens").click()
    await expect(admin.get_by_role("heading", name="API tokens")).to_be_visible()
    await expect(admin.locator("tr.token")).to_have_count(1)

    form = admin.locator("#create-token")
    await form.get_by_label("Owner").fill("kim")
    await form.locator("select[name=role]").select_option("l2")
    await form.get_by_label("Expires in").fill("7")
    await form.get_by_role("button", name="Create token").click()
    created = admin.locator("#new-token")
    await expect(created).to_be_visible()
    kim_token = (await created.inner_text()).strip()
    assert kim_token.startswith("vgl_")
    assert kim_token not in admin.url
    await expect(admin.locator("tr.token")).to_have_count(2)
    await admin.screenshot(path=ARTIFACTS / "10-token-created.png", full_page=True)

    kim = await sign_in(browser, incident_log, kim_token)
    await kim.get_by_role("link", name="Tokens").click()
    await expect(kim.get_by_role("heading", name="Your API tokens")).to_be_visible()
    await expect(kim.locator("tr.token")).to_have_count(1)
    await expect(kim.locator("tr.token td").first).to_have_text("kim")
    await expect(kim.locator("#create-token")).to_have_count(0)
    await kim.get_by_role("button", name="Revoke token").click()
    await expect(kim).to_have_url(f"{incident_log}/console/login")  # her session ended with it

    lee = await sign_in(browser, incident_log, lee_token)
    await admin.goto(f"{incident_log}/console/tokens")
    lee_row = admin.locator("tr.token", has_text="lee")
    await lee_row.get_by_role("button", name="Revoke token").click()
    await expect(admin.locator(".flash")).to_contain_text("revoked")
    await expect(admin.locator("tr.token[data-state=revoked]")).to_have_count(2)
    await admin.screenshot(path=ARTIFACTS / "11-tokens-revoked.png", full_page=True)
    await lee.goto(f"{incident_log}/console/")
    await expect(lee).to_have_url(f"{incident_log}/console/login")


async def test_a_services_token_cannot_sign_in(
    incident_log: str,
    browser: Browser,  # noqa: F811
) -> None:
    async with httpx.AsyncClient(base_url=incident_log) as http:
        created = await http.post(
            "/tokens",
            json={"name": "drift-detector", "scopes": ["datasets:read"]},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
    page = await browser.new_page()
    await page.goto(f"{incident_log}/console/login")
    await page.get_by_label("API token").fill(created.json()["token"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".flash")).to_contain_text("a service's token cannot sign in")
