"""p-values from null draws, max-statistic FWE control and FDR."""

import numpy as np
from statsmodels.stats.multitest import multipletests

from ..errors import MetricError, check_interval


def _tolerance(observed, relative=1e-9):
    # Null draws equal to the observed value (e.g. the identity permutation) must count as
    # "at least as extreme" even after floating-point reordering of the same sum.
    return relative * max(float(np.nanmax(np.abs(observed), initial=0.0)), 1e-300)


class NullCounter:
    """Accumulates exceedance counts over chunks of null draws.

    ``update(null)`` with ``null`` ``(n_draws, n_cells)``; ``p_values()`` then gives the
    uncorrected and max-statistic (FWE) p-values, both ``(1 + count) / (1 + n)``.
    """

    def __init__(self, observed, relative_tolerance=1e-9):
        # draws within the tolerance of the observed value count as exceeding it (ties are
        # resolved towards larger p-values: conservative); raise it for float32 nulls
        self.observed = np.asarray(observed, dtype=np.float64)
        self.threshold = self.observed - _tolerance(self.observed, relative_tolerance)
        self.count = np.zeros(self.observed.shape, dtype=np.int64)
        self.maxima = []
        self.n = 0

    def update(self, null):
        null = np.asarray(null)
        self.count += (null >= self.threshold).sum(0)
        with np.errstate(invalid="ignore"):
            self.maxima.append(np.nanmax(null, axis=1))
        self.n += null.shape[0]

    def p_values(self):
        if self.n == 0:
            raise MetricError("no null draws were accumulated")
        p = (1.0 + self.count) / (1.0 + self.n)
        maxima = np.sort(np.concatenate(self.maxima))
        exceed = self.n - np.searchsorted(maxima, self.threshold, side="left")
        p_fwe = (1.0 + exceed) / (1.0 + self.n)
        nan = ~np.isfinite(self.observed)
        return np.where(nan, np.nan, p), np.where(nan, np.nan, p_fwe)


def pvalues_from_null(observed, null):
    """One-sided (greater) p-values ``(1 + #{null >= observed}) / (1 + n)`` per cell.

    ``observed`` ``(n_cells,)``, ``null`` ``(n_draws, n_cells)``.
    """
    counter = NullCounter(observed)
    counter.update(null)
    return counter.p_values()[0]


def max_t_pvalues(observed, null):
    """Family-wise error controlled p-values by the max statistic (Westfall-Young).

    Each cell's p-value is the share of draws whose maximum over ALL cells reaches the
    cell's observed value, so ``P(any p_fwe <= a) <= a`` under the global null.
    """
    counter = NullCounter(observed)
    counter.update(null)
    return counter.p_values()[1]


def fdr(p_values, alpha=0.05, method="fdr_bh"):
    """Benjamini-Hochberg (default) q-values and rejections, via statsmodels.

    NaN p-values are left out and stay NaN (not rejected).

    Returns
    -------
    q_values : numpy.ndarray, same shape as ``p_values``
    reject : numpy.ndarray of bool
    """
    check_interval("alpha", alpha, "(0, 1)", error=MetricError)
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    reject = np.zeros(p.shape, bool)
    finite = np.isfinite(p)
    if finite.any():
        rejected, corrected, _, _ = multipletests(p[finite], alpha=alpha, method=method)
        q[finite], reject[finite] = corrected, rejected
    return q, reject
