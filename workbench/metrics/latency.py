"""Response latencies of encoding time courses, with bootstrap CIs over stimuli.

Per group of sites (region), on the held-out half of an encoding result (the set whose
pairing the permutation test shuffles), the time course is the median over the group's
sites of Pearson r per bin. From it:

- ``onset``: start of the first bin of the first significant cluster (cluster-mass
  permutation test, :mod:`workbench.stats.clusters`);
- ``peak``: start of the bin where the course is largest;
- ``rise50``: start of the first bin, at or before the peak, reaching half the peak.

Bootstrap draws resample the held-out stimuli with replacement (every cell's r is
recomputed exactly from weighted sums, one GEMM per chunk); on each draw the onset is the
first run of bins above the test's per-bin cluster-forming threshold whose mass reaches the
test's critical mass, so the CI uses the test's own criterion. Latency differences between
groups (e.g. IT - V4) come from the same draws (paired stimuli), with a two-sided bootstrap
p-value. ``model_vs_brain`` compares when the model's predicted responses and the recorded
ones become stimulus-selective (rise50 of the median across-stimulus SD per bin).
"""

import itertools
import warnings

import numpy as np

from ..errors import MetricError, check_count, check_interval
from ..scores import Score, Scores
from ..stats.bootstrap import pearson_sums, resample_weights, weighted_pearson
from ..stats.clusters import run_masses
from ..stats.permutation import flat_cells, heldout_permutation_test, permutation_chunks

LATENCIES = ("onset", "peak", "rise50")


def _rise50(course):
    """Index of the first bin at or before the peak reaching half the peak (NaN if none)."""
    course = np.asarray(course, dtype=np.float64)
    if not np.isfinite(course).any() or np.nanmax(course) <= 0:
        return np.nan
    peak = int(np.nanargmax(course))
    reached = np.flatnonzero(course[:peak + 1] >= 0.5 * course[peak])
    return float(reached[0]) if len(reached) else np.nan


def _onset(course, threshold, critical_mass):
    masses = run_masses(course[None], threshold)[0]
    hit = np.flatnonzero(masses >= critical_mass - 1e-12)
    return float(hit[0]) if len(hit) else np.nan


