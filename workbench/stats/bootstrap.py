"""Bootstrap confidence intervals: over stimuli for encoding scores, and a generic
percentile bootstrap over any resampling unit (:func:`percentile_ci`).

Resampling stimuli with replacement changes every correlation's sums; with multiplicity
weights ``W`` (draws x stimuli) all sums of all cells for all draws are one GEMM,
``W @ [x, y, x*x, y*y, x*y]``, from which each draw's r follows exactly.
"""

import numpy as np

from ..errors import MetricError, check_interval
from ..scores import Score, Scores
from .groups import GroupSummary
from .permutation import flat_cells, fold_standardized, permutation_chunks


def pearson_sums(x, y):
    """``[x, y, x*x, y*y, x*y]`` side by side: the per-row sums a weighted Pearson r needs."""
    return np.concatenate([x, y, x * x, y * y, x * y], axis=1)


def resample_weights(size, n, rng):
    """``(size, n)`` multiplicities of ``size`` bootstrap resamples of ``n`` rows."""
    weights = np.zeros((size, n))
    picks = rng.integers(0, n, size=(size, n))
    np.add.at(weights, (np.repeat(np.arange(size), n), picks.ravel()), 1.0)
    return weights


def weighted_pearson(weights, stacked, n):
    """Pearson r of every column pair for every row of multiplicities ``weights``: one GEMM
    over :func:`pearson_sums` (``n`` rows per resample).

    As :func:`workbench.metrics.correlation.prediction_r` scores a cell: 0 where the first
    column (the prediction) does not vary in the resample but the second does, NaN where the
    second (the target) does not vary. (NaN for a silent prediction dropped those cells from
    the group summaries, so a feedforward model's bootstrap CI covered only the bins it
    predicts and lay far above its score.)"""
    sx, sy, sxx, syy, sxy = np.split(weights @ stacked, 5, axis=1)
    var_x, var_y = n * sxx - sx * sx, n * syy - sy * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (n * sxy - sx * sy) / np.sqrt(var_x * var_y)
        # no variance: below round-off of the raw second moment (a constant column's is n^2 c^2)
        silent_x, silent_y = var_x <= 1e-12 * n * sxx, var_y <= 1e-12 * n * syy
    return np.where(silent_y, np.nan, np.where(silent_x, 0.0, r))


def percentile_ci(statistic, n_units, n_boot=2000, seed=0, level=0.95, chunk_size=500, observed=None):
    """Percentile bootstrap CI of ``statistic`` over ``n_units`` resampled units; bias
    corrected (BC, Efron 1987) when the ``observed`` statistic is given.

    The correction is for a bootstrap distribution whose median is off the observed value
    (a rank correlation, a median): the percentiles are moved by ``z0 = Phi^-1(share of draws
    below it)`` (ties count half); for a mean, z0 is about 0 and the interval is the plain
    percentile one. It cannot help where nearly every draw lies on one side (a participation
    ratio, which repeated images lower): use :func:`jackknife_t_interval` there.

    Parameters
    ----------
    statistic : callable
        ``statistic(index)`` with ``index`` an int array ``(draws, n_units)`` of resampled
        unit positions (with replacement) returns the statistic per draw, ``(draws,)``;
        vectorised over draws. Non-finite draws (e.g. a resample with no variance) are
        left out.
    n_units : int
        Number of units (images, stimuli, sites) resampled together.
    n_boot, seed, level, chunk_size :
        Draws (seeded in chunks as every resampling test here), and the coverage.
    observed : float, optional
        The statistic on the sample itself: turns on the bias correction.

    Returns
    -------
    (float, float)
        ``(ci_low, ci_high)``; NaN when fewer than 2 units or no finite draw.
    """
    check_interval("level", level, "(0, 1)", error=MetricError)
    chunks = permutation_chunks(seed, n_boot, chunk_size, name="n_boot")
    if n_units < 2:
        return float("nan"), float("nan")
    draws = []
    for _, size, sequence in chunks:
        index = np.random.default_rng(sequence).integers(0, n_units, size=(size, n_units))
        draws.append(np.asarray(statistic(index), dtype=np.float64).reshape(size))
    draws = np.concatenate(draws)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    quantiles = np.array([tail, 1 - tail])
    if observed is not None and np.isfinite(observed):
        from scipy.stats import norm

        below = (np.mean(draws < observed) + 0.5 * np.mean(draws == observed))
        below = np.clip(below, 1 / (len(draws) + 1), len(draws) / (len(draws) + 1))
        z0 = norm.ppf(below)
        quantiles = norm.cdf(2 * z0 + norm.ppf(quantiles))
    low, high = np.quantile(draws, quantiles)
    return float(low), float(high)


