"""What a service process holds is what it imports: the runtime package loads the model
libraries (skops, scikit-learn, SciPy, pandas, NumPy) only when a model helper is first used, so
the services that never touch a model do not carry them, and the monitor computes its figures
and calibrations without scikit-learn (docs/adr/0016-hot-path.md, "The stack's memory"). Each
case imports in a fresh interpreter, as the supervisor starts a service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import services.runtime
from services.runtime import model_artifacts, model_inputs

pytestmark = pytest.mark.timeout(300)  # each case starts an interpreter: slow on a loaded machine

ROOT = Path(__file__).resolve().parents[2]
MODEL_LIBRARIES = ("numpy", "scipy", "sklearn", "pandas", "skops")


def modules_loaded_by(module: str) -> set[str]:
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return set(json.loads(out))


def libraries_loaded_by(module: str) -> set[str]:
    return {name.split(".")[0] for name in modules_loaded_by(module)} & set(MODEL_LIBRARIES)


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("services.runtime", set()),
        ("services.incident_log.app", set()),
        ("services.runbook_runner.app", set()),
        ("services.drift_detector.app", {"numpy", "scipy"}),
        ("services.monitor.app", {"numpy", "scipy"}),
    ],
)
def test_a_service_that_needs_no_model_does_not_load_the_model_libraries(
    module: str, allowed: set[str]
) -> None:
    assert libraries_loaded_by(module) <= allowed


def test_the_scorer_still_gets_its_model_libraries() -> None:
    assert {"numpy", "sklearn", "skops"} <= libraries_loaded_by("services.scorer.app")


_MONITOR_AT_WORK = """
import json, sys
import numpy as np
import services.monitor.app
from services.monitor.estimation import Reference, estimate_binary
from services.monitor.metrics import classification_metrics, regression_metrics

rng = np.random.default_rng(0)
reference = Reference()
fitted = False
for score in rng.uniform(size=300):
    # over-confident scores: calibrating helps, so the isotonic fit is the one kept
    fitted = reference.add(float(score), bool(rng.uniform() < score**2), rows=300) or fitted
assert fitted and reference.calibration is not None
assert len(reference.calibration.knots_x) > 2, reference.calibration
window = rng.uniform(size=200)
estimate_binary(reference.calibration, window, window >= 0.5, rng=rng)
regression_metrics([1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
classification_metrics(["a", "b"], ["a", "a"], [[0.9, 0.1], [0.6, 0.4]], classes=["a", "b"],
                       positive_class="a")
print(json.dumps(sorted(sys.modules)))
"""


def test_the_monitor_fits_a_calibration_and_computes_figures_without_scikit_learn() -> None:
    """What the monitor does with a classifier's labels (the calibration's isotonic fit as
    :meth:`Reference.add` makes it, an estimate, a window's figures) and a regressor's window
    figures load neither scikit-learn nor pandas: only a regressor's loss estimate does."""
    out = subprocess.run(
        [sys.executable, "-c", _MONITOR_AT_WORK],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert loaded & {"sklearn", "pandas"} == set()


def test_the_model_helpers_are_the_runtime_names_they_always_were() -> None:
    from services.runtime import DEFAULT_TRUSTED_TYPES, as_model_input, load_model

    assert load_model is model_artifacts.load_model
    assert DEFAULT_TRUSTED_TYPES is model_artifacts.DEFAULT_TRUSTED_TYPES
    assert as_model_input is model_inputs.as_model_input
    missing = [name for name in services.runtime.__all__ if not hasattr(services.runtime, name)]
    assert missing == []


def test_an_unknown_runtime_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_helper"):
        services.runtime.no_such_helper  # noqa: B018
    with pytest.raises(ImportError):
        from services.runtime import no_such_helper  # noqa: F401
