"""The console's charts in a real browser (Debian's Chromium, headless, driven by Playwright).

A real monitor service (real database, fed a stream in which recall falls) serves its real API
on loopback; a real registry holds the model; the incident log runs as a process on the test's
broker and receives the alerts the monitor raised plus a drift alert. The pages then must show
the recall fall, the drifted features and the champion-challenger comparison as charts whose
numbers are the monitor's API's numbers (the same API ``vigil series`` prints), and every console
page must pass axe-core with no serious or critical violation.

Screenshots land in ``test-artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from playwright.async_api import Browser, Locator, Page, expect

from contracts import AlertKind, AlertRaised, Severity, alert_fingerprint
from services.incident_log.console import build_console
from services.monitor.api import install_monitor_api
from services.monitor.domain import MonitorPolicy
from services.monitor.migrations import HISTORY as MONITOR_HISTORY
from services.monitor.service import MonitorService
from services.monitor.windows import WindowPolicy
from services.runtime import (
    EventPublisher,
    KafkaSettings,
    OutboxRelay,
    RegistryClient,
    create_engine,
    kafka_broker,
    session_factory,
)
from services.runtime.migrations import migrate
from tests.console.pages import NOT_PAGES, PAGES
from tests.console.test_browser import ARTIFACTS, sign_in
from tests.console.test_browser import browser as browser  # the fixture
from tests.factories import MODEL, T0, make_deployment, make_version_record
from tests.model_builders import train
from tests.monitor.doubles import FakeRegistry, FakeScorer, serving
from tests.monitor.replay import feed
from tests.monitor.streams import champion_with_a_challenger
from tests.processes import issue_tokens, running_incident_log
from tests.publishers import RecordingPublisher
from tests.registry_tools import deploy, register, registry

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ADMIN = "charts-admin-token"
ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SVG_NUMBERS = "figure.chart td[data-value]"


@dataclass
class World:
    url: str
    monitor_url: str
    incident: str
    series: dict[str, Any]


async def recall_falls(tmp_path: Path, stack: AsyncExitStack) -> tuple[MonitorService, list[Any]]:
    """A real monitor service that has seen champion v1's recall fall from 1.0 to 0.7 and come
    back, while challenger v2 ran at 0.85; returns it and what it published."""
    engine = create_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    stack.push_async_callback(engine.dispose)
    await migrate(engine, MONITOR_HISTORY)
    sessions = session_factory(engine)
    doubles = (
        FakeRegistry()
        .add(make_version_record(version=1), make_version_record(version=2))
        .deploy(MODEL, make_deployment())
    )
    registry_http = httpx.AsyncClient(transport=doubles.transport())
    scorer_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=FakeScorer().app()))
    stack.push_async_callback(registry_http.aclose)
    stack.push_async_callback(scorer_http.aclose)
    published = RecordingPublisher()
    service = MonitorService(
        MonitorPolicy(
            window=WindowPolicy(max_events=100, span=None),
            min_labelled=20,
            min_predictions=20,
            comparison_min_samples=100,
            future_tolerance=timedelta(hours=1),
        ),
        sessions=sessions,
        relay=OutboxRelay(sessions, published),
        registry=RegistryClient(registry_http, "http://registry"),
        scorer=scorer_http,
        scorer_url="http://scorer",
        clock=lambda: T0,
    )
    await service.start()
    await service.load_deployments()
    events = champion_with_a_challenger()
    await feed(service, events)
    return service, published.events


def drift_alert() -> AlertRaised:
    """A drift alert as the drift detector words it (reporting._raise_evidence)."""

    def feature(effect: float, p: float, current: list[float]) -> dict[str, Any]:
        return {
            "reasons": ["distribution"],
            "checks": [
                {
                    "check": "distribution",
                    "test": "cramervonmises",
                    "statistic": 3.1,
                    "p_value": p / 10,
                    "adjusted_p_value": p,
                    "effect_size": effect,
                    "effect_measure": "wasserstein / reference std",
                    "effect_floor": 0.1,
                }
            ],
            "missing_rate_reference": 0.0,
            "missing_rate_current": 0.0,
            "new_categories": [],
            "psi": 0.4,
            "bins": {
                "edges": [6.9, 10.2, 11.0, 11.7, 12.3, 13.1, 13.9, 15.0, 16.9, 19.5, 28.1],
                "reference": [0.1] * 10,
                "current": current,
            },
        }

    return AlertRaised(
        producer="drift-detector",
        model=MODEL,
        model_version=1,
        kind=AlertKind.DATA_DRIFT,
        severity=Severity.WARNING,
        fingerprint=alert_fingerprint(MODEL, 1, AlertKind.DATA_DRIFT, "features"),
        summary=f"data drift in {MODEL} v1: mean radius, mean texture",
        evidence={
            "drivers": ["mean radius", "mean texture"],
            "rows": 500,
            "hypotheses": 4,
            "alpha": 0.01,
            "correction": "bonferroni",
            "features": {
                "mean radius": feature(
                    0.62, 1e-9, [0.0, 0.02, 0.03, 0.05, 0.05, 0.1, 0.15, 0.2, 0.2, 0.2]
                ),
                "mean texture": feature(0.18, 2e-4, [0.05, 0.05] + [0.1] * 6 + [0.15, 0.15]),
            },
        },
    )


@pytest.fixture
async def world(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        monitor, published = await recall_falls(tmp_path, stack)
        app = FastAPI()
        install_monitor_api(app, monitor)
        monitor_url = await stack.enter_async_context(serving(app))
        models = await stack.enter_async_context(registry(f"sqlite:///{tmp_path / 'registry.db'}"))
        registry_url = await stack.enter_async_context(serving(models.app))
        async with httpx.AsyncClient(base_url=registry_url, timeout=60) as http:
            (
                await register(http, MODEL, train(), reason="first model of the demo")
            ).raise_for_status()
            (await deploy(http, MODEL, 1)).raise_for_status()
        process = await stack.enter_async_context(
            running_incident_log(
                kafka_settings,
                tmp_path,
                admin_token=ADMIN,
                env={"VIGIL_MONITOR_URL": monitor_url, "VIGIL_REGISTRY_URL": registry_url},
            )
        )
        now = datetime.now(UTC)
        alerts = [e for e in published if isinstance(e, AlertRaised)] + [drift_alert()]
        broker = kafka_broker(kafka_settings, client_id="charts-test")
        await broker.connect()
        await EventPublisher(broker, kafka_settings).publish_many(
            [a.model_copy(update={"occurred_at": now}) for a in alerts]
        )
        await broker.stop()
        recall = alert_fingerprint(MODEL, 1, AlertKind.METRIC_DECAY, "recall")
        incident = await incident_with(process.url, recall)
        async with httpx.AsyncClient(base_url=monitor_url) as http:
            series = (await http.get(f"/series/{MODEL}")).json()
        yield World(process.url, monitor_url, incident, series)


async def incident_with(url: str, fingerprint: str) -> str:
    """The incident holding ``fingerprint``'s signal, once the drift signal joined it too."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:
        for _ in range(300):
            for item in (await http.get("/incidents")).json():
                detail = (await http.get(f"/incidents/{item['id']}")).json()
                kinds = {s["fingerprint"]: s["kind"] for s in detail["signals"]}
                if fingerprint in kinds and "data_drift" in kinds.values():
                    return str(item["id"])
            await _pause()
    raise AssertionError(f"no incident with {fingerprint} and a drift signal")


