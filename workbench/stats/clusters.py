"""Cluster-based permutation inference over time bins (Maris & Oostenveld 2007).

A time course is thresholded bin by bin (the cluster-forming threshold); contiguous
supra-threshold bins form a cluster whose mass is the sum of its statistic. The null of
the largest cluster mass, from the same permutation draws as the cell-wise test, gives each
observed cluster a p-value that controls the family-wise error over time bins (and, with the
maximum over sites, over sites too). Two-sided tests form positive and negative clusters
separately and compare their absolute masses with the null of the largest absolute mass.

Everything is vectorised over draws and sites: a chunk's cluster masses are a few
cumulative sums along the time axis.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import MetricError, check_interval

ALTERNATIVES = ("greater", "two-sided")


def run_masses(statistic, threshold, sign=1.0):
    """Mass of the supra-threshold run each bin belongs to, along the last axis.

    ``statistic`` ``(..., T)``; bins with ``sign * statistic > threshold`` (``threshold``
    broadcasts, e.g. one per bin) belong to runs of contiguous bins; the result ``(..., T)``
    holds, at each such bin, the sum of ``sign * statistic`` over its run, and 0 elsewhere.
    """
    value = sign * np.asarray(statistic, dtype=np.float64)
    inside = value > threshold
    n_bins = value.shape[-1]
    bins = np.arange(n_bins)
    contribution = np.where(inside, value, 0.0)
    total = np.cumsum(contribution, axis=-1)
    previous = np.concatenate([np.zeros(inside.shape[:-1] + (1,), bool), inside[..., :-1]], axis=-1)
    following = np.concatenate([inside[..., 1:], np.zeros(inside.shape[:-1] + (1,), bool)], axis=-1)
    starts = inside & ~previous
    ends = inside & ~following
    start_of = np.maximum.accumulate(np.where(starts, bins, 0), axis=-1)  # each bin's run start
    before = np.take_along_axis(total - contribution, start_of, axis=-1)  # cumulative sum before it
    reversed_end = np.maximum.accumulate(np.where(ends[..., ::-1], bins, 0), axis=-1)[..., ::-1]
    end_of = n_bins - 1 - reversed_end  # each bin's run end
    return np.where(inside, np.take_along_axis(total, end_of, axis=-1) - before, 0.0)


def _largest_run(value, threshold):
    """Largest sum of a run of ``value > threshold`` along the last axis, for a threshold
    >= 0 (every summed value is positive, so a run's running sum peaks at its end and the
    largest running sum is the largest run: one cumulative sum, no backward pass)."""
    inside = value > threshold
    zero = value.dtype.type(0)
    total = np.cumsum(np.where(inside, value, zero), axis=-1)
    # the running total where the current run started: carried forward from the last gap
    base = np.maximum.accumulate(np.where(inside, zero, total), axis=-1)  # totals never decrease
    return np.where(inside, total - base, zero).max(axis=-1, initial=zero)


def max_cluster_mass(statistic, threshold, alternative="greater"):
    """The largest cluster mass along the last axis (0 where no bin passes the threshold)."""
    statistic = np.asarray(statistic)
    if np.ndim(threshold) == 0 and threshold >= 0:
        masses = _largest_run(statistic, threshold)
        if alternative == "two-sided":
            masses = np.maximum(masses, _largest_run(-statistic, threshold))
        return masses
    masses = run_masses(statistic, threshold).max(axis=-1)
    if alternative == "two-sided":
        masses = np.maximum(masses, run_masses(statistic, threshold, -1.0).max(axis=-1))
    return masses


def runs(mask):
    """``[(first, last)]`` of the runs of True in a 1-D mask."""
    found, start = [], None
    for t, flag in enumerate(list(np.asarray(mask, bool)) + [False]):
        if flag and start is None:
            start = t
        elif not flag and start is not None:
            found.append((start, t - 1))
            start = None
    return found


def find_clusters(time_course, threshold, alternative="greater"):
    """Clusters of one time course: ``[(first bin, last bin, mass, sign)]`` in time order;
    a negative cluster's mass is negative."""
    course = np.asarray(time_course, dtype=np.float64)
    threshold = np.broadcast_to(threshold, course.shape)
    clusters = []
    for sign in ((1.0, -1.0) if alternative == "two-sided" else (1.0,)):
        for first, last in runs(sign * course > threshold):
            clusters.append((first, last, float(course[first:last + 1].sum()), sign))
    return sorted(clusters)


@dataclass
class Cluster:
    """One cluster of a site or a group's time course."""

    unit: str  # a neuroid_id, or a group (region) name
    level: str  # "site" or "group"
    first_bin: int
    last_bin: int
    start_ms: float
    end_ms: float
    mass: float
    sign: int
    p_value: float
    p_fwe: float = float("nan")  # over sites (site level only)


