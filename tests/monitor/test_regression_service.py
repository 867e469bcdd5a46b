"""A regressor through the monitor service on a real database (SQLite file; PostgreSQL under
``integration``): a restart mid-stream with redelivery publishes what an uninterrupted run does
(waiting values, open windows and comparison samples come back from storage), a redelivered batch
changes nothing, and ``GET /series`` and ``vigil series`` show MAE, RMSE and R²."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from itertools import groupby
from pathlib import Path
from typing import cast

import httpx
import numpy as np
from fastapi import FastAPI
from sqlalchemy import text

from contracts import (
    AlertKind,
    AlertRaised,
    AlertRecovered,
    Envelope,
    MetricsComputed,
    ValuePredicted,
    ValueRecorded,
    Variant,
    VariantsCompared,
)
from services.monitor.api import install_monitor_api
from services.monitor.domain import Monitor, MonitorPolicy
from services.monitor.windows import WindowPolicy
from services.runtime import create_engine
from tests.factories import T0, make_deployment
from tests.monitor.conftest import ServiceMaker
from tests.monitor.doubles import FakeRegistry, serving
from tests.monitor.regression_streams import (
    REGRESSOR,
    ValuePhase,
    honest,
    interleaved_values,
    noisy_traffic,
    regressor_record,
    twenty_percent_low,
    value_stream,
)
from tests.monitor.replay import comparable, feed, uninterrupted
from tests.monitor.streams import side_by_side


def regressor_traffic() -> list[Envelope]:
    """Champion v1 20 off, then 60 off (MAE breaches), then 20 off again; challenger v2 35 off."""
    champion = value_stream(
        [ValuePhase(700), ValuePhase(500, error=60.0), ValuePhase(700)], prefix="a"
    )
    challenger = value_stream(
        [ValuePhase(500, error=35.0)], version=2, variant=Variant.CHALLENGER, prefix="b", offset=9
    )
    return side_by_side(
        interleaved_values(champion, lag=40), interleaved_values(challenger, lag=40)
    )


def regressor_registry() -> FakeRegistry:
    return (
        FakeRegistry()
        .add(regressor_record(version=1), regressor_record(version=2))
        .deploy(REGRESSOR, make_deployment())  # champion v1, challenger v2
    )


async def test_a_restart_mid_stream_with_redelivery_publishes_what_an_uninterrupted_run_does(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    regressors = regressor_registry()
    registry.add(*regressors.records.values()).deploy(REGRESSOR, make_deployment())
    events = regressor_traffic()
    tolerance = timedelta(hours=1)
    expected = uninterrupted(events, regressors, T0, future_tolerance=tolerance)
    alerts = [
        (type(e).__name__, e.fingerprint)
        for e in expected
        if isinstance(e, AlertRaised | AlertRecovered)
    ]
    assert alerts == [
        ("AlertRaised", f"{REGRESSOR}:v2:challenger_worse:mae"),  # 35 off against 20 off
        ("AlertRaised", f"{REGRESSOR}:v1:metric_decay:mae"),
        ("AlertRaised", f"{REGRESSOR}:v1:residual_drift:residuals"),  # 60 off, not 20
        ("AlertRecovered", f"{REGRESSOR}:v1:metric_decay:mae"),
        ("AlertRecovered", f"{REGRESSOR}:v1:residual_drift:residuals"),
    ]
    compared = [e for e in expected if isinstance(e, VariantsCompared)]
    assert any(e.challenger_samples > 100 for e in compared)
    assert {e.metric for e in compared} == {"mae"}
    # the loss estimates (models fitted on the first 300 labelled outcomes) replay exactly too
    assert any(isinstance(e, MetricsComputed) and e.estimated for e in expected)

    cut = len(events) // 200 * 100
    first, first_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    await first.load_deployments()
    assert await feed(first, events[:cut]) == []
    # A new process on the same database; Kafka redelivers what was handled but not committed.
    second, second_out = await make_service(clock=lambda: T0, future_tolerance=tolerance)
    await second.load_deployments()
    assert await feed(second, events[cut - 300 :]) == []

    published = first_out.events + second_out.events
    assert comparable(published) == comparable(expected)
    windows = [e for e in published if isinstance(e, MetricsComputed) and e.model == REGRESSOR]
    assert (
        sum(w.labelled for w in windows)
        + sum(w["labelled"] for w in (await second.status())["open_windows"])
        == 1900 + 500
    )


async def test_a_redelivered_regressor_batch_changes_nothing(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    registry.add(regressor_record(version=1))
    service, published = await make_service()
    events = interleaved_values(value_stream([ValuePhase(150)]), lag=10)
    assert await feed(service, events) == []
    before, status = len(published.events), await service.status()
    assert await feed(service, events) == []
    assert len(published.events) == before
    assert await service.status() == status


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    vigil = Path(sys.executable).parent / "vigil"
    process = await asyncio.create_subprocess_exec(
        str(vigil), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_series_and_vigil_series_show_a_regressors_mae_rmse_and_r2(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    registry.add(regressor_record(version=1))
    service, published = await make_service()
    stream = value_stream([ValuePhase(300), ValuePhase(300, error=60.0), ValuePhase(300)])
    assert await feed(service, interleaved_values(stream, lag=20)) == []
    app = FastAPI()
    install_monitor_api(app, service)
    async with serving(app) as url:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/series/{REGRESSOR}")
        code, table = await run_cli(
            "series", REGRESSOR, env=os.environ | {"VIGIL_MONITOR_URL": url, "COLUMNS": "200"}
        )
    assert response.status_code == 200
    series = response.json()
    sent = published.of_type(MetricsComputed)
    assert [w["metrics"] for w in series["windows"]] == [m.metrics for m in sent]
    assert {"mae", "rmse", "r2"} <= set(series["windows"][-1]["metrics"])
    targets = series["targets"]["1"]
    assert targets["key_metric"] == "mae"
    assert [(t["metric"], t["direction"]) for t in targets["metrics"]] == [
        ("mae", "lower_is_better"),
        ("rmse", "lower_is_better"),
        ("r2", "higher_is_better"),
    ]
    (episode,) = series["episodes"]
    assert (episode["metric"], episode["version"]) == ("mae", 1)
    assert episode["recovered_at"] is not None

    # A regressor's windows carry the loss estimate once its reference (the first 300 labelled
    # outcomes) is complete, beside the realised MAE and RMSE.
    recent = await service.recent_windows(REGRESSOR)
    assert recent
    assert recent[0]["estimated"] is None
    estimated = [w for w in recent if w["estimated"] is not None]
    assert estimated
    assert all(set(w["estimated"]) == {"mae", "rmse"} for w in estimated)
    assert all(set(w["realised"]) == {"mae", "rmse"} for w in estimated)
    assert all(w["key_metric"] == "mae" for w in recent)

    assert code == 0, table
    header = next(line for line in table.splitlines() if "mae" in line)
    for column in ("mae", "rmse", "r2"):
        assert column in header
    last = sent[-1].metrics["mae"]
    assert last is not None
    assert f"{last:.4g}" in table
    assert "alert mae v1:" in table


async def test_a_restarted_monitor_tests_residuals_against_the_reference_it_stored(
    make_service: ServiceMaker, registry: FakeRegistry, database_url: str
) -> None:
    """The reference (the first 300 residuals, honest here) comes back from the database: the
    new process judges the biased traffic against it. A reference rebuilt from the biased
    traffic would see nothing change."""
    registry.add(regressor_record(version=1))
    rng = np.random.default_rng(9)
    first, _ = await make_service()
    assert await feed(first, noisy_traffic(rng, 400, honest)) == []
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT model, model_version, state FROM monitor_residual_references")
                )
            ).all()
    finally:
        await engine.dispose()
    assert [(model, version) for model, version, _ in rows] == [(REGRESSOR, 1)]
    assert len(json.loads(rows[0][2])["residuals"]) == 300

    second, published = await make_service()
    assert await feed(second, noisy_traffic(rng, 300, twenty_percent_low, start=400)) == []
    raised = [e for e in published.of_type(AlertRaised) if e.kind is AlertKind.RESIDUAL_DRIFT]
    assert [e.fingerprint for e in raised] == [f"{REGRESSOR}:v1:residual_drift:residuals"]
    assert raised[0].evidence["reference_rows"] == 300
    assert cast(float, raised[0].evidence["window_median_residual"]) > 20.0

    # Without the stored reference the same traffic would have become the reference.
    fresh = Monitor(MonitorPolicy(window=WindowPolicy(max_events=100, span=None)))
    fresh.know(regressor_record(version=1))
    rng = np.random.default_rng(9)
    noisy_traffic(rng, 400, honest)
    outputs: list[Envelope] = []
    for kind, run in groupby(noisy_traffic(rng, 300, twenty_percent_low, start=400), key=type):
        batch = list(run)
        if kind is ValuePredicted:
            outputs += fresh.add_predictions(cast(list[ValuePredicted], batch), now=T0).outputs
        else:
            outputs += fresh.add_labels(cast(list[ValueRecorded], batch), now=T0).outputs
    assert not any(isinstance(e, AlertRaised) for e in outputs)
