"""Labelled rows for training: read from and written to the registry's dataset CSV, shaped as
the model's input. Pure.

A training snapshot is the model's seed data (the champion's registered training set) followed
by labelled live traffic, oldest first; ``live_from`` is the index of the first live row, so the
gate can report figures on recent live data alone.

A regressor's labels are numbers; rows keep them as text (``repr`` of the float, so a value
always reads back and writes out as the same characters) and :func:`targets` turns them into
floats for fitting and scoring. A classifier's labels are its class names, as before.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from contracts.drift import FeatureKind
from contracts.registry import ModelTask, MonitoringSpec
from contracts.values import FeatureValue

__all__ = [
    "LabelledRows",
    "LiveExample",
    "label_text",
    "parse_csv",
    "targets",
    "to_csv",
    "to_matrix",
    "with_live",
]


@dataclass(frozen=True)
class LabelledRows:
    """Feature values in spec order, the label of each row, and where live traffic starts."""

    rows: tuple[tuple[FeatureValue, ...], ...]
    labels: tuple[str, ...]
    live_from: int

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.labels):
            raise ValueError(f"{len(self.rows)} rows but {len(self.labels)} labels")
        if not 0 <= self.live_from <= len(self.rows):
            raise ValueError(f"live_from {self.live_from} outside 0..{len(self.rows)}")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def live_rows(self) -> int:
        """How many rows are labelled live traffic."""
        return len(self.rows) - self.live_from

    def take(self, indices: Sequence[int]) -> LabelledRows:
        """Return the rows at ``indices`` (in that order); live rows stay after the others."""
        seed = [i for i in indices if i < self.live_from]
        live = [i for i in indices if i >= self.live_from]
        order = seed + live
        return LabelledRows(
            rows=tuple(self.rows[i] for i in order),
            labels=tuple(self.labels[i] for i in order),
            live_from=len(seed),
        )

    def live_mask(self) -> np.ndarray:
        """Return a boolean array, true for live rows."""
        return np.arange(len(self.rows)) >= self.live_from


def _value(kind: FeatureKind, text: str) -> FeatureValue:
    if text == "":
        return None
    if kind is FeatureKind.NUMERIC:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {text!r}")
        return value
    return text


def label_text(spec: MonitoringSpec, text: str) -> str | None:
    """Return a label as rows keep it, or ``None`` when it does not fit the spec: a class the
    spec does not know, or for a regressor a value that is not a finite number.

    >>> from contracts.registry import FeatureSpec, MetricTarget, MetricDirection
    >>> spec = MonitoringSpec(task=ModelTask.REGRESSION, label="y",
    ...     features=[FeatureSpec(name="x", kind=FeatureKind.NUMERIC)], key_metric="mae",
    ...     metrics=[MetricTarget(metric="mae", baseline=40.0, threshold=50.0,
    ...                           direction=MetricDirection.LOWER_IS_BETTER)])
    >>> label_text(spec, "151"), label_text(spec, "nan"), label_text(spec, "high")
    ('151.0', None, None)
    """
    if spec.task is not ModelTask.REGRESSION:
        return text if text in spec.classes else None
    try:
        value = float(text)
    except ValueError:
        return None
    return repr(value) if math.isfinite(value) else None


def targets(rows: LabelledRows, spec: MonitoringSpec) -> np.ndarray:
    """Return the labels as a model is fitted on them: floats for a regressor, the class names
    otherwise."""
    if spec.task is ModelTask.REGRESSION:
        return np.array([float(label) for label in rows.labels], dtype=np.float64)
    return np.array(rows.labels)


def parse_csv(
    content: bytes, spec: MonitoringSpec, *, live_from: int | None = None
) -> tuple[LabelledRows, int]:
    """Read a dataset CSV (spec features, then the label); return its usable rows and how many
    were left out (a label that does not fit the spec (:func:`label_text`), a value that is not a
    number, a missing value where the spec forbids one).

    ``live_from`` is the index among the CSV's rows of the first live row (default: none).
    """
    reader = csv.reader(io.StringIO(content.decode("utf-8")))
    header = next(reader, None)
    expected = [feature.name for feature in spec.features] + [spec.label]
    if header != expected:
        raise ValueError(f"header must be {expected}, not {header}")
    rows: list[tuple[FeatureValue, ...]] = []
    labels: list[str] = []
    dropped = 0
    first_live = None
    for index, line in enumerate(row for row in reader if row):
        if live_from is not None and index >= live_from and first_live is None:
            first_live = len(rows)
        try:
            label = label_text(spec, line[-1]) if len(line) == len(expected) else None
            if label is None:
                raise ValueError("does not fit the spec")
            values = tuple(
                _value(feature.kind, text)
                for feature, text in zip(spec.features, line, strict=False)
            )
            if any(
                v is None and not f.nullable for f, v in zip(spec.features, values, strict=True)
            ):
                raise ValueError("missing value")
        except ValueError:
            dropped += 1
            continue
        rows.append(values)
        labels.append(label)
    live_start = len(rows) if first_live is None else first_live
    return LabelledRows(tuple(rows), tuple(labels), live_start), dropped


def _text(value: FeatureValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float | int):
        return repr(float(value))
    return value


def to_csv(rows: LabelledRows, spec: MonitoringSpec) -> bytes:
    """Write rows as the registry's dataset CSV (the same rows always give the same bytes)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([feature.name for feature in spec.features] + [spec.label])
    for values, label in zip(rows.rows, rows.labels, strict=True):
        writer.writerow([*(_text(value) for value in values), label])
    return out.getvalue().encode()


