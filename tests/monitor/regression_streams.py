"""A regressor's maintenance instructions and deterministic streams of its predictions and true
values, with a known error per phase. The true values are scikit-learn's diabetes targets
(disease progression one year on, 25 to 346), the data set Vigil's regression tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes

from contracts import (
    Envelope,
    FeatureKind,
    FeatureSpec,
    FeatureValue,
    ModelTask,
    ModelVersionRecord,
    MonitoringSpec,
    ValuePredicted,
    ValueRecorded,
    Variant,
)
from tests.factories import T0, make_version_record
from tests.regression_builders import regression_targets

REGRESSOR = "diabetes-progression"


def regression_spec(**overrides: Any) -> MonitoringSpec:
    """MAE is the key metric (alert above 50), RMSE (above 65) and R² (below 0.2) watched too."""
    fields: dict[str, Any] = {
        "task": ModelTask.REGRESSION,
        "features": [
            FeatureSpec(name="bmi", kind=FeatureKind.NUMERIC),
            FeatureSpec(name="bp", kind=FeatureKind.NUMERIC),
        ],
        "label": "progression",
        "key_metric": "mae",
        "metrics": regression_targets(mae=(42.0, 50.0), rmse=(54.0, 65.0), r2=(0.45, 0.2)),
        "probe": None,
    }
    return MonitoringSpec(**(fields | overrides))


def regressor_record(*, model: str = REGRESSOR, version: int = 1) -> ModelVersionRecord:
    return make_version_record(
        model=model,
        version=version,
        spec=regression_spec(),
        metrics={"mae": 42.0, "rmse": 54.0, "r2": 0.45},
        parameters={"max_iter": 100},
    )


@cache
def diabetes_targets() -> tuple[float, ...]:
    return tuple(float(v) for v in load_diabetes().target)


@dataclass(frozen=True)
class ValuePhase:
    """``count`` predictions, each off its true value by ``error``, alternately above and
    below: the phase's MAE and RMSE are both exactly ``error``."""

    count: int
    error: float = 20.0


@dataclass(frozen=True)
class ScoredValue:
    prediction: ValuePredicted
    truth: ValueRecorded


def scored_value(
    request_id: str,
    at: datetime,
    predicted: float,
    truth: float,
    *,
    features: dict[str, FeatureValue],
    truth_delay: timedelta = timedelta(0),
    latency_ms: float = 1.0,
    model: str = REGRESSOR,
    version: int = 1,
    variant: Variant = Variant.CHAMPION,
) -> ScoredValue:
    """A prediction of a value as the scorer publishes it, and its true value as a labeller
    sends it ``truth_delay`` later: the streams differ only in the numbers."""
    prediction = ValuePredicted(
        producer="scorer",
        occurred_at=at,
        model=model,
        model_version=version,
        variant=variant,
        deployment_revision=1,
        request_id=request_id,
        features=features,
        predicted_value=predicted,
        latency_ms=latency_ms,
    )
    value = ValueRecorded(
        producer="labeller",
        occurred_at=at + truth_delay,
        model=model,
        request_id=request_id,
        value=truth,
    )
    return ScoredValue(prediction, value)


def value_stream(
    phases: Iterable[ValuePhase],
    *,
    model: str = REGRESSOR,
    version: int = 1,
    variant: Variant = Variant.CHAMPION,
    start: datetime = T0,
    spacing: timedelta = timedelta(seconds=1),
    truth_delay: timedelta = timedelta(minutes=10),
    prefix: str = "v",
    offset: int = 0,
) -> list[ScoredValue]:
    """Predictions ``spacing`` apart in event time, each true value ``truth_delay`` later."""
    targets = diabetes_targets()
    scored: list[ScoredValue] = []
    index = 0
    for phase in phases:
        for _ in range(phase.count):
            truth = targets[(index + offset) % len(targets)]
            at = start + index * spacing
            sign = 1.0 if index % 2 == 0 else -1.0
            scored.append(
                scored_value(
                    f"{prefix}-{index}",
                    at,
                    truth + sign * phase.error,
                    truth,
                    features={"bmi": 0.01 * (index % 7), "bp": -0.02},
                    truth_delay=truth_delay,
                    latency_ms=1.0 + (index % 10),
                    model=model,
                    version=version,
                    variant=variant,
                )
            )
            index += 1
    return scored


def interleaved_values(scored: list[ScoredValue], *, lag: int) -> list[Envelope]:
    """Predictions in order, each true value sent ``lag`` predictions after its own; those
    still owed at the end come last."""
    events: list[Envelope] = []
    for index, item in enumerate(scored):
        events.append(item.prediction)
        if index >= lag:
            events.append(scored[index - lag].truth)
    events.extend(item.truth for item in scored[max(0, len(scored) - lag) :])
    return events


NOISE = 50.0
"""Standard deviation of a diabetes model's error (a gradient-boosted model's MAE is ~43)."""


def honest(truth: float, noise: float) -> float:
    return truth + noise


def twenty_percent_low(truth: float, noise: float) -> float:
    return 0.8 * (truth + noise)


def noisy_traffic(
    rng: np.random.Generator,
    count: int,
    predict: Callable[[float, float], float],
    *,
    start: int = 0,
) -> list[Envelope]:
    """``count`` predictions of diabetes targets drawn at random, each followed by its truth."""
    targets = diabetes_targets()
    events: list[Envelope] = []
    for index in range(start, start + count):
        truth = targets[int(rng.integers(len(targets)))]
        at = T0 + timedelta(seconds=index)
        scored = scored_value(
            f"r-{index}",
            at,
            predict(truth, float(rng.normal(0.0, NOISE))),
            truth,
            features={"bmi": 0.01, "bp": -0.02},
            truth_delay=timedelta(milliseconds=500),
        )
        events += [scored.prediction, scored.truth]
    return events
