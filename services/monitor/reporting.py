"""Turning the monitor's decisions into the events it publishes.

::

    closed window + figures ─────────▶ metrics.computed
    metric episode changed ──────────▶ metric_decay, low_confidence  ┐
    estimate episode changed ────────▶ estimated_decay               │
      (or contradicted by labels)                                    ├ alert.raised /
    probe episode changed ───────────▶ probe_failed                  │ alert.recovered
    challenger worse, or withdrawn ──▶ challenger_worse              ┘
    champion vs challenger ──────────▶ variants.compared

:class:`~services.monitor.domain.Monitor` decides (which window closed, what was breached, which
episode changed, what the comparison says); the functions here only shape and word the result:
the evidence a responder reads first and the one-line summary. Kept apart so that the wording of
an alert can change without touching a rule, and a rule without rereading every summary. A
regressor's ``residual_drift`` alert is worded beside its test, in
:func:`services.monitor.residuals.residual_alert`. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import JsonValue

from contracts.alerts import AlertKind, AlertRaised, AlertRecovered, Severity
from contracts.monitoring import (
    CalibrationSummary,
    EstimatedMetric,
    LatencySummary,
    MetricsComputed,
    ProbeCompleted,
    VariantsCompared,
)
from contracts.monitoring import Window as WindowSpan
from contracts.registry import (
    MetricDirection,
    MetricTarget,
    ModelTask,
    ModelVersionRecord,
    MonitoringSpec,
)
from services.monitor.comparison import Comparison
from services.monitor.estimation import Calibration
from services.monitor.metrics import confusion, latency_percentiles, throughput_per_second
from services.monitor.thresholds import Transition, TransitionKind
from services.monitor.windows import ClosedWindow

__all__ = [
    "PRODUCER",
    "calibration_summary",
    "challenger_withdrawn",
    "challenger_worse",
    "estimate_contradicted",
    "estimated_decay_alert",
    "metric_alert",
    "metrics_computed",
    "probe_alert",
    "variants_compared",
]

PRODUCER = "monitor"

_FAILED_CASES_IN_EVIDENCE = 20
_SUMMARY_CHARACTERS = 1000
_COMPARISON_ONLY = {"event_id", "type", "occurred_at", "producer", "schema_version"}
"""Envelope fields left out when a comparison is an alert's evidence."""


def metrics_computed(
    closed: ClosedWindow,
    spec: MonitoringSpec,
    figures: dict[str, float | None],
    *,
    breaching: list[str] | None,
    estimated: dict[str, EstimatedMetric] | None,
    calibration: Calibration | None,
    now: datetime,
) -> MetricsComputed:
    """The ``metrics.computed`` of a closed window: its figures, what it held, how fast it was
    served, and (when estimated) the estimate beside the calibration behind it."""
    window = closed.window
    series = window.series
    regression = spec.task is ModelTask.REGRESSION
    latency = latency_percentiles(window.latencies_ms)
    return MetricsComputed(
        producer=PRODUCER,
        occurred_at=now,
        model=series.model,
        model_version=series.version,
        variant=series.variant,
        window=WindowSpan(
            kind=closed.kind,
            start=window.start,
            end=window.end,
            size=window.predictions + window.labelled,
        ),
        metrics=figures,
        class_labels=list(spec.classes),
        confusion_matrix=(
            [] if regression else confusion(window.y_true, window.y_pred, spec.classes)
        ),
        labelled=window.labelled,
        predictions=window.predictions,
        expired_unjoined=window.expired_unjoined,
        latency_ms=(
            LatencySummary(p50=0.0, p95=0.0, p99=0.0)
            if latency is None
            else LatencySummary(p50=latency.p50, p95=latency.p95, p99=latency.p99)
        ),
        throughput_per_s=throughput_per_second(
            window.predictions, window.first_prediction_at, window.last_prediction_at
        )
        or 0.0,
        breaching=breaching,
        estimated=estimated,
        calibration=(
            None if estimated is None or calibration is None else calibration_summary(calibration)
        ),
    )


def calibration_summary(calibration: Calibration) -> CalibrationSummary:
    """How well a version's scores are calibrated, rounded as events carry it."""
    quality = calibration.quality
    return CalibrationSummary(
        reference_rows=quality.rows,
        ece_raw=round(quality.ece_raw, 6),
        ece=round(quality.ece, 6),
        brier=round(quality.brier, 6),
        calibrated=quality.calibrating_helps,
    )


