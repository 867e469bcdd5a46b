"""The scorer hands a model a DataFrame with the spec's names when it was fitted on one, and the
unchanged matrix (the fast path) when it was fitted on an array."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from contracts import Deployment, FeatureKind, FeatureSpec, ServedVersion
from contracts.values import Features
from services.runtime import as_model_input, class_labels
from services.scorer.features import to_matrix
from services.scorer.scoring import Item, LoadedVersion, score_batch
from tests.factories import make_spec

SPEC = make_spec(
    features=[
        FeatureSpec(name="size", kind=FeatureKind.NUMERIC, nullable=True),
        FeatureSpec(name="colour", kind=FeatureKind.CATEGORICAL),
    ],
    probe=None,
)
SERVED = ServedVersion(version=1, artifact_uri="sha256/1", artifact_sha256="1" * 64)


def _training() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    size = rng.normal(10, 3, 300)
    colour = rng.choice(["red", "blue"], 300)
    labels = np.where((size > 10) & (colour == "red"), "malignant", "benign")
    return pd.DataFrame({"size": size, "colour": colour}), labels


def named_pipeline() -> Pipeline:
    frame, labels = _training()
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
                        ("size", StandardScaler(), ["size"]),
                    ]
                ),
            ),
            ("forest", RandomForestClassifier(n_estimators=10, random_state=0)),
        ]
    )
    return model.fit(frame, labels)


def test_a_pipeline_selecting_columns_by_name_is_scored_through_a_named_frame() -> None:
    model = named_pipeline()
    version = LoadedVersion("m", 1, SPEC, model, class_labels(model))
    items = [
        Item("m", "a", None, {"size": 14.0, "colour": "red"}),
        Item("m", "b", None, {"size": None, "colour": "blue"}),
        Item("m", "c", None, {"size": 3, "colour": "green"}),
    ]
    result = score_batch(items, {"m": Deployment(revision=1, champion=SERVED)}, lambda *_: version)
    assert result.refused == []
    frame = pd.DataFrame({"size": [14.0, np.nan, 3.0], "colour": ["red", "blue", "green"]})
    expected = model.predict_proba(frame)
    assert [list(s.probabilities.values()) for s in result.scored] == expected.tolist()


def test_the_frame_keeps_spec_order_names_and_per_kind_types() -> None:
    model = named_pipeline()
    rows: list[Features] = [{"colour": "red", "size": 1}, {"colour": "blue", "size": None}]
    frame = as_model_input(model, SPEC, to_matrix(SPEC, rows))
    assert list(frame.columns) == ["size", "colour"]
    assert frame["size"].dtype == np.float64
    assert np.isnan(frame["size"][1])
    assert list(frame["colour"]) == ["red", "blue"]


def test_an_array_fitted_model_gets_the_matrix_itself() -> None:
    spec = make_spec()
    model = LogisticRegression().fit(np.array([[1.0, 2.0], [3.0, 1.0]]), ["malignant", "benign"])
    matrix = to_matrix(spec, [{"mean radius": 1.0, "mean texture": 2.0}])
    assert as_model_input(model, spec, matrix) is matrix
