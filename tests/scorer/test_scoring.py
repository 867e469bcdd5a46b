"""Scoring a batch, pure: order, attribution, and rows a model itself refuses."""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from contracts import (
    Deployment,
    FeatureKind,
    FeatureSpec,
    MonitoringSpec,
    ServedVersion,
    Variant,
)
from services.runtime import class_labels
from services.scorer.scoring import Item, LoadedVersion, score_batch
from tests.factories import make_spec
from tests.model_builders import train

V1, V2 = (
    ServedVersion(version=n, artifact_uri=f"sha256/{n}", artifact_sha256=f"{n:064x}")
    for n in (1, 2)
)


def loaded(
    estimator: object, spec: MonitoringSpec | None = None, version: int = 1
) -> LoadedVersion:
    return LoadedVersion("m", version, spec or make_spec(), estimator, class_labels(estimator))


def item(n: int, **features: object) -> Item:
    values = features or {"mean radius": 8.0 + n, "mean texture": 20.0}
    return Item("m", f"r-{n}", None, values)  # type: ignore[arg-type]


def test_predictions_come_back_in_request_order_with_the_version_that_made_them() -> None:
    versions = {1: loaded(train(1.0).estimator), 2: loaded(train(0.01).estimator, version=2)}
    deployment = Deployment(revision=5, champion=V1, challenger=V2, challenger_share=0.5)
    items = [item(n) for n in range(200)]
    result = score_batch(items, {"m": deployment}, lambda _, number: versions.get(number))
    assert [s.index for s in result.scored] == list(range(200))
    assert {s.variant for s in result.scored} == {Variant.CHAMPION, Variant.CHALLENGER}
    for scored in result.scored:
        assert scored.revision == 5
        assert scored.version == (2 if scored.variant is Variant.CHALLENGER else 1)
        expected = versions[scored.version].estimator.predict_proba(
            np.array([[items[scored.index].features["mean radius"], 20.0]])
        )[0]
        assert list(scored.probabilities.values()) == expected.tolist()


def test_a_row_the_model_refuses_is_refused_alone_with_the_models_error() -> None:
    spec = make_spec(
        features=[
            FeatureSpec(name="size", kind=FeatureKind.NUMERIC),
            FeatureSpec(name="colour", kind=FeatureKind.CATEGORICAL),
        ],
        probe=None,
    )
    features = np.array([[1.0, "red"], [2.0, "blue"], [3.0, "red"], [4.0, "blue"]], dtype=object)
    encoder = ColumnTransformer(
        [("colour", OneHotEncoder(handle_unknown="error"), [1])], remainder="passthrough"
    )
    model = make_pipeline(encoder, LogisticRegression()).fit(
        features, np.array(["malignant", "benign", "malignant", "benign"])
    )
    items = [
        Item("m", "ok-1", None, {"size": 1.0, "colour": "red"}),
        Item("m", "unseen", None, {"size": 1.0, "colour": "green"}),
        Item("m", "ok-2", None, {"size": 2.0, "colour": "blue"}),
    ]
    deployment = Deployment(revision=1, champion=V1)
    result = score_batch(items, {"m": deployment}, lambda *_: loaded(model, spec))
    assert [s.index for s in result.scored] == [0, 2]
    [refusal] = result.refused
    assert refusal.index == 1
    assert "m v1 cannot score it: ValueError" in refusal.message
    assert "green" in refusal.message


class Probabilities:
    """A stand-in classifier answering fixed probabilities per ``mean radius`` (a broken model
    can answer NaN or infinity)."""

    classes_ = np.array(["benign", "malignant"])

    def __init__(self, by_radius: dict[float, list[float]]):
        self.by_radius = by_radius

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return np.array([self.by_radius[row[0]] for row in matrix])


def test_a_nan_or_infinite_probability_is_that_rows_refusal_and_the_others_are_scored() -> None:
    answers = Probabilities(
        {
            1.0: [0.3, 0.7],
            2.0: [float("nan"), 0.5],
            3.0: [0.2, float("inf")],
            4.0: [0.6, 0.4],
        }
    )
    items = [item(n, **{"mean radius": float(n % 4 + 1), "mean texture": 1.0}) for n in range(8)]
    result = score_batch(
        items, {"m": Deployment(revision=1, champion=V1)}, lambda *_: loaded(answers)
    )
    assert [(s.index, s.predicted_class, s.confidence) for s in result.scored] == [
        (0, "malignant", 0.7),
        (3, "benign", 0.6),
        (4, "malignant", 0.7),
        (7, "benign", 0.6),
    ]
    assert [s.probabilities for s in result.scored][:2] == [
        {"benign": 0.3, "malignant": 0.7},
        {"benign": 0.6, "malignant": 0.4},
    ]
    assert [r.index for r in result.refused] == [1, 2, 5, 6]
    for refusal in result.refused:
        assert (
            "m v1 cannot score it: the model predicted non-finite probabilities" in refusal.message
        )
        assert refusal.problems == ()


def test_the_likeliest_class_is_the_first_of_equals() -> None:
    answers = Probabilities({1.0: [0.5, 0.5]})
    items = [item(0, **{"mean radius": 1.0, "mean texture": 1.0})]
    result = score_batch(
        items, {"m": Deployment(revision=1, champion=V1)}, lambda *_: loaded(answers)
    )
    assert [(s.predicted_class, s.confidence) for s in result.scored] == [("benign", 0.5)]
