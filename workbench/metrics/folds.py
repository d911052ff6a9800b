"""Cross-validation folds over stimuli: no image in both train and test, in any time bin."""

import numpy as np
import pandas as pd

from ..errors import MetricError


def stimulus_folds(n_stimuli, n_splits, seed=0, strata=None):
    """Seeded K-fold split of stimuli, stratified by ``strata`` labels when given.

    Each stratum's members are shuffled and dealt round-robin into the folds, starting
    at a random fold, so fold sizes differ by at most one per stratum.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_index, test_index)`` over stimuli, one pair per fold.
    """
    if n_splits < 2:
        raise MetricError(f"cross-validation needs >= 2 splits, got {n_splits}")
    if n_stimuli < n_splits:
        raise MetricError(f"{n_stimuli} stimuli cannot be split into {n_splits} folds")
    rng = np.random.default_rng(seed)
    strata = np.zeros(n_stimuli, dtype=np.int64) if strata is None else pd.factorize(np.asarray(strata))[0]
    fold = np.empty(n_stimuli, dtype=np.int64)
    offset = 0
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        fold[members] = (offset + np.arange(len(members))) % n_splits
        offset = (offset + len(members)) % n_splits
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


def fold_labels(folds, n_stimuli):
    """The outer fold holding out each stimulus, ``(n_stimuli,)`` ints."""
    labels = np.full(n_stimuli, -1, dtype=np.int64)
    for k, (_, test) in enumerate(folds):
        labels[test] = k
    if (labels < 0).any():
        raise MetricError("folds must hold out every stimulus exactly once")
    return labels