def metric_alert(
    closed: ClosedWindow,
    figures: dict[str, float | None],
    target: MetricTarget,
    *,
    kind: AlertKind,
    severity: Severity,
    fingerprint: str,
    transition: Transition,
    recovery_level: float,
    now: datetime,
) -> AlertRaised | AlertRecovered:
    """The ``metric_decay`` or ``low_confidence`` alert (or its recovery) a watched metric's
    episode change makes, with the window's figures as evidence."""
    window = closed.window
    series = window.series
    values = [None if v is None else round(v, 6) for v in transition.values]
    evidence: dict[str, JsonValue] = {
        "metric": target.metric,
        "value": figures.get(target.metric),
        "baseline": target.baseline,
        "threshold": target.threshold,
        "recovery_level": recovery_level,
        "direction": target.direction.value,
        "windows": len(values),
        "values": list(values),
        "variant": series.variant,
        "window": {
            "kind": closed.kind.value,
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "predictions": window.predictions,
            "labelled": window.labelled,
            "expired_unjoined": window.expired_unjoined,
        },
        "figures": dict(figures),
    }
    shown = ", ".join("n/a" if v is None else _figure(v) for v in values)
    name = f"{target.metric} of {series.model} v{series.version} ({series.variant})"
    return _episode_alert(
        transition,
        model=series.model,
        version=series.version,
        kind=kind,
        severity=severity,
        fingerprint=fingerprint,
        raised=(
            f"{name} {_side(target)} threshold {target.threshold} for {len(values)} windows "
            f"({shown}); baseline {target.baseline}"
        ),
        recovered=f"{name} back past {recovery_level:.4g} for {len(values)} windows ({shown})",
        evidence=evidence,
        now=now,
    )


def estimated_decay_alert(
    record: ModelVersionRecord,
    closed: ClosedWindow,
    target: MetricTarget,
    estimated: dict[str, EstimatedMetric],
    quality: dict[str, JsonValue],
    *,
    fingerprint: str,
    transition: Transition,
    recovery_level: float,
    now: datetime,
) -> AlertRaised | AlertRecovered:
    """The ``estimated_decay`` alert (or its recovery) an estimate's episode change makes, with
    the method and the calibration (a regressor's loss reference) behind the estimate, so a
    responder can judge how far to trust it before labels arrive."""
    window = closed.window
    series = window.series
    regression = record.spec.task is ModelTask.REGRESSION
    estimate = estimated.get(target.metric)
    values = [None if v is None else round(v, 6) for v in transition.values]
    shown = ", ".join("n/a" if v is None else _figure(v) for v in values)
    band = "n/a" if estimate is None else f"{_figure(estimate.lower)}-{_figure(estimate.upper)}"
    evidence: dict[str, JsonValue] = {
        "metric": target.metric,
        "estimated": None if estimate is None else estimate.model_dump(),
        "estimated_values": list(values),
        "baseline": target.baseline,
        "threshold": target.threshold,
        "recovery_level": recovery_level,
        "direction": target.direction.value,
        "windows": len(values),
        "variant": series.variant,
        "method": (
            "dle: loss models on features and prediction, 95% band from their residuals"
            if regression
            else "cbpe: calibrated scores, expected confusion matrix, sampled 95% band"
        ),
        ("loss_reference" if regression else "calibration"): quality,
        # measured by the registry on the evaluation data when the version was registered
        "registered_calibration": (
            None if record.calibration is None else record.calibration.model_dump()
        ),
        "window": {
            "kind": closed.kind.value,
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "predictions": window.predictions,
            "labelled": window.labelled,
        },
        "estimates": {name: e.model_dump() for name, e in estimated.items()},
    }
    name = f"estimated {target.metric} of {series.model} v{series.version} ({series.variant})"
    return _episode_alert(
        transition,
        model=series.model,
        version=series.version,
        kind=AlertKind.ESTIMATED_DECAY,
        severity=Severity.WARNING,
        fingerprint=fingerprint,
        raised=(
            f"{name} {_side(target)} threshold {target.threshold} for {len(values)} windows "
            f"({shown}; band {band}) before labels arrive; baseline {target.baseline}"
        ),
        recovered=f"{name} back past {recovery_level:.4g} for {len(values)} windows ({shown})",
        evidence=evidence,
        now=now,
    )


def estimate_contradicted(
    closed: ClosedWindow,
    target: MetricTarget,
    realised: float,
    *,
    fingerprint: str,
    raised_at_window: str,
    labelled_since: datetime,
    now: datetime,
) -> AlertRecovered:
    """The recovery of an ``estimated_decay`` that the realised metric of a window of labels,
    all of predictions made since it was raised, contradicts."""
    window = closed.window
    series = window.series
    return AlertRecovered(
        producer=PRODUCER,
        occurred_at=now,
        model=series.model,
        model_version=series.version,
        kind=AlertKind.ESTIMATED_DECAY,
        fingerprint=fingerprint,
        summary=(
            f"realised {target.metric} of {series.model} v{series.version} "
            f"({series.variant}) is {_figure(realised)}, not {_side(target)} threshold "
            f"{target.threshold}: the estimate is contradicted by labels"
        ),
        evidence={
            "metric": target.metric,
            "contradicted_by": "realised",
            "value": realised,
            "threshold": target.threshold,
            "labelled": window.labelled,
            "labelled_predictions_since": labelled_since.isoformat(),
            "raised_at_window": raised_at_window,
        },
    )


