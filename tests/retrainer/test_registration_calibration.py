"""A binary classifier's calibration quality is measured at registration on the rows the
registry already scores and recorded on the version (``ModelVersionRecord.calibration``), so a
badly calibrated model is visible before it serves (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from contracts import ModelVersionRecord
from services.retrainer.registry.trial_scoring import trial_score, trial_score_and_calibration
from services.retrainer.retraining.training_data import parse_csv, to_matrix
from services.runtime import as_model_input
from services.runtime.calibration_quality import brier_score, expected_calibration_error
from tests.factories import make_spec
from tests.model_builders import train
from tests.registry_tools import Registry, register


class Timid:
    """A fitted classifier whose probabilities are squashed towards one half (same ranking, same
    predicted classes, badly calibrated)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def predict_proba(self, x: Any) -> np.ndarray:
        result: np.ndarray = 0.5 + (np.asarray(self._inner.predict_proba(x)) - 0.5) * 0.3
        return result


def test_calibration_is_the_monitors_figure_on_the_evaluation_rows() -> None:
    trained = train()
    spec = make_spec()
    measured, calibration = trial_score_and_calibration(
        trained.estimator, spec, trained.training_csv, trained.evaluation_csv
    )
    assert measured == trial_score(
        trained.estimator, spec, trained.training_csv, trained.evaluation_csv
    )
    assert calibration is not None
    rows, _ = parse_csv(trained.evaluation_csv, spec)
    x = as_model_input(trained.estimator, spec, to_matrix(rows, spec))
    proba = trained.estimator.predict_proba(x)
    positive_column = list(trained.estimator.classes_).index(spec.positive)
    positive = np.array(rows.labels) == spec.positive
    assert calibration.rows == len(rows)
    assert calibration.measured_on == "evaluation_data"
    assert calibration.ece == pytest.approx(
        expected_calibration_error(proba[:, positive_column], positive), abs=1e-6
    )
    assert calibration.brier == pytest.approx(
        brier_score(proba[:, positive_column], positive), abs=1e-6
    )
    # without evaluation data it is measured on the training sample, and says so
    _, on_training = trial_score_and_calibration(trained.estimator, spec, trained.training_csv)
    assert on_training is not None
    assert on_training.measured_on == "training_data"


def test_a_badly_calibrated_model_shows_it() -> None:
    trained = train()
    spec = make_spec()
    _, fine = trial_score_and_calibration(
        trained.estimator, spec, trained.training_csv, trained.evaluation_csv
    )
    _, bad = trial_score_and_calibration(
        Timid(trained.estimator), spec, trained.training_csv, trained.evaluation_csv
    )
    assert fine is not None
    assert bad is not None
    assert bad.ece > 2 * fine.ece
    assert bad.brier > fine.brier


async def test_the_registered_version_records_its_calibration(reg: Registry) -> None:
    transport = httpx.ASGITransport(app=reg.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        response = await register(http, "breast-cancer", train())
        assert response.status_code == 201, response.text
        record = ModelVersionRecord.model_validate(response.json())
        assert record.calibration is not None
        assert record.calibration.measured_on == "evaluation_data"
        assert 0 <= record.calibration.ece <= 1
        stored = (await http.get("/models/breast-cancer/versions/1")).json()
    assert ModelVersionRecord.model_validate(stored).calibration == record.calibration