def to_matrix(rows: LabelledRows, spec: MonitoringSpec) -> np.ndarray:
    """Return the rows as the model's input, as the scorer shapes a request: floats (missing →
    NaN) when every feature is numeric, else objects (missing → ``None``)."""
    if all(feature.kind is FeatureKind.NUMERIC for feature in spec.features):
        return np.array(rows.rows, dtype=np.float64).reshape(len(rows), len(spec.features))
    matrix = np.empty((len(rows), len(spec.features)), dtype=object)
    for i, values in enumerate(rows.rows):
        matrix[i, :] = values
    return matrix


@dataclass(frozen=True)
class LiveExample:
    """A served prediction's features joined with the label that arrived for it."""

    request_id: str
    features: Mapping[str, FeatureValue]
    label: str  # the class, or a regressor's true value as text


def _fits(kind: FeatureKind, nullable: bool, value: FeatureValue) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return nullable
    if kind is FeatureKind.NUMERIC:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return isinstance(value, str)


def with_live(
    seed: LabelledRows, live: Sequence[LiveExample], spec: MonitoringSpec
) -> tuple[LabelledRows, int]:
    """Append labelled live examples to seed rows; return the snapshot and how many examples
    were left out (a label that does not fit the spec, a value of the wrong kind, a missing value
    the spec forbids).

    >>> from contracts.registry import FeatureSpec, MetricTarget
    >>> spec = MonitoringSpec(features=[FeatureSpec(name="x", kind=FeatureKind.NUMERIC)],
    ...     label="y", classes=["a", "b"], positive_class="a", key_metric="recall",
    ...     metrics=[MetricTarget(metric="recall", baseline=0.9, threshold=0.8)])
    >>> seed = LabelledRows(((1.0,),), ("a",), 1)
    >>> rows, left_out = with_live(seed, [LiveExample("r1", {"x": 2}, "b"),
    ...                                   LiveExample("r2", {"x": "?"}, "b"),
    ...                                   LiveExample("r3", {"x": 3.0}, "c")], spec)
    >>> rows.rows, rows.labels, rows.live_from, left_out
    (((1.0,), (2.0,)), ('a', 'b'), 1, 2)
    """
    rows = list(seed.rows)
    labels = list(seed.labels)
    left_out = 0
    for example in live:
        values = [example.features.get(feature.name) for feature in spec.features]
        label = label_text(spec, example.label)
        fits = label is not None and all(
            _fits(feature.kind, feature.nullable, value)
            for feature, value in zip(spec.features, values, strict=True)
        )
        if label is None or not fits:
            left_out += 1
            continue
        rows.append(
            tuple(
                float(value) if feature.kind is FeatureKind.NUMERIC and value is not None else value
                for feature, value in zip(spec.features, values, strict=True)
            )
        )
        labels.append(label)
    return LabelledRows(tuple(rows), tuple(labels), len(seed.rows)), left_out
