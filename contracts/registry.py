"""Registry facts on ``models``, and the maintenance instructions each model version carries.

The registry (owned by the retrainer) publishes every change from its outbox. A deployment is the
champion plus an optional challenger with its traffic share and mode; every event that changes what
is served carries the whole resulting :class:`Deployment`, so a scorer never has to merge deltas.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts.drift import FeatureKind
from contracts.envelope import Envelope
from contracts.values import ClassLabel, Features, FiniteJson, ModelName

__all__ = [
    "CandidateEvaluated",
    "DatasetChanges",
    "DatasetRef",
    "Deployment",
    "DeploymentMode",
    "FeatureShift",
    "FeatureSpec",
    "GoldenCase",
    "MetricDirection",
    "MetricTarget",
    "ModelApproved",
    "ModelDeployed",
    "ModelPromoted",
    "ModelRegistered",
    "ModelRejected",
    "ModelRolledBack",
    "ModelTask",
    "ModelVersionRecord",
    "MonitoringSpec",
    "ProbeSpec",
    "PromotionExpired",
    "PromotionRequested",
    "RetrainFinished",
    "RetrainStarted",
    "ScoreCalibration",
    "ServedVersion",
    "per_class_metric",
]

MACRO_METRICS = frozenset({"precision_macro", "recall_macro", "f1_macro"})
"""Unweighted means over every class of precision, recall and F1 (multiclass models)."""

CLASSIFICATION_METRICS = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "low_confidence_rate"}
    | MACRO_METRICS
)
"""What a classifier's window reports (plus ``precision[CLASS]`` and the like, see below)."""

REGRESSION_METRICS = frozenset({"mae", "rmse", "r2"})
"""What a regressor's window reports: mean absolute error, root mean squared error (both in the
target's unit, lower is better) and the coefficient of determination (higher is better)."""

LOWER_IS_BETTER_METRICS = frozenset({"mae", "rmse", "log_loss", "low_confidence_rate"})
"""Metrics whose healthy side is below the threshold whatever a target says."""

SUPPORTED_METRICS = CLASSIFICATION_METRICS | REGRESSION_METRICS

_PER_CLASS = re.compile(r"^(precision|recall|f1)\[(.+)\]$")


def per_class_metric(metric: str) -> tuple[str, str] | None:
    """Split a per-class metric name into (metric, class); ``None`` for any other name.

    >>> per_class_metric("recall[class_2]")
    ('recall', 'class_2')
    >>> per_class_metric("recall") is None
    True
    """
    found = _PER_CLASS.match(metric)
    return (found.group(1), found.group(2)) if found else None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class FeatureSpec(_Frozen):
    """One input feature of a model."""

    name: str = Field(min_length=1, description="Feature name.", examples=["mean radius"])
    kind: FeatureKind = Field(description="How it is tested.", examples=[FeatureKind.NUMERIC])
    nullable: bool = Field(
        default=False, description="Whether a missing value may be scored.", examples=[False]
    )
    categories: list[str] | None = Field(
        default=None,
        description="Known levels of a categorical feature (null: learn from the data).",
        examples=[["a", "b"]],
    )


