"""What the monitor measures: windowed live metrics, probe runs, and champion/challenger tests."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.envelope import Envelope
from contracts.values import ClassLabel, ModelName, Variant

__all__ = [
    "CalibrationSummary",
    "ComparisonVerdict",
    "EstimatedMetric",
    "LatencySummary",
    "MetricsComputed",
    "ProbeCase",
    "ProbeCompleted",
    "VariantsCompared",
    "Window",
    "WindowKind",
]


class WindowKind(StrEnum):
    """How a window was closed: after a number of events, or at an event-time boundary."""

    COUNT = "count"
    TIME = "time"


class Window(BaseModel):
    """The span of events a figure was computed on."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    kind: WindowKind = Field(description="How the window was closed.", examples=[WindowKind.COUNT])
    start: AwareDatetime = Field(
        description="Event time of the first event.", examples=["2026-11-22T10:00:00Z"]
    )
    end: AwareDatetime = Field(
        description="Event time of the last event.", examples=["2026-11-22T10:05:00Z"]
    )
    size: int = Field(ge=0, description="Number of events in the window.", examples=[500])


class LatencySummary(BaseModel):
    """Scoring latency percentiles over a window, in milliseconds."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    p50: float = Field(ge=0, description="Median latency.", examples=[2.1])
    p95: float = Field(ge=0, description="95th percentile.", examples=[6.3])
    p99: float = Field(ge=0, description="99th percentile.", examples=[11.8])


class EstimatedMetric(BaseModel):
    """A metric estimated from the window's scores alone, before its labels arrive."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    value: float = Field(description="Point estimate.", examples=[0.91])
    lower: float = Field(description="Lower end of the 95 % band.", examples=[0.86])
    upper: float = Field(description="Upper end of the 95 % band.", examples=[0.95])


class CalibrationSummary(BaseModel):
    """How well the version's scores matched outcome rates on its reference (out of fold)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    reference_rows: int = Field(ge=0, description="Labelled reference rows.", examples=[300])
    ece_raw: float = Field(
        ge=0, description="Expected calibration error of the raw scores.", examples=[0.08]
    )
    ece: float = Field(ge=0, description="Expected calibration error, calibrated.", examples=[0.02])
    brier: float = Field(ge=0, description="Brier score, calibrated.", examples=[0.05])
    calibrated: bool = Field(
        description="Whether the scores are recalibrated (false: they were better as they are).",
        examples=[True],
    )


class MetricsComputed(Envelope):
    """Live metrics of one model version and variant over one window of labelled predictions."""

    type: Literal["metrics.computed"] = "metrics.computed"
    model: ModelName
    model_version: int = Field(ge=1, description="Version measured.", examples=[3])
    variant: Variant = Field(description="Deployment slot measured.", examples=[Variant.CHAMPION])
    window: Window
    metrics: dict[str, float | None] = Field(
        description=(
            "Metric name to value (accuracy, precision, recall, f1, roc_auc, log_loss, "
            "low_confidence_rate, ...); null where undefined on this window."
        ),
        examples=[{"recall": 0.97, "precision": 0.93, "low_confidence_rate": 0.04}],
    )
    class_labels: list[ClassLabel] = Field(
        description="Order of the rows and columns of the confusion matrix.",
        examples=[["malignant", "benign"]],
    )
    confusion_matrix: list[list[int]] = Field(
        description="Rows are true classes, columns predicted classes.",
        examples=[[[40, 2], [3, 55]]],
    )
    labelled: int = Field(ge=0, description="Predictions with a joined label.", examples=[100])
    predictions: int = Field(ge=0, description="Predictions in the window.", examples=[120])
    expired_unjoined: int = Field(
        ge=0,
        description="Predictions whose label did not arrive before the join's time-to-live.",
        examples=[3],
    )
    latency_ms: LatencySummary
    throughput_per_s: float = Field(
        ge=0, description="Predictions per second of event time.", examples=[212.5]
    )
    breaching: list[str] | None = Field(
        default=None,
        description=(
            "Watched metrics on the alerting side of their threshold in this window (empty: "
            "healthy); null when the window had too few labels to judge."
        ),
        examples=[["recall"]],
    )
    estimated: dict[str, EstimatedMetric] | None = Field(
        default=None,
        description=(
            "Metrics estimated without labels, beside the realised ones: a binary classifier's "
            "from its prediction scores (confidence-based performance estimation), a "
            "regressor's mae and rmse from its features and predictions (direct loss "
            "estimation); null when the version has no reference yet or is multiclass."
        ),
        examples=[{"recall": {"value": 0.91, "lower": 0.86, "upper": 0.95}}],
    )
    calibration: CalibrationSummary | None = Field(
        default=None, description="Calibration behind ``estimated``; null without it."
    )


class ProbeCase(BaseModel):
    """One golden-set case the probe sent and what came back."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    case_id: str = Field(description="Id of the golden case.", examples=["golden-07"])
    expected: ClassLabel
    predicted: ClassLabel | None = Field(
        default=None, description="What the scorer answered; null on error.", examples=["benign"]
    )
    error: str | None = Field(
        default=None, description="Why the case failed to score.", examples=["HTTP 503"]
    )


