"""The held-out null's compiled kernel (numba); imported only when first used, by
:func:`workbench.stats.kernels.gathered_dot`, which documents it."""

import numba
import numpy as np


# reassociation (for SIMD sums) only: no assumption about NaN or infinity
@numba.njit(parallel=True, fastmath={"reassoc", "contract"}, cache=True, nogil=True)
def gathered_dot_numba(P, Y, permutations, out, width):  # pragma: no cover - compiled
    n, n_cells = P.shape
    n_draws = permutations.shape[0]
    scale = P.dtype.type(n)
    n_slabs = (n_cells + width - 1) // width
    for slab in numba.prange(n_slabs):
        c0 = slab * width
        w = min(n_cells, c0 + width) - c0
        # a zero-padded contiguous copy of the slab: fixed-width inner loops vectorise
        Ps = np.zeros((n, width), P.dtype)
        Ys = np.zeros((n, width), P.dtype)
        for i in range(n):
            for c in range(w):
                Ps[i, c] = P[i, c0 + c]
                Ys[i, c] = Y[i, c0 + c]
        a0 = np.empty(width, P.dtype)
        a1 = np.empty(width, P.dtype)
        a2 = np.empty(width, P.dtype)
        a3 = np.empty(width, P.dtype)
        last4 = n_draws - n_draws % 4
        for d in range(0, last4, 4):
            a0[:] = 0
            a1[:] = 0
            a2[:] = 0
            a3[:] = 0
            for i in range(n):
                j0 = permutations[d, i]
                j1 = permutations[d + 1, i]
                j2 = permutations[d + 2, i]
                j3 = permutations[d + 3, i]
                for c in range(width):
                    p = Ps[i, c]
                    a0[c] += p * Ys[j0, c]
                    a1[c] += p * Ys[j1, c]
                    a2[c] += p * Ys[j2, c]
                    a3[c] += p * Ys[j3, c]
            for c in range(w):
                out[d, c0 + c] = a0[c] / scale
                out[d + 1, c0 + c] = a1[c] / scale
                out[d + 2, c0 + c] = a2[c] / scale
                out[d + 3, c0 + c] = a3[c] / scale
        for d in range(last4, n_draws):
            a0[:] = 0
            for i in range(n):
                j0 = permutations[d, i]
                for c in range(width):
                    a0[c] += Ps[i, c] * Ys[j0, c]
            for c in range(w):
                out[d, c0 + c] = a0[c] / scale
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _run_mass(r, run, r_threshold, threshold, factor):  # pragma: no cover - compiled
    """The mass of the current run after a bin with correlation ``r``: extended by the bin's
    t when t passes ``threshold``, else ended (0). t is monotone in r, so only an r past
    ``r_threshold`` needs its t."""
    if r <= r_threshold:
        return 0.0
    q = min(r, 1.0 - 1e-12)
    t = q * np.sqrt(factor / (1.0 - q * q))
    return run + t if t > threshold else 0.0


@numba.njit(parallel=True, cache=True, nogil=True)
def cluster_pass(null, n_sites, n_bins, n, threshold, r_threshold, two_sided, members, offsets,
                 site_max, gathered):  # pragma: no cover - compiled
    """One pass over a chunk of null draws ``(draws, sites * bins)``: each site's largest
    cluster mass of t (runs of t beyond ``threshold``) into ``site_max`` ``(draws, sites)``,
    and each group's values, ``(draws, bins, its sites)`` contiguous, into the flat
    ``gathered`` from ``draws * bins * offsets[g]`` on (for numpy's SIMD partition, which
    takes the medians faster than a compiled selection). Group ``g``'s sites are
    ``members[offsets[g]:offsets[g + 1]]``."""
    n_draws = null.shape[0]
    n_groups = offsets.shape[0] - 1
    factor = n - 2.0
    for d in numba.prange(n_draws):
        for s in range(n_sites):
            best, positive, negative = 0.0, 0.0, 0.0
            for b in range(n_bins):
                r = numba.float64(null[d, s * n_bins + b])
                positive = _run_mass(r, positive, r_threshold, threshold, factor)
                best = max(best, positive)
                if two_sided:
                    negative = _run_mass(-r, negative, r_threshold, threshold, factor)
                    best = max(best, negative)
            site_max[d, s] = best
        for g in range(n_groups):
            first = offsets[g]
            m = offsets[g + 1] - first
            base = n_draws * n_bins * first + d * n_bins * m
            for k in range(m):
                row = members[first + k] * n_bins
                for b in range(n_bins):
                    gathered[base + b * m + k] = null[d, row + b]
    return site_max