class ModelTask(StrEnum):
    """What a model predicts: a class with its probabilities, or a number."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class MetricDirection(StrEnum):
    """Which side of the threshold is healthy."""

    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class MetricTarget(_Frozen):
    """A metric to watch: its baseline and the threshold that raises an alert."""

    metric: str = Field(
        description="Metric name. Classification: accuracy, precision, recall, f1 (about "
        "positive_class), roc_auc, log_loss, low_confidence_rate, precision_macro, recall_macro, "
        "f1_macro (mean over classes), or precision[CLASS], recall[CLASS], f1[CLASS] (one "
        "class). Regression: mae, rmse (lower is better), r2.",
        examples=["recall", "recall_macro", "recall[class_2]", "mae"],
    )
    baseline: float = Field(description="Value measured at validation.", examples=[0.97])
    threshold: float = Field(description="Alert when crossed.", examples=[0.95])
    direction: MetricDirection = Field(
        default=MetricDirection.HIGHER_IS_BETTER,
        description="Which side of the threshold is healthy.",
        examples=[MetricDirection.HIGHER_IS_BETTER],
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.metric not in SUPPORTED_METRICS and per_class_metric(self.metric) is None:
            raise ValueError(
                f"unknown metric {self.metric!r}; supported: {', '.join(sorted(SUPPORTED_METRICS))}"
                ", or precision[CLASS], recall[CLASS], f1[CLASS]"
            )
        if (
            self.metric in LOWER_IS_BETTER_METRICS
            and self.direction is not MetricDirection.LOWER_IS_BETTER
        ):
            raise ValueError(f"{self.metric}: lower is better; set direction: lower_is_better")
        healthy_baseline = (
            self.baseline >= self.threshold
            if self.direction is MetricDirection.HIGHER_IS_BETTER
            else self.baseline <= self.threshold
        )
        if not healthy_baseline:
            raise ValueError(
                f"{self.metric}: baseline {self.baseline} is already on the alerting side "
                f"of threshold {self.threshold}"
            )
        return self


class GoldenCase(_Frozen):
    """One known input with its expected answer, sent by the probe."""

    case_id: str = Field(min_length=1, description="Id of the case.", examples=["golden-01"])
    features: Features
    expected: ClassLabel


class ProbeSpec(_Frozen):
    """How the monitor probes the scorer with a golden set."""

    golden_set: list[GoldenCase] = Field(min_length=1, description="Cases sent on every probe.")
    interval_seconds: float = Field(
        default=60.0, gt=0, description="Time between scheduled probes.", examples=[60.0]
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0, description="A probe slower than this fails.", examples=[5.0]
    )
    min_accuracy: float = Field(
        default=1.0, ge=0, le=1, description="Share of cases that must be right.", examples=[0.9]
    )


class MonitoringSpec(_Frozen):
    """Maintenance instructions of a model version: what to watch and when to alert.

    Validated when the version is registered; the monitor and drift detector read it from there.
    """

    task: ModelTask = Field(
        default=ModelTask.CLASSIFICATION,
        description="What the model predicts. Absent in specs written before regression existed: "
        "read as classification.",
        examples=[ModelTask.CLASSIFICATION],
    )
    features: list[FeatureSpec] = Field(min_length=1, description="Input schema, in order.")
    label: str = Field(
        min_length=1,
        description="Name of the label (classification) or target (regression) column.",
        examples=["diagnosis"],
    )
    classes: list[ClassLabel] = Field(
        default_factory=list,
        description="All classes the model predicts (at least two); empty for regression.",
        examples=[["malignant", "benign"]],
    )
    positive_class: ClassLabel | None = Field(
        default=None,
        description="Class that precision/recall are about; required for classification, "
        "null for regression.",
        examples=["malignant"],
    )
    key_metric: str = Field(description="The business metric.", examples=["recall"])
    metrics: list[MetricTarget] = Field(min_length=1, description="Watched metrics.")
    low_confidence_threshold: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="A prediction whose confidence is below this is low-confidence "
        "(classification only).",
        examples=[0.75],
    )
    max_low_confidence_rate: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Alert when a window's low-confidence rate exceeds it.",
        examples=[0.2],
    )
    consecutive_windows: int = Field(
        default=2, ge=1, description="Windows a breach must last before it alerts.", examples=[2]
    )
    probe: ProbeSpec | None = Field(default=None, description="Scheduled probe, if any.")
    retrain_every_hours: float | None = Field(
        default=None,
        gt=0,
        description="Retrain on a schedule this often (null: only on request or policy).",
        examples=[168.0],
    )
    owners: list[str] = Field(
        default_factory=list,
        description="The model's owners: who level three pages (people or teams).",
        examples=[["ana", "oncology-ml"]],
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        watched = {m.metric for m in self.metrics}
        if len(watched) != len(self.metrics):
            raise ValueError("each metric may be watched once")
        if self.key_metric not in watched:
            raise ValueError(f"key_metric {self.key_metric!r} has no target in metrics")
        if self.task is ModelTask.REGRESSION:
            return self._check_regression(watched)
        if len(self.classes) < 2:
            raise ValueError("a classifier needs at least two classes")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        if self.positive_class not in self.classes:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of classes")
        regression_only = sorted(watched & REGRESSION_METRICS)
        if regression_only:
            raise ValueError(
                f"{', '.join(regression_only)}: regression metrics; set task: regression"
            )
        for metric in watched:
            per_class = per_class_metric(metric)
            if per_class is not None and per_class[1] not in self.classes:
                raise ValueError(f"metric {metric!r}: {per_class[1]!r} is not one of classes")
        if self.probe is not None:
            known = set(names)
            for case in self.probe.golden_set:
                unknown = set(case.features) - known
                missing = known - set(case.features)
                if unknown or missing:
                    raise ValueError(
                        f"golden case {case.case_id!r}: unknown features {sorted(unknown)}, "
                        f"missing features {sorted(missing)}"
                    )
                if case.expected not in self.classes:
                    raise ValueError(
                        f"golden case {case.case_id!r}: unknown class {case.expected!r}"
                    )
        return self

    def _check_regression(self, watched: set[str]) -> Self:
        if self.classes or self.positive_class is not None:
            raise ValueError("a regression model has no classes and no positive_class")
        not_regression = sorted(watched - REGRESSION_METRICS)
        if not_regression:
            raise ValueError(
                f"{', '.join(not_regression)}: not a regression metric; "
                f"supported: {', '.join(sorted(REGRESSION_METRICS))}"
            )
        if self.probe is not None:
            raise ValueError("probes compare classes: a regression model cannot have one yet")
        return self

    @property
    def positive(self) -> ClassLabel:
        """The positive class of a classifier; ``ValueError`` for a regression model, which has
        none (so classification-only code fails loudly instead of on ``None``)."""
        if self.positive_class is None:
            raise ValueError("a regression model has no positive class")
        return self.positive_class

    def target(self, metric: str) -> MetricTarget:
        """Return the target of a watched metric."""
        for target in self.metrics:
            if target.metric == metric:
                return target
        raise KeyError(metric)


class DatasetRef(_Frozen):
    """A training dataset version, by content."""

    name: str = Field(min_length=1, description="Dataset name.", examples=["breast-cancer"])
    version: str = Field(min_length=1, description="Dataset version.", examples=["2026-11-22.1"])
    digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Content digest of the dataset.",
        examples=["sha256:" + "ab" * 32],
    )


class ServedVersion(_Frozen):
    """A model version in a deployment slot, with what a scorer needs to load it."""

    version: int = Field(ge=1, description="Registry version.", examples=[3])
    artifact_uri: str = Field(
        min_length=1,
        description="Where the artifact is, relative to the artifact store.",
        examples=["sha256/abab….skops"],
    )
    artifact_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 the artifact must have before it is loaded.",
        examples=["ab" * 32],
    )


class DeploymentMode(StrEnum):
    """How the challenger takes traffic."""

    CANARY = "canary"
    SHADOW = "shadow"


class Deployment(_Frozen):
    """What serves a model: the champion, and optionally a challenger with its share."""

    revision: int = Field(ge=0, description="Rises with every change.", examples=[7])
    champion: ServedVersion | None = Field(description="Serves the rest of the traffic.")
    challenger: ServedVersion | None = Field(default=None, description="Candidate, if any.")
    challenger_share: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="Share of traffic to the challenger.",
        examples=[0.1],
    )
    mode: DeploymentMode = Field(
        default=DeploymentMode.CANARY,
        description="canary: the challenger's answers are returned; shadow: only published.",
        examples=[DeploymentMode.CANARY],
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.challenger is not None and self.champion is None:
            raise ValueError("a challenger needs a champion")
        if self.challenger is None and self.challenger_share > 0:
            raise ValueError("challenger_share > 0 without a challenger")
        if (
            self.challenger is not None
            and self.champion is not None
            and self.challenger.version == self.champion.version
        ):
            raise ValueError("champion and challenger must be different versions")
        return self


class ScoreCalibration(_Frozen):
    """How well a binary classifier's positive-class scores matched outcome rates, measured by
    the registry when the version was registered (on up to 500 rows of its evaluation data, else
    of its training data)."""

    rows: int = Field(ge=1, description="Rows scored.", examples=[500])
    ece: float = Field(
        ge=0,
        le=1,
        description="Expected calibration error (ten equal-width bins).",
        examples=[0.04],
    )
    brier: float = Field(ge=0, le=1, description="Brier score.", examples=[0.08])
    measured_on: Literal["evaluation_data", "training_data"] = Field(
        description="Which data the rows came from.", examples=["evaluation_data"]
    )


class ModelVersionRecord(_Frozen):
    """A registered model version: its lineage and its maintenance instructions.

    The registry's record of the version, carried by ``model.registered`` and served by the
    registry's HTTP API (``GET /models/{model}/versions/{version}``).
    """

    model: ModelName
    version: int = Field(ge=1, description="Version number within the model.", examples=[3])
    artifact_uri: str = Field(
        min_length=1,
        description="Where the artifact is, relative to the artifact store.",
        examples=["sha256/abab….skops"],
    )
    artifact_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the artifact.", examples=["ab" * 32]
    )
    sklearn_version: str = Field(
        description="scikit-learn version that trained it.", examples=["1.6.1"]
    )
    dataset: DatasetRef = Field(description="Training dataset.")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Validation metrics, measured on evaluation_dataset.",
        examples=[{"recall": 0.97}],
    )
    evaluation_dataset: DatasetRef | None = Field(
        default=None, description="Dataset the metrics were measured on."
    )
    calibration: ScoreCalibration | None = Field(
        default=None,
        description="A binary classifier's score calibration, measured at registration (null "
        "for other models and for versions registered before it was measured).",
    )
    parameters: dict[str, FiniteJson] = Field(
        default_factory=dict, description="Training parameters.", examples=[{"C": 1.0}]
    )
    code_version: str = Field(description="Version of the training code.", examples=["vigil 0.1.0"])
    spec: MonitoringSpec = Field(description="Maintenance instructions.")
    registered_by: str = Field(min_length=1, description="Who registered it.", examples=["ana"])
    reason: str = Field(description="Why it was registered.", examples=["initial model"])
    incident_id: str | None = Field(
        default=None, description="Incident that caused it, if any.", examples=["inc-000042"]
    )
    registered_at: AwareDatetime = Field(
        description="When it was registered.", examples=["2026-11-22T10:00:00Z"]
    )


class ModelRegistered(Envelope):
    """A new model version was registered with its lineage and maintenance instructions."""

    type: Literal["model.registered"] = "model.registered"
    model: ModelName
    record: ModelVersionRecord


class ModelDeployed(Envelope):
    """The deployment of a model changed (champion, challenger, share or mode)."""

    type: Literal["model.deployed"] = "model.deployed"
    model: ModelName
    deployment: Deployment
    actor: str = Field(min_length=1, description="Who changed it.", examples=["ana"])
    reason: str = Field(description="Why.", examples=["canary at 10 %"])
    incident_id: str | None = Field(
        default=None, description="Incident behind the change, if any.", examples=["inc-000042"]
    )


class ModelPromoted(Envelope):
    """The challenger became champion."""

    type: Literal["model.promoted"] = "model.promoted"
    model: ModelName
    version: int = Field(ge=1, description="New champion.", examples=[4])
    previous_version: int | None = Field(ge=1, description="Champion before, if any.", examples=[3])
    deployment: Deployment
    actor: str = Field(min_length=1, description="Who promoted it.", examples=["system:retrainer"])
    reason: str = Field(description="Why.", examples=["non-inferior on 400 labels"])
    incident_id: str | None = Field(
        default=None, description="Incident it resolves, if any.", examples=["inc-000042"]
    )


class ModelRolledBack(Envelope):
    """Champion went back to the previous champion, or a challenger was withdrawn."""

    type: Literal["model.rolled_back"] = "model.rolled_back"
    model: ModelName
    from_version: int = Field(ge=1, description="Version withdrawn.", examples=[4])
    to_version: int | None = Field(
        ge=1, description="Champion after the rollback, if any.", examples=[3]
    )
    deployment: Deployment
    actor: str = Field(min_length=1, description="Who rolled back.", examples=["runbook:rollback"])
    reason: str = Field(description="Why.", examples=["recall fell right after deploy"])
    incident_id: str | None = Field(
        default=None, description="Incident behind it, if any.", examples=["inc-000042"]
    )


class ModelApproved(Envelope):
    """A person approved a candidate version for canary and promotion."""

    type: Literal["model.approved"] = "model.approved"
    model: ModelName
    version: int = Field(ge=1, description="Candidate approved.", examples=[4])
    request_id: str = Field(min_length=1, description="Promotion request.", examples=["pr-12"])
    approver: str = Field(min_length=1, description="Who approved.", examples=["ana"])
    comment: str = Field(description="Approver's comment.", examples=["gate passed, recall +0.02"])
    incident_id: str | None = Field(
        default=None, description="Incident behind the candidate.", examples=["inc-000042"]
    )


class ModelRejected(Envelope):
    """A person rejected a candidate version."""

    type: Literal["model.rejected"] = "model.rejected"
    model: ModelName
    version: int = Field(ge=1, description="Candidate rejected.", examples=[4])
    request_id: str = Field(min_length=1, description="Promotion request.", examples=["pr-12"])
    approver: str = Field(min_length=1, description="Who rejected.", examples=["ana"])
    comment: str = Field(description="Why.", examples=["precision too low"])
    incident_id: str | None = Field(
        default=None, description="Incident behind the candidate.", examples=["inc-000042"]
    )


class FeatureShift(_Frozen):
    """How one feature's distribution moved between two training-set versions."""

    feature: str = Field(min_length=1, description="Feature name.", examples=["mean radius"])
    kind: FeatureKind = Field(description="How it was tested.", examples=[FeatureKind.NUMERIC])
    test: str = Field(
        description="Two-sample test: ks (numeric) or chi_square (categorical).", examples=["ks"]
    )
    statistic: float | None = Field(
        description="Test statistic (null: a side has no values).", examples=[0.12]
    )
    p_value: float | None = Field(description="Two-sided p-value.", examples=[0.003])
    mean_before: float | None = Field(
        default=None, description="Mean in the previous version (numeric).", examples=[14.1]
    )
    mean_after: float | None = Field(
        default=None, description="Mean in this version (numeric).", examples=[15.3]
    )
    missing_rate_before: float = Field(
        ge=0, le=1, description="Share of missing values before.", examples=[0.0]
    )
    missing_rate_after: float = Field(
        ge=0, le=1, description="Share of missing values now.", examples=[0.01]
    )


