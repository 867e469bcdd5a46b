"""Which chart shows which figures: from the JSON other services' APIs answer to chart markup.

Pure functions (no HTTP): the console fetches the monitor's ``GET /series/{model}``, the incident
(signals, timeline), the registry's promotions and the incident log's own ``GET /stats`` and
``GET /stats/over-time``, and hands the JSON here. Every number drawn
is one of those JSON numbers unchanged, so a chart and ``vigil series`` / ``vigil incidents
show`` agree to the last digit (a browser test compares them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.incident_log.charts import (
    Bar,
    Line,
    Span,
    bar_chart,
    distribution_chart,
    interval_chart,
    line_chart,
    sparkline,
)

__all__ = [
    "ModelCharts",
    "comparison_chart",
    "gate_chart",
    "key_metric_sparkline",
    "model_charts",
    "report_charts",
    "response_time_charts",
    "runbook_rate_charts",
    "share_resolved_at_l1_chart",
    "signal_charts",
]

"""Where an estimate of a metric sits in a window's ``metrics`` (before its labels arrive): when
the monitor publishes one, it is drawn dashed beside the realised metric."""

_METRIC_KINDS = {"metric_decay", "low_confidence"}
_DRIFT_KINDS = {"data_drift", "prediction_drift"}
_TOP_DISTRIBUTIONS = 3


@dataclass(frozen=True)
class ModelCharts:
    """The charts of one version and deployment slot of a model."""

    version: int
    variant: str
    charts: list[str]


def _windows_of(series: Mapping[str, Any], version: int, variant: str) -> list[dict[str, Any]]:
    return [
        w
        for w in series.get("windows", [])
        if w.get("version") == version and w.get("variant") == variant
    ]


def _spans(
    windows: Sequence[Mapping[str, Any]],
    episodes: Sequence[Mapping[str, Any]],
    metric: str,
    version: int,
    variant: str,
) -> list[Span]:
    """Alert episodes of ``metric`` as index ranges of ``windows`` (by window end time)."""
    ends = [str(w["end"]) for w in windows]
    spans = []
    for episode in episodes:
        if episode.get("metric") != metric or episode.get("version") != version:
            continue
        if episode.get("variant") not in (None, variant):
            continue
        raised, recovered = str(episode.get("raised_at")), episode.get("recovered_at")
        start = next((i for i, end in enumerate(ends) if end >= raised), None)
        if start is None:
            continue
        stop = (
            next((i for i, end in enumerate(ends) if end >= str(recovered)), len(ends) - 1)
            if recovered
            else len(ends) - 1
        )
        label = f"{metric} alerting from {str(raised)[:19]}" + (
            f" to {str(recovered)[:19]}" if recovered else " (still alerting)"
        )
        spans.append(Span(start, stop, label))
    return spans


def _labels(windows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(w["end"])[5:16].replace("T", " ") for w in windows]


def _metric(window: Mapping[str, Any], name: str) -> float | None:
    return _number(window.get("metrics", {}).get(name))


def _estimated(window: Mapping[str, Any], name: str) -> float | None:
    """The window's label-free estimate of a metric (the monitor's ``estimated`` field)."""
    estimate = (window.get("estimated") or {}).get(name)
    return _number(estimate.get("value")) if isinstance(estimate, Mapping) else None


def _number(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def metric_chart(
    series: Mapping[str, Any], version: int, variant: str, target: Mapping[str, Any]
) -> str | None:
    """One watched metric of one version and slot over its windows: realised (and estimated,
    when the monitor publishes an estimate), baseline, threshold, alert episodes shaded."""
    windows = _windows_of(series, version, variant)
    if not windows:
        return None
    metric = str(target["metric"])
    lines = [Line(metric, [_metric(w, metric) for w in windows])]
    estimates = [_estimated(w, metric) for w in windows]
    if any(value is not None for value in estimates):
        lines.append(Line(f"{metric} (estimated)", estimates, True))
    return line_chart(
        f"{series['model']} v{version} ({variant}): {metric}",
        lines,
        x_labels=_labels(windows),
        baseline=target.get("baseline"),
        thresholds=[("threshold", target["threshold"])],
        spans=_spans(windows, series.get("episodes", []), metric, version, variant),
    )


def model_charts(series: Mapping[str, Any]) -> list[ModelCharts]:
    """Every version and slot with windows: key metric first, then the guard metrics (the
    low-confidence rate among them), traffic and p95 latency."""
    slots = sorted(
        {(int(w["version"]), str(w["variant"])) for w in series.get("windows", [])},
        key=lambda slot: (-slot[0], slot[1]),
    )
    found = []
    for version, variant in slots:
        windows = _windows_of(series, version, variant)
        targets = series.get("targets", {}).get(str(version), {})
        key = targets.get("key_metric")
        ordered = sorted(targets.get("metrics", []), key=lambda t: t["metric"] != key)
        charts = [c for t in ordered if (c := metric_chart(series, version, variant, t))]
        labels = _labels(windows)
        name = f"{series['model']} v{version} ({variant})"
        charts.append(
            line_chart(
                f"{name}: traffic",
                [Line("predictions per window", [w.get("predictions") for w in windows])],
                x_labels=labels,
            )
        )
        charts.append(
            line_chart(
                f"{name}: p95 latency",
                [Line("p95 latency (ms)", [w.get("latency_p95_ms") for w in windows])],
                x_labels=labels,
                unit=" ms",
            )
        )
        found.append(ModelCharts(version, variant, charts))
    return found


def key_metric_sparkline(series: Mapping[str, Any] | None, version: int | None) -> str | None:
    """The champion's key metric over its recent windows, for the models page."""
    if series is None or version is None:
        return None
    key = series.get("targets", {}).get(str(version), {}).get("key_metric")
    if key is None:
        return None
    windows = _windows_of(series, version, "champion")
    return sparkline(f"{key} of v{version}", [_metric(w, key) for w in windows])


