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
    result has no ceiling). Calling it on ``(D, N*T)`` values gives ``{group: (D,)}``.
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

    def __call__(self, values):
        cube = values.reshape((values.shape[0],) + self.shape)
        labels = pd.unique(self.groups)
        if self.usable.all() and np.isfinite(values).all():
            # The common case (every null draw): plain reductions, several times faster.
            per_site = cube.mean(axis=2)
            return {group: np.median(per_site[:, self.groups == group], axis=1) for group in labels}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # sites with no usable bin
            per_site = np.nanmean(np.where(self.usable[None], cube, np.nan), axis=2)
            return {group: np.nanmedian(per_site[:, self.groups == group], axis=1) for group in labels}
