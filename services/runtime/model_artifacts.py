"""Loading model artifacts safely: skops files, checked by hash, with an allow-list of types.

The registry checks an artifact with these functions when it is registered and the scorer when
it loads it, so both refuse the same files. A pickle can run any code while it loads; a skops file
is a description of objects that is audited against trusted types *before* anything is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import skops.io

from contracts.registry import MonitoringSpec

__all__ = [
    "TRUSTED_EXTRA_TYPES",
    "UnsafeArtifactError",
    "class_labels",
    "load_model",
    "mismatches_with_spec",
    "sha256_hex",
]

TRUSTED_EXTRA_TYPES = frozenset({"numpy.dtype"})
"""Types trusted beyond skops' defaults: skops 0.16 with numpy 2 lists ``numpy.dtype`` as untrusted
although it only describes an array's element type."""


class UnsafeArtifactError(ValueError):
    """An artifact is not a loadable skops file, has the wrong hash, or holds untrusted types."""


def sha256_hex(content: bytes) -> str:
    """Return the SHA-256 of some bytes as 64 hex digits."""
    return hashlib.sha256(content).hexdigest()


def load_model(content: bytes, *, sha256: str | None = None) -> Any:
    """Build the estimator in a skops file, refusing a wrong hash or any untrusted type."""
    if sha256 is not None and sha256_hex(content) != sha256:
        raise UnsafeArtifactError(f"artifact does not have SHA-256 {sha256}")
    try:
        untrusted = set(skops.io.get_untrusted_types(data=content))
    except Exception as error:  # skops raises zipfile / json / key errors for foreign files
        raise UnsafeArtifactError(f"not a skops file: {type(error).__name__}: {error}") from None
    refused = untrusted - TRUSTED_EXTRA_TYPES
    if refused:
        raise UnsafeArtifactError(f"artifact holds untrusted types: {', '.join(sorted(refused))}")
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
    problems: list[str] = []
    if not callable(getattr(estimator, "predict_proba", None)):
        problems.append(f"{type(estimator).__name__} has no predict_proba")
    expected = [feature.name for feature in spec.features]
    count = getattr(estimator, "n_features_in_", None)
    if count is not None and count != len(expected):
        problems.append(f"model takes {count} features, the spec lists {len(expected)}")
    names: Sequence[Any] | None = getattr(estimator, "feature_names_in_", None)
    if names is not None and [str(name) for name in names] != expected:
        problems.append(f"model feature names {list(names)} differ from the spec's {expected}")
    classes = class_labels(estimator)
    if sorted(classes) != sorted(spec.classes):
        problems.append(f"model classes {classes} differ from the spec's {list(spec.classes)}")
    return problems
