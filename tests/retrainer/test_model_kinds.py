"""Models people actually use, at the registry and in the pipeline: pipelines selecting columns
by name, tree ensembles (trusted types), registration that proves the model scores its declared
features (and records a baseline), and retraining as a clone of the champion's own estimator."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from services.retrainer.retraining.gate import GatePolicy
from services.retrainer.retraining.pipeline import Champion, PipelineInputs, run_steps
from services.retrainer.retraining.recipes import CHAMPION, parse_recipe
from services.retrainer.retraining.training_data import to_csv
from services.runtime import load_model
from tests.content_tools import step_store, stored_content
from tests.model_builders import FEATURES, TrainedModel
from tests.registry_tools import AS_ANA, Registry, registry
from tests.retrainer.retraining_data import CLASSES, SPEC, breast_cancer, rows

MODEL = "breast-cancer"


def _csv(frame: pd.DataFrame, labels: np.ndarray) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES, "diagnosis"])
    for values, label in zip(frame.itertuples(index=False), labels, strict=True):
        writer.writerow([*(repr(float(v)) for v in values), label])
    return out.getvalue().encode()


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    features, labels = breast_cancer()
    return pd.DataFrame(features, columns=FEATURES), labels


def named_forest() -> Pipeline:
    """A random forest behind a ColumnTransformer that selects its columns by name."""
    return Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [("scaled", StandardScaler(), ["mean texture", "mean radius"])],
                ),
            ),
            ("forest", RandomForestClassifier(n_estimators=15, max_depth=4)),
        ]
    )


def trained(model: Any, *, frame: pd.DataFrame | None = None) -> TrainedModel:
    data, labels = _frame()
    picked = np.arange(len(labels)) % 4 != 0
    fitted_on = data if frame is None else frame
    model.fit(fitted_on[picked], labels[picked])
    return TrainedModel(
        artifact=skops.io.dumps(model),
        training_csv=_csv(data[picked], labels[picked]),
        evaluation_csv=_csv(data[~picked], labels[~picked]),
        estimator=model,
    )


def form(model: TrainedModel, **metadata: Any) -> tuple[dict[str, str], dict[str, Any]]:
    fields: dict[str, Any] = {
        "sklearn_version": "1",
        "dataset_name": MODEL,
        "dataset_version": "1",
        "code_version": "tests",
        "spec": SPEC.model_dump(mode="json"),
        "reason": "bring your own model",
    }
    return (
        {"metadata": json.dumps(fields | metadata)},
        {
            "artifact": ("model.skops", model.artifact),
            "training_data": ("train.csv", model.training_csv),
        },
    )


async def test_a_named_column_forest_registers_and_records_a_measured_baseline(
    http: httpx.AsyncClient,
) -> None:
    model = trained(named_forest())
    data, files = form(model)
    answer = await http.post(f"/models/{MODEL}/versions", data=data, files=files, headers=AS_ANA)
    assert answer.status_code == 201, answer.text
    metrics = answer.json()["metrics"]
    assert set(metrics) == {"recall", "accuracy"}
    assert 0.7 < metrics["accuracy"] <= 1.0
    given = form(model, metrics={"recall": 0.9})
    again = await http.post(
        f"/models/{MODEL}/versions", data=given[0], files=given[1], headers=AS_ANA
    )
    assert again.json()["metrics"] == {"recall": 0.9}


async def test_histogram_gradient_boosting_loads_with_the_default_trusted_types(
    http: httpx.AsyncClient,
) -> None:
    model = trained(HistGradientBoostingClassifier(max_iter=20))
    data, files = form(model)
    answer = await http.post(f"/models/{MODEL}/versions", data=data, files=files, headers=AS_ANA)
    assert answer.status_code == 201, answer.text


async def test_a_narrower_trusted_list_refuses_a_forest_naming_the_type_and_the_setting(
    database_url: str, tmp_path: Path
) -> None:
    async with registry(database_url, trusted_types=["numpy.dtype"]) as reg:
        transport = httpx.ASGITransport(app=reg.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            data, files = form(trained(named_forest()))
            answer = await http.post(
                f"/models/{MODEL}/versions", data=data, files=files, headers=AS_ANA
            )
    assert answer.status_code == 422
    message = answer.json()["detail"][0]["msg"]
    assert "sklearn.tree._tree.Tree" in message
    assert "VIGIL_MODEL_TRUSTED_TYPES" in message


async def test_a_model_that_cannot_score_its_declared_features_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, reg: Registry
) -> None:
    # Fitted on texture as text categories: the checks of names, count and classes pass, but the
    # numbers the scorer sends are categories it never saw.
    data, _ = _frame()
    as_text = data.assign(**{"mean texture": data["mean texture"].round().astype(int).astype(str)})
    encoder = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("texture", OneHotEncoder(handle_unknown="error"), ["mean texture"]),
                        ("radius", "passthrough", ["mean radius"]),
                    ]
                ),
            ),
            ("forest", RandomForestClassifier(n_estimators=5)),
        ]
    )
    model = trained(encoder, frame=as_text)
    form_data, files = form(model)
    answer = await http.post(
        f"/models/{MODEL}/versions", data=form_data, files=files, headers=AS_ANA
    )
    assert answer.status_code == 422, answer.text
    problem = answer.json()["detail"][0]
    assert problem["loc"] == ["body", "artifact"]
    assert "cannot score its training data" in problem["msg"]
    assert "TypeError" in problem["msg"]  # the encoder cannot compare numbers with its text
    assert (await http.get(f"/models/{MODEL}/versions")).status_code == 404
    assert await asyncio.to_thread(stored_content, reg.content) == []


def test_a_retrain_clones_the_champions_own_estimator_with_its_parameters(
    tmp_path: Path,
) -> None:
    store = step_store(tmp_path)
    champion = trained(named_forest()).estimator
    champion_sha = store.put_artifact(skops.io.dumps(champion))
    recipe = parse_recipe({"n_estimators": 15})
    assert recipe.estimator == CHAMPION
    data = rows(live_from=400)
    inputs = PipelineInputs(
        snapshot_sha256=store.put_dataset(to_csv(data, SPEC)),
        live_from=data.live_from,
        spec=SPEC,
        recipe=recipe,
        code_version="tests",
        gate=GatePolicy(resamples=200),
        champion=Champion(1, champion_sha),
        estimator_sha256=champion_sha,
    )
    result = run_steps(inputs, store)
    candidate = load_model(store.artifact(result.artifact_sha256))
    assert type(candidate) is Pipeline
    assert type(candidate.named_steps["forest"]) is RandomForestClassifier
    expected = champion.get_params(deep=True) | {"forest__random_state": 0}
    assert {k: v for k, v in candidate.get_params(deep=False).items() if k != "steps"} == {
        k: v for k, v in champion.get_params(deep=False).items() if k != "steps"
    }
    assert candidate.named_steps["forest"].get_params() == {
        k.removeprefix("forest__"): v for k, v in expected.items() if k.startswith("forest__")
    }
    assert list(candidate.feature_names_in_) == FEATURES
    assert sorted(candidate.classes_) == sorted(CLASSES)
    elsewhere = step_store(tmp_path / "elsewhere")
    elsewhere.put_artifact(store.artifact(champion_sha))
    elsewhere.put_dataset(to_csv(data, SPEC))
    assert run_steps(inputs, elsewhere).artifact_sha256 == result.artifact_sha256  # seeded


def test_a_retrain_ask_naming_a_catalogue_estimator_changes_the_family_on_purpose() -> None:
    recipe = parse_recipe({"n_estimators": 15}, {"estimator": "gaussian_nb"})
    assert recipe.estimator == "gaussian_nb"
    assert parse_recipe({}, {"seed": 3}).parameters() == {
        "estimator": CHAMPION,
        "seed": 3,
        "test_fraction": 0.25,
    }
