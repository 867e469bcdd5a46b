"""The retraining pipeline: prepare → split → train → evaluate (→ register, by the caller), each
step cached under the SHA-256 of its inputs.

A step's key covers everything its output depends on: the data by content digest (never a path
or a name), the parameters, the code version and, for training, the scikit-learn version; and
each step's inputs include the previous step's outputs. So a rerun with nothing changed answers
every step from the cache, and a change restarts at the first step it reaches: new live labels
change the snapshot digest and rerun everything; new hyper-parameters rerun train and evaluate; a
new champion reruns evaluate alone. Same inputs give the same artifact bytes
(:func:`~services.retrainer.retraining.training.reproducible_skops`).

A regressor (``spec.task`` regression) runs the same steps: split without stratifying, a clone of
the champion fitted on float targets, scored with
:func:`~services.retrainer.retraining.training.score_values` and evaluated on ``mae``, ``rmse``
and ``r2``.
Its step keys name the task; a classifier's keys are what they always were.

Steps run synchronously (call :func:`run_steps` in a worker thread); storage is behind the
:class:`StepStore` protocol.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import sklearn

from contracts.registry import REGRESSION_METRICS, ModelTask, MonitoringSpec
from services.retrainer.retraining.gate import GatePolicy, judge, metric_value
from services.retrainer.retraining.recipes import CHAMPION, Recipe
from services.retrainer.retraining.training import (
    Scores,
    ValueScores,
    fit,
    reproducible_skops,
    score,
    score_values,
    split,
)
from services.retrainer.retraining.training_data import LabelledRows, parse_csv, to_csv, to_matrix
from services.runtime.model_inputs import as_model_input

__all__ = [
    "Champion",
    "PipelineInputs",
    "PipelineResult",
    "Step",
    "StepStore",
    "canonical_json",
    "run_steps",
    "step_key",
]


class Step(StrEnum):
    """The pipeline's steps, in order."""

    PREPARE = "prepare"
    SPLIT = "split"
    TRAIN = "train"
    EVALUATE = "evaluate"
    REGISTER = "register"


def canonical_json(value: Any) -> bytes:
    """Serialise JSON-ready data the same way every time (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def step_key(step: Step, inputs: Mapping[str, Any]) -> str:
    """Return the cache key of a step: the SHA-256 of its name and inputs.

    >>> step_key(Step.SPLIT, {"seed": 0}) == step_key(Step.SPLIT, {"seed": 0})
    True
    >>> step_key(Step.SPLIT, {"seed": 0}) == step_key(Step.SPLIT, {"seed": 1})
    False
    """
    return hashlib.sha256(canonical_json({"step": step.value, "inputs": inputs})).hexdigest()


class StepStore(Protocol):
    """Where step outputs and the bytes they name are kept."""

    def outputs(self, step: Step, key: str) -> dict[str, Any] | None:
        """Return a step's recorded outputs under a key, if every blob they name is present."""
        ...

    def record(self, step: Step, key: str, outputs: dict[str, Any]) -> None:
        """Record a step's outputs under a key."""
        ...

    def put_blob(self, content: bytes) -> str:
        """Keep intermediate bytes; return their SHA-256."""
        ...

    def blob(self, sha256: str) -> bytes:
        """Return intermediate bytes by SHA-256."""
        ...

    def put_dataset(self, content: bytes) -> str:
        """Keep a dataset CSV the registry will serve; return its SHA-256."""
        ...

    def dataset(self, sha256: str) -> bytes:
        """Return a dataset CSV by SHA-256."""
        ...

    def put_artifact(self, content: bytes) -> str:
        """Keep a model artifact the registry will serve; return its SHA-256."""
        ...

    def artifact(self, sha256: str) -> bytes:
        """Return a model artifact by SHA-256."""
        ...

    def load_model(self, sha256: str) -> Any:
        """Return the estimator of an artifact, loaded safely."""
        ...


@dataclass(frozen=True)
class Champion:
    """The model the candidate is judged against, and the data it was trained on."""

    version: int
    artifact_sha256: str
    dataset_sha256: str | None = None


@dataclass(frozen=True)
class PipelineInputs:
    """Everything a run's steps depend on."""

    snapshot_sha256: str  # the training snapshot, in the dataset store
    live_from: int  # rows before this index are seed data, the rest live traffic
    spec: MonitoringSpec
    recipe: Recipe
    code_version: str
    gate: GatePolicy
    champion: Champion | None = None
    estimator_sha256: str | None = None  # the artifact a ``champion`` recipe clones


