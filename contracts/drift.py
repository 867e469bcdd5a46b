"""Drift reports: how a window of live data compares with a model version's training data."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import Envelope
from contracts.monitoring import Window
from contracts.values import ModelName

__all__ = [
    "Correction",
    "DriftCheck",
    "DriftReported",
    "FeatureDrift",
    "FeatureKind",
    "Histogram",
    "ReportDetail",
    "SequentialAlarm",
]


class FeatureKind(StrEnum):
    """How a feature is tested."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class Correction(StrEnum):
    """Multiple-testing correction applied across the features of one window."""

    BONFERRONI = "bonferroni"
    BENJAMINI_HOCHBERG = "benjamini-hochberg"
    NONE = "none"


class ReportDetail(StrEnum):
    """How much of a window's evidence a drift report carries."""

    FULL = "full"
    COMPACT = "compact"


class DriftCheck(BaseModel):
    """One hypothesis tested in a window: its test, evidence, and whether it fired.

    A check fires when its adjusted p-value is at most the window's alpha *and* its effect size
    reaches the floor of its measure.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    check: str = Field(
        description=(
            "What was tested: distribution, missing_rate, unseen_levels (per feature), "
            "joint_location (all numeric features at once) or conditional_location (one feature "
            "given the others, tested only when joint_location fired)."
        ),
        examples=["distribution"],
    )
    test: str = Field(description="Test behind the p-value.", examples=["cramervonmises"])
    statistic: float | None = Field(description="Test statistic.", examples=[0.93])
    p_value: float | None = Field(ge=0, le=1, description="Uncorrected p-value.", examples=[2e-6])
    adjusted_p_value: float | None = Field(
        ge=0, le=1, description="p-value after the window's correction.", examples=[1e-4]
    )
    effect_size: float | None = Field(
        description="Size of the change, in the check's own measure.", examples=[0.31]
    )
    effect_measure: str = Field(
        description="What the effect size is.", examples=["wasserstein / reference std"]
    )
    effect_floor: float = Field(
        ge=0, description="Smallest effect this check may call drift.", examples=[0.05]
    )
    fired: bool = Field(description="Significant and large enough.", examples=[True])


class SequentialAlarm(BaseModel):
    """The sequential (CUSUM) mode alarmed before the window was full, and closed it early."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    statistic: float = Field(ge=0, description="Largest CUSUM at the alarm.", examples=[31.2])
    threshold: float = Field(gt=0, description="CUSUM threshold crossed.", examples=[27.5])
    allowance: float = Field(
        ge=0, description="Per-row allowance (drift ignored below it), in sd.", examples=[0.1]
    )
    features: list[str] = Field(
        description="Features whose CUSUM crossed the threshold, largest first.",
        examples=[["mean radius"]],
    )
    rows: int = Field(
        ge=1, description="Rows accumulated since the CUSUM was last reset.", examples=[740]
    )


