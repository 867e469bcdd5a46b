"""What a service process holds is what it imports: the runtime package loads the model
libraries (skops, scikit-learn, SciPy, pandas, NumPy) only when a model helper is first used, so
the services that never touch a model do not carry them (docs/adr/0016-hot-path.md, "The stack's
memory"). Each case imports in a fresh interpreter, as the supervisor starts a service."""

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
    ],
)
def test_a_service_that_needs_no_model_does_not_load_the_model_libraries(
    module: str, allowed: set[str]
) -> None:
    assert libraries_loaded_by(module) <= allowed


def test_the_scorer_still_gets_its_model_libraries() -> None:
    assert {"numpy", "sklearn", "skops"} <= libraries_loaded_by("services.scorer.app")


def test_the_monitor_loads_scikit_learn_s_ensembles_only_for_a_regressor() -> None:
    assert "sklearn.ensemble" not in modules_loaded_by("services.monitor.app")


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