@dataclass
class ClusterResult:
    """Clusters of every site and group, their masses and p-values, and the thresholds."""

    clusters: list
    n_permutations: int
    alternative: str
    site_threshold: float
    group_thresholds: dict = field(default_factory=dict)
    method: str = ""
    # per group: the (1 - alpha) quantile of the null's largest cluster mass (a cluster at
    # least this heavy is significant); for re-using the criterion on bootstrap draws
    group_critical_mass: dict = field(default_factory=dict)

    def significant(self, alpha=0.05, level="group"):
        return [c for c in self.clusters if c.level == level and c.p_value <= alpha]

    def scores(self):
        """One Score per group cluster: ``value`` = mass, ``time_bin`` = start (ms)."""
        from ..scores import Score, Scores

        return Scores(Score(value=c.mass, region=c.unit, time_bin=c.start_ms, p_value=c.p_value,
                            null_n=self.n_permutations, units="cluster mass",
                            extra={"end_ms": c.end_ms, "first_bin": c.first_bin, "last_bin": c.last_bin,
                                   "sign": c.sign})
                      for c in self.clusters if c.level == "group")


def median_last(values, threads=1):
    """Median along the last axis by partial sorting (the values must be finite): about 4x
    faster than ``np.median`` on the per-draw group courses, with the same result.

    One selection at the middle; for an even count the lower middle value is the largest of
    the part before it (a second selection costs 4x more). With ``threads`` > 1 the leading
    axis is split over that many threads (numpy's partition releases the GIL).
    """
    if threads > 1 and values.ndim > 1 and len(values) >= 2 * threads:
        from concurrent.futures import ThreadPoolExecutor

        parts = np.array_split(values, threads)
        with ThreadPoolExecutor(threads) as pool:
            return np.concatenate(list(pool.map(median_last, parts)))
    n = values.shape[-1]
    k = n // 2
    middle = np.partition(values, k, axis=-1)
    if n % 2:
        return middle[..., k]
    return 0.5 * (middle[..., :k].max(axis=-1) + middle[..., k])


def r_to_t(r, n):
    """Student t of a Pearson r over ``n`` pairs (``r sqrt((n-2)/(1-r^2))``)."""
    r = np.clip(np.asarray(r, dtype=np.float64), -1 + 1e-12, 1 - 1e-12)
    return r * np.sqrt((n - 2) / (1.0 - r * r))


def site_threshold(n, cluster_alpha=0.05, alternative="greater"):
    """Cluster-forming threshold on the t scale for a Pearson r over ``n`` pairs."""
    import scipy.stats

    if alternative not in ALTERNATIVES:
        raise MetricError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if n < 4:
        raise MetricError(f"cluster inference needs >= 4 held-out stimuli, got {n}")
    check_interval("cluster_alpha", cluster_alpha, "(0, 1)", error=MetricError)
    tail = cluster_alpha / (2 if alternative == "two-sided" else 1)
    return float(scipy.stats.t.ppf(1 - tail, n - 2))