def comparison_chart(compared: Mapping[str, Any], decision: str | None = None) -> str:
    """A live champion-challenger comparison (the monitor's ``variants.compared``)."""
    champion, challenger = compared.get("champion_value"), compared.get("challenger_value")
    difference = (
        challenger - champion
        if isinstance(champion, int | float) and isinstance(challenger, int | float)
        else None
    )
    verdict = str(compared.get("verdict", "")).replace("_", " ")
    p_value = compared.get("p_value")
    said = (
        f"{verdict} (p={p_value:.3g}, {compared.get('test')})" if p_value is not None else verdict
    )
    return interval_chart(
        f"v{compared.get('challenger_version')} against champion "
        f"v{compared.get('champion_version')} on live labels "
        f"({compared.get('challenger_samples')} / {compared.get('champion_samples')})",
        metric=str(compared.get("metric", "key metric")),
        champion=champion,
        challenger=challenger,
        difference=difference,
        low=None,
        high=None,
        margin=None,
        decision=decision or said,
    )


def gate_chart(figures: Mapping[str, Any], decision: str, title: str) -> str | None:
    """The promotion gate's held-out comparison: key metric of candidate and champion, and the
    bootstrap interval of their difference against the non-inferiority margin."""
    key = figures.get("key_metric")
    metrics = figures.get("metrics", {})
    if not isinstance(key, str) or not isinstance(metrics, dict) or key not in metrics:
        return None
    values = metrics[key]
    inferiority = figures.get("non_inferiority", {})
    return interval_chart(
        title,
        metric=key,
        champion=values.get("champion"),
        challenger=values.get("candidate"),
        difference=inferiority.get("difference"),
        low=inferiority.get("ci_low"),
        high=inferiority.get("ci_high"),
        margin=inferiority.get("margin"),
        decision=decision,
    )


def _neg_log10(p: Any) -> float | None:
    if not isinstance(p, int | float) or p < 0:
        return None
    return 300.0 if p == 0 else -math.log10(p)


