"""Dimensionality of responses: participation ratio, cross-layer dimensionality, recurrent
influence, difference PCs and subspace alignment (Lindsay et al.), with resampling tests.

Activity is an ``(n_images, n_units)`` matrix, **centred per unit over images and each
unit scaled to unit norm** (constant units dropped): the participation ratio is then that
of the units' correlation matrix, so a few high-variance units cannot dominate it.

The participation ratio of a covariance ``C`` with eigenvalues ``lambda`` is

.. math:: PR = \\frac{(\\sum_i \\lambda_i)^2}{\\sum_i \\lambda_i^2} = \\frac{\\mathrm{tr}(C)^2}{\\lVert C \\rVert_F^2},

computed from the trace and the Frobenius norm, without an eigendecomposition, and from the
``n x n`` Gram matrix when there are fewer images than units (``||X'X||_F = ||XX'||_F``).
Bootstrap and paired-permutation draws reuse the Gram matrices: a draw's PR is a few
quadratic forms of its weight vector, so all draws of a chunk cost a handful of GEMMs.
"""

import numpy as np
import xarray as xr

from ..errors import MetricError, check_count, check_interval
from .denoising import at_step, group_codes


def _matrix(activity, name="activity"):
    values = activity.values if isinstance(activity, xr.DataArray) else activity
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise MetricError(f"{name} must be (n_images, n_units), got shape {values.shape}; select one "
                          "time bin first")
    if values.shape[0] < 2:
        raise MetricError(f"{name} has {values.shape[0]} image(s); dimensionality needs at least 2")
    if not np.isfinite(values).all():
        raise MetricError(f"{name} contains NaN or infinite values")
    return values


def _unit_norms(x, name):
    """Norm of each centred unit and which units vary (named error when none does)."""
    centred = x - x.mean(0)
    norm = np.sqrt((centred * centred).sum(0))
    keep = norm > 1e-12 * max(float(norm.max(initial=0.0)), 1e-300)
    if not keep.any():
        raise MetricError(f"{name}: every unit is constant over images")
    return centred, norm, keep


def normalized_activity(activity, name="activity"):
    """Centre each unit over images, scale it to unit norm, drop constant units."""
    centred, norm, keep = _unit_norms(_matrix(activity, name), name)
    return centred[:, keep] / norm[keep]


def _trace_and_frobenius(x):
    gram = x @ x.T if x.shape[0] < x.shape[1] else x.T @ x
    return float(np.trace(gram)), float((gram * gram).sum())


def participation_ratio(activity, normalize=True):
    """Participation ratio ``tr(C)^2 / ||C||_F^2`` of ``(n_images, n_units)`` activity.

    Ranges from 1 (one dimension) to ``min(n_images - 1, n_units)``; equals ``d`` for
    activity spread equally over ``d`` orthogonal directions.
    """
    if normalize:
        x = normalized_activity(activity)
    else:
        x = _matrix(activity)
        x = x - x.mean(0)
    trace, frobenius = _trace_and_frobenius(x)
    if frobenius == 0:
        raise MetricError("activity has no variance")
    return trace * trace / frobenius


def participation_ratios(assembly, by="layer"):
    """Participation ratio per group of neuroids (``by``) and time bin.

    Returns
    -------
    xarray.DataArray ``(group, time_bin)``
    """
    codes, groups = group_codes(assembly, by)
    n_bins = assembly.sizes.get("time_bin", 1)
    data = assembly.transpose("presentation", "neuroid", ...).values.reshape(
        assembly.sizes["presentation"], assembly.sizes["neuroid"], n_bins)
    out = np.array([[participation_ratio(data[:, codes == g, t]) for t in range(n_bins)]
                    for g in range(len(groups))])
    coords = {"group": groups}
    if "time_bin" in assembly.dims:
        coords.update({name: c for name, c in assembly.coords.items() if c.dims == ("time_bin",)})
    return xr.DataArray(out, dims=("group", "time_bin"), coords=coords, name="participation_ratio")


