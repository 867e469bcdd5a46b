"""The monitor's recent windows (``GET /series/{model}``): what it published, episodes included,
equal to the ``metrics.computed`` events it sent; the route refuses what is not a model."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from contracts import AlertRaised, AlertRecovered, MetricsComputed
from services.monitor.api import install_monitor_api
from services.monitor.history import MetricHistory
from tests.factories import MODEL, T0, make_deployment
from tests.monitor.conftest import ServiceMaker
from tests.monitor.doubles import FakeRegistry
from tests.monitor.replay import feed
from tests.monitor.streams import champion_with_a_challenger


async def test_series_holds_what_the_monitor_published_with_its_episodes(
    make_service: ServiceMaker, registry: FakeRegistry
) -> None:
    registry.deploy(MODEL, make_deployment())  # champion v1, challenger v2
    events = champion_with_a_challenger()
    service, published = await make_service(clock=lambda: T0, future_tolerance=timedelta(hours=1))
    await service.load_deployments()
    await feed(service, events)

    app = FastAPI()
    install_monitor_api(app, service)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://monitor"
    ) as client:
        response = await client.get(f"/series/{MODEL}")
        assert response.status_code == 200
        series = response.json()
        assert (await client.get("/series/nobody")).status_code == 404
        assert (await client.get("/series/" + "x" * 5000)).status_code in (404, 422)
        assert (await client.get("/series/%00")).status_code in (404, 422)

    sent = published.of_type(MetricsComputed)
    assert [(w["version"], w["variant"], w["end"], w["metrics"]) for w in series["windows"]] == [
        (m.model_version, m.variant.value, m.window.end.isoformat(), m.metrics) for m in sent
    ]
    assert [w["latency_p95_ms"] for w in series["windows"]] == [m.latency_ms.p95 for m in sent]
    raised = [
        a
        for a in published.of_type(AlertRaised)
        if a.evidence.get("metric") == "recall" and a.model_version == 1
    ]
    recovered = published.of_type(AlertRecovered)
    assert raised
    assert recovered
    (episode,) = [e for e in series["episodes"] if e["metric"] == "recall" and e["version"] == 1]
    window = raised[0].evidence["window"]
    assert isinstance(window, dict)
    assert episode["raised_at"] == window["end"]
    assert episode["recovered_at"] is not None
    assert series["comparisons"], "the champion-challenger comparisons are kept too"
    targets = series["targets"]["1"]
    assert targets["key_metric"] == "recall"
    assert {t["metric"] for t in targets["metrics"]} >= {"recall", "low_confidence_rate"}


def test_history_keeps_the_last_windows_only() -> None:
    history = MetricHistory(limit=2)
    assert history.series(MODEL) is None
    events = []
    for minute in range(3):
        events.append(
            MetricsComputed.model_validate(
                {
                    "producer": "monitor",
                    "model": MODEL,
                    "model_version": 1,
                    "variant": "champion",
                    "window": {
                        "kind": "count",
                        "start": (T0 + timedelta(minutes=minute)).isoformat(),
                        "end": (T0 + timedelta(minutes=minute, seconds=59)).isoformat(),
                        "size": 10,
                    },
                    "metrics": {"recall": 0.9 - minute / 10},
                    "class_labels": ["a", "b"],
                    "confusion_matrix": [[1, 0], [0, 1]],
                    "labelled": 10,
                    "predictions": 10,
                    "expired_unjoined": 0,
                    "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0},
                    "throughput_per_s": 1.0,
                }
            )
        )
    history.observe([*events, "not an event"])
    found = history.series(MODEL)
    assert found is not None
    assert [w["metrics"]["recall"] for w in found["windows"]] == [0.8, 0.7]
