"""Proving at registration that a model scores its declared features: a trial on a sample of its
own training data, shaped exactly as the scorer shapes live requests. Pure.

A model that passes the static checks (it loads, its feature count, names and classes fit the
spec) can still fail on the first request: a ``ColumnTransformer`` selecting a column the spec
does not name, a categorical column it cannot encode, probabilities that are not probabilities.
Scoring a sample when the version is registered turns that into a refusal naming the problem,
before anything is stored, rather than a scorer that refuses every request once deployed. A
regressor (``task: regression``) is asked for ``predict``, as the scorer asks it, and must
answer one finite number per row: the scorer could publish no NaN or infinity.

A binary classifier's scores on the same rows also give its calibration quality (expected
calibration error and Brier score, :mod:`services.runtime.calibration_quality`, the figures the
monitor reports), recorded on the version so a badly calibrated model shows at registration.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from contracts.registry import REGRESSION_METRICS, ModelTask, MonitoringSpec, ScoreCalibration
from services.retrainer.registry.artifacts import ArtifactError
from services.retrainer.retraining.gate import metric_value
from services.retrainer.retraining.regression_metrics import regression_metric
from services.retrainer.retraining.training import score
from services.retrainer.retraining.training_data import LabelledRows, parse_csv, targets, to_matrix
from services.runtime import as_model_input
from services.runtime.calibration_quality import brier_score, expected_calibration_error

__all__ = ["TRIAL_ROWS", "trial_score", "trial_score_and_calibration"]

TRIAL_ROWS = 500
"""Most rows scored: enough to meet every category and a baseline worth recording, few enough
that a registration stays quick."""


def trial_score(
    estimator: Any,
    spec: MonitoringSpec,
    training_data: bytes,
    evaluation_data: bytes | None = None,
) -> dict[str, float]:
    """Score a sample of the training data (and the evaluation data, if any) as the scorer
    would; raise :class:`ArtifactError` naming the problem if the model cannot. Return the
    spec's metrics (and accuracy) measured on the evaluation data when given, else on the
    training sample: the baseline recorded when the registration gives none. A regressor
    must predict one finite number per row, and its measures are MAE, RMSE and R²."""
    return trial_score_and_calibration(estimator, spec, training_data, evaluation_data)[0]


def trial_score_and_calibration(
    estimator: Any,
    spec: MonitoringSpec,
    training_data: bytes,
    evaluation_data: bytes | None = None,
) -> tuple[dict[str, float], ScoreCalibration | None]:
    """:func:`trial_score`, and a binary classifier's calibration quality on the same rows
    (``None`` for other models)."""
    trained, _ = parse_csv(training_data, spec)
    if len(trained) == 0:
        raise ArtifactError("the training data has no row the spec accepts: nothing to score")
    sample = _sample(trained)
    measured_on = sample
    source: Literal["evaluation_data", "training_data"] = "training_data"
    if evaluation_data is not None:
        held_out, _ = parse_csv(evaluation_data, spec)
        if len(held_out):
            measured_on = _sample(held_out)
            source = "evaluation_data"
    if spec.task is ModelTask.REGRESSION:
        _values(estimator, spec, sample, "its training data")
        return _regression_metrics(estimator, spec, measured_on), None
    _scores(estimator, spec, sample, "its training data")
    scores = _scores(estimator, spec, measured_on, "its evaluation data")
    names = [target.metric for target in spec.metrics] + ["accuracy"]
    measured = {name: metric_value(name, scores, spec) for name in names}
    calibration = None
    if len(spec.classes) == 2:
        positive = np.asarray(scores.truth) == spec.positive
        probability = np.asarray(scores.positive_probability, dtype=float)
        calibration = ScoreCalibration(
            rows=len(probability),
            ece=round(expected_calibration_error(probability, positive), 6),
            brier=round(brier_score(probability, positive), 6),
            measured_on=source,
        )
    return {name: value for name, value in measured.items() if value is not None}, calibration


def _sample(rows: LabelledRows) -> LabelledRows:
    """Up to :data:`TRIAL_ROWS` rows spread evenly over the file (the same rows every time)."""
    if len(rows) <= TRIAL_ROWS:
        return rows
    picks = np.linspace(0, len(rows) - 1, TRIAL_ROWS).round().astype(int)
    return rows.take(sorted({int(i) for i in picks}))


def _scores(estimator: Any, spec: MonitoringSpec, rows: LabelledRows, what: str) -> Any:
    try:
        scores = score(estimator, spec, rows)
    except Exception as error:  # the model's own failure, whatever it is, is the message
        raise ArtifactError(
            f"the model cannot score {what} with the spec's features "
            f"({', '.join(f.name for f in spec.features)}): {type(error).__name__}: {error}"
        ) from None
    if not np.all(np.isfinite(scores.confidence)) or np.any(
        (scores.confidence < 0) | (scores.confidence > 1 + 1e-9)
    ):
        raise ArtifactError(
            f"the model's predict_proba on {what} returns values that are not probabilities"
        )
    return scores


def _values(estimator: Any, spec: MonitoringSpec, rows: LabelledRows, what: str) -> np.ndarray:
    """A regressor's predictions on rows, as the scorer asks for them: one finite number per
    row, or an :class:`ArtifactError` (the scorer would refuse every such request)."""
    try:
        inputs = as_model_input(estimator, spec, to_matrix(rows, spec))
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is checked for below
            values = np.asarray(estimator.predict(inputs), dtype=np.float64)
    except Exception as error:  # the model's own failure, whatever it is, is the message
        raise ArtifactError(
            f"the model cannot score {what} with the spec's features "
            f"({', '.join(f.name for f in spec.features)}): {type(error).__name__}: {error}"
        ) from None
    if values.shape != (len(rows),):
        raise ArtifactError(
            f"the model's predict on {what} returns shape {values.shape}, not one number for "
            f"each of the {len(rows)} rows"
        )
    if not np.all(np.isfinite(values)):
        raise ArtifactError(
            f"the model's predict on {what} returns {int(np.sum(~np.isfinite(values)))} "
            "non-finite value(s) (NaN or infinity)"
        )
    return values


def _regression_metrics(
    estimator: Any, spec: MonitoringSpec, rows: LabelledRows
) -> dict[str, float]:
    """MAE, RMSE and R² on ``rows`` (ADR 0022): those defined and finite (an error too large
    for a float is no baseline)."""
    predicted = _values(estimator, spec, rows, "its evaluation data")
    truth = targets(rows, spec)
    with np.errstate(over="ignore", invalid="ignore"):
        measured = {m: regression_metric(m, truth, predicted) for m in sorted(REGRESSION_METRICS)}
    return {m: v for m, v in measured.items() if v is not None and math.isfinite(v)}
