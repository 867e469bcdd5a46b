"""The on-call workflows in a real browser: opening an incident by hand, the runbook picker's
typed fields (checked in the browser, then by the server), the post-incident review with its
action items, and the statistics tables and charts (their numbers those ``vigil incidents stats
--json`` prints). Screenshots land in ``test-artifacts/console/``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from contracts import RunbookFinished, RunState
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.console.test_browser import ARTIFACTS, browser, sign_in  # noqa: F401  # fixture
from tests.console.test_charts_browser import axe_violations, numbers
from tests.factories import TEST_SIGNING_KEY
from tests.processes import issue_tokens, running_incident_log

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ADMIN = "console-workflows-admin"
CATALOG = Path(__file__).resolve().parents[1] / "runbook_runner" / "scripts" / "catalog.yaml"
ROOT = Path(__file__).resolve().parents[2]


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
    await expect(kim).to_have_url(f"{incident_log}/console/stats?bucket=hour&by=tier")
    await expect(kim.locator("#stats-over-time tbody tr").last.locator("td").first).to_have_text(
        "1"
    )
    await kim.screenshot(path=ARTIFACTS / "35-stats-over-time.png", full_page=True)


async def vigil_json(*args: str) -> Any:
    """What ``vigil ARGS --json`` prints, run as a person runs it, in its own process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli import main; main()",
        *args,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, args
    return json.loads(stdout)


def run_finished(incident: str, run: str, runbook: str, state: RunState) -> RunbookFinished:
    return RunbookFinished(
        producer="runbook-runner",
        run_id=run,
        incident_id=incident,
        model="breast-cancer",
        runbook=runbook,
        state=state,
        exit_code=0,
        verify_exit_code=1 if state is RunState.VERIFY_FAILED else 0,
    )


def per_bucket(buckets: list[dict[str, Any]], group: str, field: str) -> list[float | None]:
    """A line chart's numbers, bucket by bucket, a column per group key (sorted)."""
    keys = sorted({key for b in buckets for key in b["stats"][group]})
    return [(b["stats"][group].get(key) or {}).get(field) for b in buckets for key in keys]


async def test_the_stats_charts_draw_what_vigil_incidents_stats_prints(
    incident_log: str,
    kafka_settings: KafkaSettings,
    browser: Browser,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=incident_log, headers=headers) as http:
        opened = []
        for model in ("breast-cancer", "churn"):
            body = {"model": model, "severity": "warning", "summary": f"{model} looks odd"}
            answer = await http.post("/incidents", json=body)
            assert answer.status_code in (200, 201), answer.text
            opened.append(answer.json()["id"])
        broker = kafka_broker(kafka_settings, client_id="stats-charts-test")
        await broker.connect()
        await EventPublisher(broker, kafka_settings).publish_many(
            [
                run_finished(opened[0], "r1", "rollback-model", RunState.SUCCEEDED),
                run_finished(opened[1], "r2", "rollback-model", RunState.VERIFY_FAILED),
                run_finished(opened[1], "r3", "restart-scorer", RunState.SUCCEEDED),
            ]
        )
        await broker.stop()
        for _ in range(300):
            runbooks = (await http.get("/stats")).json()["runbooks"]
            if sum(r["runs"] for r in runbooks.values()) == 3:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the runbook results never arrived: {runbooks}")
        steps: list[tuple[str, dict[str, Any]]] = [
            ("acknowledge", {}),
            ("resolve", {"reason": "ok", "force": True}),
        ]
        for step, body in steps:  # the first is resolved, the second stays open
            answer = await http.post(f"/incidents/{opened[0]}/{step}", json=body)
            assert answer.status_code == 200, answer.text

    cli = ("incidents", "stats", "--url", incident_log, "--token", ADMIN)
    page = await sign_in(browser, incident_log, ADMIN)
    for _ in range(2):  # an hour may turn between the CLI and the page: then look again
        before = await vigil_json(*cli, "--bucket", "hour")
        await page.goto(f"{incident_log}/console/stats?bucket=hour&by=tier")
        figures = await vigil_json(*cli)
        if await vigil_json(*cli, "--bucket", "hour") == before:
            break
    buckets = before
    assert figures["by_model"].keys() == {"breast-cancer", "churn"}

    charts = page.locator("#response-time-charts figure.line-chart")
    await expect(charts).to_have_count(2)
    mtta, mttr = charts.nth(0), charts.nth(1)
    await expect(mtta.locator("figcaption")).to_have_text("MTTA over time, per tier (seconds)")
    assert await numbers(mtta) == per_bucket(buckets, "by_tier", "mtta_seconds")
    assert await numbers(mttr) == per_bucket(buckets, "by_tier", "mttr_seconds")
    assert any(v is not None for v in await numbers(mttr))  # one was resolved: a real figure
    share = page.locator("#l1-chart figure.line-chart")
    assert await numbers(share) == [b["stats"]["share_resolved_at_l1"] for b in buckets]
    bars = page.locator("#runbook-charts figure.bar-chart")
    await expect(bars).to_have_count(2)
    success, verification = bars.nth(0), bars.nth(1)
    names = sorted(figures["runbooks"])
    assert names == ["restart-scorer", "rollback-model"]
    assert await numbers(success) == [figures["runbooks"][n]["success_rate"] for n in names]
    assert await numbers(verification) == [
        figures["runbooks"][n]["verification_rate"] for n in names
    ]
    assert await numbers(success) == [1.0, 0.5]
    assert not await axe_violations(page)
    await page.screenshot(path=ARTIFACTS / "36-stats-charts.png", full_page=True)

    # The same figures per model, chosen on the page.
    await page.get_by_label("MTTA and MTTR per").select_option("model")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#response-time-charts")).to_have_attribute("data-by", "model")
    mtta = page.locator("#response-time-charts figure.line-chart").first
    await expect(mtta.locator("figcaption")).to_have_text("MTTA over time, per model (seconds)")
    assert await numbers(mtta) == per_bucket(buckets, "by_model", "mtta_seconds")
    assert not await axe_violations(page)
    await page.screenshot(path=ARTIFACTS / "37-stats-charts-per-model.png", full_page=True)

    # Choices the form does not offer fall back to the defaults, not an error page.
    for query in ("by=%3Cscript%3E&bucket=NaN", "by=&bucket=", "by=" + "x" * 10_000):
        response = await page.goto(f"{incident_log}/console/stats?{query}")
        assert response is not None
        assert response.status == 200, query
        await expect(page.locator("#response-time-charts")).to_have_attribute("data-by", "tier")
        await expect(page.get_by_label("Bucket", exact=True)).to_have_value("day")