@dataclass
class PipelineResult:
    """What the steps produced, and which were answered from the cache."""

    cached: list[Step] = field(default_factory=list)
    outputs: dict[Step, dict[str, Any]] = field(default_factory=dict)
    keys: dict[Step, str] = field(default_factory=dict)

    @property
    def artifact_sha256(self) -> str:
        """The candidate's artifact."""
        return str(self.outputs[Step.TRAIN]["artifact_sha256"])

    @property
    def evaluation_sha256(self) -> str:
        """The held-out rows both models were judged on (a dataset CSV)."""
        return str(self.outputs[Step.SPLIT]["test_sha256"])


def _spec_inputs(spec: MonitoringSpec) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "features": [feature.model_dump(mode="json") for feature in spec.features],
        "label": spec.label,
        "classes": list(spec.classes),
    }
    if spec.task is not ModelTask.CLASSIFICATION:  # a classifier's keys stay as they were
        inputs["task"] = spec.task.value
    return inputs


def _scores(estimator: Any, spec: MonitoringSpec, rows: LabelledRows) -> Scores | ValueScores:
    if spec.task is ModelTask.REGRESSION:
        return score_values(estimator, spec, rows)
    return score(estimator, spec, rows)


def _reported_metrics(spec: MonitoringSpec) -> list[str]:
    """What evaluate records of the candidate on every held-out row: the watched metrics, and
    accuracy (a classifier) or every regression metric (a regressor)."""
    watched = [target.metric for target in spec.metrics]
    if spec.task is ModelTask.REGRESSION:
        return [*watched, *sorted(REGRESSION_METRICS - set(watched))]
    return [*watched, "accuracy"]


def _rows_json(rows: LabelledRows) -> dict[str, Any]:
    return {
        "rows": [list(row) for row in rows.rows],
        "labels": list(rows.labels),
        "live_from": rows.live_from,
    }


def _rows_from_json(data: dict[str, Any]) -> LabelledRows:
    return LabelledRows(
        tuple(tuple(row) for row in data["rows"]), tuple(data["labels"]), int(data["live_from"])
    )


