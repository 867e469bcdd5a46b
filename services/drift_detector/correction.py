"""Multiple-testing correction across the hypotheses of one window.

A window of 50 features tests 100 or more hypotheses; at 1 % each, an uncorrected detector cries
wolf on most clean windows. Bonferroni (the default) bounds the chance of *any* false alarm per
window by alpha; Benjamini-Hochberg bounds the expected share of false alarms among the flagged
features instead, which finds more when many features really moved.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from contracts.drift import Correction

__all__ = ["adjust_p_values"]

FloatArray = NDArray[np.float64]


def adjust_p_values(p_values: FloatArray, correction: Correction) -> FloatArray:
    """Return p-values adjusted for the whole family; compare them with alpha directly.

    Notes
    -----
    For a family of :math:`H` p-values,

    - Bonferroni: :math:`\\tilde p_i = \\min(1, H p_i)`;
    - Benjamini-Hochberg: with :math:`p_{(1)} \\le \\dots \\le p_{(H)}`,
      :math:`\\tilde p_{(i)} = \\min_{j \\ge i} \\min(1, H p_{(j)} / j)`
      (scipy's ``false_discovery_control(method="bh")``);
    - none: unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([0.001, 0.008, 0.039, 0.041, 0.6])
    >>> adjust_p_values(p, Correction.BONFERRONI).round(3).tolist()
    [0.005, 0.04, 0.195, 0.205, 1.0]
    >>> adjust_p_values(p, Correction.BENJAMINI_HOCHBERG).round(4).tolist()
    [0.005, 0.02, 0.0512, 0.0512, 0.6]
    """
    p = np.asarray(p_values, dtype=np.float64)
    # min and max are NaN if any p-value is: the comparisons then fail too.
    if p.size and not (p.min() >= 0 and p.max() <= 1):
        raise ValueError("p-values must lie in [0, 1]")
    family = p.size
    if family == 0 or correction is Correction.NONE:
        return p.copy()
    if correction is Correction.BONFERRONI:
        result: FloatArray = np.minimum(1.0, p * family)
        return result
    order = np.argsort(p)
    scaled = p[order] * family / np.arange(1, family + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted
