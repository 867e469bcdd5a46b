"""Turning rows of feature values (live events, CSV files) into the matrices the detector tests.

Numeric features become a float matrix with NaN for missing values; categorical features become
level codes relative to the reference profile (``MISSING``, ``UNSEEN`` or the level's index), so
counting a window's levels is one ``bincount``. Rows that do not match the model's schema (an
unknown or absent feature, a value of the wrong type) are returned as errors, one per row, never
silently dropped or coerced.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from contracts.values import FeatureValue
from services.drift_detector.profiles import ProfileError, ReferenceProfile

__all__ = [
    "MISSING",
    "UNSEEN",
    "Encoded",
    "FeatureBatch",
    "Table",
    "category_text",
    "encode_columns",
    "encode_rows",
    "numeric_value",
    "parse_csv",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

MISSING = -1
"""Code of a missing categorical value."""
UNSEEN = -2
"""Code of a categorical level the reference never showed."""

T = TypeVar("T")

_MISSING_TEXT = frozenset({"", "na", "nan", "null", "none"})


@dataclass(frozen=True, eq=False)
class FeatureBatch:
    """Rows of one model version's features, encoded against its reference profile."""

    numeric: FloatArray
    """``(m, k_numeric)``; NaN is missing."""
    categorical: IntArray
    """``(m, k_categorical)`` level codes; ``MISSING`` or ``UNSEEN`` otherwise."""
    unseen_text: NDArray[np.object_]
    """``(m, k_categorical)``: the text of each ``UNSEEN`` level, ``None`` elsewhere."""
    scores: FloatArray | None = None
    """``(m,)`` prediction scores (NaN where unknown), or ``None`` when there are none."""

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(max(self.numeric.shape[0], self.categorical.shape[0]))

    def unseen_counts(self) -> tuple[Counter[str], ...]:
        """Per categorical column, how often each never-seen level occurred."""
        return tuple(
            Counter(str(text) for text in column if text is not None)
            for column in self.unseen_text.T
        )

    @staticmethod
    def concat(batches: Sequence[FeatureBatch]) -> FeatureBatch:
        """Join batches of the same profile, in order."""
        if not batches:
            raise ValueError("nothing to join")
        if len(batches) == 1:
            return batches[0]
        scores = None
        if any(b.scores is not None for b in batches):
            scores = np.concatenate(
                [b.scores if b.scores is not None else np.full(b.rows, np.nan) for b in batches]
            )
        return FeatureBatch(
            numeric=np.concatenate([b.numeric for b in batches]),
            categorical=np.concatenate([b.categorical for b in batches]),
            unseen_text=np.concatenate([b.unseen_text for b in batches]),
            scores=scores,
        )

    def slice(self, start: int, stop: int) -> FeatureBatch:
        """Return rows ``start:stop``."""
        return FeatureBatch(
            numeric=self.numeric[start:stop],
            categorical=self.categorical[start:stop],
            unseen_text=self.unseen_text[start:stop],
            scores=None if self.scores is None else self.scores[start:stop],
        )


@dataclass(frozen=True)
class Encoded:
    """Rows encoded against a profile: the batch of valid rows and the refused rows."""

    batch: FeatureBatch
    accepted: list[int]
    """Indices (into the input) of the rows in ``batch``, in order."""
    errors: dict[int, str] = field(default_factory=dict)
    """Index of each refused row, with why."""


def numeric_value(value: object) -> float:
    """Return a numeric feature value as a float (NaN when missing); ``ValueError`` otherwise."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if math.isinf(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def category_text(value: object) -> str | None:
    """Return a categorical feature value as its level text (``None`` when missing).

    Levels are text; integers and booleans arrive as numbers from some clients and as text from
    CSV, so ``1`` and ``"1"``, ``True`` and ``"true"`` name the same level.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise ValueError(f"expected a category (text), got {type(value).__name__} {value!r}")


def encode_rows(
    profile: ReferenceProfile,
    rows: Sequence[Mapping[str, FeatureValue]],
    scores: Sequence[float | None] | None = None,
) -> Encoded:
    """Encode feature dictionaries against a profile; rows off the schema become errors."""
    numeric_names = profile.numeric.names
    categorical_names = profile.categorical.names
    codes = profile.categorical.level_codes()
    known = set(profile.feature_order)
    numeric = np.empty((len(rows), len(numeric_names)))
    categorical = np.empty((len(rows), len(categorical_names)), dtype=np.int64)
    unseen_text = np.full((len(rows), len(categorical_names)), None, dtype=object)
    accepted: list[int] = []
    errors: dict[int, str] = {}
    for index, row in enumerate(rows):
        try:
            unknown = sorted(set(row) - known)
            absent = [name for name in profile.feature_order if name not in row]
            if unknown or absent:
                raise ValueError(
                    f"features do not match model {profile.model} v{profile.version}: "
                    + "; ".join(
                        part
                        for part in (
                            f"unknown {unknown}" if unknown else "",
                            f"absent {absent}" if absent else "",
                        )
                        if part
                    )
                )
            position = len(accepted)
            for j, name in enumerate(numeric_names):
                numeric[position, j] = _field(name, row[name], numeric_value)
            new_levels: list[tuple[int, str]] = []
            for j, name in enumerate(categorical_names):
                text = _field(name, row[name], category_text)
                if text is None:
                    categorical[position, j] = MISSING
                elif text in codes[j]:
                    categorical[position, j] = codes[j][text]
                else:
                    categorical[position, j] = UNSEEN
                    new_levels.append((j, text))
        except ValueError as error:
            errors[index] = str(error)
            continue
        for j, text in new_levels:
            unseen_text[len(accepted), j] = text
        accepted.append(index)
    kept = len(accepted)
    score_array = None
    if scores is not None:
        score_array = np.array(
            [math.nan if scores[i] is None else scores[i] for i in accepted], dtype=np.float64
        )
    return Encoded(
        batch=FeatureBatch(
            numeric=numeric[:kept],
            categorical=categorical[:kept],
            unseen_text=unseen_text[:kept],
            scores=score_array,
        ),
        accepted=accepted,
        errors=errors,
    )


