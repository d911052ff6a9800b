"""Permutation tests on cross-validated encoding results, without refitting.

**Is the prediction above chance?** Under the null the pairing of held-out predictions
with held-out responses is arbitrary, so permuting it gives the null, with no refit
*provided a single model made the held-out predictions*. Pooling the K outer folds would
not be exact: each fold's responses also trained the other folds' maps, so the fold
scores are positively coupled and a within-fold shuffle understates the null's spread
(we measured uncorrected false-positive rates of ~0.08 at a nominal 0.05). The test
therefore uses the result's ``split_prediction``: the second half of the folds predicted
by one model fitted on the first half (one extra solve in the same engine). The
statistic per (neuroid, time bin) is Pearson r on that held-out half; the null permutes
the pairing (within category blocks if asked), the same permutation for every cell, so
the max statistic controls the FWE over cells. Permutations are drawn uniformly from all
permutations of the held-out pairing (within blocks, if asked): every draw can move every
stimulus, so the null does not lean towards the observed pairing and small held-out sets
keep their power (an earlier version used cyclic shifts within small blocks, which keep the
true pairing of a block with probability 1/m and lost half the detections at 30 stimuli).
With predictions and targets standardised once, a draw's statistic for every cell is one
pass of products, ``sum_i Pz[i] Yz[perm(i)] / n`` (a compiled kernel:
:mod:`workbench.stats.kernels`).

**Is model A better than model B?** Sign-flip (paired) permutation over stimuli: stimulus
i contributes ``d_i = (PzA_i - PzB_i) Yz_i / S`` to the difference of fold-pooled r
(z-scored within outer folds); under the null that A and B are exchangeable per stimulus
the sign of ``d_i`` is arbitrary. Every draw's statistic for every cell is one row of
``signs @ d``: one GEMM per chunk of draws.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import MetricError, check_count
from .groups import GroupSummary
from .kernels import gathered_dot, overlapping_calls_are_safe
from .multiple import NullCounter


FLOAT32_TIES = 1e-5  # relative tolerance for ties of float32 null statistics
# more draws resolve p below 1e-7, beyond any correction a study needs; a typo such as
# 10**13 would otherwise run for days (or exhaust memory) before saying anything
MAX_PERMUTATIONS = 10_000_000


def permutation_chunks(seed, n_permutations, chunk_size=1000, name="n_permutations"):
    """Split ``n_permutations`` draws into seeded chunks.

    Every resampling test draws through here, so its counts are checked here: integers
    (not bools or floats) in range, the error naming the caller's option ``name``
    (e.g. ``"n_boot"``).

    Returns
    -------
    list of (start, size, numpy.random.SeedSequence)
        Chunk ``i`` uses the ``i``-th child of ``SeedSequence(seed)``; chunks may run on
        different workers in any order and give the same draws.
    """
    check_count(name, n_permutations, 1, error=MetricError)
    if n_permutations > MAX_PERMUTATIONS:
        raise MetricError(f"{name} must be between 1 and {MAX_PERMUTATIONS:,}, got {n_permutations}")
    check_count("seed", seed, 0, error=MetricError)
    check_count("chunk_size", chunk_size, 1, error=MetricError)
    starts = list(range(0, n_permutations, chunk_size))
    children = np.random.SeedSequence(seed).spawn(len(starts))
    return [(start, min(chunk_size, n_permutations - start), child) for start, child in zip(starts, children)]


@dataclass
class PermutationResult:
    """Observed statistic, uncorrected and FWE (max-T) p-values, per cell and group.

    ``cells`` is a Dataset over ``(neuroid, time_bin)`` with ``statistic``, ``p_value``,
    ``p_fwe``; ``groups`` maps a group (e.g. region) to ``{"statistic", "p_value"}`` for
    the group summary (median over its neuroids of the mean over time bins).
    """

    cells: xr.Dataset
    groups: dict
    n_permutations: int
    method: str
    clusters: object = None  # a workbench.stats.clusters.ClusterResult, when asked for

    def scores(self):
        """One :class:`~workbench.scores.Score` per group: ``value`` = the group's observed
        statistic, ``p_value``, ``null_n``; the method in ``extra``."""
        from ..scores import Score, Scores

        return Scores(Score(value=float(group["statistic"]), region=name, p_value=float(group["p_value"]),
                            null_n=self.n_permutations, seed=self.cells.attrs.get("seed"),
                            extra={"statistic": self.cells.attrs.get("statistic", ""), "method": self.method})
                      for name, group in self.groups.items())


def fold_standardized(values, fold):
    """z-score columns of ``values`` (S, C) within each fold; constant columns -> 0.

    A column is constant when its values vary by no more than 1e-12 of their magnitude. The
    mean of equal numbers need not equal them in floating point, so a test of ``sd > 0``
    turned a constant prediction (a feedforward model after image offset) into a column
    of +-1: no change to an observed r (the targets sum to zero), but a sign-flip null
    then drew +-Yz for the cell, widening the null of every comparison with a silent
    model, and the permutation kernels spent a quarter of their time on such cells.
    """
    out = np.zeros_like(values, dtype=np.float64)
    for k in np.unique(fold):
        rows = fold == k
        selected = values[rows]
        block = selected - selected.mean(0)
        sd = np.sqrt((block * block).mean(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(columns_vary(selected) & (sd > 0), block / sd, 0.0)
    return out


def columns_vary(values):
    """Whether each column of ``values`` (rows first) varies over the rows: a spread of more
    than 1e-12 of its largest magnitude. The one rule for "constant" of the permutation
    tests and :func:`workbench.metrics.encoding_score`'s check of its inputs."""
    high, low = values.max(axis=0), values.min(axis=0)  # no temporary the size of values
    return (high - low) > 1e-12 * np.maximum(np.abs(high), np.abs(low))