class DatasetChanges(_Frozen):
    """How a training snapshot differs from the previous version of the model's training data."""

    previous: DatasetRef | None = Field(
        description="Version compared with (null: none before).", examples=[None]
    )
    current: DatasetRef = Field(description="This snapshot.")
    rows_before: int = Field(ge=0, description="Rows in the previous version.", examples=[426])
    rows_after: int = Field(ge=0, description="Rows in this snapshot.", examples=[826])
    live_rows: int = Field(
        ge=0, description="Rows of this snapshot that are labelled live traffic.", examples=[400]
    )
    dropped_rows: int = Field(
        default=0,
        ge=0,
        description="Rows left out because they do not fit the spec (unknown class, bad value).",
        examples=[2],
    )
    label_balance_before: dict[str, float] = Field(
        description="Share of each class before.", examples=[{"malignant": 0.37, "benign": 0.63}]
    )
    label_balance_after: dict[str, float] = Field(
        description="Share of each class now.", examples=[{"malignant": 0.41, "benign": 0.59}]
    )
    features: list[FeatureShift] = Field(description="Per-feature shift, in spec order.")


class RetrainStarted(Envelope):
    """The retrainer started a retraining run for a model."""

    type: Literal["retrain.started"] = "retrain.started"
    model: ModelName
    run_id: str = Field(min_length=1, description="Id of the run.", examples=["rt-7f3a"])
    cause: str = Field(
        description="Deduplication key of the request(s) merged into it.",
        examples=["incident:inc-000042"],
    )
    incident_id: str | None = Field(
        default=None, description="Incident behind it, if any.", examples=["inc-000042"]
    )
    dataset: DatasetRef = Field(description="Training dataset snapshot it uses.")


