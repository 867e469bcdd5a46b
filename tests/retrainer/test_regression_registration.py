"""Registering a regression model (issue 17) in the registry served over loopback HTTP, on
SQLite and PostgreSQL: a ``HistGradientBoostingRegressor`` pipeline on the diabetes data
registers without metrics (the registry measures MAE, RMSE and R² on the evaluation data, else
on the training sample) and deploys; a model of the other task, a target that is not a finite
number, or a regressor predicting NaN or infinity is refused with a 422 naming the problem, and
nothing is stored."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sqlalchemy import Engine

from tests.content_tools import stored_content
from tests.factories import make_spec
from tests.http_tools import serving
from tests.model_builders import TrainedModel, registration_form, train
from tests.registry_tools import AS_ANA, deploy, registry
from tests.regression_builders import (
    DIABETES,
    FEATURES,
    diabetes_csv,
    diabetes_spec,
    regression_form,
    train_regressor,
)

MODEL = "diabetes"


@dataclass
class Served:
    http: httpx.AsyncClient
    content: Engine


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[Served]:
    async with (
        registry(database_url) as reg,
        serving(reg.app) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        yield Served(client, reg.content)


async def post(
    served: Served, trained: TrainedModel, *, evaluation: bool = True, **overrides: Any
) -> httpx.Response:
    if not evaluation:
        overrides |= {"evaluation_dataset_name": None, "evaluation_dataset_version": None}
    data, files = regression_form(trained, **overrides)
    if not evaluation:
        del files["evaluation_data"]
    return await served.http.post(
        f"/models/{MODEL}/versions", data=data, files=files, headers=AS_ANA
    )


def measured(model: Any, csv: bytes) -> dict[str, float]:
    """MAE, RMSE and R² computed by scikit-learn on a dataset CSV (the independent check)."""
    frame = pd.read_csv(pd.io.common.BytesIO(csv))
    truth = frame.pop("progression").to_numpy()
    predicted = model.predict(frame[FEATURES])
    return {
        "mae": mean_absolute_error(truth, predicted),
        "rmse": math.sqrt(mean_squared_error(truth, predicted)),
        "r2": r2_score(truth, predicted),
    }


async def nothing_stored(served: Served) -> None:
    assert (await served.http.get(f"/models/{MODEL}")).status_code == 404
    assert await asyncio.to_thread(stored_content, served.content) == []


async def test_a_regressor_registers_with_its_errors_measured_and_deploys(
    served: Served,
) -> None:
    trained = train_regressor()
    first = await post(served, trained)
    assert first.status_code == 201, first.text
    record = first.json()
    assert record["spec"]["task"] == "regression"
    assert record["spec"]["classes"] == []
    want = measured(trained.estimator, trained.evaluation_csv)  # 111 rows: all of them
    assert set(record["metrics"]) == {"mae", "rmse", "r2"}
    for metric, value in want.items():
        assert math.isclose(record["metrics"][metric], value, rel_tol=1e-9), metric
    assert 30 < record["metrics"]["mae"] < 70
    assert 0.2 < record["metrics"]["r2"] < 0.7
    second = await post(served, trained, evaluation=False)
    assert second.status_code == 201, second.text
    on_training = measured(trained.estimator, trained.training_csv)  # 331 rows: all of them
    for metric, value in on_training.items():
        assert math.isclose(second.json()["metrics"][metric], value, rel_tol=1e-9), metric
    assert (await deploy(served.http, MODEL, 1)).status_code == 200
    assert (await served.http.get(f"/models/{MODEL}/deployment")).json()["champion"]["version"] == 1


def diabetes_classifier() -> TrainedModel:
    """A classifier on the diabetes features (progression above 140 or not)."""
    base = train_regressor()
    labels = np.where(DIABETES.target > 140, "high", "low")
    model = LogisticRegression().fit(DIABETES.data[FEATURES], labels)
    return TrainedModel(skops.io.dumps(model), base.training_csv, base.evaluation_csv, model)


async def test_a_classifier_registered_as_regression_is_refused_naming_the_mismatch(
    served: Served,
) -> None:
    answer = await post(served, diabetes_classifier())
    assert answer.status_code == 422, answer.text
    [issue] = answer.json()["detail"]
    assert issue["loc"] == ["body", "artifact"]
    assert "LogisticRegression is a classifier" in issue["msg"]
    assert "task: regression" in issue["msg"]
    await nothing_stored(served)


async def test_a_regressor_registered_as_classification_is_refused_naming_the_mismatch(
    served: Served,
) -> None:
    spec = make_spec(
        features=diabetes_spec().features,
        label="progression",
        classes=["high", "low"],
        positive_class="high",
        probe=None,
    )
    answer = await post(served, train_regressor(), spec=spec.model_dump(mode="json"))
    assert answer.status_code == 422, answer.text
    [issue] = answer.json()["detail"]
    assert "Pipeline is a regressor" in issue["msg"]
    assert "set task: regression" in issue["msg"]
    await nothing_stored(served)


@pytest.mark.parametrize("target", ["high", "nan", "inf", "-Infinity", "1e309", ""])
@pytest.mark.parametrize("dataset", ["training", "evaluation"])
async def test_a_target_that_is_not_a_finite_number_is_refused(
    served: Served, target: str, dataset: str
) -> None:
    trained = train_regressor()
    csv = getattr(trained, f"{dataset}_csv").decode().splitlines()
    cells = csv[3].split(",")
    csv[3] = ",".join([*cells[:-1], target])
    broken = "\n".join(csv).encode() + b"\n"
    fields = {f"{dataset}_csv": broken}
    answer = await post(served, TrainedModel(**{**trained.__dict__, **fields}))
    assert answer.status_code == 422, answer.text
    [issue] = answer.json()["detail"]
    assert issue["loc"] == ["body", f"{dataset}_data"]
    assert "line 4: target 'progression' is not a finite number" in issue["msg"]
    await nothing_stored(served)


async def test_a_regressor_predicting_non_finite_numbers_is_refused(
    served: Served,
) -> None:
    """A linear model overflows on huge (finite) inputs: the scorer could publish no answer."""
    trained = train_regressor(named=False)
    model = LinearRegression().fit(DIABETES.data[FEATURES].to_numpy(), DIABETES.target.to_numpy())
    huge = pd.DataFrame(np.full((20, len(FEATURES)), 1e307), columns=FEATURES)
    overflowing = TrainedModel(
        skops.io.dumps(model),
        diabetes_csv(huge, pd.Series(np.linspace(50, 300, 20))),
        trained.evaluation_csv,
        model,
    )
    answer = await post(served, overflowing)
    assert answer.status_code == 422, answer.text
    [issue] = answer.json()["detail"]
    assert "predict on its training data returns 20 non-finite value(s)" in issue["msg"]
    await nothing_stored(served)


async def test_huge_targets_register_and_only_finite_errors_are_recorded(
    served: Served,
) -> None:
    trained = train_regressor()
    frame = DIABETES.data.iloc[:30]
    target = pd.Series([1e306] * 30)
    huge = TrainedModel(
        trained.artifact, trained.training_csv, diabetes_csv(frame, target), trained.estimator
    )
    answer = await post(served, huge)
    assert answer.status_code == 201, answer.text
    metrics = answer.json()["metrics"]
    assert all(math.isfinite(value) for value in metrics.values()), metrics
    assert metrics["mae"] == pytest.approx(1e306)
    assert "rmse" not in metrics  # the squares overflow
    assert "r2" not in metrics  # a constant truth has no variance to explain


async def test_a_model_keeps_its_task_from_version_to_version(served: Served) -> None:
    assert (await post(served, train_regressor())).status_code == 201
    data, files = registration_form(train())
    answer = await served.http.post(
        f"/models/{MODEL}/versions", data=data, files=files, headers=AS_ANA
    )
    assert answer.status_code == 422, answer.text
    [issue] = answer.json()["detail"]
    assert issue["loc"] == ["body", "metadata"]
    assert f"model '{MODEL}' is a regression model (v1)" in issue["msg"]
    assert "task: classification cannot join it" in issue["msg"]
    versions = (await served.http.get(f"/models/{MODEL}/versions")).json()
    assert [v["version"] for v in versions] == [1]
