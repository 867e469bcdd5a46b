"""Small real models for tests: scikit-learn pipelines trained on the breast-cancer data that
scikit-learn ships, saved as skops files, with their datasets as CSV and registration metadata."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
import skops.io
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.factories import make_spec

FEATURES = ["mean radius", "mean texture"]
LABEL = "diagnosis"
CLASSES = np.array(["malignant", "benign"])


@dataclass(frozen=True)
class TrainedModel:
    artifact: bytes
    training_csv: bytes
    evaluation_csv: bytes
    estimator: Any


def _csv(features: np.ndarray, labels: np.ndarray) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES, LABEL])
    for row, label in zip(features, labels, strict=True):
        writer.writerow([*(repr(float(value)) for value in row), label])
    return out.getvalue().encode()


def train(c: float = 1.0) -> TrainedModel:
    """Train a two-feature logistic regression; ``c`` makes different, equally valid versions."""
    data = load_breast_cancer()
    features = data.data[:, :2]
    labels = CLASSES[data.target]
    train_rows = np.arange(len(labels)) % 4 != 0
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(C=c))
    model.fit(features[train_rows], labels[train_rows])
    return TrainedModel(
        artifact=skops.io.dumps(model),
        training_csv=_csv(features[train_rows], labels[train_rows]),
        evaluation_csv=_csv(features[~train_rows], labels[~train_rows]),
        estimator=model,
    )


def metadata(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "sklearn_version": sklearn.__version__,
        "dataset_name": "breast-cancer",
        "dataset_version": "1",
        "evaluation_dataset_name": "breast-cancer",
        "evaluation_dataset_version": "1-test",
        "metrics": {"recall": 0.97},
        "parameters": {"estimator": "logistic_regression", "C": 1.0},
        "code_version": "vigil-tests",
        "spec": make_spec().model_dump(mode="json"),
        "reason": "test model",
    }
    return fields | overrides


def registration_form(
    model: TrainedModel, **overrides: Any
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """The multipart fields of ``POST /models/{model}/versions``: (form data, files)."""
    return (
        {"metadata": json.dumps(metadata(**overrides))},
        {
            "artifact": ("model.skops", model.artifact),
            "training_data": ("train.csv", model.training_csv),
            "evaluation_data": ("test.csv", model.evaluation_csv),
        },
    )
