"""Which chart the console draws from which JSON: the monitor's series, an incident's signals,
the gate's figures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from services.incident_log.chart_views import (
    gate_chart,
    key_metric_sparkline,
    model_charts,
    response_time_charts,
    runbook_rate_charts,
    share_resolved_at_l1_chart,
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


def test_residual_drift_draws_the_effect_sizes_against_the_floor() -> None:
    signal = {
        "kind": "residual_drift",
        "evidence": {"effect_sizes": [0.48, 0.64], "effect_floor": 0.1, "p_value": 1e-8},
    }
    (chart,) = signal_charts(signal, "diabetes", 1, None)
    assert titles([chart]) == [
        "diabetes: residuals against the reference in the windows that raised the alert"
    ]
    assert chart.count("<circle") == 2
    assert "effect floor 0.1" in chart
    assert signal_charts({"kind": "residual_drift", "evidence": {}}, "m", 1, None) == []


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


def group(incidents: int, mtta: float | None, mttr: float | None) -> dict[str, Any]:
    return {
        "incidents": incidents,
        "acknowledged": incidents,
        "resolved": incidents,
        "mtta_seconds": mtta,
        "mttr_seconds": mttr,
    }


def bucket(day: int, share: float | None, **groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One bucket of ``GET /stats/over-time``: the figures of the incidents opened that day."""
    return {
        "start": f"2026-12-0{day}T00:00:00Z",
        "end": f"2026-12-0{day + 1}T00:00:00Z",
        "stats": {
            "incidents": 0,
            "share_resolved_at_l1": share,
            "by_tier": groups.get("tier", {}),
            "by_model": groups.get("model", {}),
            "by_kind": groups.get("kind", {}),
        },
    }


OVER_TIME = [
    bucket(1, None),
    bucket(
        2,
        0.5,
        tier={"L1": group(2, 60.0, 600.0), "L2": group(1, 120.5, None)},
        model={f"m{i}": group(i, 10.0 * i, 20.0 * i) for i in range(1, 7)},
        kind={"metric_decay": group(3, 60.0, 600.0)},
    ),
    bucket(3, 1.0, tier={"L1": group(1, 30.0, 90.0)}),
]


def cells(chart: str) -> list[float | None]:
    """A chart's numbers table, row by row, as the browser test reads it."""
    found = [
        c.attrib["data-value"] for c in ET.fromstring(chart).iter("td") if "data-value" in c.attrib
    ]
    return [None if v == "" else float(v) for v in found]


def test_mtta_and_mttr_over_time_a_line_per_tier_gaps_not_zeros() -> None:
    mtta, mttr = response_time_charts(OVER_TIME, "tier")
    assert titles([mtta, mttr]) == [
        "MTTA over time, per tier (seconds)",
        "MTTR over time, per tier (seconds)",
    ]
    assert 'data-series="tier L1"' in mtta
    assert 'data-series="tier L2"' in mtta
    # Rows are buckets, columns tiers L1 then L2; an empty bucket is a gap, not a zero.
    assert cells(mtta) == [None, None, 60.0, 120.5, 30.0, None]
    assert cells(mttr) == [None, None, 600.0, None, 90.0, None]


def test_per_model_only_the_busiest_four_per_kind_all() -> None:
    mtta, _ = response_time_charts(OVER_TIME, "model")
    assert titles([mtta])[0] == "MTTA over time, the 4 models with the most incidents (seconds)"
    shown = [f'data-series="model m{i}"' in mtta for i in range(1, 7)]
    assert shown == [False, False, True, True, True, True]
    assert cells(mtta)[4:8] == [30.0, 40.0, 50.0, 60.0]
    kind, _ = response_time_charts(OVER_TIME, "kind")
    assert cells(kind) == [None, 60.0, None]


def test_no_incident_no_response_time_chart() -> None:
    assert response_time_charts([bucket(1, None)], "tier") == []
    assert share_resolved_at_l1_chart([]) is None


def test_share_resolved_at_l1_over_time() -> None:
    chart = share_resolved_at_l1_chart(OVER_TIME)
    assert chart is not None
    assert cells(chart) == [None, 0.5, 1.0]


def test_runbook_rates_as_bars_undefined_rates_are_na() -> None:
    rates: dict[str, dict[str, Any]] = {
        "retrain": {"runs": 4, "success_rate": 0.75, "verification_rate": 1.0},
        "drift": {"runs": 1, "success_rate": None, "verification_rate": None},
    }
    success, verification = runbook_rate_charts(rates)
    assert titles([success, verification]) == [
        "Success rate per runbook",
        "Verification rate per runbook",
    ]
    assert cells(success) == [None, 0.75]  # drift, then retrain
    assert cells(verification) == [None, 1.0]
    assert "none past it" not in success  # no reference line, so nothing to be past
    assert runbook_rate_charts({}) == []
