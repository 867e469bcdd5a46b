"""Row-wise lookups in ``(k, w)`` matrices — one row per column (feature) — in a few numpy calls.

:func:`take_in_rows` reads ``table[j, index[j, i]]`` for every row at once through one flat
``take``: ``np.take_along_axis`` builds broadcast index arrays first and costs several times as
much.

:class:`RowSearch` finds, for many values at once, the last value at or below each in a row of
increasing values. ``np.searchsorted`` bisects every value through the whole row (a dozen
dependent, mispredicted steps each); here a value's *cell* — its place on an even grid over its
row's range — is computed arithmetically, and a table prepared once says where the cell's values
start, so one comparison settles a value in a cell holding at most one row value (most of them)
and only the rest are bisected, within their cell. The answer is exact: the cell is a monotone
function of the value, computed the same way for row values and searched values, so a row value
in an earlier cell is smaller and one in a later cell is larger. A row whose values crowd into a
few cells (an extreme outlier stretching its range) bisects more but still answers exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["CELLS_PER_VALUE", "RowSearch", "row_search", "take_in_rows"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Scalar = TypeVar("Scalar", bound=np.generic)

CELLS_PER_VALUE = 4
"""Grid cells per row value: few cells then hold more than one value on common shapes."""


def take_in_rows(index: IntArray, *tables: NDArray[Scalar]) -> tuple[NDArray[Scalar], ...]:
    """Return ``table[j, index[j, i]]`` for each of the same-width ``(k, w)`` tables."""
    width = tables[0].shape[1]
    flat = index + (np.arange(index.shape[0]) * width)[:, None]
    return tuple(table.ravel().take(flat) for table in tables)


def _cells(values: FloatArray, low: FloatArray, scale: FloatArray, cells: int) -> IntArray:
    """Cell of each value of ``(k, m)`` rows: monotone in the value; NaN goes to cell 0, values
    far outside the row's range (overflowing to infinity) to its first or last cell."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.subtract(values, low)
        scaled *= scale
    np.fmax(scaled, 0.0, out=scaled)
    np.fmin(scaled, cells - 1, out=scaled)
    return scaled.astype(np.int64)


@dataclass(frozen=True, eq=False)
class RowSearch:
    """Rows of increasing values, with the cell table for searching them.

    Row ``j`` of the ``(k, w)`` layout holds a leading slot (position 0, standing for "no value at
    or below"), the row's values from position 1 on, and NaN after them (at least one).
    """

    values: FloatArray
    """``(k * w,)`` the rows, flattened; NaN in the leading slot and the padding."""
    low: FloatArray
    """``(k, 1)`` each row's smallest value (where its grid starts)."""
    scale: FloatArray
    """``(k, 1)`` grid cells per unit of value."""
    cell_starts: IntArray
    """``(k * (cells + 1),)`` flat position of the last value before each cell (the row's leading
    slot before the first value), and of the row's last value."""
    cells: int

    def last_at_or_below(self, values: FloatArray) -> IntArray:
        """Return the flat position of the last row value at or below each of ``(k, m)`` values
        (the row's leading slot where there is none, and for NaN)."""
        k = values.shape[0]
        cell = _cells(values, self.low, self.scale, self.cells)
        cell += (np.arange(k) * (self.cells + 1))[:, None]
        position = self.cell_starts.take(cell)
        # The cell's first value; past a cell's values lies a later cell's value or NaN padding.
        more = self.values.take(position + 1) <= values
        position += more.astype(np.int64)
        active = np.flatnonzero(more)
        if active.size:
            self._bisect(position.reshape(-1), active, cell.take(active), values.take(active))
        return position

    def _bisect(
        self, position: IntArray, active: IntArray, cell: IntArray, target: FloatArray
    ) -> None:
        """Advance ``position[active]`` over the rest of its cell's values at or below target.

        By binary lifting: try steps of halving powers of two, keeping those that stay at or
        below the target. Updates multiply by the comparison (as integers: numpy casts booleans
        slowly) rather than select with ``np.where`` or a boolean mask, which are several times
        slower on outcomes that go either way at random.
        """
        last = self.cell_starts.take(cell + 1)
        base = position.take(active)
        more = np.flatnonzero(last > base)
        if not more.size:
            return
        active, last, base, target = (
            active.take(more),
            last.take(more),
            base.take(more),
            target.take(more),
        )
        step = 1 << (int((last - base).max()).bit_length() - 1)
        while step:
            probe = base + step
            right = (probe <= last) & (self.values.take(probe, mode="clip") <= target)
            base += right.astype(np.int64) * step
            step >>= 1
        position.put(active, base)


def row_search(values: FloatArray, counts: IntArray) -> RowSearch:
    """Prepare rows for :meth:`RowSearch.last_at_or_below`.

    ``values`` is ``(k, w)``: a leading slot, then ``counts[j]`` increasing values, then NaN (at
    least one).
    """
    k, width = values.shape
    cells = CELLS_PER_VALUE * max(int(counts.max(initial=0)), 1)
    positions = np.arange(width)
    present = (positions >= 1) & (positions <= counts[:, None])
    low = np.where(counts > 0, values[:, 1], 0.0)
    last = values[np.arange(k), counts]
    with np.errstate(invalid="ignore", over="ignore"):
        span = last - low
        scale = cells / np.where((counts > 0) & (span > 0), span, 1.0)
    cell = _cells(values, low[:, None], scale[:, None], cells) + (np.arange(k) * cells)[:, None]
    per_cell = np.bincount(cell[present], minlength=k * cells).reshape(k, cells)
    cell_starts = np.zeros((k, cells + 1), dtype=np.int64)
    np.cumsum(per_cell, axis=1, out=cell_starts[:, 1:])
    cell_starts += (np.arange(k) * width)[:, None]
    return RowSearch(
        values=values.ravel(),
        low=low[:, None],
        scale=scale[:, None],
        cell_starts=cell_starts.ravel(),
        cells=cells,
    )
