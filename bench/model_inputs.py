"""Micro-benchmark: the scorer's per-message cost of handing a model a named DataFrame (a model
fitted on one) against the NumPy matrix (a model fitted on an array), in one run.

The same pipeline (impute, scale, logistic regression over 30 breast-cancer features) is fitted
twice, once on an array and once on a DataFrame, and :func:`services.scorer.scoring.score_batch`
scores the same requests with each, at batch sizes 1 (HTTP) and 500 (a Kafka batch). Only the
input shaping differs, so the ratio is the DataFrame path's cost.

    python bench/model_inputs.py [--seconds 2] [--quick]

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from contracts import Deployment, FeatureKind, FeatureSpec, MetricTarget, MonitoringSpec
from contracts.registry import ServedVersion
from services.runtime import class_labels
from services.scorer.scoring import Item, LoadedVersion, score_batch


def _per_message_us(version: LoadedVersion, items: list[Item], seconds: float) -> float:
    deployments = {"m": Deployment(revision=1, champion=_SERVED)}
    score_batch(items, deployments, lambda *_: version)  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        score_batch(items, deployments, lambda *_: version)
        done += len(items)
    return (time.perf_counter() - start) / done * 1e6


_SERVED = ServedVersion(version=1, artifact_uri="sha256/1", artifact_sha256="1" * 64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="Time per measurement.")
    parser.add_argument("--quick", action="store_true", help="0.2 s per measurement.")
    arguments = parser.parse_args()
    seconds = 0.2 if arguments.quick else arguments.seconds
    data = load_breast_cancer()
    names = [str(name) for name in data.feature_names]
    labels = np.array(["malignant", "benign"])[data.target]
    spec = MonitoringSpec(
        features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in names],
        label="diagnosis",
        classes=["malignant", "benign"],
        positive_class="malignant",
        key_metric="recall",
        metrics=[MetricTarget(metric="recall", baseline=0.9, threshold=0.8)],
    )

    def pipeline() -> Any:
        return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000))

    on_array = pipeline().fit(data.data, labels)
    on_frame = pipeline().fit(pd.DataFrame(data.data, columns=names), labels)
    versions = {
        "array": LoadedVersion("m", 1, spec, on_array, class_labels(on_array)),
        "dataframe": LoadedVersion("m", 1, spec, on_frame, class_labels(on_frame)),
    }
    figures: dict[str, float] = {}
    for batch in (1, 500):
        items = [
            Item("m", f"r{i}", None, dict(zip(names, map(float, data.data[i % 569]), strict=True)))
            for i in range(batch)
        ]
        for _ in range(2):  # interleaved, twice, so both paths see the same machine
            for path, version in versions.items():
                cost = _per_message_us(version, items, seconds)
                key = f"batch{batch}_{path}_us"
                figures[key] = min(figures.get(key, cost), cost)
        figures[f"batch{batch}_ratio"] = (
            figures[f"batch{batch}_dataframe_us"] / figures[f"batch{batch}_array_us"]
        )
        print(
            f"batch {batch}: array {figures[f'batch{batch}_array_us']:.1f} µs/message, "
            f"DataFrame {figures[f'batch{batch}_dataframe_us']:.1f} µs/message, "
            f"ratio {figures[f'batch{batch}_ratio']:.2f}"
        )
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