def _pr_of_mixtures(s, g_aa, g_ab, g_bb):
    """PR of the centred covariance of rows taken from A (``s_i = 1``) or B (``s_i = 0``).

    ``s``: ``(P, n)`` 0/1 selectors, one draw per row. The mixed Gram is
    ``M = S Gaa S + S Gab T + T Gba S + T Gbb T`` (``S = diag(s)``, ``T = I - S``); a draw
    needs only quadratic forms of the Gram blocks, so no draw touches the units axis.
    """
    n = s.shape[1]
    t = 1.0 - s
    m_row = s * (s @ g_aa + t @ g_ab.T) + t * (s @ g_ab + t @ g_bb)  # M @ 1, per draw
    total = m_row.sum(1)  # 1' M 1
    squares = (((s @ (g_aa * g_aa)) * s).sum(1) + 2 * ((s @ (g_ab * g_ab)) * t).sum(1)
               + ((t @ (g_bb * g_bb)) * t).sum(1))  # sum of M_ij^2 (each M_ij is one block's)
    trace = (s @ np.diag(g_aa) + t @ np.diag(g_bb)) / n - total / n ** 2
    frobenius = squares / n ** 2 - 2 * (m_row * m_row).sum(1) / n ** 3 + total ** 2 / n ** 4
    return trace * trace / frobenius


def _weighted_pr(weights, gram):
    """PR per row of bootstrap multiplicity ``weights`` ``(B, n)`` (each row sums to n)."""
    n = weights.shape[1]
    gw = weights @ gram
    total = (weights * gw).sum(1)
    squares = ((weights @ (gram * gram)) * weights).sum(1)
    trace = weights @ np.diag(gram) / n - total / n ** 2
    frobenius = squares / n ** 2 - 2 * (weights * gw * gw).sum(1) / n ** 3 + total ** 2 / n ** 4
    return trace * trace / frobenius


def participation_ratio_ci(activity, n_boot=1000, seed=0, level=0.95):
    """Bootstrap CI over images of the participation ratio.

    Images are resampled with replacement (multiplicity weights); each draw re-centres on
    its own weighted mean. The per-unit scale is the full sample's (fixed across draws).

    Returns
    -------
    dict ``value``, ``ci_low``, ``ci_high``, ``n_boot``, ``seed``
    """
    check_count("n_boot", n_boot, 1, error=MetricError)
    check_count("seed", seed, 0, error=MetricError)
    check_interval("level", level, "(0, 1)", error=MetricError)
    x = normalized_activity(activity)
    gram = x @ x.T
    n = x.shape[0]
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(float)
    draws = _weighted_pr(weights, gram)
    tail = (1 - level) / 2
    return {"value": participation_ratio(x, normalize=False), "ci_low": float(np.quantile(draws, tail)),
            "ci_high": float(np.quantile(draws, 1 - tail)), "n_boot": n_boot, "seed": seed}


