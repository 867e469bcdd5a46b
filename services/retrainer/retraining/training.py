"""Splitting, fitting and saving a model so that the same inputs give the same bytes. Pure.

scikit-learn is deterministic once every random choice is seeded; skops is not: its zip holds
the time of writing and names arrays after Python object ids (``140638464519952.npy``), which
differ in every process. :func:`reproducible_skops` rewrites the file with ids numbered in the
order the schema reaches them, entries sorted, and a fixed timestamp, and checks that the result
still loads and predicts exactly as the fitted model does.

A regressor (``spec.task`` regression) is split without stratifying, fitted on float targets and
scored by :func:`score_values`; a classifier's path is the one it always was.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import skops.io
from sklearn.model_selection import train_test_split

from contracts.registry import ModelTask, MonitoringSpec
from services.retrainer.retraining.recipes import CHAMPION, Recipe, build_pipeline, clone_champion
from services.retrainer.retraining.training_data import LabelledRows, targets, to_matrix
from services.runtime.model_inputs import as_model_input

__all__ = [
    "Scores",
    "ValueScores",
    "fit",
    "reproducible_skops",
    "score",
    "score_values",
    "split",
]

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def split(
    rows: LabelledRows, recipe: Recipe, task: ModelTask = ModelTask.CLASSIFICATION
) -> tuple[list[int], list[int]]:
    """Return the indices of the training and held-out rows: stratified by label when every
    class has at least two rows (never for a regressor's numbers), seeded by the recipe."""
    indices = np.arange(len(rows))
    labels = np.array(rows.labels)
    _, counts = np.unique(labels, return_counts=True)
    stratify = (
        labels
        if task is ModelTask.CLASSIFICATION and len(counts) > 1 and counts.min() >= 2
        else None
    )
    train, test = train_test_split(
        indices, test_size=recipe.test_fraction, random_state=recipe.seed, stratify=stratify
    )
    return sorted(int(i) for i in train), sorted(int(i) for i in test)


def fit(recipe: Recipe, spec: MonitoringSpec, rows: LabelledRows, champion: Any = None) -> Any:
    """Fit the recipe's pipeline on rows, or for a ``champion`` recipe a fresh clone of the
    champion's estimator (on a DataFrame if the champion was fitted on one); refuse data
    holding fewer than two classes (two distinct values for a regressor)."""
    if spec.task is ModelTask.REGRESSION:
        return _fit_regressor(recipe, spec, rows, champion)
    if len(set(rows.labels)) < 2:
        raise ValueError(f"training data holds {len(set(rows.labels))} class(es); need two")
    if recipe.estimator == CHAMPION:
        if champion is None:
            raise ValueError("a champion recipe needs the champion's estimator to clone")
        estimator = clone_champion(recipe, champion)
        estimator.fit(as_model_input(champion, spec, to_matrix(rows, spec)), np.array(rows.labels))
        return estimator
    pipeline = build_pipeline(recipe, spec)
    pipeline.fit(to_matrix(rows, spec), np.array(rows.labels))
    return pipeline


def _fit_regressor(recipe: Recipe, spec: MonitoringSpec, rows: LabelledRows, champion: Any) -> Any:
    """Fit a clone of a regression champion on float targets: the catalogue's estimators are
    classifiers, so a regressor is only ever retrained as itself (ADR 0022)."""
    if recipe.estimator != CHAMPION:
        raise ValueError(
            f"{recipe.estimator} is a classifier: a regression model is retrained as a clone "
            "of its champion"
        )
    if champion is None:
        raise ValueError("a champion recipe needs the champion's estimator to clone")
    if hasattr(champion, "predict_proba"):
        raise ValueError(f"the champion {type(champion).__name__} is a classifier, not a regressor")
    y = targets(rows, spec)
    if len(np.unique(y)) < 2:
        raise ValueError(f"training data holds {len(np.unique(y))} distinct value(s); need two")
    estimator = clone_champion(recipe, champion)
    estimator.fit(as_model_input(champion, spec, to_matrix(rows, spec)), y)
    return estimator


@dataclass(frozen=True)
class ValueScores:
    """A regressor's answers on labelled rows: the true and the predicted number of each."""

    truth: np.ndarray  # true value per row (float)
    predicted: np.ndarray  # predicted value per row (float)


def score_values(estimator: Any, spec: MonitoringSpec, rows: LabelledRows) -> ValueScores:
    """Score labelled rows with a fitted regressor; refuse predictions that are not one finite
    number per row."""
    inputs = as_model_input(estimator, spec, to_matrix(rows, spec))
    predicted = np.asarray(estimator.predict(inputs), dtype=np.float64)
    if predicted.shape != (len(rows),):
        raise ValueError(f"predict returned shape {predicted.shape}, expected ({len(rows)},)")
    if not np.all(np.isfinite(predicted)):
        raise ValueError("the regressor predicted a value that is not a finite number")
    return ValueScores(truth=targets(rows, spec), predicted=predicted)


@dataclass(frozen=True)
class Scores:
    """A model's answers on labelled rows: what the gate's statistics need."""

    truth: np.ndarray  # true class per row (text)
    predicted: np.ndarray  # predicted class per row
    positive_probability: np.ndarray  # probability of the spec's positive class
    true_class_probability: np.ndarray  # probability given to the true class (log loss)
    confidence: np.ndarray  # probability of the predicted class


def score(estimator: Any, spec: MonitoringSpec, rows: LabelledRows) -> Scores:
    """Score labelled rows with a fitted model."""
    inputs = as_model_input(estimator, spec, to_matrix(rows, spec))
    probabilities = np.asarray(estimator.predict_proba(inputs), dtype=np.float64)
    if probabilities.shape != (len(rows), len(estimator.classes_)):
        raise ValueError(f"predict_proba returned shape {probabilities.shape}")
    classes = [_text(value) for value in estimator.classes_]
    column = {label: i for i, label in enumerate(classes)}
    truth = np.array(rows.labels)
    best = probabilities.argmax(axis=1)
    predicted = np.array([classes[i] for i in best])
    true_columns = np.array([column.get(label, -1) for label in rows.labels])
    true_probability = np.where(
        true_columns >= 0, probabilities[np.arange(len(rows)), np.maximum(true_columns, 0)], 0.0
    )
    positive = column.get(spec.positive)
    return Scores(
        truth=truth,
        predicted=predicted,
        positive_probability=(
            probabilities[:, positive] if positive is not None else np.zeros(len(rows))
        ),
        true_class_probability=true_probability,
        confidence=probabilities.max(axis=1),
    )


def _text(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def reproducible_skops(estimator: Any, check: Any) -> bytes:
    """Save a fitted model as a skops file whose bytes depend only on the model.

    ``check`` is an input the model takes (a matrix, or a DataFrame for a model fitted on one):
    the rewritten file must load and give exactly the same probabilities (a regressor: the same
    predictions) on it as ``estimator``, or this raises.
    """
    original = zipfile.ZipFile(io.BytesIO(skops.io.dumps(estimator)))
    schema = json.loads(original.read("schema.json"))
    numbering: dict[int, int] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = numbering.setdefault(value, len(numbering) + 1)
                elif key == "file" and isinstance(value, str):
                    stem, dot, suffix = value.partition(".")
                    new = numbering.setdefault(int(stem), len(numbering) + 1)
                    out[key] = f"{new}{dot}{suffix}"
                else:
                    out[key] = renumber(value)
            return out
        if isinstance(node, list):
            return [renumber(item) for item in node]
        return node

    renumbered = renumber(schema)
    entries: dict[str, bytes] = {"schema.json": json.dumps(renumbered, indent=2).encode()}
    for info in original.infolist():
        if info.filename == "schema.json":
            continue
        stem, dot, suffix = info.filename.partition(".")
        if int(stem) not in numbering:
            raise ValueError(f"skops file holds {info.filename}, which its schema never names")
        entries[f"{numbering[int(stem)]}{dot}{suffix}"] = original.read(info)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    content = buffer.getvalue()
    reloaded = skops.io.loads(content, trusted=skops.io.get_untrusted_types(data=content))
    answer = "predict_proba" if hasattr(estimator, "predict_proba") else "predict"
    if not np.array_equal(getattr(reloaded, answer)(check), getattr(estimator, answer)(check)):
        raise ValueError("the rewritten skops file does not predict as the fitted model does")
    return content
