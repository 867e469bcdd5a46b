"""The demo's data set and model versions, made by scikit-learn in a short-lived child process.

The demo's supervisor lives as long as the stack. Loading the breast-cancer set and training a
version need scikit-learn and skops, imports a process keeps until it exits (about 100 MB of the
supervisor's resident memory, measured by ``bench/memory.py``). So the supervisor asks a child,
``python -m services.stack.training FOLDER C...``, for the data and one trained artifact per
regularisation strength ``C``, and keeps only numpy arrays and bytes (:func:`prepare`).
``load`` and ``train`` are also what tests and the chaos suite call in process; they import
scikit-learn when called, so importing this module (as the supervisor does) does not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from services.stack.scenario import CLASSES, Dataset

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["Prepared", "load", "prepare", "train"]

_TIMEOUT_S = 300.0
"""Far above the few seconds the child takes, below forever on a stuck one."""


def load(seed: int = 7) -> Dataset:
    """Split the data: 60 % to train the first versions, the rest feeds the live traffic."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    labels = np.array(CLASSES)[data.target]
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(len(order) * 0.6)
    train, live = order[:cut], order[cut:]
    return Dataset(
        features=[str(name) for name in data.feature_names],
        train_x=data.data[train],
        train_y=labels[train],
        live_x=data.data[live],
        live_y=labels[live],
    )


def train(dataset: Dataset, c: float) -> Pipeline:
    """Train a version the way its recipe says (``scenario.recipe``)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    model = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=c, max_iter=1000, random_state=0)),
        ]
    )
    model.fit(dataset.train_x, dataset.train_y)
    return model


@dataclass(frozen=True)
class Prepared:
    """What the child made: the data, the scikit-learn version that trained, and each
    version's skops artifact by its ``C``."""

    dataset: Dataset
    sklearn_version: str
    artifacts: dict[float, bytes]


async def prepare(strengths: Sequence[float]) -> Prepared:
    """Load the data and train one version per strength in a child process."""
    with tempfile.TemporaryDirectory(prefix="vigil-training-") as folder:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.stack.training",
            folder,
            *map(repr, strengths),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, errors = await asyncio.wait_for(child.communicate(), _TIMEOUT_S)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise RuntimeError(
                f"training the demo's versions took over {_TIMEOUT_S:.0f} s"
            ) from None
        if child.returncode != 0:
            raise RuntimeError(
                f"training the demo's versions failed (exit {child.returncode}): "
                f"{errors.decode(errors='replace')[-2000:]}"
            )
        return _read(Path(folder), strengths)


def _write(folder: Path, strengths: Sequence[float]) -> None:
    import sklearn
    import skops.io

    dataset = load()
    np.savez(
        folder / "dataset.npz",
        features=np.array(dataset.features),
        train_x=dataset.train_x,
        train_y=dataset.train_y,
        live_x=dataset.live_x,
        live_y=dataset.live_y,
    )
    (folder / "sklearn_version").write_text(sklearn.__version__)
    for index, c in enumerate(strengths):
        (folder / f"{index}.skops").write_bytes(skops.io.dumps(train(dataset, c)))


def _read(folder: Path, strengths: Sequence[float]) -> Prepared:
    with np.load(folder / "dataset.npz", allow_pickle=False) as arrays:
        dataset = Dataset(
            features=[str(name) for name in arrays["features"]],
            train_x=arrays["train_x"],
            train_y=arrays["train_y"],
            live_x=arrays["live_x"],
            live_y=arrays["live_y"],
        )
    return Prepared(
        dataset=dataset,
        sklearn_version=(folder / "sklearn_version").read_text(),
        artifacts={
            c: (folder / f"{index}.skops").read_bytes() for index, c in enumerate(strengths)
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the data and the artifacts")
    parser.add_argument("strengths", type=float, nargs="+", help="each version's C")
    arguments = parser.parse_args(argv)
    _write(arguments.folder, arguments.strengths)


if __name__ == "__main__":
    main()
