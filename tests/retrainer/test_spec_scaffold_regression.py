"""``vigil models spec`` on a regression target (issue 17): the diabetes data written from
``load_diabetes(as_frame=True)`` drafts a regression spec (the task inferred from the target)
watching MAE (key), RMSE and R², baselines measured on a held-out quarter with thresholds a
readable margin worse, and the file registers as it is in a registry served over loopback."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import pytest
import skops.io
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from contracts import ModelTask
from services.retrainer.registry.cli import app as models_cli
from services.retrainer.registry.spec_scaffold import (
    ScaffoldError,
    draft_metadata,
    infer_task,
    read_metadata,
)
from tests.http_tools import serving
from tests.registry_tools import registry

DIABETES = load_diabetes(as_frame=True)


def diabetes_csv() -> bytes:
    """The data set as a person would write it: ten features, then ``target`` (151.0, ...)."""
    text: str = DIABETES.frame.to_csv(index=False)
    return text.encode()


def test_the_task_is_inferred_from_the_target() -> None:
    assert infer_task(["0", "1", "1", ""]) is ModelTask.CLASSIFICATION
    assert infer_task(["3.0", "7.0", "3.0"]) is ModelTask.CLASSIFICATION  # a few whole numbers
    assert infer_task(["0.5", "1", "2"]) is ModelTask.REGRESSION  # a fraction
    assert infer_task([str(n) for n in range(21)]) is ModelTask.REGRESSION  # many values
    assert infer_task([str(n) for n in range(20)]) is ModelTask.CLASSIFICATION
    assert infer_task(["yes", "no", "3.5"]) is ModelTask.CLASSIFICATION  # text
    assert infer_task(["1", "nan", "2.5"]) is ModelTask.CLASSIFICATION  # not all finite


def test_a_diabetes_draft_watches_mae_rmse_and_r2_with_thresholds_worse_than_baselines() -> None:
    draft = draft_metadata(diabetes_csv(), target="target")
    spec = draft.metadata.spec
    assert spec.task is ModelTask.REGRESSION
    assert (spec.classes, spec.positive_class, spec.key_metric) == ([], None, "mae")
    assert [f.name for f in spec.features] == list(DIABETES.feature_names)
    targets = {t.metric: t for t in spec.metrics}
    assert set(targets) == {"mae", "rmse", "r2"}
    assert draft.measured_on == math.ceil(len(DIABETES.target) * 0.25)
    for metric in ("mae", "rmse"):
        target = targets[metric]
        assert target.direction.value == "lower_is_better"
        assert target.threshold >= target.baseline * 1.1
    assert 35 < targets["mae"].baseline < 60  # a ridge regression on ten features
    assert 0.3 < targets["r2"].baseline < 0.6
    assert targets["r2"].threshold <= targets["r2"].baseline - 0.05
    assert draft.metadata.metrics == {m: t.baseline for m, t in targets.items()}
    ranked = draft_metadata(diabetes_csv(), target="target", key_metric="rmse")
    assert ranked.metadata.spec.key_metric == "rmse"


def test_a_regression_draft_refuses_what_a_regressor_cannot_have() -> None:
    with pytest.raises(ScaffoldError, match="recall: not a regression metric"):
        draft_metadata(diabetes_csv(), target="target", key_metric="recall")
    with pytest.raises(ScaffoldError, match="a regression model has no positive class"):
        draft_metadata(diabetes_csv(), target="target", positive_class="151.0")


def test_regression_asked_for_a_target_that_is_not_a_number_names_the_row() -> None:
    content = diabetes_csv().decode().splitlines()
    content[3] = content[3].rsplit(",", 1)[0] + ",high"
    with pytest.raises(ScaffoldError, match=r"row 4: the target 'target' is 'high', not a finite"):
        draft_metadata(
            ("\n".join(content) + "\n").encode(), target="target", task=ModelTask.REGRESSION
        )


@pytest.mark.integration
async def test_vigil_models_spec_on_diabetes_writes_a_spec_that_registers(tmp_path: Path) -> None:
    data = tmp_path / "diabetes.csv"
    data.write_bytes(diabetes_csv())
    spec_path = tmp_path / "spec.yaml"
    drafted = CliRunner().invoke(
        models_cli,
        ["spec", "--from-csv", str(data), "--target", "target", "-o", str(spec_path)],
        env={"COLUMNS": "200"},
    )
    assert drafted.exit_code == 0, drafted.output
    assert "mae" in drafted.output
    text = spec_path.read_text()
    assert "task: regression" in text
    assert "at least 10 % worse for mae and rmse" in text
    metadata = read_metadata(text)
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(
        DIABETES.data.to_numpy(), DIABETES.target.to_numpy()
    )
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(skops.io.dumps(model))
    async with (
        registry(f"sqlite:///{tmp_path / 'registry.db'}") as reg,
        serving(reg.app) as url,
    ):
        arguments = ["register", "diabetes", "--artifact", str(artifact), "--spec", str(spec_path)]
        arguments += ["--training-data", str(data), "--url", url, "--token", "token-ana"]
        result = await asyncio.to_thread(
            CliRunner().invoke, models_cli, arguments, env={"COLUMNS": "200"}
        )
        assert result.exit_code == 0, result.output
        assert "registered diabetes v1" in result.output
        async with httpx.AsyncClient(base_url=url) as http:
            version = (await http.get("/models/diabetes/versions/1")).json()
    assert version["spec"]["task"] == "regression"
    assert version["spec"]["key_metric"] == "mae"
    assert version["metrics"] == metadata.metrics


def test_the_persons_own_regressor_is_measured_and_a_classifier_refused() -> None:
    regressor = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(
        DIABETES.data.to_numpy(), DIABETES.target.to_numpy()
    )
    draft = draft_metadata(diabetes_csv(), target="target", estimator=regressor)
    assert draft.measured_with == "HistGradientBoostingRegressor"
    assert draft.metadata.spec.target("mae").baseline < 45  # it saw the held-out rows in training
    classifier = LogisticRegression().fit(DIABETES.data.to_numpy(), DIABETES.target > 140)
    with pytest.raises(ScaffoldError, match="LogisticRegression is a classifier"):
        draft_metadata(diabetes_csv(), target="target", estimator=classifier)