async def _pause() -> None:
    await asyncio.sleep(0.2)


async def numbers(figure: Locator) -> list[float | None]:
    """The exact numbers of one chart's text alternative, row by row."""
    cells = figure.locator("td[data-value]")
    found = await cells.evaluate_all("cells => cells.map(c => c.dataset.value)")
    return [None if v == "" else float(v) for v in found]


async def first_series(figure: Locator) -> list[float | None]:
    """The numbers of a line chart's first series (the realised metric; an estimate drawn
    beside it is the next column), row by row."""
    cells = figure.locator("tbody td[data-value]:first-of-type")
    found = await cells.evaluate_all("cells => cells.map(c => c.dataset.value)")
    return [None if v == "" else float(v) for v in found]


def recall_of(series: dict[str, Any], version: int, variant: str) -> list[float | None]:
    return [
        w["metrics"].get("recall")
        for w in series["windows"]
        if w["version"] == version and w["variant"] == variant
    ]


async def test_the_incident_page_shows_the_recall_fall_the_drift_and_the_comparison(
    world: World, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = await sign_in(browser, world.url, ADMIN)
    await page.goto(f"{world.url}/console/incidents/{world.incident}")
    recall = page.locator("section.signal[data-kind='metric_decay'] figure.line-chart").first
    await expect(recall.locator("figcaption")).to_contain_text("v1 (champion): recall")
    # The chart's numbers are the monitor's API's numbers, window by window, episode shaded.
    assert await first_series(recall) == recall_of(world.series, 1, "champion")
    assert min(v for v in recall_of(world.series, 1, "champion") if v is not None) < 0.8
    await expect(recall.locator("rect.episode")).to_have_count(1)
    await expect(recall.locator("line.threshold")).to_have_count(1)
    await expect(recall.locator("line.baseline")).to_have_count(1)

    drift = page.locator("section.signal[data-kind='data_drift']")
    await expect(drift.locator("figure.bar-chart")).to_have_count(2)
    await expect(drift.locator("figure.distribution-chart")).to_have_count(2)
    await expect(drift.locator("figure.bar-chart").first.locator("rect.bar")).to_have_count(2)
    await expect(drift.locator("figure.bar-chart").first.locator("desc")).to_contain_text(
        "past it: mean radius, mean texture"
    )
    # The raw evidence is still there, behind a disclosure.
    raw = drift.locator("details", has_text="evidence (JSON)")
    await raw.locator("summary").click()
    await expect(raw.locator("pre")).to_contain_text('"alpha": 0.01')

    comparison = page.locator("#canary figure.interval-chart")
    await expect(comparison).to_have_count(1)
    compared = world.series["comparisons"][-1]
    got = await numbers(comparison)
    assert got[:2] == [compared["champion_value"], compared["challenger_value"]]
    await expect(comparison.locator("figcaption")).to_contain_text(
        compared["verdict"].replace("_", " ")
    )
    await page.screenshot(path=ARTIFACTS / "20-incident-charts.png", full_page=True)


async def test_the_model_page_draws_what_vigil_series_prints(
    world: World, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The CLI as a person runs it, in its own process (the monitor is served by this loop).
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli import main; main()",
        "series",
        MODEL,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=os.environ | {"VIGIL_MONITOR_URL": world.monitor_url},
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0
    cli = json.loads(stdout)
    page = await sign_in(browser, world.url, ADMIN)
    await page.get_by_role("link", name="Models").click()
    await expect(page.locator(".open-incidents")).not_to_have_attribute("data-count", "0")
    spark = page.locator("svg.sparkline")
    await expect(spark).to_have_count(1)
    assert (
        float(await spark.get_attribute("data-last") or "nan") == recall_of(cli, 1, "champion")[-1]
    )
    await expect(page.locator("main")).to_contain_text("first model of the demo")
    await expect(page.locator("main")).to_contain_text("sha256:")
    await page.screenshot(path=ARTIFACTS / "21-models.png", full_page=True)

    await page.get_by_role("link", name="charts").click()
    await expect(page.get_by_role("heading", name=f"{MODEL}: live metrics")).to_be_visible()
    for version, variant in ((1, "champion"), (2, "challenger")):
        slot = f"#v{version}-{variant}"
        charts = page.locator(f"{slot} figure.line-chart")
        await expect(charts.first.locator("figcaption")).to_contain_text("recall")
        assert await first_series(charts.first) == recall_of(cli, version, variant)
        traffic = charts.filter(has_text="traffic")
        assert await numbers(traffic) == [
            float(w["predictions"])
            for w in cli["windows"]
            if (w["version"], w["variant"]) == (version, variant)
        ]
        latency = charts.filter(has_text="p95 latency")
        assert await numbers(latency) == [
            w["latency_p95_ms"]
            for w in cli["windows"]
            if (w["version"], w["variant"]) == (version, variant)
        ]
    await expect(page.locator("#v1-champion figure.line-chart")).to_have_count(4)
    await page.screenshot(path=ARTIFACTS / "22-model-charts.png", full_page=True)


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it stands."""
    await page.add_script_tag(path=AXE)
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in result if v.get("impact") in ("serious", "critical")]


async def test_every_console_page_passes_axe(world: World, browser: Browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    anonymous = await browser.new_page()
    page = await sign_in(browser, world.url, ADMIN)
    viewer = (await issue_tokens(world.url, ADMIN, {"vic": "viewer"}))["vic"]
    reader = await sign_in(browser, world.url, viewer)
    problems = {}
    for path in PAGES:
        url = world.url + path.format(incident=world.incident, model=MODEL)
        for who, visitor in (("admin", page), ("viewer", reader), ("anonymous", anonymous)):
            if who == "anonymous" and path != "/console/login":
                continue
            response = await visitor.goto(url)
            assert response is not None, (path, who)
            assert response.ok, (path, who, response.status)
            found = await axe_violations(visitor)
            if found:
                problems[f"{path} as {who}"] = [
                    (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:5]) for v in found
                ]
        name = path.strip("/").replace("/", "-").replace("{", "").replace("}", "") or "root"
        await page.screenshot(path=ARTIFACTS / f"30-axe-{name}.png", full_page=True)
    assert not problems, json.dumps(problems, indent=2)


def test_every_console_page_is_listed() -> None:
    """A page added to the console must be added to tests/console/pages.py (and so checked)."""
    router = build_console(lambda: httpx.AsyncClient(), feed=None)  # type: ignore[arg-type]
    routes = {
        route.path
        for route in router.routes
        if isinstance(route, APIRoute) and "GET" in (route.methods or set())
    }
    pages = {p.replace("{incident}", "{incident_id}") for p in PAGES}
    routes = {r for r in routes if not r.startswith("/console/fragments/")} - NOT_PAGES
    assert routes == pages, "add the new page to tests/console/pages.py"