def participation_ratio_difference_test(activity_a, activity_b, n_permutations=2000, seed=0,
                                        alternative="two-sided", chunk_size=500, level=0.95):
    """Paired permutation test of ``PR(A) - PR(B)`` on the same images and units.

    E.g. layer 1 of a recurrent network vs its feedforward core on the same degraded
    images. Under the null the two conditions are exchangeable per image: each draw swaps
    the A and B rows of a random subset of images. Both matrices share one per-unit
    normalisation (pooled over A and B), so swapping is a relabelling.

    The CI (``level``) is a jackknife t interval over images (each image left out of A and B
    at once, unit scales fixed), not a bootstrap: images drawn with repeats lower a PR, the
    more so the higher it is, so every bootstrap draw of a difference between a low and a
    high PR lay above the observed one (120 images, 20 units).

    Returns
    -------
    dict ``value`` (difference), ``pr_a``, ``pr_b``, ``p_value``, ``null_n``, ``seed``,
    ``ci_low``, ``ci_high``
    """
    from ..stats.bootstrap import jackknife_t_interval
    from ..stats.permutation import permutation_chunks

    a, b = _matrix(activity_a, "activity A"), _matrix(activity_b, "activity B")
    if a.shape != b.shape:
        raise MetricError(f"paired activity must have the same images and units, got {a.shape} and {b.shape}")
    _, norms, keep = _unit_norms(np.concatenate([a, b]), "activity A and B together")
    a, b = a[:, keep] / norms[keep], b[:, keep] / norms[keep]
    g_aa, g_ab, g_bb = a @ a.T, a @ b.T, b @ b.T
    n = a.shape[0]
    pr = _pr_of_mixtures(np.array([np.ones(n), np.zeros(n)]), g_aa, g_ab, g_bb)
    observed = float(pr[0] - pr[1])
    if alternative not in ("two-sided", "greater", "less"):
        raise MetricError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    sign = -1.0 if alternative == "less" else 1.0
    threshold = abs(observed) if alternative == "two-sided" else sign * observed
    count, total = 0, 0
    for _, size, sequence in permutation_chunks(seed, n_permutations, chunk_size):
        s = (np.random.default_rng(sequence).random((size, n)) < 0.5).astype(np.float64)
        null = _pr_of_mixtures(s, g_aa, g_ab, g_bb) - _pr_of_mixtures(1.0 - s, g_aa, g_ab, g_bb)
        stat = np.abs(null) if alternative == "two-sided" else sign * null
        count += int((stat >= threshold - 1e-9).sum())
        total += size
    ci_low, ci_high = jackknife_t_interval(lambda weights: _weighted_pr(weights, g_aa) - _weighted_pr(weights, g_bb),
                                           n, observed, level=level)
    return {"value": observed, "pr_a": float(pr[0]), "pr_b": float(pr[1]), "p_value": (1 + count) / (1 + total),
            "null_n": total, "seed": seed, "alternative": alternative, "ci_low": ci_low, "ci_high": ci_high}


def participation_ratio_across_networks(recurrent, feedforward, alternative="two-sided"):
    """PR(recurrent) - PR(feedforward) per network instance, with inference across instances.

    Lindsay et al. compute the participation ratio of a layer's responses to clean and
    noisy images together, per trained network, and report the mean over networks with its
    standard error (the network instance, not the image, is the unit of replication). Pass
    one activity matrix ``(n_images, n_units)`` per instance for each condition, in the
    same order (instance ``i``'s recurrent network and its own feedforward core).
    ``alternative`` (``"two-sided"``, ``"less"``: recurrent PR lower, ``"greater"``) applies
    to both p-values.

    Returns
    -------
    dict
        ``value`` (mean difference), ``sem`` (standard error over instances, ddof 1),
        ``differences`` (per instance), ``pr_recurrent``/``pr_feedforward`` (per instance),
        ``n_networks``, ``alternative``, ``p_value`` (one-sample t-test of the differences,
        NaN with fewer than 2 networks) and ``p_exact`` (exact sign-flip test over all 2^n
        sign patterns, n <= 16).
    """
    import itertools

    import scipy.stats

    if alternative not in ("two-sided", "less", "greater"):
        raise MetricError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    if len(recurrent) != len(feedforward) or not recurrent:
        raise MetricError(f"need one recurrent and one feedforward activity per network, got {len(recurrent)} "
                          f"and {len(feedforward)}")
    pr_rec = np.array([participation_ratio(x) for x in recurrent])
    pr_ff = np.array([participation_ratio(x) for x in feedforward])
    differences = pr_rec - pr_ff
    n = len(differences)
    if n >= 2:
        sem = float(differences.std(ddof=1) / np.sqrt(n))
        p_t = (float(scipy.stats.ttest_1samp(differences, 0.0, alternative=alternative).pvalue) if sem > 0
               else float("nan"))
    else:
        sem, p_t = float("nan"), float("nan")
    p_exact = float("nan")
    if 2 <= n <= 16:
        observed = differences.mean()
        means = np.array(list(itertools.product((1.0, -1.0), repeat=n))) @ differences / n
        extreme = {"two-sided": np.abs(means) >= abs(observed) - 1e-12, "less": means <= observed + 1e-12,
                   "greater": means >= observed - 1e-12}[alternative]
        p_exact = float(np.mean(extreme))
    return {"value": float(differences.mean()), "sem": sem, "differences": differences.tolist(),
            "pr_recurrent": pr_rec.tolist(), "pr_feedforward": pr_ff.tolist(), "n_networks": n,
            "alternative": alternative, "p_value": p_t, "p_exact": p_exact}


