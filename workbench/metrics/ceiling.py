"""Noise ceilings: how well could a perfect model predict these noisy averages?"""

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ..assembly import averaged_from_moments, grouped_nanmean, stimulus_moments, validate
from ..errors import MetricError, check_count
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
    check_count("n_splits", n_splits, 1, error=MetricError)
    check_count("seed", seed, 0, error=MetricError)
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


def variance_components_ceiling(trials, block_mb=64):
    """Reliability of the trial average from variance components (unbiased at low reliability).

    Per neuroid and time bin, with ``k_s`` finite trials of stimulus ``s`` (stimuli with
    fewer than 2 are left out): the noise variance ``var_n`` is the pooled within-stimulus
    variance, ``sum (x - mean_s)^2 / sum (k_s - 1)``; the variance of the stimulus means
    across stimuli, ``var_m`` (ddof 1), has expectation ``var_s + var_n * mean(1 / k_s)``.
    So ``var_s = var_m - var_n * mean(1 / k_s)`` and the reliability of the averages is

        ceiling = var_s / (var_s + var_n * mean(1 / k_s)) = 1 - var_n * mean(1 / k_s) / var_m,

    the closed form ``var_s / (var_s + var_n / n_reps)`` with equal repetitions. The ratio is
    made unbiased, not only its parts: ``var_n`` and ``var_m`` are independent and
    ``E[1 / var_m] = (S - 1) / ((S - 3) E[var_m])`` over ``S`` stimuli (Gaussian noise), so
    ``1 - (S - 3) / (S - 1) * var_n * mean(1 / k_s) / var_m`` has the closed form as its
    expectation, also at low reliability where a plain ratio (or the split-half estimate)
    is biased. It may be slightly negative for pure noise and is not clipped, so averages
    over cells stay unbiased. Needs >= 4 stimuli with >= 2 trials per cell.

    Parameters
    ----------
    trials : xarray.DataArray
        Trial-level assembly ``(presentation, neuroid, time_bin)``, in memory or lazily
        opened: the trials are read once, in blocks of about ``block_mb`` MB, into
        per-stimulus sums and sums of squares, so a recording larger than memory works.

    Returns
    -------
    xarray.DataArray
        ``(neuroid, time_bin)``, on the scale of ``r**2`` (explained variance of the mean).
    """
    validate(trials)
    shift = _typical_values(trials)
    _, sums, counts, squares = stimulus_moments(trials, block_mb, squares=True, shift=shift)
    return _variance_components(trials, sums, counts, squares)


def average_and_ceiling(trials, block_mb=64):
    """:func:`~workbench.assembly.average_repetitions` and :func:`variance_components_ceiling`
    of the same trials from one read of them (a lazily opened recording is streamed once,
    not twice: MajajHong2015 size, 6.5 GB, about 15 s of about 45).

    Returns
    -------
    averaged : xarray.DataArray
        As :func:`~workbench.assembly.average_repetitions` (the means are taken about a
        typical value and it is added back: equal to within float64 rounding).
    ceiling : xarray.DataArray
        As :func:`variance_components_ceiling`.
    """
    validate(trials)
    shift = _typical_values(trials)
    codes, sums, counts, squares = stimulus_moments(trials, block_mb, squares=True, shift=shift)
    ceiling = _variance_components(trials, sums, counts, squares)
    del squares
    return averaged_from_moments(trials, codes, sums, counts, shift=shift), ceiling


def _typical_values(trials):
    """The first trial's values (0 where not finite): sums of squares are taken about them,
    so that they do not cancel catastrophically."""
    first = np.asarray(trials.variable[0].values, dtype=np.float64).reshape(-1)
    return np.where(np.isfinite(first), first, 0.0)


def _variance_components(trials, sums, counts, squares):
    """:func:`variance_components_ceiling` from the trials' per-stimulus moments (about any
    shift); reads ``sums`` without changing them."""
    counts = np.broadcast_to(counts, sums.shape)
    if ((counts >= 2).sum(axis=0) < 3).all():
        raise MetricError("a variance-components ceiling needs >= 3 stimuli with >= 2 trials each "
                          "(is this assembly already averaged over repetitions?)")
    usable = counts >= 2  # (stimuli, cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts  # about the shift: the variances do not depend on it
        within = np.maximum(squares - counts * means * means, 0.0)  # sum of squared deviations per stimulus
        var_n = np.where(usable, within, 0.0).sum(0) / np.where(usable, counts - 1, 0.0).sum(0)
        n_usable = usable.sum(0)
        mean_of_means = np.where(usable, means, 0.0).sum(0) / n_usable
        var_m = np.where(usable, (means - mean_of_means) ** 2, 0.0).sum(0) / (n_usable - 1)
        inverse_k = np.where(usable, 1.0 / np.where(usable, counts, 1.0), 0.0).sum(0) / n_usable
        # E[1 / var_m] = (S - 1) / ((S - 3) sigma_m^2) for S stimuli (chi-square): the factor
        # makes the ratio unbiased (var_n and var_m are independent), not only its parts
        correction = (n_usable - 3) / (n_usable - 1)
        ceiling = np.where((var_m > 0) & (n_usable >= 4), 1.0 - correction * var_n * inverse_k / var_m, np.nan)
    coords = {name: coord for name, coord in trials.coords.items()
              if coord.dims and coord.dims[0] in ("neuroid", "time_bin")}
    return xr.DataArray(ceiling.reshape(trials.sizes["neuroid"], trials.sizes["time_bin"]),
                        dims=("neuroid", "time_bin"), coords=coords,
                        attrs={"definition": "1 - var_noise * mean(1/k) / var(stimulus means): variance components",
                               "scale": "r^2"})


CEILINGS = {"split_half": split_half_ceiling, "variance_components": variance_components_ceiling}
