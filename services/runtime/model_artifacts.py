"""Loading model artifacts safely: skops files, checked by hash, with an allow-list of types.

The registry checks an artifact with these functions when it is registered and the scorer when
it loads it, so both refuse the same files. A pickle can run any code while it loads; a skops file
is a description of objects that is audited against trusted types *before* anything is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import skops.io

from contracts.registry import ModelTask, MonitoringSpec

__all__ = [
    "DEFAULT_TRUSTED_TYPES",
    "TRUSTED_TYPES_SETTING",
    "UnsafeArtifactError",
    "class_labels",
    "load_model",
    "mismatches_with_spec",
    "sha256_hex",
]

DEFAULT_TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)
"""Types trusted beyond skops' own defaults (which already cover scikit-learn's estimators,
pipelines, ``ColumnTransformer`` and encoders): the fitted internals of scikit-learn's tree
ensembles (random forests, extra trees, gradient boosting, histogram gradient boosting), nearest
neighbours and multi-layer perceptrons, which skops lists as untrusted although they are plain
scikit-learn state; and ``numpy.dtype``, which skops 0.16 with numpy 2 lists although it only
describes an array's element type. Anything else (a custom class, a function) is refused unless
an operator names it in the setting :data:`TRUSTED_TYPES_SETTING`."""

TRUSTED_TYPES_SETTING = "VIGIL_MODEL_TRUSTED_TYPES"
"""The environment variable, shared by the registry and the scorer, that sets the trusted types."""


class UnsafeArtifactError(ValueError):
    """An artifact is not a loadable skops file, has the wrong hash, or holds untrusted types."""


def sha256_hex(content: bytes) -> str:
    """Return the SHA-256 of some bytes as 64 hex digits."""
    return hashlib.sha256(content).hexdigest()


def load_model(
    content: bytes, *, sha256: str | None = None, trusted: Iterable[str] = DEFAULT_TRUSTED_TYPES
) -> Any:
    """Build the estimator in a skops file, refusing a wrong hash or any type that is neither
    trusted by skops nor named in ``trusted``."""
    if sha256 is not None and sha256_hex(content) != sha256:
        raise UnsafeArtifactError(f"artifact does not have SHA-256 {sha256}")
    try:
        untrusted = set(skops.io.get_untrusted_types(data=content))
    except Exception as error:  # skops raises zipfile / json / key errors for foreign files
        raise UnsafeArtifactError(f"not a skops file: {type(error).__name__}: {error}") from None
    refused = untrusted - set(trusted)
    if refused:
        raise UnsafeArtifactError(
            f"artifact holds untrusted types: {', '.join(sorted(refused))} (loading them could "
            f"run their code; if they are safe, name them in {TRUSTED_TYPES_SETTING})"
        )
    try:
        return skops.io.loads(content, trusted=sorted(untrusted))
    except Exception as error:
        raise UnsafeArtifactError(
            f"artifact does not load: {type(error).__name__}: {error}"
        ) from None


def class_labels(estimator: Any) -> list[str]:
    """Return an estimator's classes as the text labels predictions carry (``1`` → ``"1"``)."""
    return [_label(value) for value in getattr(estimator, "classes_", ())]


def _label(value: Any) -> str:
    # The same spelling as contracts.values.ClassLabel, which turns booleans and integers to text.
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def mismatches_with_spec(estimator: Any, spec: MonitoringSpec) -> list[str]:
    """Return every way an estimator does not fit its version's spec (empty when it fits)."""
    problems = _task_mismatch(estimator, spec)
    expected = [feature.name for feature in spec.features]
    count = getattr(estimator, "n_features_in_", None)
    if count is not None and count != len(expected):
        problems.append(f"model takes {count} features, the spec lists {len(expected)}")
    names: Sequence[Any] | None = getattr(estimator, "feature_names_in_", None)
    if names is not None and [str(name) for name in names] != expected:
        problems.append(f"model feature names {list(names)} differ from the spec's {expected}")
    classes = class_labels(estimator)
    wrong_task = bool(problems)  # then its classes (or their absence) say nothing more
    if (
        spec.task is ModelTask.CLASSIFICATION
        and not wrong_task
        and sorted(classes) != sorted(spec.classes)
    ):
        problems.append(f"model classes {classes} differ from the spec's {list(spec.classes)}")
    return problems


def _task_mismatch(estimator: Any, spec: MonitoringSpec) -> list[str]:
    """A classifier answers ``predict_proba`` over its ``classes_``; a regressor answers
    ``predict`` with a number and has neither. The scorer calls the method of the spec's task,
    so a model of the other kind would fail on every request (or, worse, a classifier's
    ``predict`` would be read as a number)."""
    name = type(estimator).__name__
    probabilistic = callable(getattr(estimator, "predict_proba", None))
    if spec.task is ModelTask.REGRESSION:
        if probabilistic or class_labels(estimator):
            return [
                f"{name} is a classifier (it has predict_proba or classes), the spec says "
                "task: regression; register a regressor, or a spec with task: classification"
            ]
        if not callable(getattr(estimator, "predict", None)):
            return [f"{name} has no predict"]
        return []
    if not probabilistic:
        if callable(getattr(estimator, "predict", None)) and not class_labels(estimator):
            return [
                f"{name} is a regressor (it has predict, no predict_proba), the spec says "
                "task: classification; set task: regression in the spec for a regression model"
            ]
        return [f"{name} has no predict_proba"]
    return []
