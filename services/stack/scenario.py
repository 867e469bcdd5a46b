"""The demo's data and traffic, pure: a health model on scikit-learn's breast-cancer set (it ships
with scikit-learn, so the demo runs offline), its maintenance instructions, and a stream of
scoring requests whose inputs can be shifted the way a changed imaging device would shift them.

The shift shrinks the size measurements of malignant tumours, so they look benign: the model's
recall — the metric a health model lives by — falls, and the drift detector sees the size
features move. A deterministic seed makes every run the same story.

Numpy only: loading the set and training versions need scikit-learn, which the demo's long-lived
supervisor leaves to a child process (``services/stack/training.py``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from contracts.drift import FeatureKind
from contracts.registry import (
    FeatureSpec,
    GoldenCase,
    MetricDirection,
    MetricTarget,
    MonitoringSpec,
    ProbeSpec,
)

__all__ = [
    "MODEL",
    "POSITIVE",
    "Dataset",
    "Request",
    "monitoring_spec",
    "recipe",
    "to_csv",
    "traffic",
]

MODEL = "breast-cancer"
LABEL = "diagnosis"
POSITIVE = "malignant"
CLASSES = ["malignant", "benign"]
SHRUNK = ("radius", "perimeter", "area", "concave points")
"""Measurements the shift shrinks: a device that under-measures tumour size."""


@dataclass(frozen=True)
class Dataset:
    """The breast-cancer set split into training rows and rows left for live traffic."""

    features: list[str]
    train_x: np.ndarray
    train_y: np.ndarray
    live_x: np.ndarray
    live_y: np.ndarray


def recipe(c: float) -> dict[str, float | int | str | bool]:
    """The training parameters, in the schema the retrainer retrains with."""
    return {
        "estimator": "logistic_regression",
        "imputer": "median",
        "scale": True,
        "test_fraction": 0.25,
        "seed": 0,
        "C": c,
        "max_iter": 1000,
    }


def monitoring_spec(dataset: Dataset) -> MonitoringSpec:
    """Maintenance instructions of a health model: recall first, precision as a guard.

    The probe's golden set holds unmistakable cases (the largest malignant and the smallest
    benign tumours of the training rows): any sound version answers them right, so a failing
    probe means a broken scorer, not a changed world.
    """
    area = dataset.train_x[:, dataset.features.index("mean area")]
    malignant = [i for i in np.argsort(-area) if dataset.train_y[i] == POSITIVE][:3]
    benign = [i for i in np.argsort(area) if dataset.train_y[i] != POSITIVE][:3]
    golden = [
        GoldenCase(
            case_id=f"golden-{index}",
            features=dict(zip(dataset.features, map(float, dataset.train_x[row]), strict=True)),
            expected=str(dataset.train_y[row]),
        )
        for index, row in enumerate([*malignant, *benign])
    ]
    return MonitoringSpec(
        features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in dataset.features],
        label=LABEL,
        classes=CLASSES,
        positive_class=POSITIVE,
        key_metric="recall",
        metrics=[
            MetricTarget(metric="recall", baseline=0.93, threshold=0.85),
            MetricTarget(metric="precision", baseline=0.95, threshold=0.8),
            MetricTarget(
                metric="low_confidence_rate",
                baseline=0.05,
                threshold=0.5,
                direction=MetricDirection.LOWER_IS_BETTER,
            ),
        ],
        low_confidence_threshold=0.75,
        max_low_confidence_rate=0.5,
        consecutive_windows=2,
        probe=ProbeSpec(
            golden_set=golden, interval_seconds=30.0, timeout_seconds=5.0, min_accuracy=0.8
        ),
        owners=["oncology-ml"],
    )


def to_csv(features: list[str], x: np.ndarray, y: np.ndarray) -> bytes:
    """A dataset as the registry stores it: feature columns in spec order, then the label."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*features, LABEL])
    for row, label in zip(x, y, strict=True):
        writer.writerow([*(repr(float(value)) for value in row), label])
    return out.getvalue().encode()


@dataclass(frozen=True)
class Request:
    """One scoring request of the stream, with the truth that arrives later."""

    request_id: str
    features: dict[str, float | int | str | bool | None]
    label: str


def traffic(dataset: Dataset, *, shifted: bool, start: int, seed: int = 11) -> Iterator[Request]:
    """Endless requests drawn from the live rows with a little measurement noise; ``shifted``
    shrinks the size measurements of malignant cases by a third."""
    rng = np.random.default_rng([seed, start, int(shifted)])
    shrink = np.array(
        [0.62 if any(key in name for key in SHRUNK) else 1.0 for name in dataset.features]
    )
    number = start
    while True:
        index = int(rng.integers(len(dataset.live_y)))
        row = dataset.live_x[index] * rng.normal(1.0, 0.02, size=dataset.live_x.shape[1])
        label = str(dataset.live_y[index])
        if shifted and label == POSITIVE:
            row = row * shrink
        yield Request(
            request_id=f"demo-{number:07d}",
            features=dict(zip(dataset.features, (round(float(v), 6) for v in row), strict=True)),
            label=label,
        )
        number += 1
