"""Model approval in the console, in a real browser: level one sees no approve control and the API
refuses it; level two approves. The incident log and the retrainer run as processes on the real
broker; the candidate comes from a real retrain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from contracts import AlertKind, alert_fingerprint
from services.runtime import EventPublisher, KafkaSettings, kafka_broker
from tests.console.test_browser import ARTIFACTS, browser, sign_in  # noqa: F401  # fixture
from tests.factories import make_alert
from tests.model_builders import train
from tests.registry_tools import bearer, deploy, register
from tests.retrainer.retrainer_harness import governed_processes
from tests.retrainer.retraining_data import SPEC

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ADMIN = "approval-admin"
MODEL = "breast-cancer"


@pytest.fixture
async def stack(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    people = {"ana": "l2", "lee": "l1", "kim": "l2"}
    async with governed_processes(
        kafka_settings, tmp_path, admin_token=ADMIN, people=people, gate_resamples=300
    ) as running:
        yield {
            "incident_log": running.incident_log.url,
            "retrainer": running.retrainer.url,
            "tokens": running.tokens,
        }


async def pending_promotion(stack: dict[str, Any], kafka: KafkaSettings) -> tuple[str, str]:
    """An incident about the model, a retrain asked by ana (level two), and its pending request."""
    broker = kafka_broker(kafka, client_id="approval-test")
    await broker.connect()
    kind = AlertKind.DATA_DRIFT
    await EventPublisher(broker, kafka).publish(
        make_alert(model_version=1, kind=kind, fingerprint=alert_fingerprint(MODEL, 1, kind, "x"))
    )
    await broker.stop()
    ana = {"Authorization": f"Bearer {stack['tokens']['ana']}"}
    async with (
        httpx.AsyncClient(base_url=stack["incident_log"], headers=ana) as incidents,
        httpx.AsyncClient(base_url=stack["retrainer"], headers=ana) as retrainer,
    ):
        for _ in range(150):
            listed = (await incidents.get("/incidents")).json()
            if listed:
                break
            await asyncio.sleep(0.2)
        incident_id = listed[0]["id"]
        asked = await incidents.post(f"/incidents/{incident_id}/retrain", json={"reason": "drift"})
        assert asked.status_code == 200, asked.text
        for _ in range(600):
            found = (await retrainer.get("/promotions", params={"incident_id": incident_id})).json()
            if found and found[0]["state"] == "pending":
                return incident_id, str(found[0]["request_id"])
            await asyncio.sleep(0.2)
    raise AssertionError("no promotion request came from the retrain")


async def test_level_one_cannot_approve_a_model_and_level_two_can(
    stack: dict[str, Any],
    kafka_settings: KafkaSettings,
    browser: Browser,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    incident_id, request_id = await pending_promotion(stack, kafka_settings)

    level_one = await sign_in(browser, stack["incident_log"], stack["tokens"]["lee"])
    await level_one.goto(f"{stack['incident_log']}/console/incidents/{incident_id}")
    row = level_one.locator(f'tr[data-request="{request_id}"]')
    await expect(row).to_contain_text("awaiting level two")
    await expect(row.get_by_role("button", name="Approve")).to_have_count(0)
    await level_one.screenshot(path=ARTIFACTS / "10-level-one-sees-no-approval.png", full_page=True)
    async with httpx.AsyncClient(base_url=stack["retrainer"]) as http:
        refused = await http.post(
            f"/promotions/{request_id}/approve",
            json={"comment": "looks fine"},
            headers={"Authorization": f"Bearer {stack['tokens']['lee']}"},
        )
    assert refused.status_code == 403

    level_two = await sign_in(browser, stack["incident_log"], stack["tokens"]["kim"])
    await level_two.goto(f"{stack['incident_log']}/console/incidents/{incident_id}")
    row = level_two.locator(f'tr[data-request="{request_id}"]')
    await row.get_by_label("approval comment").fill("gate figures reviewed")
    await row.get_by_role("button", name="Approve").click()
    await expect(level_two.locator(".flash")).to_contain_text("approve: done")
    await expect(level_two.locator(f'tr[data-request="{request_id}"]')).to_contain_text("approved")
    await level_two.screenshot(path=ARTIFACTS / "11-level-two-approved.png", full_page=True)


async def test_level_two_rolls_a_model_back_from_the_models_page_as_themselves(
    stack: dict[str, Any],
    browser: Browser,  # noqa: F811
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ana = bearer(stack["tokens"]["ana"])
    async with httpx.AsyncClient(base_url=stack["retrainer"]) as http:
        response = await register(
            http, MODEL, train(c=0.5), headers=ana, spec=SPEC.model_dump(mode="json")
        )
        assert response.status_code == 201, response.text
        assert (await deploy(http, MODEL, 2, headers=ana)).status_code == 200

    level_one = await sign_in(browser, stack["incident_log"], stack["tokens"]["lee"])
    await level_one.goto(f"{stack['incident_log']}/console/models")
    model = level_one.get_by_role("region", name=MODEL)
    await expect(model).to_contain_text("champion v2")
    await expect(model.get_by_role("button", name="Roll back one step")).to_have_count(0)

    level_two = await sign_in(browser, stack["incident_log"], stack["tokens"]["kim"])
    await level_two.goto(f"{stack['incident_log']}/console/models")
    model = level_two.get_by_role("region", name=MODEL)
    await model.get_by_label("rollback reason").fill("recall fell after v2")
    await model.get_by_role("button", name="Roll back one step").click()
    await expect(level_two.locator(".flash")).to_contain_text(f"{MODEL}: rolled back one step")
    model = level_two.get_by_role("region", name=MODEL)
    await expect(model).to_contain_text("champion v1")
    await level_two.screenshot(path=ARTIFACTS / "12-level-two-rolled-back.png", full_page=True)
    async with httpx.AsyncClient(base_url=stack["retrainer"]) as http:
        latest = (await http.get(f"/models/{MODEL}/history")).json()["revisions"][-1]
    assert (latest["action"], latest["actor"], latest["reason"]) == (
        "rolled_back",
        "kim",
        "recall fell after v2",
    )
