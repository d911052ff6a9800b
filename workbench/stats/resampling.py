"""Permutation and bootstrap draws over items (images), vectorised over draws.

Every function draws from :func:`~workbench.stats.permutation_chunks` (SeedSequence
children), so the same seed gives the same null however it is chunked.

- :func:`shuffled_indices` (from :mod:`workbench.stats.permutation`, which the held-out
  test shares): a chunk of permutations as an index matrix, optionally within blocks;
- :func:`sign_flip_test`: paired sign-flip test of per-item contributions, one GEMM per chunk;
- :func:`spearman_permutation_test`: Spearman's rho of many readouts with one target,
  ranked once; the null for all readouts and draws is one GEMM per chunk;
- :func:`paired_swap_test`: is readout A's Spearman rho with a target larger than B's?
  (per-item swaps of A and B, re-ranked per draw).
"""

import numpy as np
import scipy.stats

from ..errors import MetricError
from .multiple import NullCounter
from .permutation import permutation_chunks, shuffled_indices

ALTERNATIVES = ("greater", "two-sided")


def _check_alternative(alternative):
    if alternative not in ALTERNATIVES:
        raise MetricError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return np.abs if alternative == "two-sided" else (lambda x: x)


def unit_ranks(values, axis=0):
    """Ranks along ``axis`` (average ties), centred and scaled to unit norm; 0 where constant.

    Spearman's rho of two such vectors is their dot product.
    """
    ranks = scipy.stats.rankdata(values, axis=axis)
    ranks -= ranks.mean(axis, keepdims=True)
    norm = np.sqrt((ranks * ranks).sum(axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, ranks / norm, 0.0)


def standardized_ranks(values, name="values"):
    """:func:`unit_ranks` of each column, with named errors for NaNs and for constant
    columns (no rank correlation is defined)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if not np.isfinite(values).all():
        raise MetricError(f"{name} contain NaN or infinite values; drop or impute them first")
    ranks = unit_ranks(values, axis=0)
    constant = ~ranks.any(0)
    if constant.any():
        raise MetricError(f"{name}: {int(constant.sum())} column(s) are constant (e.g. column "
                          f"{int(np.flatnonzero(constant)[0])}); a rank correlation needs variation")
    return ranks


def sign_flip_test(contributions, n_permutations=10000, seed=0, alternative="two-sided", chunk_size=1000):
    """Paired sign-flip permutation test of the mean of per-item contributions.

    Parameters
    ----------
    contributions : array ``(n_items, n_cells)`` or ``(n_items,)``
        E.g. per-image-pair de-noising indices, one column per layer/ROI.
    n_permutations, seed, chunk_size : int
    alternative : {"two-sided", "greater"}

    Returns
    -------
    dict
        ``statistic`` (mean per cell), ``p_value``, ``p_fwe`` (max-statistic over cells),
        ``n_permutations``.
    """
    transform = _check_alternative(alternative)
    contributions = np.asarray(contributions, dtype=np.float64)
    if contributions.ndim == 1:
        contributions = contributions[:, None]
    if contributions.shape[0] < 2 or not np.isfinite(contributions).all():
        raise MetricError(f"sign-flip test needs >= 2 finite items per cell, got shape {contributions.shape}")
    n = contributions.shape[0]
    observed = contributions.mean(0)
    counter = NullCounter(transform(observed))
    for _, size, sequence in permutation_chunks(seed, n_permutations, chunk_size):
        signs = np.random.default_rng(sequence).choice(np.array([-1.0, 1.0]), size=(size, n))
        counter.update(transform(signs @ contributions / n))
    p, p_fwe = counter.p_values()
    return {"statistic": observed, "p_value": p, "p_fwe": p_fwe, "n_permutations": counter.n}


def spearman_permutation_test(readouts, target, n_permutations=10000, seed=0, within=None,
                              alternative="greater", chunk_size=1000):
    """Spearman's rho of each readout with ``target``, with a permutation null over items.

    Ranks are computed once; the null rho of every readout under every draw is
    ``permuted target ranks @ readout ranks``, one GEMM per chunk of draws.

    Parameters
    ----------
    readouts : array ``(n_items,)`` or ``(n_items, n_readouts)``
    target : array ``(n_items,)``
        E.g. human uncertainty per image, in the same item order.
    within : array ``(n_items,)``, optional
        Shuffle only within these blocks (e.g. categories: the within-category control).
    alternative : {"greater", "two-sided"}

    Returns
    -------
    dict
        ``rho`` ``(n_readouts,)``, ``p_value``, ``p_fwe`` (max over readouts),
        ``n_permutations``.
    """
    transform = _check_alternative(alternative)
    x = standardized_ranks(readouts, "readouts")
    y = standardized_ranks(target, "target")[:, 0]
    if x.shape[0] != y.shape[0]:
        raise MetricError(f"readouts have {x.shape[0]} items but the target has {y.shape[0]}")
    observed = y @ x
    counter = NullCounter(transform(observed))
    for _, size, sequence in permutation_chunks(seed, n_permutations, chunk_size):
        index = shuffled_indices(np.random.default_rng(sequence), size, len(y), within)
        counter.update(transform(y[index] @ x))
    p, p_fwe = counter.p_values()
    return {"rho": observed, "p_value": p, "p_fwe": p_fwe, "n_permutations": counter.n}


def paired_swap_test(readout_a, readout_b, target, n_permutations=10000, seed=0, chunk_size=1000,
                     alternative="greater"):
    """Does Spearman rho(A, target) differ from rho(B, target)? Paired swap permutation.

    Under the null that A and B are exchangeable per item, swapping A_i and B_i leaves the
    distribution unchanged; each draw swaps a random subset of items and re-ranks.
    ``alternative``: ``"greater"`` (rho_A > rho_B, one-sided), ``"less"`` or
    ``"two-sided"`` (|null| >= |observed|; the swap null is symmetric about 0). A constant
    readout has rho 0 (it carries no information about the target).

    Returns
    -------
    dict
        ``difference`` (rho_A - rho_B), ``rho_a``, ``rho_b``, ``p_value``, ``n_permutations``,
        ``alternative``.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise MetricError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    a = np.asarray(readout_a, dtype=np.float64)
    b = np.asarray(readout_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.shape[0] != np.shape(target)[0]:
        raise MetricError(f"readouts must be 1-D with one value per target item, got {a.shape}, {b.shape} "
                          f"and target {np.shape(target)}")
    y = standardized_ranks(target, "target")[:, 0]
    for values, name in ((a, "readout A"), (b, "readout B")):
        if not np.isfinite(values).all():
            raise MetricError(f"{name} contain NaN or infinite values; drop or impute them first")
    # A constant readout (e.g. a network whose entropy never crosses the threshold: every RT
    # censored) carries no information about the target: its rho is 0, as a constant
    # prediction scores r = 0 elsewhere; swapped draws mix both readouts and stay defined.
    ranks_a, ranks_b = unit_ranks(a[:, None], axis=0)[:, 0], unit_ranks(b[:, None], axis=0)[:, 0]
    if not ranks_a.any() and not ranks_b.any():
        raise MetricError("both readouts are constant; there is nothing to compare")
    rho_a, rho_b = ranks_a @ y, ranks_b @ y
    observed = float(rho_a - rho_b)
    sign = -1.0 if alternative == "less" else 1.0
    threshold = abs(observed) if alternative == "two-sided" else sign * observed
    count, n = 0, 0
    for _, size, sequence in permutation_chunks(seed, n_permutations, chunk_size):
        swap = np.random.default_rng(sequence).random((size, len(a))) < 0.5
        null = unit_ranks(np.where(swap, b, a), axis=1) @ y - unit_ranks(np.where(swap, a, b), axis=1) @ y
        statistic = np.abs(null) if alternative == "two-sided" else sign * null
        count += int((statistic >= threshold - 1e-12).sum())
        n += size
    return {"difference": observed, "rho_a": float(rho_a), "rho_b": float(rho_b), "alternative": alternative,
            "p_value": (1 + count) / (1 + n), "n_permutations": n}
