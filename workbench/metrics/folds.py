"""Cross-validation folds over stimuli: no image in both train and test, in any time bin."""

import numpy as np
import pandas as pd

from ..errors import MetricError, check_count


def stimulus_folds(n_stimuli, n_splits, seed=0, strata=None):
    """Seeded K-fold split of stimuli, stratified by ``strata`` labels when given.

    Each stratum's members are shuffled and dealt round-robin into the folds, starting
    at a random fold, so fold sizes differ by at most one per stratum.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_index, test_index)`` over stimuli, one pair per fold.
    """
    check_count("n_splits", n_splits, 2, "(cross-validation needs two folds)", error=MetricError)
    check_count("seed", seed, 0, error=MetricError)
    if n_stimuli < n_splits:
        raise MetricError(f"{n_stimuli} stimuli cannot be split into {n_splits} folds")
    codes = np.zeros(n_stimuli, dtype=np.int64) if strata is None else pd.factorize(np.asarray(strata))[0]
    fold, _ = deal_round_robin(codes, n_splits, np.random.default_rng(seed))
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


def deal_round_robin(codes, n_labels, rng, offset=0):
    """Shuffle each stratum's members and deal them labels ``0..n_labels-1`` in turn.

    ``codes`` are integer stratum codes (strata visited in increasing code order). The
    deal continues from ``offset`` across strata, so label counts differ by at most one
    per stratum. Returns ``(labels, next_offset)``; pass ``next_offset`` on to deal
    further groups in the same rotation.
    """
    labels = np.empty(len(codes), dtype=np.int64)
    for stratum in np.unique(codes):
        members = rng.permutation(np.flatnonzero(codes == stratum))
        labels[members] = (offset + np.arange(len(members))) % n_labels
        offset = (offset + len(members)) % n_labels
    return labels, offset


def fold_labels(folds, n_stimuli):
    """The outer fold holding out each stimulus, ``(n_stimuli,)`` ints."""
    labels = np.full(n_stimuli, -1, dtype=np.int64)
    for k, (_, test) in enumerate(folds):
        test = np.asarray(test)
        if test.size and (test.dtype.kind not in "iu" or test.min() < -n_stimuli or test.max() >= n_stimuli):
            raise MetricError(f"fold {k}'s test stimuli must be integer positions in [0, {n_stimuli}), got "
                              f"{test.dtype} values {test.min()!r}..{test.max()!r}")
        labels[test] = k
    if (labels < 0).any():
        raise MetricError("folds must hold out every stimulus exactly once")
    return labels