def probe_alert(
    result: ProbeCompleted,
    *,
    version: int | None,
    fingerprint: str,
    transition: Transition,
    now: datetime,
) -> AlertRaised | AlertRecovered:
    """The ``probe_failed`` alert (or its recovery) a probe run's episode change makes, with the
    run's first failed cases as evidence."""
    failed_cases: list[JsonValue] = [
        case.model_dump(mode="json")
        for case in result.cases
        if case.error is not None or case.predicted != case.expected
    ]
    evidence: dict[str, JsonValue] = {
        "passed": result.passed,
        "accuracy": result.accuracy,
        "min_accuracy": result.min_accuracy,
        "failure": result.failure,
        "latency_ms": result.latency_ms,
        "manual": result.manual,
        "failed_cases": failed_cases[:_FAILED_CASES_IN_EVIDENCE],
        "probe_event_id": str(result.event_id),
    }
    return _episode_alert(
        transition,
        model=result.model,
        version=version,
        kind=AlertKind.PROBE_FAILED,
        severity=Severity.CRITICAL,
        fingerprint=fingerprint,
        raised=f"probe of {result.model} failed: {result.failure}"[:_SUMMARY_CHARACTERS],
        recovered=f"probe of {result.model} passes again",
        evidence=evidence,
        now=now,
    )


def variants_compared(
    model: str,
    champion_version: int,
    challenger_version: int,
    comparison: Comparison,
    *,
    min_samples: int,
    alpha: float,
    now: datetime,
) -> VariantsCompared:
    """The ``variants.compared`` of a champion and its challenger on the key metric."""
    return VariantsCompared(
        producer=PRODUCER,
        occurred_at=now,
        model=model,
        champion_version=champion_version,
        challenger_version=challenger_version,
        metric=comparison.metric,
        champion_value=comparison.champion_value,
        challenger_value=comparison.challenger_value,
        champion_samples=comparison.champion_samples,
        challenger_samples=comparison.challenger_samples,
        min_samples=min_samples,
        test=comparison.test,
        p_value=comparison.p_value,
        alpha=alpha,
        verdict=comparison.verdict,
    )


def challenger_worse(
    compared: VariantsCompared, comparison: Comparison, *, fingerprint: str, now: datetime
) -> AlertRaised:
    """The ``challenger_worse`` alert of a comparison that found the challenger worse, with the
    comparison as evidence."""
    return AlertRaised(
        producer=PRODUCER,
        occurred_at=now,
        model=compared.model,
        model_version=compared.challenger_version,
        kind=AlertKind.CHALLENGER_WORSE,
        severity=Severity.WARNING,
        fingerprint=fingerprint,
        summary=(
            f"challenger v{compared.challenger_version} of {compared.model} is worse "
            f"than champion v{compared.champion_version} on {comparison.metric}: "
            f"{comparison.challenger_value:.4g} vs {comparison.champion_value:.4g} "
            f"(p={comparison.p_value:.3g}, {comparison.test})"
        ),
        evidence=compared.model_dump(mode="json", exclude=_COMPARISON_ONLY),
    )


def challenger_withdrawn(
    model: str,
    champion_version: int,
    challenger_version: int,
    *,
    fingerprint: str,
    now: datetime,
) -> AlertRecovered:
    """The recovery of a ``challenger_worse`` whose challenger no longer takes traffic (its
    pairing ended: promoted, rolled back, or the deployment changed)."""
    return AlertRecovered(
        producer=PRODUCER,
        occurred_at=now,
        model=model,
        model_version=challenger_version,
        kind=AlertKind.CHALLENGER_WORSE,
        fingerprint=fingerprint,
        summary=f"challenger v{challenger_version} of {model} no longer takes traffic",
        evidence={
            "champion_version": champion_version,
            "challenger_version": challenger_version,
        },
    )


def _episode_alert(
    transition: Transition,
    *,
    model: str,
    version: int | None,
    kind: AlertKind,
    severity: Severity,
    fingerprint: str,
    raised: str,
    recovered: str,
    evidence: dict[str, JsonValue],
    now: datetime,
) -> AlertRaised | AlertRecovered:
    """The alert an episode's transition makes: raised with its severity, or recovered."""
    if transition.kind is TransitionKind.RAISED:
        return AlertRaised(
            producer=PRODUCER,
            occurred_at=now,
            model=model,
            model_version=version,
            kind=kind,
            severity=severity,
            fingerprint=fingerprint,
            summary=raised,
            evidence=evidence,
        )
    return AlertRecovered(
        producer=PRODUCER,
        occurred_at=now,
        model=model,
        model_version=version,
        kind=kind,
        fingerprint=fingerprint,
        summary=recovered,
        evidence=evidence,
    )


def _side(target: MetricTarget) -> str:
    """Which side of its threshold a breaching value of the metric lies on."""
    return "below" if target.direction is MetricDirection.HIGHER_IS_BETTER else "above"


def _figure(value: float) -> str:
    """A figure as an alert's summary shows it: three decimals, or four significant digits for
    one too large for them (a regressor's error can be near the float limit, and a summary
    holds at most 1,000 characters).

    >>> _figure(0.91234), _figure(1.5e300)
    ('0.912', '1.5e+300')
    """
    return f"{value:.3f}" if abs(value) < 1e9 else f"{value:.4g}"
