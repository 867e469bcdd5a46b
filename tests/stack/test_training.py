"""The demo's versions are trained in a child process, so its supervisor holds no scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sklearn
import skops.io

from services.stack import training


async def test_the_child_makes_the_data_and_the_versions_training_in_process_makes() -> None:
    prepared = await training.prepare([1.0, 0.5])
    here = training.load()
    assert prepared.dataset.features == here.features
    for name in ("train_x", "train_y", "live_x", "live_y"):
        assert np.array_equal(getattr(prepared.dataset, name), getattr(here, name)), name
    assert prepared.sklearn_version == sklearn.__version__
    assert sorted(prepared.artifacts) == [0.5, 1.0]
    for c, artifact in prepared.artifacts.items():
        loaded = skops.io.loads(artifact, trusted=skops.io.get_untrusted_types(data=artifact))
        assert loaded.get_params()["model__C"] == c
        expected = training.train(here, c).predict_proba(here.live_x)
        assert np.array_equal(loaded.predict_proba(here.live_x), expected), c


async def test_a_failing_child_is_an_error_with_its_reason() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)failed \(exit 1\).*'C' parameter"):
        await training.prepare([-1.0])


def test_the_demo_supervisor_imports_no_scikit_learn() -> None:
    heavy = ("sklearn", "skops", "pandas", "scipy")
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, services.stack.demo, services.cli; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "[]"