def flat_cells(result, name):
    """(S, N*T) matrix of a (presentation, neuroid, time_bin) variable."""
    values = result[name].transpose("presentation", "neuroid", "time_bin").values
    return values.reshape(values.shape[0], -1).astype(np.float64)


class _GroupNull:
    """Exceedance counts of the group summaries over chunks of null draws."""

    def __init__(self, summary, observed, transform=None, tolerance=1e-12):
        self.summary = summary
        self.transform = transform or (lambda x: x)
        self.tolerance = tolerance
        self.observed = {g: float(v[0]) for g, v in summary(observed[None]).items()}
        self.counts = {g: 0 for g in self.observed}

    def update(self, null):
        for g, values in self.summary(null).items():
            self.counts[g] += int((self.transform(values) >= self.transform(self.observed[g]) - self.tolerance).sum())

    def results(self, n):
        """Group p-values; NaN where the group has no usable cell (no statistic)."""
        return {str(g): {"statistic": value,
                         "p_value": (1 + self.counts[g]) / (1 + n) if np.isfinite(value) else float("nan")}
                for g, value in self.observed.items()}


def _cells_dataset(result, statistic, p, p_fwe, attrs):
    shape = (result.sizes["neuroid"], result.sizes["time_bin"])
    coords = {name: coord for name, coord in result.coords.items()
              if coord.dims and coord.dims[0] in ("neuroid", "time_bin")}
    cell = ("neuroid", "time_bin")
    return xr.Dataset({"statistic": (cell, statistic.reshape(shape)), "p_value": (cell, p.reshape(shape)),
                       "p_fwe": (cell, p_fwe.reshape(shape))}, coords=coords, attrs=attrs)


def shuffled_indices(rng, size, n, within=None):
    """``(size, n)`` index matrix, each row a uniform random permutation of ``range(n)``.

    With ``within`` (``(n,)`` block labels) items only move inside their block: row ``p``
    maps position ``i`` to an item of ``within[i]``'s block. Without, each row is a
    Fisher-Yates shuffle (O(n); sorting random keys took 4x as long). Shared by the held-out
    test and the rank tests of :mod:`workbench.stats.resampling`.
    """
    if within is None:
        return rng.permuted(np.tile(np.arange(n), (size, 1)), axis=1)
    codes = np.unique(np.asarray(within), return_inverse=True)[1].astype(np.float64)
    base = np.argsort(codes, kind="stable")
    # random keys in [0, 1) added to the block code sort every row by block, randomly inside
    order = np.argsort(codes[None, :] * 2.0 + rng.random((size, n)), axis=1)
    out = np.empty((size, n), dtype=np.int64)
    out[:, base] = order
    return out


def draws_for_family(n_tests, alpha=0.05, minimum=1000, maximum=100_000):
    """Permutation draws for a family of ``n_tests``: enough that the smallest attainable
    p-value, ``1 / (n + 1)``, is below ``alpha / n_tests`` (so a Bonferroni- or BH-corrected
    cell can reach significance), within ``[minimum, maximum]``."""
    needed = int(np.ceil(n_tests / alpha))
    return int(min(max(needed, minimum), maximum))


def p_floor_text(p_value, n_permutations):
    """``"p < 0.001"`` when ``p_value`` is the floor ``1 / (n + 1)`` of ``n`` draws, else
    ``"p = ..."``: a floor is a bound, not an estimate."""
    if p_value is None or not np.isfinite(p_value):
        return "p = n/a"
    if not n_permutations:  # no draws behind it (an analytic p): no floor to state
        return f"p = {p_value:.3g}"
    floor = 1.0 / (n_permutations + 1)
    if p_value <= floor * (1 + 1e-9):
        return f"p < {floor:.2g}"
    return f"p = {p_value:.3g}"