def response_latencies(result, test=None, n_boot=1000, seed=0, by="region", level=0.95, n_permutations=1000):
    """Onset, peak and 50 %-rise latencies per group, their bootstrap CIs, and differences.

    Parameters
    ----------
    result : xarray.Dataset
        An :func:`~workbench.metrics.encoding_score` result (uses ``split_prediction``).
    test : PermutationResult, optional
        A :func:`~workbench.stats.heldout_permutation_test` result with ``clusters``; run
        with ``n_permutations`` and ``seed`` when not given.
    n_boot, seed, level : bootstrap draws, seed and CI level
    by : str
        Neuroid coord grouping the sites.

    Returns
    -------
    workbench.scores.Scores
        Per group and latency: ``value`` (ms, bin start), ``ci_low``/``ci_high``, extra
        ``latency`` and ``share_defined`` (draws where it exists). Per pair of groups and
        latency: ``region`` ``"B-A"``, ``value`` = B's minus A's latency (ms), CI, and
        ``p_value`` (two-sided bootstrap).
    """
    check_interval("level", level, "(0, 1)", error=MetricError)  # before the permutation test's work
    if test is None or getattr(test, "clusters", None) is None:
        test = heldout_permutation_test(result, n_permutations=n_permutations, seed=seed, by=by, clusters=True)
    clusters = test.clusters
    P = flat_cells(result, "split_prediction")
    rows = np.flatnonzero(np.isfinite(P).all(axis=1))
    P, Y = P[rows], flat_cells(result, "target")[rows]
    n = len(rows)
    n_sites, n_bins = result.sizes["neuroid"], result.sizes["time_bin"]
    starts = result.coords["time_bin_start"].values.astype(np.float64)
    groups = result.coords[by].values if by in result.coords else np.array(["all"] * n_sites)
    labels = list(dict.fromkeys(str(g) for g in groups))
    masks = {g: groups.astype(str) == g for g in labels}
    stacked = pearson_sums(P, Y)

    def latencies(r):  # r (draws, sites*bins) -> {group: (draws, 3)} in bin indices
        cube = r.reshape(len(r), n_sites, n_bins)
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for g in labels:
                course = np.nanmedian(cube[:, masks[g], :], axis=1)
                threshold = np.asarray(clusters.group_thresholds.get(g, np.full(n_bins, np.inf)))
                critical = clusters.group_critical_mass.get(g, np.inf)
                out[g] = np.array([[_onset(c, threshold, critical), float(np.nanargmax(c)) if np.isfinite(c).any()
                                    else np.nan, _rise50(c)] for c in course])
        return out

    observed = latencies(weighted_pearson(np.ones((1, n)), stacked, n))
    significant = [c for c in clusters.significant(level="group") if c.sign > 0]
    for g in labels:  # the onset of the observed course is the test's first significant cluster
        first = [c.first_bin for c in significant if c.unit == g]
        observed[g][0, 0] = float(min(first)) if first else np.nan
    draws = {g: [] for g in labels}
    for _, size, sequence in permutation_chunks(seed, n_boot, 250, name="n_boot"):
        weights = resample_weights(size, n, np.random.default_rng(sequence))
        for g, values in latencies(weighted_pearson(weights, stacked, n)).items():
            draws[g].append(values)
    draws = {g: np.concatenate(v) for g, v in draws.items()}
    to_ms = lambda index: np.where(np.isfinite(index), starts[np.nan_to_num(index).astype(int)], np.nan)  # noqa: E731
    tail = 100 * (1 - level) / 2
    scores = Scores()
    for g in labels:
        for k, name in enumerate(LATENCIES):
            boot = to_ms(draws[g][:, k])
            finite = boot[np.isfinite(boot)]
            low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
            scores.append(Score(value=float(to_ms(observed[g][0, k])), region=g, ci_low=float(low), ci_high=float(high),
                                n=int(masks[g].sum()), seed=seed, units="ms",
                                extra={"latency": name, "share_defined": float(finite.size / len(boot)),
                                       "n_boot": n_boot}))
    for a, b in itertools.permutations(labels, 2):
        if labels.index(a) > labels.index(b):
            continue
        for k, name in enumerate(LATENCIES):
            difference = to_ms(draws[b][:, k]) - to_ms(draws[a][:, k])
            finite = difference[np.isfinite(difference)]
            if not finite.size:
                continue
            low, high = np.percentile(finite, [tail, 100 - tail])
            p = min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0)))
            scores.append(Score(value=float(to_ms(observed[b][0, k]) - to_ms(observed[a][0, k])), region=f"{b}-{a}",
                                ci_low=float(low), ci_high=float(high), p_value=float(p), seed=seed, units="ms",
                                extra={"latency": name, "share_defined": float(finite.size / len(difference))}))
    return scores


def selectivity_course(values, groups):
    """Median over each group's sites of the across-stimulus SD per bin: ``{group: (bins,)}``.

    ``values`` ``(stimuli, sites, bins)``."""
    sd = np.nanstd(values, axis=0)
    return {g: np.nanmedian(sd[groups == g], axis=0) for g in dict.fromkeys(groups.tolist())}