class ProbeCompleted(Envelope):
    """The probe sent a model's golden set to the scorer's HTTP API and checked the answers."""

    type: Literal["probe.completed"] = "probe.completed"
    model: ModelName
    model_version: int | None = Field(
        default=None,
        description="Version that answered, when the scorer said so.",
        examples=[3],
    )
    passed: bool = Field(description="Whether the probe met its pass criteria.", examples=[True])
    accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Share of cases answered correctly.", examples=[1.0]
    )
    min_accuracy: float = Field(
        ge=0, le=1, description="Pass threshold on accuracy.", examples=[0.9]
    )
    cases: list[ProbeCase] = Field(description="Every case with its answer.")
    latency_ms: float | None = Field(
        default=None, ge=0, description="Round trip of the probe request.", examples=[14.0]
    )
    failure: str | None = Field(
        default=None,
        description="Why the probe failed as a whole (timeout, HTTP error, regression).",
        examples=["timeout after 5.0 s"],
    )
    manual: bool = Field(
        default=False, description="True when a person ran it as a spot check.", examples=[False]
    )


class ComparisonVerdict(StrEnum):
    """Outcome of a champion/challenger comparison."""

    INSUFFICIENT_DATA = "insufficient_data"
    NO_SIGNIFICANT_DIFFERENCE = "no_significant_difference"
    CHALLENGER_BETTER = "challenger_better"
    CHALLENGER_WORSE = "challenger_worse"


class VariantsCompared(Envelope):
    """The monitor compared challenger with champion on live labels with a significance test."""

    type: Literal["variants.compared"] = "variants.compared"
    model: ModelName
    champion_version: int = Field(ge=1, description="Champion version.", examples=[3])
    challenger_version: int = Field(ge=1, description="Challenger version.", examples=[4])
    metric: str = Field(description="Key metric compared.", examples=["recall"])
    champion_value: float | None = Field(description="Champion's value.", examples=[0.95])
    challenger_value: float | None = Field(description="Challenger's value.", examples=[0.97])
    champion_samples: int = Field(ge=0, description="Labels behind champion.", examples=[400])
    challenger_samples: int = Field(ge=0, description="Labels behind challenger.", examples=[60])
    min_samples: int = Field(ge=1, description="Labels each side needs.", examples=[50])
    test: str = Field(description="Significance test used.", examples=["two-proportion z-test"])
    p_value: float | None = Field(
        default=None, ge=0, le=1, description="Two-sided p-value.", examples=[0.21]
    )
    alpha: float = Field(gt=0, lt=1, description="Significance level.", examples=[0.05])
    verdict: ComparisonVerdict = Field(
        description="Outcome; insufficient_data below min_samples.",
        examples=[ComparisonVerdict.NO_SIGNIFICANT_DIFFERENCE],
    )
