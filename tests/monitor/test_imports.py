"""The monitor's process does not load scikit-learn (nor pandas, which it brings): about 48 MB of
resident memory a monitor paid for three regression figures and an isotonic fit (issue 18).
Only a regressor's loss estimate imports it, lazily. Checked in a fresh interpreter: this test
process has imported scikit-learn long before (the tests compare figures with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys

def loaded():
    return [name for name in ("sklearn", "pandas") if name in sys.modules]

import services.monitor.app  # the service's entry module, with everything it imports
import services.monitor.__main__
at_import = loaded()

import numpy as np
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
print(json.dumps({"at_import": at_import, "after_use": loaded()}))
"""


def test_the_monitor_neither_imports_nor_uses_scikit_learn_or_pandas() -> None:
    path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", _RUN],
        env=os.environ | {"PYTHONPATH": path},
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.splitlines()[-1])
    assert loaded == {"at_import": [], "after_use": []}