class RetrainFinished(Envelope):
    """A retraining run ended: a candidate registered, or a failure with the reason."""

    type: Literal["retrain.finished"] = "retrain.finished"
    model: ModelName
    run_id: str = Field(min_length=1, description="Id of the run.", examples=["rt-7f3a"])
    incident_id: str | None = Field(
        default=None, description="Incident behind it, if any.", examples=["inc-000042"]
    )
    candidate_version: int | None = Field(
        default=None, ge=1, description="Version registered, if any.", examples=[4]
    )
    cached_steps: list[str] = Field(
        default_factory=list,
        description="Pipeline steps answered from the cache.",
        examples=[["prepare", "split"]],
    )
    failure: str | None = Field(
        default=None, description="Why it failed, for a person.", examples=[None]
    )
    dataset_changes: DatasetChanges | None = Field(
        default=None, description="How the training data changed since the previous version."
    )


class CandidateEvaluated(Envelope):
    """The validation gate's immutable verdict on a candidate against the champion."""

    type: Literal["candidate.evaluated"] = "candidate.evaluated"
    model: ModelName
    evaluation_id: str = Field(min_length=1, description="Id of the record.", examples=["ev-19"])
    candidate_version: int = Field(ge=1, description="Version judged.", examples=[4])
    champion_version: int | None = Field(
        ge=1, description="Version compared with; null: no champion to compare.", examples=[3]
    )
    dataset_digest: str = Field(
        description="Digest of the held-out data both were evaluated on.",
        examples=["sha256:" + "ab" * 32],
    )
    passed: bool = Field(description="Whether the candidate may be proposed.", examples=[True])
    figures: dict[str, FiniteJson] = Field(
        description="Every figure: metrics of both, floors, margin, intervals, test results.",
        examples=[{"recall": {"candidate": 0.97, "champion": 0.91, "floor": 0.95}}],
    )
    failures: list[str] = Field(
        default_factory=list,
        description="Each failed check, for a person.",
        examples=[["recall 0.93 below its floor 0.95"]],
    )
    incident_id: str | None = Field(
        default=None, description="Incident behind the candidate.", examples=["inc-000042"]
    )


