"""``GET /estimates/{model}`` and ``vigil estimates``: the estimate beside the realised metric,
through the real app (in-memory broker), and refusals of unknown or malformed models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from rich.console import Console

from contracts import MetricsComputed, Topic
from services.monitor.estimates_cli import estimates_table
from services.runtime import KafkaSettings, ServiceRuntime
from tests.factories import MODEL, make_deployment, make_version_record
from tests.monitor.conftest import monitor_settings
from tests.monitor.doubles import FakeRegistry, FakeScorer, serving
from tests.monitor.streams import Phase, interleaved, scored_stream
from tests.monitor.test_app import in_memory_monitor
from tests.monitor.test_real_broker import run_cli
from tests.polling import eventually


async def test_estimates_sit_beside_realised_metrics_per_window(tmp_path: Path) -> None:
    registry = (
        FakeRegistry()
        .add(make_version_record(version=1))
        .deploy(MODEL, make_deployment(challenger=None, challenger_share=0.0))
    )
    settings = monitor_settings(tmp_path, KafkaSettings(), "monitor", calibration_rows=100)
    stream = scored_stream([Phase(200), Phase(200, recall=0.9)])
    async with (
        in_memory_monitor(settings, registry, FakeScorer()) as (app, received),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://monitor"
        ) as client,
    ):
        runtime: ServiceRuntime = app.state.runtime
        for event in interleaved(stream, label_lag=10):
            await runtime.publisher.publish(event)
        await eventually(
            lambda: len([e for e in received[Topic.METRICS] if isinstance(e, MetricsComputed)]) >= 4
        )
        answer = await client.get(f"/estimates/{MODEL}")
        # A restore from the database (after a rebalance or a failed step) keeps them.
        await app.state.service._reload()
        after_restore = await client.get(f"/estimates/{MODEL}")
        unknown = await client.get("/estimates/no-such-model")
        malformed = await client.get("/estimates/" + "A" * 300)

    assert answer.status_code == 200
    assert after_restore.json() == answer.json()
    windows = answer.json()["windows"]
    assert len(windows) >= 4
    assert windows[0]["estimated"] is None  # not calibrated yet: fewer than 100 labels
    calibrated = [w for w in windows if w["estimated"] is not None]
    assert calibrated
    for window in calibrated:
        estimate = window["estimated"]["recall"]
        assert estimate["lower"] <= estimate["value"] <= estimate["upper"]
        assert window["realised"]["recall"] is not None
        assert window["key_metric"] == "recall"
    published = [e for e in received[Topic.METRICS] if isinstance(e, MetricsComputed)]
    assert any(e.estimated is not None and e.calibration is not None for e in published)
    assert unknown.status_code == 404
    assert malformed.status_code == 422

    console = Console(record=True, width=200)
    console.print(estimates_table(MODEL, windows, None))
    text = console.export_text()
    assert "recall of breast-cancer" in text
    assert f"{calibrated[0]['estimated']['recall']['value']:.3f}" in text


ANSWER = {
    "model": MODEL,
    "windows": [
        {
            "version": 1,
            "variant": "champion",
            "start": "2026-11-22T10:00:00+00:00",
            "end": "2026-11-22T10:05:00+00:00",
            "predictions": 100,
            "labelled": 0,
            "key_metric": "recall",
            "realised": {"recall": None},
            "estimated": {"recall": {"value": 0.812, "lower": 0.74, "upper": 0.88}},
        }
    ],
}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_vigil_estimates_prints_the_monitors_answer_over_loopback() -> None:
    """The command as a subprocess, against a server answering as the monitor does."""
    answer = httpx.Response(200, json=ANSWER)
    replay = FastAPI()

    @replay.get("/estimates/{model}")
    async def estimates(model: str) -> Any:
        if model != MODEL:
            raise HTTPException(status_code=404, detail="unknown")
        return answer.json()

    async with serving(replay) as url:
        env = os.environ | {"VIGIL_MONITOR_URL": url, "COLUMNS": "200"}
        json_code, json_output = await run_cli("estimates", MODEL, "--json", env=env)
        table_code, table_output = await run_cli("estimates", MODEL, env=env)
        missing_code, missing_output = await run_cli("estimates", "nothing", env=env)
    assert json_code == 0, json_output
    assert json.loads(json_output) == answer.json()
    assert table_code == 0, table_output
    assert "estimated (95% band)" in table_output
    assert "0.812 (0.740-0.880)" in table_output
    assert missing_code == 3
    assert "404" in missing_output