def _drift_charts(evidence: Mapping[str, Any], title: str) -> list[str]:
    features = evidence.get("features")
    if not isinstance(features, dict) or not features:
        return []
    alpha = evidence.get("alpha")
    effects, significance, floors = [], [], set()
    for name, feature in features.items():
        checks = [c for c in feature.get("checks", []) if isinstance(c, dict)]
        main = max(
            checks, key=lambda c: c.get("effect_size") or 0, default={}
        )  # the largest fired effect explains the feature's drift
        if (floor := main.get("effect_floor")) is not None:
            floors.add(floor)
        note = f"{main.get('check', '')}: {main.get('effect_measure', '')}".strip(": ")
        effects.append(Bar(name, main.get("effect_size"), True, note))
        significance.append(
            Bar(
                name,
                _neg_log10(main.get("adjusted_p_value")),
                True,
                f"adjusted p {main.get('adjusted_p_value')}",
            )
        )
    floor = floors.pop() if len(floors) == 1 else None
    charts = [
        bar_chart(
            f"{title}: effect size of the drifted features",
            effects,
            measure="effect size",
            line=floor,
            line_label="effect floor",
        ),
        bar_chart(
            f"{title}: significance (-log10 adjusted p)",
            significance,
            measure="-log10 adjusted p",
            line=_neg_log10(alpha),
            line_label=f"alpha {alpha}",
        ),
    ]
    for name, feature in list(features.items())[:_TOP_DISTRIBUTIONS]:
        bins = feature.get("bins")
        if isinstance(bins, dict) and bins.get("edges"):
            charts.append(
                distribution_chart(
                    f"{title}: {name}, reference against current (reference deciles)",
                    bins["edges"],
                    bins.get("reference", []),
                    bins.get("current", []),
                )
            )
    return charts


def signal_charts(
    signal: Mapping[str, Any], model: str, version: int | None, series: Mapping[str, Any] | None
) -> list[str]:
    """The evidence of one signal of an incident as its chart(s); empty when no chart fits (the
    raw JSON is shown anyway)."""
    kind = str(signal.get("kind"))
    evidence = signal.get("evidence") or {}
    if not isinstance(evidence, dict):
        return []
    if kind in _METRIC_KINDS and "metric" in evidence:
        variant = str(evidence.get("variant") or "champion")
        target = {
            "metric": evidence["metric"],
            "baseline": evidence.get("baseline"),
            "threshold": evidence.get("threshold"),
        }
        if series is not None and version is not None:
            chart = metric_chart(series, version, variant, target)
            if chart is not None:
                return [chart]
        values = evidence.get("values") or []
        return [
            line_chart(
                f"{model}: {evidence['metric']} in the windows that raised the alert",
                [Line(str(evidence["metric"]), values)],
                x_labels=[f"window {i + 1}" for i in range(len(values))],
                baseline=evidence.get("baseline"),
                thresholds=[("threshold", evidence.get("threshold"))],
                spans=[Span(0, len(values) - 1, "windows past the threshold")] if values else [],
            )
        ]
    if kind in _DRIFT_KINDS:
        return _drift_charts(evidence, f"{model} {kind.replace('_', ' ')}")
    if kind == "residual_drift" and isinstance(evidence.get("effect_sizes"), list):
        effects = evidence["effect_sizes"]
        return [
            line_chart(
                f"{model}: residuals against the reference in the windows that raised the alert",
                [Line("effect size (wasserstein / reference sd)", effects)],
                x_labels=[f"window {i + 1}" for i in range(len(effects))],
                thresholds=[("effect floor", evidence.get("effect_floor"))],
                spans=[Span(0, len(effects) - 1, "drifted windows")] if effects else [],
            )
        ]
    if kind == "challenger_worse" and "champion_value" in evidence:
        return [comparison_chart(evidence)]
    return []


