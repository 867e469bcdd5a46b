"""The cached pipeline: reruns answered from the cache, restarts at the first changed step, and
byte-identical artifacts across processes; recipes and training data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io

from contracts import FeatureKind, FeatureSpec, MetricTarget
from services.retrainer.retraining.gate import GatePolicy
from services.retrainer.retraining.pipeline import Champion, PipelineInputs, Step, run_steps
from services.retrainer.retraining.recipes import RecipeError, parse_recipe
from services.retrainer.retraining.step_store import DatabaseStepStore
from services.retrainer.retraining.training import fit, reproducible_skops, score
from services.retrainer.retraining.training_data import (
    LabelledRows,
    LiveExample,
    parse_csv,
    to_csv,
    to_matrix,
    with_live,
)
from services.runtime import load_model, mismatches_with_spec, sha256_hex
from tests.content_tools import forget_content, step_store, stored_content
from tests.factories import make_spec
from tests.retrainer.retraining_data import SPEC, rows

GATE = GatePolicy(resamples=200)
LR: dict[str, object] = {"estimator": "logistic_regression"}
ALL = list(Step)[:4]


def inputs(store: DatabaseStepStore, data: LabelledRows, **overrides: object) -> PipelineInputs:
    fields: dict[str, object] = {
        "snapshot_sha256": store.put_dataset(to_csv(data, SPEC)),
        "live_from": data.live_from,
        "spec": SPEC,
        "recipe": parse_recipe({"estimator": "logistic_regression", "C": 1.0}),
        "code_version": "test",
        "gate": GATE,
    }
    return PipelineInputs(**(fields | overrides))  # type: ignore[arg-type]


def test_a_rerun_with_the_same_inputs_is_answered_from_the_cache_with_the_same_artifact(
    tmp_path: Path,
) -> None:
    store = step_store(tmp_path)
    first = run_steps(inputs(store, rows(live_from=400)), store)
    assert first.cached == []
    again = run_steps(inputs(store, rows(live_from=400)), store)
    assert again.cached == ALL
    assert again.artifact_sha256 == first.artifact_sha256
    assert again.outputs == first.outputs


def test_a_rerun_restarts_at_the_first_step_its_change_reaches(tmp_path: Path) -> None:
    store = step_store(tmp_path)
    base = run_steps(inputs(store, rows(live_from=400)), store)
    retuned = run_steps(
        inputs(
            store,
            rows(live_from=400),
            recipe=parse_recipe({"estimator": "logistic_regression", "C": 0.3}),
        ),
        store,
    )
    assert retuned.cached == [Step.PREPARE, Step.SPLIT]
    assert retuned.artifact_sha256 != base.artifact_sha256
    champion = Champion(1, base.artifact_sha256)
    judged = run_steps(inputs(store, rows(live_from=400), champion=champion), store)
    assert judged.cached == [Step.PREPARE, Step.SPLIT, Step.TRAIN]
    assert judged.outputs[Step.EVALUATE]["figures"]["no_champion"] is False
    more_data = run_steps(inputs(store, rows(stop=500, live_from=400)), store)
    assert more_data.cached == []
    recoded = run_steps(inputs(store, rows(live_from=400), code_version="test-2"), store)
    assert recoded.cached == []


def test_a_step_whose_stored_bytes_are_gone_is_computed_again(tmp_path: Path) -> None:
    store = step_store(tmp_path)
    first = run_steps(inputs(store, rows(live_from=400)), store)
    forget_content(store.engine, "artifact", first.artifact_sha256)
    again = run_steps(inputs(store, rows(live_from=400)), store)
    assert again.cached == [Step.PREPARE, Step.SPLIT, Step.EVALUATE]  # evaluate's key is unchanged
    assert ("artifact", first.artifact_sha256) in stored_content(store.engine)
    assert again.artifact_sha256 == first.artifact_sha256


_TRAIN_IN_A_NEW_PROCESS = """
import sys
from pathlib import Path
from services.retrainer.retraining.gate import GatePolicy
from services.retrainer.retraining.pipeline import PipelineInputs, run_steps
from services.retrainer.retraining.recipes import parse_recipe
from services.retrainer.retraining.training_data import to_csv
from tests.content_tools import step_store
from tests.retrainer.retraining_data import SPEC, rows
store = step_store(Path(sys.argv[1]))
data = rows(live_from=400)
sha = store.put_dataset(to_csv(data, SPEC))
recipe = parse_recipe({"estimator": "logistic_regression", "C": 1.0})
inputs = PipelineInputs(sha, 400, SPEC, recipe, "test", GatePolicy(resamples=200))
print(run_steps(inputs, store).artifact_sha256)
"""


def test_the_same_inputs_give_a_byte_identical_artifact_in_separate_processes(
    tmp_path: Path,
) -> None:
    hashes = {
        subprocess.run(
            [sys.executable, "-c", _TRAIN_IN_A_NEW_PROCESS, str(tmp_path / f"state-{n}")],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        for n in range(2)
    }
    assert len(hashes) == 1
    [sha] = hashes
    content = step_store(tmp_path / "state-0").artifact(sha)
    assert sha256_hex(content) == sha


def test_a_reproducible_artifact_loads_safely_and_predicts_as_the_fitted_model() -> None:
    recipe = parse_recipe({"estimator": "logistic_regression", "C": 1.0})
    data = rows()
    model = fit(recipe, SPEC, data)
    matrix = to_matrix(data, SPEC)
    content = reproducible_skops(model, matrix)
    assert content == reproducible_skops(fit(recipe, SPEC, data), matrix)
    assert content != skops.io.dumps(model)  # skops alone names arrays after object ids
    loaded = load_model(content)
    assert np.array_equal(loaded.predict_proba(matrix), model.predict_proba(matrix))
    assert mismatches_with_spec(loaded, SPEC) == []


def test_categorical_features_train_on_what_the_scorer_sends_and_pass_the_registry_check() -> None:
    spec = make_spec(
        features=[
            FeatureSpec(name="size", kind=FeatureKind.NUMERIC, nullable=True),
            FeatureSpec(name="shape", kind=FeatureKind.CATEGORICAL, nullable=True),
        ],
        metrics=[MetricTarget(metric="recall", baseline=0.9, threshold=0.5)],
        probe=None,
    )
    rng = np.random.default_rng(0)
    shapes = ["round", "oval", None]
    data_rows, labels = [], []
    for _ in range(200):
        size = float(rng.normal(10, 3))
        shape = shapes[int(rng.integers(0, 3))]
        labels.append("malignant" if size > 11 or shape == "oval" else "benign")
        data_rows.append((None if rng.random() < 0.1 else size, shape))
    data = LabelledRows(tuple(data_rows), tuple(labels), 200)
    for estimator in ("logistic_regression", "gaussian_nb"):
        recipe = parse_recipe({"estimator": estimator})
        model = fit(recipe, spec, data)
        request = np.array([[None, "triangle"], [12.0, "oval"]], dtype=object)
        assert model.predict_proba(request).shape == (2, 2)
        loaded = load_model(reproducible_skops(model, to_matrix(data, spec)))
        assert mismatches_with_spec(loaded, spec) == []
        scored = score(loaded, spec, data)
        assert np.mean(scored.truth == scored.predicted) > 0.7


@pytest.mark.parametrize(
    ("parameters", "overrides", "words"),
    [
        ({}, {"estimator": "random_forest"}, "not one of gaussian_nb, logistic_regression"),
        (LR | {"C": 1.0}, {"gamma": 2}, "'gamma' is not a hyper-parameter of logistic_regression"),
        (LR | {"C": 1.0}, {"random_state": 3}, "'random_state' is not a hyper-parameter"),
        (LR, {"test_fraction": 0.9}, "test_fraction must be"),
        (LR, {"imputer": "mode"}, "imputer 'mode'"),
        (LR, {"seed": -1}, "seed must be"),
        (LR, {"C": "big"}, "logistic_regression:"),
        ({}, {"test_fraction": 0.9}, "test_fraction must be"),
        ({"n_estimators": 10}, {"max_depth": 3}, "'max_depth': the champion's own estimator"),
        ({}, {"imputer": "mean"}, "'imputer': the champion's own estimator"),
    ],
)
def test_training_parameters_that_make_no_recipe_are_refused_naming_the_key(
    parameters: dict[str, object], overrides: dict[str, object] | None, words: str
) -> None:
    with pytest.raises(RecipeError) as refused:
        parse_recipe(parameters, overrides)  # type: ignore[arg-type]
    assert words in str(refused.value)


def test_a_recipe_records_every_choice_and_an_override_of_the_estimator_drops_foreign_keys() -> (
    None
):
    recipe = parse_recipe({"estimator": "logistic_regression", "C": 0.5, "seed": 4})
    assert recipe.parameters() == {
        "C": 0.5,
        "estimator": "logistic_regression",
        "imputer": "median",
        "max_iter": 1000,
        "scale": True,
        "seed": 4,
        "test_fraction": 0.25,
    }
    switched = parse_recipe({"C": 0.5, "seed": 4}, {"estimator": "gaussian_nb"})
    assert switched.parameters()["seed"] == 4
    assert "C" not in switched.parameters()


def test_training_rows_round_trip_through_the_dataset_csv_and_misfits_are_counted() -> None:
    data = LabelledRows(((14.2, None), (9.0, 20.5)), ("benign", "malignant"), 1)
    csv = to_csv(data, SPEC)
    assert csv.decode().splitlines()[0] == "mean radius,mean texture,diagnosis"
    back, dropped = parse_csv(csv + b"x,1,benign\n8,1,cat\n,1,benign\n", SPEC, live_from=1)
    assert (back.rows, back.labels, back.live_from, dropped) == (data.rows, data.labels, 1, 3)
    snapshot, left_out = with_live(
        data,
        [
            LiveExample("a", {"mean radius": 11, "mean texture": None}, "malignant"),
            LiveExample("b", {"mean radius": "11"}, "benign"),
            LiveExample("c", {"mean radius": 11.0, "mean texture": 1.0}, "unknown"),
        ],
        SPEC,
    )
    assert snapshot.rows[-1] == (11.0, None)
    assert (len(snapshot), snapshot.live_from, snapshot.live_rows, left_out) == (3, 2, 1, 2)
    taken = snapshot.take([2, 0])
    assert (taken.labels, taken.live_from) == (("benign", "malignant"), 1)


def test_the_champion_is_judged_only_on_held_out_rows_it_did_not_train_on(
    tmp_path: Path,
) -> None:
    store = step_store(tmp_path)
    data = rows(live_from=400)
    first = run_steps(inputs(store, data), store)
    trained_on = store.put_dataset(to_csv(rows(stop=400), SPEC))  # the seed part
    champion = Champion(1, first.artifact_sha256, trained_on)
    lenient = GatePolicy(resamples=200, min_unseen_rows=30)
    judged = run_steps(inputs(store, data, champion=champion, gate=lenient), store)
    overlap = judged.outputs[Step.EVALUATE]["figures"]["champion_training_overlap"]
    held_out = judged.outputs[Step.SPLIT]["test_rows"]
    assert overlap["held_out_rows"] == held_out
    assert 0 < overlap["seen_by_champion"] < held_out
    assert overlap["judged_rows"] == held_out - overlap["seen_by_champion"]
    strict = run_steps(
        inputs(store, data, champion=champion, gate=GatePolicy(resamples=200, min_unseen_rows=500)),
        store,
    )
    fallback = strict.outputs[Step.EVALUATE]["figures"]["champion_training_overlap"]
    assert fallback["judged_rows"] == held_out
    assert "favours the champion" in fallback["note"]