def run_steps(inputs: PipelineInputs, store: StepStore) -> PipelineResult:
    """Run prepare → split → train → evaluate, each answered from ``store`` when its key is
    there; return every step's outputs and which were cached."""
    result = PipelineResult()
    spec = inputs.spec

    def step(name: Step, step_inputs: dict[str, Any], compute: Any) -> dict[str, Any]:
        key = step_key(name, step_inputs)
        result.keys[name] = key
        found = store.outputs(name, key)
        if found is None:
            found = compute()
            store.record(name, key, found)
        else:
            result.cached.append(name)
        result.outputs[name] = found
        return found

    def prepare() -> dict[str, Any]:
        rows, dropped = parse_csv(
            store.dataset(inputs.snapshot_sha256), spec, live_from=inputs.live_from
        )
        return {
            "prepared_sha256": store.put_blob(canonical_json(_rows_json(rows))),
            "rows": len(rows),
            "live_rows": rows.live_rows,
            "dropped_rows": dropped,
        }

    prepared = step(
        Step.PREPARE,
        {
            "snapshot_sha256": inputs.snapshot_sha256,
            "live_from": inputs.live_from,
            "spec": _spec_inputs(spec),
            "code_version": inputs.code_version,
        },
        prepare,
    )

    def load_prepared() -> LabelledRows:
        return _rows_from_json(json.loads(store.blob(prepared["prepared_sha256"])))

    def do_split() -> dict[str, Any]:
        rows = load_prepared()
        train_rows, test_rows = split(rows, inputs.recipe, spec.task)
        train, test = rows.take(train_rows), rows.take(test_rows)
        return {
            "train_sha256": store.put_blob(canonical_json(_rows_json(train))),
            "test_sha256": store.put_dataset(to_csv(test, spec)),
            "test_live_from": test.live_from,
            "train_rows": len(train),
            "test_rows": len(test),
        }

    split_inputs: dict[str, Any] = {
        "prepared_sha256": prepared["prepared_sha256"],
        "test_fraction": inputs.recipe.test_fraction,
        "seed": inputs.recipe.seed,
        "code_version": inputs.code_version,
    }
    if spec.task is not ModelTask.CLASSIFICATION:  # not stratified
        split_inputs["task"] = spec.task.value
    split_outputs = step(Step.SPLIT, split_inputs, do_split)

    def held_out() -> LabelledRows:
        rows, _ = parse_csv(
            store.dataset(split_outputs["test_sha256"]),
            spec,
            live_from=split_outputs["test_live_from"],
        )
        return rows

    def train() -> dict[str, Any]:
        rows = _rows_from_json(json.loads(store.blob(split_outputs["train_sha256"])))
        template = (
            store.load_model(inputs.estimator_sha256)
            if inputs.recipe.estimator == CHAMPION and inputs.estimator_sha256 is not None
            else None
        )
        estimator = fit(inputs.recipe, spec, rows, template)
        content = reproducible_skops(
            estimator, as_model_input(estimator, spec, to_matrix(held_out(), spec))
        )
        return {"artifact_sha256": store.put_artifact(content)}

    trained = step(
        Step.TRAIN,
        {
            "train_sha256": split_outputs["train_sha256"],
            "test_sha256": split_outputs["test_sha256"],
            "recipe": inputs.recipe.parameters(),
            "cloned_sha256": (
                inputs.estimator_sha256 if inputs.recipe.estimator == CHAMPION else None
            ),
            "spec": _spec_inputs(spec),
            "sklearn_version": sklearn.__version__,
            "code_version": inputs.code_version,
        },
        train,
    )

    def evaluate() -> dict[str, Any]:
        rows = held_out()
        candidate_model = store.load_model(trained["artifact_sha256"])
        judged, overlap = _unseen_by_champion(rows, inputs, store)
        candidate = _scores(candidate_model, spec, judged)
        champion = (
            _scores(store.load_model(inputs.champion.artifact_sha256), spec, judged)
            if inputs.champion is not None
            else None
        )
        verdict = judge(spec, candidate, champion, inputs.gate, live=judged.live_mask())
        figures = {**verdict.figures, "champion_training_overlap": overlap}
        everything = _scores(candidate_model, spec, rows)
        metrics = {name: metric_value(name, everything, spec) for name in _reported_metrics(spec)}
        return {
            "passed": verdict.passed,
            "figures": _finite(figures),
            "failures": verdict.failures,
            "summary": verdict.summary,
            "metrics": {name: value for name, value in metrics.items() if value is not None},
        }

    step(
        Step.EVALUATE,
        {
            "artifact_sha256": trained["artifact_sha256"],
            "test_sha256": split_outputs["test_sha256"],
            "test_live_from": split_outputs["test_live_from"],
            "champion_sha256": inputs.champion.artifact_sha256 if inputs.champion else None,
            "champion_dataset_sha256": (
                inputs.champion.dataset_sha256 if inputs.champion else None
            ),
            "gate": inputs.gate.describe(),
            "spec": inputs.spec.model_dump(
                mode="json",
                include={"metrics", "key_metric", "positive_class", "low_confidence_threshold"},
            ),
            "code_version": inputs.code_version,
        },
        evaluate,
    )
    return result


def _unseen_by_champion(
    rows: LabelledRows, inputs: PipelineInputs, store: StepStore
) -> tuple[LabelledRows, dict[str, Any]]:
    """Return the held-out rows the champion did not train on, when there are enough of them.

    A champion scored on rows it was trained on looks better than it is; the candidate never
    saw a held-out row. Rows are matched by content (features and label) against the
    champion's registered training data. With fewer than the gate's ``min_unseen_rows`` unseen
    rows, every held-out row is used and the overlap is reported.
    """
    report: dict[str, Any] = {"held_out_rows": len(rows), "seen_by_champion": 0}
    champion = inputs.champion
    if champion is None or champion.dataset_sha256 is None:
        report["judged_rows"] = len(rows)
        return rows, report
    try:
        trained_on, _ = parse_csv(store.dataset(champion.dataset_sha256), inputs.spec)
    except (LookupError, ValueError):
        report["note"] = "the champion's training data is not readable with this spec"
        report["judged_rows"] = len(rows)
        return rows, report
    seen = set(zip(trained_on.rows, trained_on.labels, strict=True))
    unseen = [
        i for i, key in enumerate(zip(rows.rows, rows.labels, strict=True)) if key not in seen
    ]
    report["seen_by_champion"] = len(rows) - len(unseen)
    if len(unseen) == len(rows) or len(unseen) < inputs.gate.min_unseen_rows:
        report["judged_rows"] = len(rows)
        if len(unseen) < len(rows):
            report["note"] = (
                f"fewer than {inputs.gate.min_unseen_rows} held-out rows are new to the "
                "champion: judged on all of them, which favours the champion"
            )
        return rows, report
    report["judged_rows"] = len(unseen)
    return rows.take(unseen), report


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (not JSON) by ``None``, recursively."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
