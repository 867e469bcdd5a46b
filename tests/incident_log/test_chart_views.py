"""Which chart the console draws from which JSON: the monitor's series, an incident's signals,
the gate's figures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from services.incident_log.chart_views import (
    gate_chart,
    key_metric_sparkline,
    model_charts,
    signal_charts,
)

SVG = "{http://www.w3.org/2000/svg}"


def window(minute: int, recall: float | None, **extra: Any) -> dict[str, Any]:
    return {
        "version": 3,
        "variant": "champion",
        "start": f"2026-11-22T10:{minute:02d}:00+00:00",
        "end": f"2026-11-22T10:{minute + 4:02d}:59+00:00",
        "metrics": {"recall": recall, "low_confidence_rate": 0.1} | extra,
        "predictions": 100 + minute,
        "labelled": 90,
        "latency_p95_ms": 6.5,
        "throughput_per_s": 2.0,
        "breaching": [],
    }


SERIES: dict[str, Any] = {
    "model": "churn",
    "windows": [window(0, 0.97), window(5, 0.96), window(10, 0.8), window(15, 0.79)],
    "episodes": [
        {
            "fingerprint": "fp",
            "metric": "recall",
            "version": 3,
            "variant": "champion",
            "raised_at": "2026-11-22T10:19:59+00:00",
            "recovered_at": None,
        }
    ],
    "comparisons": [],
    "targets": {
        "3": {
            "key_metric": "recall",
            "metrics": [
                {
                    "metric": "low_confidence_rate",
                    "baseline": 0.05,
                    "threshold": 0.3,
                    "direction": "lower_is_better",
                },
                {
                    "metric": "recall",
                    "baseline": 0.97,
                    "threshold": 0.9,
                    "direction": "higher_is_better",
                },
            ],
        }
    },
}


def titles(charts: list[str]) -> list[str]:
    return [ET.fromstring(c).findtext("figcaption") or "" for c in charts]


def test_model_charts_key_metric_first_then_guards_traffic_latency() -> None:
    (slot,) = model_charts(SERIES)
    assert (slot.version, slot.variant) == (3, "champion")
    assert titles(slot.charts) == [
        "churn v3 (champion): recall",
        "churn v3 (champion): low_confidence_rate",
        "churn v3 (champion): traffic",
        "churn v3 (champion): p95 latency",
    ]
    recall = ET.fromstring(slot.charts[0])
    episodes = [e for e in recall.iter(f"{SVG}rect") if e.get("class") == "episode"]
    assert len(episodes) == 1  # the open episode, from the window that raised it to the last


def test_an_estimate_in_the_window_is_drawn_beside_the_metric() -> None:
    estimated = window(0, None) | {
        "estimated": {"recall": {"value": 0.93, "lower": 0.88, "upper": 0.97}}
    }
    series = SERIES | {"windows": [estimated, window(5, 0.9)]}
    recall = model_charts(series)[0].charts[0]
    assert 'data-series="recall (estimated)"' in recall
    assert 'data-value="0.93"' in recall


def test_sparkline_of_the_champions_key_metric() -> None:
    spark = key_metric_sparkline(SERIES, 3)
    assert spark is not None
    assert 'data-last="0.79"' in spark
    assert key_metric_sparkline(None, 3) is None
    assert key_metric_sparkline(SERIES, 9) is None


def test_metric_signal_uses_the_series_and_falls_back_to_its_evidence() -> None:
    signal = {
        "kind": "metric_decay",
        "evidence": {
            "metric": "recall",
            "baseline": 0.97,
            "threshold": 0.9,
            "values": [0.8, 0.79],
            "variant": "champion",
        },
    }
    (from_series,) = signal_charts(signal, "churn", 3, SERIES)
    assert from_series.count("<circle") == 4
    (from_evidence,) = signal_charts(signal, "churn", 3, None)
    assert from_evidence.count("<circle") == 2
    assert "window 2" in from_evidence


def test_drift_signal_draws_effects_significance_and_distributions() -> None:
    signal = {
        "kind": "data_drift",
        "evidence": {
            "alpha": 0.01,
            "features": {
                "mean radius": {
                    "checks": [
                        {
                            "check": "distribution",
                            "effect_size": 0.42,
                            "adjusted_p_value": 1e-6,
                            "effect_measure": "wasserstein / reference std",
                            "effect_floor": 0.1,
                        }
                    ],
                    "bins": {
                        "edges": [0.0, 1.0, 2.0],
                        "reference": [0.5, 0.5],
                        "current": [0.1, 0.9],
                    },
                }
            },
        },
    }
    charts = signal_charts(signal, "churn", 3, None)
    assert titles(charts) == [
        "churn data drift: effect size of the drifted features",
        "churn data drift: significance (-log10 adjusted p)",
        "churn data drift: mean radius, reference against current (reference deciles)",
    ]
    assert "effect floor 0.1" in charts[0]
    assert "alpha 0.01 2" in charts[1]


def test_signals_without_a_chart_get_none() -> None:
    assert signal_charts({"kind": "probe_failed", "evidence": {}}, "churn", 3, None) == []
    assert signal_charts({"kind": "data_drift", "evidence": "junk"}, "churn", 3, None) == []


def test_gate_chart_from_the_gates_figures() -> None:
    figures = {
        "key_metric": "recall",
        "metrics": {"recall": {"candidate": 0.95, "champion": 0.8}},
        "non_inferiority": {"difference": 0.15, "ci_low": 0.1, "ci_high": 0.2, "margin": 0.02},
    }
    chart = gate_chart(figures, "passed the gate", "gate")
    assert chart is not None
    assert "Decision: passed the gate" in chart
    assert gate_chart({"non_inferiority": {"skipped": "x"}}, "d", "t") is None