class Histogram(BaseModel):
    """A numeric feature's reference and window distributions over the reference's deciles."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    edges: list[float] = Field(
        description=(
            "Bin edges: the reference's smallest value, its nine deciles, its largest value "
            "(window values beyond the ends count in the end bins)."
        ),
        examples=[[6.9, 10.2, 11.0, 11.7, 12.3, 13.1, 13.9, 15.0, 16.9, 19.5, 28.1]],
    )
    reference: list[float] = Field(
        description="Share of the reference's non-missing values per bin (about 0.1 each).",
        examples=[[0.1] * 10],
    )
    current: list[float] = Field(
        description="Share of the window's non-missing values per bin.",
        examples=[[0.0, 0.02, 0.03, 0.05, 0.05, 0.1, 0.15, 0.2, 0.2, 0.2]],
    )


class FeatureDrift(BaseModel):
    """Evidence for one feature (or the model's score) in one window."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    feature: str = Field(
        description="Feature name, or `__score__` for the prediction score.",
        examples=["mean radius"],
    )
    kind: FeatureKind = Field(description="How it was tested.", examples=[FeatureKind.NUMERIC])
    test: str = Field(description="Test behind the p-value.", examples=["ks"])
    statistic: float | None = Field(description="Test statistic.", examples=[0.21])
    p_value: float | None = Field(ge=0, le=1, description="Uncorrected p-value.", examples=[1e-6])
    adjusted_p_value: float | None = Field(
        ge=0, le=1, description="p-value after the window's correction.", examples=[3e-5]
    )
    effect_size: float | None = Field(
        description="Size of the shift, compared with the effect-size floor.", examples=[0.31]
    )
    effect_measure: str = Field(
        description="What the effect size is.", examples=["wasserstein / reference std"]
    )
    psi: float | None = Field(description="Population stability index.", examples=[0.27])
    missing_rate_reference: float = Field(
        ge=0, le=1, description="Share of missing values in the reference.", examples=[0.0]
    )
    missing_rate_current: float = Field(
        ge=0, le=1, description="Share of missing values in the window.", examples=[0.12]
    )
    new_categories: list[str] = Field(
        default_factory=list,
        description="Levels seen in the window but never in the reference.",
        examples=[["tablet"]],
    )
    drifted: bool = Field(description="Verdict for this feature.", examples=[True])
    reasons: list[str] = Field(
        default_factory=list,
        description="Which checks fired.",
        examples=[["distribution", "missing_rate"]],
    )
    checks: list[DriftCheck] = Field(
        default_factory=list, description="Every check run on this feature, fired or not."
    )
    statistics: dict[str, float | None] = Field(
        default_factory=dict,
        description="Further statistics for the reader (KS, Wasserstein, Jensen-Shannon, ...).",
        examples=[{"ks": 0.12, "ks_p_value": 3e-5, "wasserstein": 0.8}],
    )
    bins: Histogram | None = Field(
        default=None,
        description="Reference against window distribution (numeric features with values).",
    )


class DriftReported(Envelope):
    """The drift detector tested one window of live data against the reference profile."""

    type: Literal["drift.reported"] = "drift.reported"
    model: ModelName
    model_version: int = Field(ge=1, description="Version whose reference was used.", examples=[3])
    window: Window
    drifted: bool = Field(description="Dataset-level verdict.", examples=[True])
    drivers: list[str] = Field(
        description="Drifted features, most shifted first.", examples=[["mean radius"]]
    )
    features: list[FeatureDrift] = Field(description="Evidence for every feature tested.")
    score: FeatureDrift | None = Field(
        default=None, description="Prediction (score) drift, when scores were available."
    )
    correction: Correction = Field(
        description="Multiple-testing correction across features.", examples=[Correction.BONFERRONI]
    )
    alpha: float = Field(gt=0, lt=1, description="Family-wise significance level.", examples=[0.01])
    effect_size_floor: float = Field(
        ge=0,
        description="Smallest numeric distribution effect that may be called drift.",
        examples=[0.1],
    )
    joint: DriftCheck | None = Field(
        default=None,
        description="Joint test of all numeric features' locations, when run.",
    )
    sequential: SequentialAlarm | None = Field(
        default=None, description="Set when the sequential mode closed this window early."
    )
    hypotheses: int | None = Field(
        default=None,
        ge=0,
        description="Number of hypotheses the correction was applied across.",
        examples=[61],
    )
    detail: ReportDetail = Field(
        default=ReportDetail.FULL,
        description=(
            "`full`: every feature's checks, statistics, PSI and histogram. `compact` (a window "
            "that did not drift, outside any open episode): each feature's main statistic, "
            "p-values, missing shares and verdict only; `checks`, `statistics` and `bins` are "
            "empty, `psi` is null, and `effect_size` is null unless the check was significant."
        ),
        examples=[ReportDetail.FULL],
    )