def _scattered(null, active, n_cells):
    """Null statistics of the ``active`` cells placed among ``n_cells``, 0 elsewhere."""
    full = np.zeros((len(null), n_cells), dtype=null.dtype)
    full[:, active] = null
    return full


def heldout_permutation_test(result, n_permutations=10000, seed=0, within=None, by="region",
                             chunk_size=1000, chunks=None, engine="auto", clusters=False,
                             cluster_alternative="greater", cluster_alpha=0.05):
    """Is each site's held-out prediction better than chance? (exact permutation test)

    Parameters
    ----------
    result : xarray.Dataset
        An :func:`~workbench.metrics.encoding_score` result (uses ``split_prediction``
        and ``target``; see the module docstring for why not the pooled folds).
    n_permutations : int or "auto"
        ``"auto"``: :func:`draws_for_family` of the number of cells.
    seed : int
    within : str, optional
        A presentation coord (e.g. ``"category_name"``): shuffle only within its levels,
        the control for category-level structure.
    by : str
        Neuroid coord grouping sites for the group-level p-value.
    chunk_size : int
    chunks : list of int, optional
        Only compute these chunk indices (see :func:`permutation_chunks`); for splitting
        the null over workers. Default: all.
    engine : {"auto", "numba", "numpy"}
        The null's kernel (:func:`workbench.stats.kernels.gathered_dot`): the compiled one
        when numba loads, else numpy. Both give the same draws and statistics.
    clusters : bool
        Also run cluster-based inference over time bins on the same draws
        (:mod:`workbench.stats.clusters`): per site (cluster-forming threshold: the t of r at
        ``cluster_alpha``) and per group's median time course (threshold: its null's
        ``1 - cluster_alpha`` quantile per bin).
    cluster_alternative : {"greater", "two-sided"}
    cluster_alpha : float

    Returns
    -------
    PermutationResult
        ``cells.statistic`` is r on the held-out half; ``p_value`` one-sided (greater);
        ``clusters`` a :class:`~workbench.stats.clusters.ClusterResult` when asked for.
    """
    if "split_prediction" not in result:
        raise MetricError("the result has no split_prediction: pass an encoding_score result")
    P = flat_cells(result, "split_prediction")
    rows = np.flatnonzero(np.isfinite(P).all(axis=1))
    if len(rows) < 3:
        raise MetricError(f"the held-out half has {len(rows)} stimuli; a permutation test needs >= 3")
    P, Y = P[rows], flat_cells(result, "target")[rows]
    n_stimuli = len(rows)
    single = np.zeros(n_stimuli, dtype=np.int64)
    Pz, Yz = fold_standardized(P, single), fold_standardized(Y, single)
    blocks = None
    if within is not None:
        if within not in result.coords:
            raise MetricError(f"within={within!r} is not a presentation coord of the result "
                              f"(has: {sorted(n for n, c in result.coords.items() if c.dims == ('presentation',))})")
        blocks = result.coords[within].values[rows].astype(str)
    if n_permutations == "auto":
        n_permutations = draws_for_family(Pz.shape[1])
    # the statistic is exact (float64); the null's products are float32 (3x faster, the
    # pass is memory-bound), and draws within float32 rounding (1e-5 of the largest |r|) of
    # the observed value count as reaching it: the identity draw and true ties always
    # count, so rounding never makes the test liberal
    observed = (Pz * Yz).sum(0) / n_stimuli
    # a cell whose prediction or target is constant (all zero once standardised: a model
    # silent before its response starts, a bin before any response) has statistic 0 in
    # every draw: only the others go through the kernel
    active = np.flatnonzero(Pz.any(axis=0) & Yz.any(axis=0))
    compact = len(active) < Pz.shape[1]
    Pz, Yz = (Pz[:, active], Yz[:, active]) if compact else (Pz, Yz)
    Pz, Yz = Pz.astype(np.float32), Yz.astype(np.float32)
    counter = NullCounter(observed, relative_tolerance=FLOAT32_TIES)
    summary = GroupSummary(result, by)
    group_null = _GroupNull(summary, observed, tolerance=FLOAT32_TIES)
    cluster_null = None
    if clusters:
        from .clusters import ClusterNull

        cluster_null = ClusterNull(observed, summary.shape, n_stimuli,
                                   {str(g): summary.groups == g for g in pd.unique(summary.groups)},
                                   cluster_alternative, cluster_alpha, engine)
    all_chunks = permutation_chunks(seed, n_permutations, chunk_size)
    selected = range(len(all_chunks)) if chunks is None else chunks

    def tally(null):
        if compact:
            null = _scattered(null, active, len(observed))
        counter.update(null)
        group_null.update(null)
        if cluster_null is not None:
            cluster_null.update(null)

    # one chunk's tallies (mostly single-threaded numpy) run beside the next chunk's kernel,
    # which waits on memory; one worker takes them in chunk order, so the counts are the
    # same (MajajHong2015 size: about 0.4 s of 4.5 s)
    with ThreadPoolExecutor(max_workers=1) as tallies:
        pending = None
        for index in selected:
            _, size, sequence = all_chunks[index]
            permutations = shuffled_indices(np.random.default_rng(sequence), size, n_stimuli, blocks)
            null = gathered_dot(Pz, Yz, permutations, engine)
            if pending is not None:
                pending.result()  # at most two chunks of null statistics held at once
                pending = None
            if overlapping_calls_are_safe():
                pending = tallies.submit(tally, null)
            else:  # numba's workqueue layer: the cluster pass must not overlap the kernel
                tally(null)
        if pending is not None:
            pending.result()
    p, p_fwe = counter.p_values()
    method = ("uniform permutation of the held-out pairing on the split-half prediction"
              + (f", within {within}" if within else ""))
    cells = _cells_dataset(result, observed, p, p_fwe, {"statistic": "Pearson r on the held-out half",
                                                         "method": method, "n_permutations": counter.n,
                                                         "n_stimuli": n_stimuli, "seed": seed})
    found = None
    if cluster_null is not None:
        found = cluster_null.result(result.coords["neuroid_id"].values, result.coords["time_bin_start"].values,
                                    result.coords["time_bin_end"].values,
                                    f"cluster mass over time bins ({cluster_alternative}), " + method)
    return PermutationResult(cells, group_null.results(counter.n), counter.n, method, found)