def _thin_svd(x):
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    keep = s > 1e-10 * max(s.max(initial=0.0), 1e-300)
    return u[:, keep], s[keep]


def cross_layer_dimensionality(activity_a, activity_b, n_units=None, seed=0):
    """Participation ratio of the singular values of the cross-covariance of two layers.

    ``(sum sigma)^2 / sum sigma^2`` with ``sigma`` the singular values of ``A'B / n``
    (both normalised per unit, same images in the same order). With ``n_units``, each
    layer is first subsampled to that many units (seeded), so layers of different sizes
    are compared on equal footing. Uses thin SVDs of A and B: the cross-covariance's
    singular values are those of ``S_A U_A' U_B S_B`` (small).
    """
    a, b = normalized_activity(activity_a, "activity A"), normalized_activity(activity_b, "activity B")
    if a.shape[0] != b.shape[0]:
        raise MetricError(f"layers must be measured on the same images, got {a.shape[0]} and {b.shape[0]}")
    if n_units is not None:
        rng = np.random.default_rng(seed)
        if n_units > min(a.shape[1], b.shape[1]):
            raise MetricError(f"n_units={n_units} exceeds a layer's {min(a.shape[1], b.shape[1])} usable units")
        a = a[:, np.sort(rng.choice(a.shape[1], n_units, replace=False))]
        b = b[:, np.sort(rng.choice(b.shape[1], n_units, replace=False))]
    (ua, sa), (ub, sb) = _thin_svd(a), _thin_svd(b)
    sigma = np.linalg.svd((sa[:, None] * (ua.T @ ub)) * sb[None, :], compute_uv=False)
    return float(sigma.sum() ** 2 / (sigma * sigma).sum())


def principal_components(activity, n_components):
    """Top principal axes ``(n_units, k)`` (orthonormal) of centred activity."""
    check_count("n_components", n_components, 1, error=MetricError)
    x = _matrix(activity)
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    if n_components > len(s):
        raise MetricError(f"n_components={n_components} exceeds the rank bound {len(s)}")
    return vt[:n_components].T, (s * s / (s * s).sum())[:n_components]


def subspace_alignment(activity_a, activity_b, n_components=5):
    """Cosine of the mean principal angle between the top-k PC subspaces of A and B.

    1: the same subspace; 0: orthogonal subspaces. A and B share units (e.g. one layer
    at two time steps, or under two conditions).
    """
    qa, _ = principal_components(activity_a, n_components)
    qb, _ = principal_components(activity_b, n_components)
    if qa.shape[0] != qb.shape[0]:
        raise MetricError("subspace alignment needs the same units in both activities")
    cosines = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0)
    return float(np.cos(np.mean(np.arccos(cosines))))


def recurrent_influence(assembly, by="layer", first=0, final=-1):
    """How much recurrence changes each group's response: final minus first step.

    Returns
    -------
    (xarray.DataArray, xarray.DataArray)
        The difference assembly ``(presentation, neuroid)`` and, per group, its relative
        size ``||final - first||_F / ||first||_F`` (0 when recurrence does nothing).
    """
    if "time_bin" not in assembly.dims or assembly.sizes["time_bin"] < 2:
        raise MetricError("recurrent influence needs at least 2 time steps (first and final)")
    difference = assembly.isel(time_bin=final) - assembly.isel(time_bin=first)
    codes, groups = group_codes(assembly, by)
    start = assembly.isel(time_bin=first).values
    size = [np.linalg.norm(difference.values[:, codes == g]) / max(np.linalg.norm(start[:, codes == g]), 1e-300)
            for g in range(len(groups))]
    return difference, xr.DataArray(np.asarray(size), dims="group", coords={"group": groups},
                                    name="relative_recurrent_influence")


def difference_pcs(assembly, n_components=3, first=0, final=-1):
    """Principal components of the recurrent influence (final minus first step).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Axes ``(n_units, k)`` and their explained-variance ratios ``(k,)``.
    """
    difference = at_step(assembly, final, "assembly") - at_step(assembly, first, "assembly")
    return principal_components(difference.values, n_components)