def report_charts(report: Mapping[str, Any], title: str) -> list[str]:
    """A drift-diagnosis report (the runbook's, on the timeline): per numeric feature the KS
    statistic and the mean's shift in reference sd, the top drifted marked."""
    features = report.get("features")
    if not isinstance(features, list):
        return []
    numeric = [f for f in features if isinstance(f, dict) and f.get("kind") == "numeric"]
    if not numeric:
        return []
    top = set(report.get("top_drifted") or [])
    detector = report.get("detector") or {}
    drivers = set(detector.get("drivers") or []) if isinstance(detector, dict) else set()
    ranked = sorted(numeric, key=lambda f: -(f.get("ks") or 0))
    note = "detector driver" if drivers else ""
    return [
        bar_chart(
            f"{title}: KS statistic per feature (top drifted marked)",
            [
                Bar(
                    str(f["feature"]),
                    f.get("ks"),
                    f["feature"] in top,
                    note if f["feature"] in drivers else "",
                )
                for f in ranked
            ],
            measure="KS statistic",
        ),
        bar_chart(
            f"{title}: shift of the mean, in reference sd",
            [
                Bar(str(f["feature"]), f.get("shift_in_reference_sd"), f["feature"] in top)
                for f in ranked
            ],
            measure="shift (reference sd)",
        ),
    ]


STATS_GROUPS = {"tier": "by_tier", "model": "by_model", "kind": "by_kind"}
"""The ways the Stats page splits MTTA and MTTR (``?by=``), and where each is in the stats JSON."""

_MAX_GROUPS = 4  # lines per chart: one colour each in the palette, a legend that still fits


def _bucket_labels(buckets: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(b["start"])[:16].replace("T", " ") for b in buckets]


def response_time_charts(buckets: Sequence[Mapping[str, Any]], by: str) -> list[str]:
    """MTTA and MTTR over time (``GET /stats/over-time``), a line per tier, model or alert kind,
    in seconds as the API gives them; for models and kinds the four with the most incidents."""
    field = STATS_GROUPS[by]
    counts: dict[str, int] = {}
    for bucket in buckets:
        for key, row in bucket["stats"][field].items():
            counts[key] = counts.get(key, 0) + int(row.get("incidents") or 0)
    busiest = sorted(counts, key=lambda key: (-counts[key], key))
    chosen = busiest if by == "tier" else busiest[:_MAX_GROUPS]
    if not chosen:
        return []
    shown = (
        f"per {by}"
        if len(chosen) == len(counts)
        else f"the {len(chosen)} {by}s with the most incidents"
    )
    labels = _bucket_labels(buckets)
    return [
        line_chart(
            f"{measure} over time, {shown} (seconds)",
            [
                Line(
                    f"{by} {key}",
                    [(b["stats"][field].get(key) or {}).get(name) for b in buckets],
                )
                for key in sorted(chosen)
            ],
            x_labels=labels,
            unit=" s",
        )
        for measure, name in (("MTTA", "mtta_seconds"), ("MTTR", "mttr_seconds"))
    ]


def share_resolved_at_l1_chart(buckets: Sequence[Mapping[str, Any]]) -> str | None:
    """The share of each bucket's resolved incidents that level one resolved."""
    if not buckets:
        return None
    return line_chart(
        "Share of resolved incidents resolved at L1, over time",
        [Line("share resolved at L1", [b["stats"].get("share_resolved_at_l1") for b in buckets])],
        x_labels=_bucket_labels(buckets),
    )


def runbook_rate_charts(runbooks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Success and verification rate per runbook (``GET /stats``), a bar each; a runbook
    without a defined rate is drawn n/a, not zero."""
    if not runbooks:
        return []
    names = sorted(runbooks)
    return [
        bar_chart(
            f"{title} per runbook",
            [
                Bar(name, runbooks[name].get(field), note=f"{runbooks[name].get('runs')} runs")
                for name in names
            ],
            measure=title.lower(),
        )
        for title, field in (
            ("Success rate", "success_rate"),
            ("Verification rate", "verification_rate"),
        )
    ]