def model_vs_brain(result, n_boot=1000, seed=0, by="region", level=0.95):
    """When do the model's predictions and the recording become stimulus-selective?

    Per group: the rise50 latency (ms) of the median across-stimulus SD of the held-out
    predictions and of the responses, and their difference (model - brain) with a bootstrap
    CI and two-sided p over stimuli. Returns Scores (``region``, ``value`` = difference).
    """
    if "prediction" not in result:
        raise MetricError("model_vs_brain needs an encoding_score result (prediction and target)")
    check_count("n_boot", n_boot, 1, error=MetricError)
    check_count("seed", seed, 0, error=MetricError)
    check_interval("level", level, "(0, 1)", error=MetricError)
    prediction = result["prediction"].transpose("presentation", "neuroid", "time_bin").values
    target = result["target"].transpose("presentation", "neuroid", "time_bin").values
    groups = (result.coords[by].values if by in result.coords else np.array(["all"] * result.sizes["neuroid"]))
    groups = groups.astype(str)
    starts = result.coords["time_bin_start"].values.astype(np.float64)
    n = len(prediction)

    def rises(index):
        model = selectivity_course(prediction[index], groups)
        brain = selectivity_course(target[index], groups)
        return {g: (_rise50(model[g]), _rise50(brain[g])) for g in model}

    observed = rises(np.arange(n))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    boot = [rises(rng.integers(0, n, n)) for _ in range(n_boot)]
    tail = 100 * (1 - level) / 2
    scores = Scores()
    for g, (model_index, brain_index) in observed.items():
        diffs = np.array([starts[int(m)] - starts[int(b)] for m, b in (d[g] for d in boot)
                          if np.isfinite(m) and np.isfinite(b)])
        value = (starts[int(model_index)] - starts[int(brain_index)]
                 if np.isfinite(model_index) and np.isfinite(brain_index) else np.nan)
        low, high = np.percentile(diffs, [tail, 100 - tail]) if diffs.size else (np.nan, np.nan)
        p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))) if diffs.size else np.nan
        scores.append(Score(value=float(value), region=g, ci_low=float(low), ci_high=float(high), p_value=float(p),
                            seed=seed, units="ms",
                            extra={"latency": "rise50 of selectivity, model - brain",
                                   "model_ms": float(starts[int(model_index)]) if np.isfinite(model_index) else None,
                                   "brain_ms": float(starts[int(brain_index)]) if np.isfinite(brain_index) else None}))
    return scores


def data_onset_ms(trials, fraction=0.5, seed=0):
    """When a region's responses start in the data: the start (ms) of the first time bin at
    or after 0 ms where the sites' median stimulus information reaches ``fraction`` of its
    peak above the pre-peak minimum.

    Stimulus information is the split-half ceiling per site and bin when the assembly has
    repetitions, else the across-stimulus SD. A benchmark places a model's first step here,
    the same for every model: a latency commitment read off the data, as the layer commitment
    is read off the mapping half, instead of a constant that suits one dataset.

    Parameters
    ----------
    trials : xarray.DataArray
        ``(presentation, neuroid, time_bin)`` assembly of one region.
    fraction : float
        In (0, 1]; 0.5 is the half-rise.

    Returns
    -------
    (float, str)
        The onset in ms and the measure used (``"split_half_ceiling"`` or ``"stimulus_sd"``).
    """
    from ..assembly import average_repetitions, has_repetitions
    from .ceiling import split_half_ceiling

    check_interval("fraction", fraction, "(0, 1]", error=MetricError)
    if has_repetitions(trials):
        course = split_half_ceiling(trials, seed=seed).clip(min=0).median("neuroid").values
        measure = "split_half_ceiling"
    else:
        course = average_repetitions(trials).std("presentation").median("neuroid").values
        measure = "stimulus_sd"
    starts = trials.coords["time_bin_start"].values
    course = np.where(np.isfinite(course), course, 0.0)
    after = starts >= 0
    if not after.any() or not np.ptp(course[after]) > 0:
        raise MetricError("no time bin after 0 ms carries stimulus information: the region's onset is undefined")
    peak = int(np.flatnonzero(after)[np.argmax(course[after])])
    floor = course[after & (np.arange(len(course)) <= peak)].min()
    threshold = floor + fraction * (course[peak] - floor)
    first = next(i for i in np.flatnonzero(after) if course[i] >= threshold)
    return float(starts[first]), measure
