"""Demo data for retraining tests: scikit-learn's breast-cancer set as labelled rows and events."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

from contracts import LabelRecorded, MetricTarget, MonitoringSpec, PredictionMade, Variant
from services.retrainer.retraining.training_data import LabelledRows
from tests.factories import make_spec

CLASSES = ("malignant", "benign")

SPEC = make_spec(
    metrics=[
        MetricTarget(metric="recall", baseline=0.85, threshold=0.7),
        MetricTarget(metric="accuracy", baseline=0.85, threshold=0.7),
    ]
)
"""Two features (mean radius, mean texture): recall about 0.85 on held-out rows."""


def breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    data = load_breast_cancer()
    return data.data[:, :2], np.array([CLASSES[t] for t in data.target])


def rows(start: int = 0, stop: int | None = None, live_from: int | None = None) -> LabelledRows:
    features, labels = breast_cancer()
    chosen = range(len(labels))[start:stop]
    return LabelledRows(
        tuple((float(features[i, 0]), float(features[i, 1])) for i in chosen),
        tuple(str(labels[i]) for i in chosen),
        len(chosen) if live_from is None else live_from,
    )


def live_events(
    model: str, start: int, stop: int, *, version: int = 1, prefix: str = "live"
) -> tuple[list[PredictionMade], list[LabelRecorded]]:
    """Predictions (as the scorer publishes them) and labels for breast-cancer rows."""
    features, labels = breast_cancer()
    predictions, truths = [], []
    for i in range(start, stop):
        request = f"{prefix}-{i}"
        values: dict[str, Any] = {
            "mean radius": float(features[i, 0]),
            "mean texture": float(features[i, 1]),
        }
        predictions.append(
            PredictionMade(
                producer="scorer",
                model=model,
                model_version=version,
                variant=Variant.CHAMPION,
                deployment_revision=1,
                request_id=request,
                features=values,
                predicted_class="benign",
                probabilities={"malignant": 0.3, "benign": 0.7},
                confidence=0.7,
                latency_ms=1.0,
            )
        )
        truths.append(
            LabelRecorded(producer="clinic", model=model, request_id=request, label=str(labels[i]))
        )
    return predictions, truths


def spec(**overrides: Any) -> MonitoringSpec:
    return SPEC.model_copy(update=overrides)
