"""Group summaries of per-site, per-bin values: the reduction every encoding report uses.

It lives in ``stats`` (below ``metrics``) because the permutation nulls and the bootstrap
summarise every draw the same way the observed score is summarised.
"""

import warnings

import numpy as np
import pandas as pd


class GroupSummary:
    """The per-region summary every report uses, for many rows of cell values at once.

    Per group of sites (``by`` coord, else one group "all"): the median over its sites of
    the mean over usable time bins (ceiling >= ``min_ceiling``, or every bin when the
    result has no ceiling). Calling it on ``(D, N*T)`` values gives ``{group: (D,)}``;
    :meth:`normalized` summarises the ceiling-normalised score, pooled over each site's
    usable bins.
    """

    def __init__(self, result, by="region"):
        n_neuroids = result.sizes["neuroid"]
        self.groups = result.coords[by].values if by in result.coords else np.array(["all"] * n_neuroids)
        self.shape = (n_neuroids, result.sizes["time_bin"])
        ceiling = result["ceiling"].values
        self.usable = (ceiling >= result.attrs.get("min_ceiling", -np.inf) if np.isfinite(ceiling).any()
                       else np.ones(ceiling.shape, bool))

    def per_site(self, values):
        """``(D, N*T)`` values -> ``(D, N)``: each site's mean over its usable bins (NaN
        where a site has none)."""
        cube = values.reshape((values.shape[0],) + self.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.where(self.usable[None], cube, np.nan), axis=2)

    def site_normalized(self, r, ceiling):
        """``(D, N*T)`` r and ``(N*T,)`` or ``(D, N*T)`` ceilings -> ``(D, N)``: each site's
        explained share of its explainable variance, pooled over its usable bins,
        ``sum_t sign(r) r^2 / sum_t ceiling`` (NaN where a site has no usable bin).

        Why pooled, not the mean of per-bin ratios: a bin whose ceiling estimate lies just
        above ``min_ceiling`` divides a noisy r^2 by a noisy small number, and bins enter the
        usable set because their ceiling was over-estimated, so the mean of ratios
        under-scores even the true rates (0.84-0.88 for a simulated recording's own rates
        on 100 images, against 0.94-0.98 pooled); pooling weights each bin by its
        explainable variance.
        """
        r = np.asarray(r, dtype=np.float64).reshape((-1,) + self.shape)
        ceiling = np.broadcast_to(np.asarray(ceiling, dtype=np.float64).reshape((-1,) + self.shape), r.shape)
        usable = self.usable[None] & np.isfinite(ceiling)
        explained = np.where(usable & np.isfinite(r), np.sign(r) * r**2, 0.0).sum(axis=2)
        explainable = np.where(usable, ceiling, 0.0).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(usable.any(axis=2) & (explainable > 0), explained / explainable, np.nan)

    def normalized(self, r, ceiling):
        """``{group: (D,)}``: the median over the group's sites of :meth:`site_normalized`."""
        return self._median_by_group(self.site_normalized(r, ceiling))

    def _median_by_group(self, per_site):
        """``(D, N)`` per-site values -> ``{group: (D,)}`` medians over the group's sites."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a group with no usable site
            return {group: np.nanmedian(per_site[:, self.groups == group], axis=1) for group in pd.unique(self.groups)}

    def __call__(self, values):
        cube = values.reshape((values.shape[0],) + self.shape)
        labels = pd.unique(self.groups)
        if self.usable.all() and np.isfinite(values).all():
            # The common case (every null draw): plain reductions, several times faster.
            per_site = cube.mean(axis=2)
            return {group: np.median(per_site[:, self.groups == group], axis=1) for group in labels}
        return self._median_by_group(self.per_site(values))
