"""Scoring a regressor's batch, pure: ``predict`` per version, one number per row, and a NaN or
infinity (or an answer of the wrong shape) refused as the model's failure on that request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from contracts import Deployment, MonitoringSpec, ServedVersion, Variant
from services.runtime import mismatches_with_spec
from services.scorer.cli import LabelFileError, read_labels
from services.scorer.scoring import Item, LoadedVersion, score_batch
from tests.factories import make_spec
from tests.model_builders import train
from tests.regression_builders import DIABETES, FEATURES, diabetes_spec, train_regressor

V1, V2 = (
    ServedVersion(version=n, artifact_uri=f"sha256/{n}", artifact_sha256=f"{n:064x}")
    for n in (1, 2)
)


class Answers:
    """A stand-in regressor answering fixed numbers per ``bmi`` (what a broken model says)."""

    def __init__(self, by_bmi: dict[float, float], *, shape: tuple[int, ...] | None = None):
        self.by_bmi = by_bmi
        self.shape = shape

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        values = np.array([self.by_bmi[row[FEATURES.index("bmi")]] for row in matrix])
        return values.reshape(self.shape) if self.shape else values


def loaded(estimator: Any, spec: MonitoringSpec | None = None, version: int = 1) -> LoadedVersion:
    return LoadedVersion("d", version, spec or diabetes_spec(), estimator, [])


def item(n: int, bmi: float | None = None) -> Item:
    features = {name: float(DIABETES.data[name].iloc[n]) for name in FEATURES}
    if bmi is not None:
        features["bmi"] = bmi
    return Item("d", f"r-{n}", None, features)  # type: ignore[arg-type]


def test_a_regressor_answers_its_predict_for_every_row_in_order() -> None:
    model = train_regressor().estimator
    versions = {1: loaded(model), 2: loaded(train_regressor(named=False).estimator, version=2)}
    deployment = Deployment(revision=3, champion=V1, challenger=V2, challenger_share=0.5)
    items = [item(n) for n in range(60)]
    result = score_batch(items, {"d": deployment}, lambda _, number: versions.get(number))
    assert result.refused == []
    assert [s.index for s in result.scored] == list(range(60))
    assert {s.variant for s in result.scored} == {Variant.CHAMPION, Variant.CHALLENGER}
    for scored in result.scored:
        features = pd.DataFrame([items[scored.index].features], columns=FEATURES)
        version = versions[scored.version].estimator
        inputs = features if scored.version == 1 else features.to_numpy()
        assert scored.predicted_value == float(version.predict(inputs)[0])
        assert (scored.predicted_class, scored.probabilities) == ("", {})


def test_a_nan_or_infinite_prediction_is_that_rows_refusal_and_the_others_are_scored() -> None:
    answers = Answers({1.0: 150.0, 2.0: float("nan"), 3.0: float("inf"), 4.0: -1e308 * 10})
    deployment = Deployment(revision=1, champion=V1)
    items = [item(n, bmi=float(n % 4 + 1)) for n in range(8)]
    result = score_batch(items, {"d": deployment}, lambda *_: loaded(answers))
    assert [(s.index, s.predicted_value) for s in result.scored] == [(0, 150.0), (4, 150.0)]
    assert [r.index for r in result.refused] == [1, 2, 3, 5, 6, 7]
    for refusal in result.refused:
        assert "d v1 cannot score it: the model predicted a non-finite value" in refusal.message
        assert refusal.problems == ()


def test_an_answer_that_is_not_one_number_per_row_refuses_every_row() -> None:
    answers = Answers({1.0: 150.0}, shape=(-1, 1))
    result = score_batch(
        [item(0, bmi=1.0), item(1, bmi=1.0)],
        {"d": Deployment(revision=1, champion=V1)},
        lambda *_: loaded(answers),
    )
    assert result.scored == []
    assert all("not one number per row" in r.message for r in result.refused)


def test_the_estimator_must_be_of_the_specs_task() -> None:
    regressor = train_regressor().estimator
    assert mismatches_with_spec(regressor, diabetes_spec()) == []
    classifier_spec = make_spec(
        features=diabetes_spec().features,
        label="progression",
        classes=["high", "low"],
        positive_class="high",
        probe=None,
    )
    [problem] = mismatches_with_spec(regressor, classifier_spec)
    assert problem.startswith("Pipeline is a regressor (it has predict, no predict_proba)")
    classifier = train().estimator
    regression_spec = diabetes_spec(features=make_spec().features)
    [problem] = mismatches_with_spec(classifier, regression_spec)
    assert problem.startswith("Pipeline is a classifier (it has predict_proba or classes)")


def test_a_label_file_may_give_numbers_as_value(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("request_id,value\nr-1,151.0\nr-2,1e308\n")
    assert [(t.request_id, t.value, t.label) for t in read_labels(path, model="d")] == [
        ("r-1", 151.0, None),
        ("r-2", 1e308, None),
    ]
    for bad in ("nan", "inf", "-Infinity", "1e309", "high"):
        path.write_text(f"request_id,value\nr-1,{bad}\n")
        with pytest.raises(LabelFileError, match=r"truth.csv:2: value"):
            read_labels(path, model="d")
