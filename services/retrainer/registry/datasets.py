"""Datasets: CSV files checked against a version's spec and stored by content digest.

The format is the one :class:`services.runtime.RegistryClient` documents: a header row naming the
features in the spec's order and then the label column, one row per example. The label is one of
the spec's classes, or for a regression spec (``task: regression``) a finite number.
"""

from __future__ import annotations

import csv
import io
import math

from sqlalchemy import Engine

from contracts.drift import FeatureKind
from contracts.registry import DatasetRef, ModelTask, MonitoringSpec
from services.retrainer.content import ContentStore

__all__ = ["DatasetError", "DatasetStore", "check_dataset", "digest_of"]


class DatasetError(ValueError):
    """A dataset does not fit the spec; the message names the row and column."""


def digest_of(sha256: str) -> str:
    """Return the digest spelling of a SHA-256 (``sha256:<hex>``)."""
    return f"sha256:{sha256}"


def check_dataset(content: bytes, spec: MonitoringSpec) -> int:
    """Check a CSV against the spec and return its number of rows."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"not UTF-8 text: {error}") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    expected = [feature.name for feature in spec.features] + [spec.label]
    if header != expected:
        raise DatasetError(f"header must be {expected}, not {header}")
    classes = set(spec.classes)
    count = 0
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(expected):
            raise DatasetError(f"line {line}: {len(row)} columns, expected {len(expected)}")
        for feature, value in zip(spec.features, row, strict=False):
            if value == "":
                if not feature.nullable:
                    raise DatasetError(f"line {line}: {feature.name!r} is empty (not nullable)")
            elif feature.kind is FeatureKind.NUMERIC and not _is_number(value):
                raise DatasetError(f"line {line}: {feature.name!r} is not a number: {value!r}")
        if spec.task is ModelTask.REGRESSION:
            if not _is_number(row[-1]):
                raise DatasetError(
                    f"line {line}: target {spec.label!r} is not a finite number: {row[-1]!r} "
                    "(a regression model's target is a number)"
                )
        elif row[-1] not in classes:
            raise DatasetError(f"line {line}: label {row[-1]!r} is not one of {sorted(classes)}")
        count += 1
    if count == 0:
        raise DatasetError("the dataset has no rows")
    return count


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


class DatasetStore(ContentStore):
    """Datasets (CSV) in the retrainer's database, named ``sha256/<hex>.csv``."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, kind="dataset", suffix=".csv")

    async def put_dataset(self, content: bytes, *, name: str, version: str) -> DatasetRef:
        """Store a dataset and return its reference."""
        return DatasetRef(name=name, version=version, digest=digest_of(await self.put(content)))