def jackknife_t_interval(weighted_statistic, n_units, observed, level=0.95):
    """Jackknife CI: ``observed +- t(n-1) * se``, with the delete-one jackknife standard error.

    ``weighted_statistic(weights)`` evaluates the statistic for each row of ``weights``
    ``(draws, n_units)``, multiplicities scaled to sum to ``n_units`` (leaving unit ``i``
    out gives it 0 and the others ``n / (n - 1)``). For smooth statistics that resampling
    with repeats distorts (a participation ratio). NaN with fewer than 3 units.
    """
    import scipy.stats

    check_interval("level", level, "(0, 1)", error=MetricError)
    if n_units < 3 or not np.isfinite(observed):
        return float("nan"), float("nan")
    weights = np.full((n_units, n_units), n_units / (n_units - 1))
    np.fill_diagonal(weights, 0.0)
    leave_one_out = np.asarray(weighted_statistic(weights), dtype=np.float64)
    se = np.sqrt((n_units - 1) / n_units * ((leave_one_out - leave_one_out.mean()) ** 2).sum())
    half = scipy.stats.t.ppf(0.5 + level / 2, n_units - 1) * se
    return float(observed - half), float(observed + half)


def mean_ci(values, n_boot=2000, seed=0, level=0.95):
    """Bootstrap CI (bias-corrected percentile) of the mean of ``values`` (1-D, finite)
    over its elements."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return percentile_ci(lambda index: values[index].mean(1), len(values), n_boot=n_boot, seed=seed, level=level,
                         observed=float(values.mean()) if len(values) else None)


def t_interval(values, level=0.95):
    """Student-t CI of the mean of ``values`` (one per network instance, say): the interval
    that matches a one-sample t-test across them. NaN with fewer than 2 values."""
    import scipy.stats

    check_interval("level", level, "(0, 1)", error=MetricError)
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) < 2:
        return float("nan"), float("nan")
    half = scipy.stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def bootstrap_encoding_ci(result, n_boot=1000, seed=0, level=0.95, by="region", chunk_size=500):
    """Percentile bootstrap CIs (over stimuli) of each group's encoding summary.

    The summary is the group's median over neuroids of the mean over usable time bins of
    the fold-pooled r (predictions and responses z-scored within each outer fold), and the
    normalised score as :func:`workbench.metrics.summarize` pools it (``sum sign(r) r**2 /
    sum ceiling`` over a site's usable bins; ceiling held fixed).

    Returns
    -------
    workbench.scores.Scores
        One score per group (``scores["V4"]`` looks one up): ``value``, ``ci_low``,
        ``ci_high``, ``normalized`` and extra ``normalized_ci_low``, ``normalized_ci_high``,
        ``n_boot``, ``level``.
    """
    check_interval("level", level, "(0, 1)", error=MetricError)
    fold = result.coords["fold"].values
    x = fold_standardized(flat_cells(result, "prediction"), fold)
    y = fold_standardized(flat_cells(result, "target"), fold)
    n_stimuli = x.shape[0]
    stacked = pearson_sums(x, y)
    ceiling = result["ceiling"].values.reshape(-1)
    summary = GroupSummary(result, by)

    def summaries(r):
        return {"value": summary(r), "normalized": summary.normalized(r, ceiling)}

    point = summaries(weighted_pearson(np.ones((1, n_stimuli)), stacked, n_stimuli))
    draws = {"value": {g: [] for g in point["value"]}, "normalized": {g: [] for g in point["value"]}}
    for _, size, sequence in permutation_chunks(seed, n_boot, chunk_size, name="n_boot"):
        weights = resample_weights(size, n_stimuli, np.random.default_rng(sequence))
        boot = summaries(weighted_pearson(weights, stacked, n_stimuli))
        for name in draws:
            for g in draws[name]:
                draws[name][g].append(boot[name][g])
    tail = 100 * (1 - level) / 2
    records = Scores()
    for g in point["value"]:
        record = {"n_boot": n_boot, "level": level}
        for name in ("value", "normalized"):
            values = np.concatenate(draws[name][g])
            values = values[np.isfinite(values)]
            low, high = np.percentile(values, [tail, 100 - tail]) if values.size else (np.nan, np.nan)
            prefix = "" if name == "value" else "normalized_"
            record[name] = float(point[name][g][0])
            record[f"{prefix}ci_low"], record[f"{prefix}ci_high"] = float(low), float(high)
        records.append(Score(region=str(g), value=record.pop("value"), normalized=record.pop("normalized"),
                             ci_low=record.pop("ci_low"), ci_high=record.pop("ci_high"), seed=seed,
                             units="pearson_r", extra=record))
    return records
