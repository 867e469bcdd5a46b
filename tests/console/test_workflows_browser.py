"""The on-call workflows in a real browser: opening an incident by hand, the runbook picker's
typed fields (checked in the browser, then by the server), the post-incident review with its
action items, and the statistics tables. Screenshots land in ``test-artifacts/console/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from services.runtime import KafkaSettings
from tests.console.test_browser import ARTIFACTS, browser, sign_in  # noqa: F401  # fixture
from tests.factories import TEST_SIGNING_KEY
from tests.processes import issue_tokens, running_incident_log

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ADMIN = "console-workflows-admin"
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


async def api_get(url: str, path: str) -> Any:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}
    ) as http:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


async def open_by_hand(page: Page, url: str) -> str:
    await page.get_by_role("link", name="Open an incident by hand").click()
    await expect(page).to_have_url(f"{url}/console/new-incident")
    form = page.locator("#new-incident")
    await form.get_by_label("Model").fill("Not A Model!")
    await form.get_by_label("Summary").fill("answers look inverted since noon")
    await form.get_by_role("button", name="Open incident").click()
    # The browser itself refuses the pattern: nothing was sent.
    await expect(page).to_have_url(f"{url}/console/new-incident")
    assert await form.get_by_label("Model").evaluate("e => e.validity.patternMismatch")
    await form.get_by_label("Model").fill("breast-cancer")
    await form.get_by_label("Version (optional)").fill("3")
    await form.get_by_label("Severity").select_option("critical")
    await form.get_by_label("Details (optional)").fill("a clinician reported three inversions")
    await page.screenshot(path=ARTIFACTS / "30-open-incident-form.png", full_page=True)
    await form.get_by_role("button", name="Open incident").click()
    await expect(page.locator(".flash")).to_contain_text("opened")
    incident_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    assert incident_id.startswith("inc-")
    return incident_id


async def test_an_incident_opened_by_hand_gets_a_typed_runbook_a_review_and_stats(
    incident_log: str,
    browser: Browser,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tokens = await issue_tokens(incident_log, ADMIN, {"lee": "l1", "kim": "l2"})

    # Level one opens an incident by hand.
    lee = await sign_in(browser, incident_log, tokens["lee"])
    incident_id = await open_by_hand(lee, incident_log)
    await expect(lee.locator("#signals")).to_contain_text("manual")
    await lee.screenshot(path=ARTIFACTS / "31-incident-opened-by-hand.png", full_page=True)
    detail = await api_get(incident_log, f"/incidents/{incident_id}")
    assert (detail["kind"], detail["severity"], detail["model_version"]) == (
        "manual",
        "critical",
        3,
    )
    assert detail["signals"][0]["evidence"]["reported_by"] == "lee"
    await expect(lee.locator("#runbook-picker")).to_have_count(0)  # runbooks need level two

    # Level two picks a runbook for the incident's kind, with typed fields.
    kim = await sign_in(browser, incident_log, tokens["kim"])
    await kim.goto(f"{incident_log}/console/incidents/{incident_id}")
    picker = kim.locator("#runbook-picker")
    typed = picker.locator('details[data-runbook="typed"]')
    await expect(typed).to_have_count(1)
    await expect(picker.locator("#other-runbooks details[data-runbook='passes']")).to_have_count(1)
    await typed.locator("summary").click()
    await expect(typed.get_by_label("mode")).to_have_value("safe")  # the catalogue's default
    options = await typed.get_by_label("mode").locator("option").all_inner_texts()
    assert options == ["fast", "safe"]
    assert await typed.get_by_label("threshold (required)").get_attribute("max") == "1.0"
    await typed.get_by_label("mode").select_option("fast")
    await typed.get_by_label("threshold (required)").fill("0.5")
    await typed.get_by_label("dry_run").select_option("true")
    await typed.get_by_label("ticket (required)").fill("ops-12")
    await typed.get_by_label("Reason").fill("check the threshold")
    await typed.get_by_role("button", name="Run typed").click()
    ticket = typed.get_by_label("ticket (required)")
    assert await ticket.evaluate("e => e.validity.patternMismatch")  # refused before submit
    await kim.screenshot(path=ARTIFACTS / "32-runbook-picker-pattern-refused.png", full_page=True)

    # Past the browser's check, the server refuses the same value.
    await typed.locator("form").evaluate("f => f.noValidate = true")
    await typed.get_by_role("button", name="Run typed").click()
    await expect(kim.locator(".flash.error")).to_contain_text("does not match")
    timeline = await api_get(incident_log, f"/incidents/{incident_id}/timeline")
    assert not [e for e in timeline if e["action"] == "runbook_requested"]

    typed = kim.locator('#runbook-picker details[data-runbook="typed"]')
    await typed.locator("summary").click()
    await typed.get_by_label("mode").select_option("fast")
    await typed.get_by_label("threshold (required)").fill("0.5")
    await typed.get_by_label("dry_run").select_option("true")
    await typed.get_by_label("ticket (required)").fill("OPS-12")
    await typed.get_by_label("Reason").fill("check the threshold")
    await typed.get_by_role("button", name="Run typed").click()
    await expect(kim.locator(".flash.ok")).to_contain_text("runbooks: done")
    await expect(kim.locator('#timeline tr[data-action="runbook_requested"]')).to_have_count(1)
    await kim.screenshot(path=ARTIFACTS / "33-runbook-requested.png", full_page=True)
    timeline = await api_get(incident_log, f"/incidents/{incident_id}/timeline")
    (requested,) = [e for e in timeline if e["action"] == "runbook_requested"]
    assert requested["details"]["parameters"] == {
        "mode": "fast",
        "threshold": 0.5,
        "dry_run": True,
        "ticket": "OPS-12",
    }
    assert requested["actor"] == "kim"

    # The manual incident went to L2 (no level-one runbook answers it): kim acknowledges and
    # resolves it, then writes the review's action items.
    await kim.get_by_role("button", name="Acknowledge").click()
    await expect(kim.locator(".flash.ok")).to_contain_text("acknowledge: done")
    await kim.get_by_label("Resolve: reason").fill("the upstream feature was fixed")
    await kim.get_by_role("button", name="Resolve").click()
    await expect(kim.locator("#status")).to_have_text("resolved")

    await kim.get_by_role("link", name="Post-incident review").click()
    await expect(kim.locator("h1")).to_contain_text(incident_id)
    await expect(kim.locator('#review-tiers tr[data-tier="L2"] .mtta')).to_contain_text("min")
    await expect(kim.locator('#review-tiers tr[data-tier="L2"] .mttr')).to_contain_text("min")
    await expect(kim.locator('#review-decisions tr[data-action="resolved"]')).to_contain_text("kim")
    await expect(kim.locator("#review-runbooks")).to_contain_text("typed")
    await kim.get_by_label("Action items (Markdown)").fill("- [ ] alert on inverted answers")
    await kim.get_by_role("button", name="Save action items").click()
    await expect(kim.locator(".flash.ok")).to_contain_text("action items saved (version 1)")
    await expect(kim.get_by_label("Action items (Markdown)", exact=False)).to_have_value(
        "- [ ] alert on inverted answers"
    )
    await kim.screenshot(path=ARTIFACTS / "34-post-incident-review.png", full_page=True)
    review = await api_get(incident_log, f"/incidents/{incident_id}/review")
    assert review["version"] == 1
    assert review["markdown"].rstrip().endswith("- [ ] alert on inverted answers")
    shown = await kim.locator("#review-markdown").text_content()
    assert shown == review["markdown"]  # the console shows the API's own document

    # A second editor who loaded version 0 cannot overwrite version 1 unseen.
    lee_review = f"{incident_log}/console/incidents/{incident_id}/review"
    await lee.goto(lee_review)
    await lee.evaluate("document.querySelector('input[name=version]').value = '0'")
    await lee.get_by_label("Action items (Markdown)").fill("mine")
    await lee.get_by_role("button", name="Save action items").click()
    await expect(lee.locator(".flash.error")).to_contain_text("at version 1")

    # The statistics page shows the incident in today's bucket and per tier.
    await kim.get_by_role("link", name="Stats").click()
    today = kim.locator("#stats-over-time tbody tr").last
    await expect(today.locator("td").first).to_have_text("1")
    await expect(today.locator(".mttr-L2")).to_contain_text("min")
    await kim.get_by_label("Bucket", exact=True).select_option("hour")
    await kim.get_by_role("button", name="Show").click()
    await expect(kim).to_have_url(f"{incident_log}/console/stats?bucket=hour")
    await expect(kim.locator("#stats-over-time tbody tr").last.locator("td").first).to_have_text(
        "1"
    )
    await kim.screenshot(path=ARTIFACTS / "35-stats-over-time.png", full_page=True)