class PromotionRequested(Envelope):
    """A candidate passed the gate; a person must approve it before it takes any traffic."""

    type: Literal["promotion.requested"] = "promotion.requested"
    model: ModelName
    request_id: str = Field(min_length=1, description="Promotion request.", examples=["pr-12"])
    version: int = Field(ge=1, description="Candidate version.", examples=[4])
    evaluation_id: str = Field(description="The gate's record.", examples=["ev-19"])
    requested_by: str = Field(
        min_length=1,
        description="Who asked for the retrain; may not approve it.",
        examples=["ana"],
    )
    expires_at: AwareDatetime = Field(
        description="After this the request lapses.", examples=["2026-11-23T10:00:00Z"]
    )
    summary: str = Field(
        description="The gate's verdict in one line.",
        examples=["recall 0.97 vs 0.91 (floor 0.95), non-inferior: p < 0.001"],
    )
    incident_id: str | None = Field(
        default=None, description="Incident behind the candidate.", examples=["inc-000042"]
    )


class PromotionExpired(Envelope):
    """A promotion request lapsed without a decision."""

    type: Literal["promotion.expired"] = "promotion.expired"
    model: ModelName
    request_id: str = Field(min_length=1, description="Promotion request.", examples=["pr-12"])
    version: int = Field(ge=1, description="Candidate version.", examples=[4])
    incident_id: str | None = Field(
        default=None, description="Incident behind the candidate.", examples=["inc-000042"]
    )
