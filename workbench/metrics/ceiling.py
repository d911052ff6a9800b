"""Noise ceilings: how well could a perfect model predict these noisy averages?"""

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ..assembly import grouped_nanmean, validate
from ..errors import MetricError
from .correlation import nan_pearson_columns, pearson_columns, spearman_brown


def random_half_masks(codes, n_splits, seed=0):
    """Yield one boolean mask per split: True for the trials in half A.

    Each stimulus's trials (``codes``: stimulus index per trial) are shuffled and the
    first ``count // 2`` go to half A, the rest to half B.
    """
    counts = np.bincount(codes)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rng = np.random.default_rng(seed)
    for _ in range(n_splits):
        order = np.lexsort((rng.random(len(codes)), codes))
        rank = np.empty(len(codes), dtype=np.int64)
        rank[order] = np.arange(len(codes)) - starts[codes[order]]
        yield rank < counts[codes] // 2


def split_half_ceiling(trials, n_splits=10, seed=0):
    """Split-half reliability across repetitions, Spearman-Brown corrected.

    For each of ``n_splits`` random splits, every stimulus's trials are shuffled and
    halved; the two half-averages are correlated across stimuli, separately for each
    neuroid and time bin, and corrected with Spearman-Brown (``2r / (1 + r)``). The
    result is the mean over splits: the estimated reliability of the full trial average,
    i.e. the expected squared correlation between that average and the noise-free
    response. A perfect model therefore reaches ``r**2 == ceiling``.

    Parameters
    ----------
    trials : xarray.DataArray
        Trial-level assembly, shape ``(n_trials, n_neuroids, n_time_bins)``; stimuli with
        fewer than 2 trials are ignored.
    n_splits : int
        Number of random splits (>= 1).
    seed : int

    Returns
    -------
    xarray.DataArray
        ``(neuroid, time_bin)`` ceiling; NaN where a half-average is constant. A stimulus
        whose trials in one half are all missing (NaN) is left out of that split for that
        cell only; ``attrs["dropped_pairs"]`` and ``attrs["dropped_stimuli"]`` count them.
    """
    validate(trials)
    if n_splits < 1:
        raise MetricError(f"n_splits must be >= 1, got {n_splits}")
    codes, uniques = pd.factorize(trials.coords["stimulus_id"].values)
    counts = np.bincount(codes, minlength=len(uniques))
    usable = counts >= 2
    if usable.sum() < 3:
        raise MetricError(
            f"a split-half ceiling needs >= 3 stimuli with >= 2 trials each, got "
            f"{int(usable.sum())} (is this assembly already averaged over repetitions?)"
        )
    values = np.asarray(trials.values, dtype=np.float64).reshape(len(codes), -1)
    keep = usable[codes]
    estimates, dropped, dropped_stimuli = [], 0, np.zeros(len(uniques), bool)
    for half_a in random_half_masks(codes, n_splits, seed):
        mean_a = grouped_nanmean(values, np.where(half_a & keep, codes, -1), len(uniques))[usable]
        mean_b = grouped_nanmean(values, np.where(~half_a & keep, codes, -1), len(uniques))[usable]
        if np.isfinite(mean_a).all() and np.isfinite(mean_b).all():
            r = pearson_columns(mean_a, mean_b)
        else:
            # a stimulus with no finite trial in one half leaves this split's cell, alone
            missing = ~(np.isfinite(mean_a) & np.isfinite(mean_b))
            dropped += int(missing.sum())
            dropped_stimuli[np.flatnonzero(usable)[missing.any(axis=1)]] = True
            r, _ = nan_pearson_columns(mean_a, mean_b)
        estimates.append(spearman_brown(r))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (constant halves)
        ceiling = np.nanmean(np.stack(estimates), axis=0)
    coords = {
        name: coord for name, coord in trials.coords.items()
        if coord.dims and coord.dims[0] in ("neuroid", "time_bin")
    }
    return xr.DataArray(
        np.asarray(ceiling).reshape(trials.sizes["neuroid"], trials.sizes["time_bin"]),
        dims=("neuroid", "time_bin"),
        coords=coords,
        attrs={
            "definition": "mean over random split-halves of Spearman-Brown(r(half A, half B))",
            "n_splits": n_splits,
            "seed": seed,
            # (split, stimulus, cell) triples left out because a half had no finite trial
            "dropped_pairs": dropped,
            "dropped_stimuli": int(dropped_stimuli.sum()),
        },
    )