def _paired_contributions(result_a, result_b):
    for name, result in (("first", result_a), ("second", result_b)):
        if "prediction" not in result or "target" not in result:
            raise MetricError(f"the {name} result has no prediction/target: pass encoding_score results")
    ids_a = pd.Index(result_a.coords["stimulus_id"].values)
    ids_b = pd.Index(result_b.coords["stimulus_id"].values)
    if len(ids_a) != len(ids_b) or not ids_a.isin(ids_b).all():
        raise MetricError("the two results were scored on different stimuli; compare results on the same recording")
    result_b = result_b.isel(presentation=ids_b.get_indexer(ids_a))
    if not (np.array_equal(result_a.coords["neuroid_id"].values, result_b.coords["neuroid_id"].values)
            and np.allclose(flat_cells(result_a, "target"), flat_cells(result_b, "target"))):
        raise MetricError("the two results have different targets (neuroids or time bins); compare results on the same recording")
    fold = result_a.coords["fold"].values
    Yz = fold_standardized(flat_cells(result_a, "target"), fold)
    za = fold_standardized(flat_cells(result_a, "prediction"), fold)
    zb = fold_standardized(flat_cells(result_b, "prediction"), result_b.coords["fold"].values)
    return (za - zb) * Yz / len(fold), result_b


def compare_encodings(result_a, result_b, n_permutations=10000, seed=0, by="region", chunk_size=1000,
                      alternative="two-sided"):
    """Paired sign-flip permutation test of model A vs model B on the same recording.

    The statistic per cell is the difference of fold-pooled r (A minus B).

    Parameters
    ----------
    result_a, result_b : xarray.Dataset
        :func:`~workbench.metrics.encoding_score` results on the same recording.
    alternative : {"two-sided", "greater"}
        ``"greater"`` tests A > B.

    Returns
    -------
    PermutationResult
    """
    if alternative not in ("two-sided", "greater"):
        raise MetricError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    contributions, _ = _paired_contributions(result_a, result_b)
    observed = contributions.sum(0)
    transform = np.abs if alternative == "two-sided" else (lambda x: x)
    counter = NullCounter(transform(observed))
    group_null = _GroupNull(GroupSummary(result_a, by), observed, transform)
    for _, size, sequence in permutation_chunks(seed, n_permutations, chunk_size):
        signs = np.random.default_rng(sequence).choice(np.array([-1.0, 1.0]), size=(size, contributions.shape[0]))
        null = signs @ contributions
        counter.update(transform(null))
        group_null.update(null)
    p, p_fwe = counter.p_values()
    method = f"paired sign-flip permutation over stimuli ({alternative})"
    cells = _cells_dataset(result_a, observed, p, p_fwe, {"statistic": "difference of fold-pooled Pearson r (A - B)",
                                                          "method": method, "n_permutations": counter.n, "seed": seed})
    return PermutationResult(cells, group_null.results(counter.n), counter.n, method)