def _field(name: str, value: object, convert: Callable[[object], T]) -> T:
    try:
        return convert(value)
    except ValueError as error:
        raise ValueError(f"feature {name!r}: {error}") from None


def encode_columns(
    profile: ReferenceProfile, table: Table, scores: FloatArray | None = None
) -> FeatureBatch:
    """Encode whole columns (from :func:`parse_csv`) against a profile, without a row loop."""
    absent = [name for name in profile.feature_order if name not in table.header]
    unknown = [name for name in table.header if name not in profile.feature_order]
    if absent or unknown:
        raise ProfileError(
            f"columns do not match the reference: absent {absent}, unknown {unknown}"
        )
    wrong_kind = [name for name in profile.numeric.names if name not in table.numeric] + [
        name for name in profile.categorical.names if name not in table.categorical
    ]
    if wrong_kind:
        raise ProfileError(f"columns read with the wrong kind: {wrong_kind}")
    rows = table.rows
    numeric = np.column_stack(
        [table.numeric[name] for name in profile.numeric.names] or [np.zeros((rows, 0))]
    ).reshape(rows, len(profile.numeric.names))
    codes = profile.categorical.level_codes()
    categorical = np.empty((rows, len(profile.categorical.names)), dtype=np.int64)
    unseen_text = np.full(categorical.shape, None, dtype=object)
    for j, name in enumerate(profile.categorical.names):
        for i, text in enumerate(table.categorical[name]):
            if text is None:
                categorical[i, j] = MISSING
            elif text in codes[j]:
                categorical[i, j] = codes[j][text]
            else:
                categorical[i, j] = UNSEEN
                unseen_text[i, j] = text
    return FeatureBatch(
        numeric=numeric, categorical=categorical, unseen_text=unseen_text, scores=scores
    )


@dataclass(frozen=True)
class Table:
    """Columns read from a CSV file: numeric ones as float arrays, categorical ones as text."""

    header: tuple[str, ...]
    numeric: dict[str, FloatArray]
    categorical: dict[str, list[str | None]]

    @property
    def rows(self) -> int:
        """Number of data rows."""
        for column in self.numeric.values():
            return len(column)
        for values in self.categorical.values():
            return len(values)
        return 0

    def records(self, features: Sequence[str]) -> list[dict[str, FeatureValue]]:
        """Return the rows as feature dictionaries (NaN and empty text become ``None``)."""
        columns: list[list[FeatureValue]] = []
        for name in features:
            if name in self.numeric:
                columns.append([None if math.isnan(v) else float(v) for v in self.numeric[name]])
            else:
                columns.append(list(self.categorical[name]))
        return [dict(zip(features, values, strict=True)) for values in zip(*columns, strict=True)]


def parse_csv(
    data: bytes | str,
    *,
    categorical: Sequence[str] = (),
    columns: Sequence[str] | None = None,
    source: str = "CSV",
) -> Table:
    """Read a CSV with a header row: ``categorical`` columns as text, the others as numbers.

    Empty cells and ``NA`` / ``NaN`` / ``null`` / ``None`` are missing values. ``columns``
    restricts the columns read (each must be present). A cell that is not a number in a numeric
    column is a :class:`ProfileError` naming the column, row and value.
    """
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader = csv.reader(io.StringIO(text))
    try:
        header = tuple(name.strip() for name in next(reader))
    except StopIteration:
        raise ProfileError(f"{source} is empty: no header row") from None
    if len(set(header)) != len(header):
        raise ProfileError(f"{source} header repeats a column name: {list(header)}")
    wanted = list(columns) if columns is not None else list(header)
    absent = [name for name in wanted if name not in header]
    if absent:
        raise ProfileError(f"{source} has no column(s) {absent}; its header is {list(header)}")
    unknown_categorical = [name for name in categorical if name not in header]
    if unknown_categorical:
        raise ProfileError(f"{source} has no categorical column(s) {unknown_categorical}")
    index = {name: header.index(name) for name in wanted}
    cells: dict[str, list[str]] = {name: [] for name in wanted}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ProfileError(f"{source} line {line}: {len(row)} cells for {len(header)} columns")
        for name in wanted:
            cells[name].append(row[index[name]].strip())
    numeric: dict[str, FloatArray] = {}
    categorical_columns: dict[str, list[str | None]] = {}
    chosen = set(categorical)
    for name in wanted:
        if name in chosen:
            categorical_columns[name] = [
                None if cell.lower() in _MISSING_TEXT else cell for cell in cells[name]
            ]
        else:
            numeric[name] = _numbers(name, cells[name], source)
    return Table(header=tuple(wanted), numeric=numeric, categorical=categorical_columns)


def _numbers(name: str, cells: list[str], source: str) -> FloatArray:
    values = np.empty(len(cells))
    for row, cell in enumerate(cells):
        if cell.lower() in _MISSING_TEXT:
            values[row] = math.nan
            continue
        try:
            values[row] = float(cell)
        except ValueError:
            raise ProfileError(
                f"{source} column {name!r}, data row {row + 1}: {cell!r} is not a number "
                "(is it a categorical column?)"
            ) from None
        if math.isinf(values[row]):
            raise ProfileError(f"{source} column {name!r}, data row {row + 1}: {cell!r}")
    return values