class ClusterNull:
    """Accumulates, chunk by chunk of null draws, the largest cluster mass per site, over
    sites, and the null of each group's time course (for its per-bin threshold)."""

    def __init__(self, observed, shape, n_stimuli, groups, alternative="greater", cluster_alpha=0.05,
                 engine="auto"):
        from .kernels import thread_count, use_compiled

        self.kernels, self.threads = use_compiled(engine), thread_count()
        self.shape = shape  # (n_sites, n_bins)
        self.n = n_stimuli
        self.alternative = alternative
        self.cluster_alpha = cluster_alpha
        self.threshold = site_threshold(n_stimuli, cluster_alpha, alternative)
        self.groups = groups  # {group: boolean mask over sites}
        self.observed = observed.reshape(shape)
        self.site_max, self.group_null = [], {g: [] for g in groups}

    def _group_course(self, r):
        """``(draws, sites, bins)`` -> ``{group: (draws, bins)}``: median over the group's sites."""
        return {g: median_last(np.ascontiguousarray(r[:, mask, :].transpose(0, 2, 1)))
                for g, mask in self.groups.items()}

    def update(self, null):
        if self.kernels is not None:
            return self._update_compiled(null)
        # float32 is ample for thresholding and summing a few t values, and halves the traffic
        r = null.reshape((len(null),) + self.shape).astype(np.float32, copy=False)
        # t is monotone in r: only cells past the threshold's r need their t (about 5 % under the null)
        r_threshold = self.threshold / np.sqrt(self.n - 2 + self.threshold ** 2)
        beyond = (r > r_threshold) | (r < -r_threshold) if self.alternative == "two-sided" else r > r_threshold
        t = np.zeros(r.shape, dtype=np.float32)
        t[beyond] = r_to_t(r[beyond], self.n)
        self.site_max.append(max_cluster_mass(t, self.threshold, self.alternative))
        for g, course in self._group_course(r).items():
            self.group_null[g].append(course)

    def _update_compiled(self, null):
        """The numpy pass's results from one compiled pass over the chunk (t and run masses
        in float64), the medians by numpy's partition of the values it lays out."""
        masks = list(self.groups.values())
        members = np.concatenate([np.flatnonzero(mask) for mask in masks] or [np.zeros(0, np.int64)])
        offsets = np.concatenate([[0], np.cumsum([int(mask.sum()) for mask in masks])]).astype(np.int64)
        n_sites, n_bins = self.shape
        n_draws = len(null)
        site_max = np.empty((n_draws, n_sites), np.float64)
        gathered = np.empty(n_draws * n_bins * len(members), np.float32)
        r_threshold = self.threshold / np.sqrt(self.n - 2 + self.threshold ** 2)
        from .kernels import limit_threads

        # numba's thread count is per calling thread: the held-out test calls this from a
        # worker thread, which would otherwise use every core whatever the task's limit
        limit_threads(self.kernels)
        self.kernels.cluster_pass(np.ascontiguousarray(null, dtype=np.float32), n_sites, n_bins, float(self.n),
                                  float(self.threshold), float(r_threshold), self.alternative == "two-sided",
                                  members.astype(np.int64), offsets, site_max, gathered)
        self.site_max.append(site_max)
        for g, first, last in zip(self.groups, offsets[:-1], offsets[1:]):
            block = gathered[n_draws * n_bins * first:n_draws * n_bins * last]
            self.group_null[g].append(median_last(block.reshape(n_draws, n_bins, last - first),
                                                  self.threads))

    def result(self, neuroid_ids, starts, ends, method=""):
        site_max = np.concatenate(self.site_max)  # (draws, sites)
        n_draws = len(site_max)
        overall = np.sort(site_max.max(axis=1))
        clusters = []
        observed_t = r_to_t(self.observed, self.n)
        for s, unit in enumerate(neuroid_ids):
            null_s = np.sort(site_max[:, s])
            for first, last, mass, sign in find_clusters(observed_t[s], self.threshold, self.alternative):
                size = abs(mass) - 1e-9 * max(abs(mass), 1.0)
                p = (1 + n_draws - np.searchsorted(null_s, size, side="left")) / (1 + n_draws)
                p_fwe = (1 + n_draws - np.searchsorted(overall, size, side="left")) / (1 + n_draws)
                clusters.append(Cluster(str(unit), "site", first, last, float(starts[first]), float(ends[last]),
                                        mass, int(sign), float(p), float(p_fwe)))
        thresholds, critical = {}, {}
        observed_groups = self._group_course(self.observed[None])
        for g, parts in self.group_null.items():
            null_g = np.concatenate(parts)  # (draws, bins)
            if self.alternative == "two-sided":
                upper = np.quantile(null_g, 1 - self.cluster_alpha / 2, axis=0)
                lower = -np.quantile(null_g, self.cluster_alpha / 2, axis=0)
                # per-bin thresholds for each sign: mass of the excess over chance
                masses = np.maximum(run_masses(null_g, upper).max(-1), run_masses(null_g, lower, -1.0).max(-1))
                threshold_pairs = ((upper, 1.0), (lower, -1.0))
            else:
                upper = np.quantile(null_g, 1 - self.cluster_alpha, axis=0)
                masses = run_masses(null_g, upper).max(-1)
                threshold_pairs = ((upper, 1.0),)
            thresholds[str(g)] = upper.tolist()
            masses = np.sort(masses)
            critical[str(g)] = float(np.quantile(masses, 1 - self.cluster_alpha))
            course = observed_groups[g][0]
            for threshold, sign in threshold_pairs:
                for first, last in runs(sign * course > threshold):
                    mass = float(sign * course[first:last + 1].sum())
                    size = mass - 1e-9 * max(abs(mass), 1.0)
                    p = (1 + len(masses) - np.searchsorted(masses, size, side="left")) / (1 + len(masses))
                    clusters.append(Cluster(str(g), "group", first, last, float(starts[first]), float(ends[last]),
                                            float(sign * mass), int(sign), float(p)))
        return ClusterResult(sorted(clusters, key=lambda c: (c.level, c.unit, c.first_bin)), n_draws,
                             self.alternative, self.threshold, thresholds, method, critical)
