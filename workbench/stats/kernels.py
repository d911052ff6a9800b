"""Compiled kernel of the held-out permutation null, with the numpy version as fallback.

The null statistic of draw ``d`` and cell ``c`` is ``sum_i Pz[i, c] Yz[perm_d(i), c] / n``.
Both factors carry the cell index, so it is a batch of gathered column dot products, not a
GEMM, and numpy needs a gathered copy of the rows per draw (memory-bound, ~1.3 ms a draw at
320 stimuli x 7,680 cells). The numba kernel copies a slab of cells once into a small
contiguous block, then runs four draws per pass over the stimuli, so each row of
predictions is read once for four gathered target rows (~0.15 ms a draw). The gathered rows
come in random order, so the pass waits on memory: a wider slab makes each gathered row a
longer run of consecutive bytes, which the prefetcher streams. Slabs of about 512 cells
(2 KB a row) were 1.2-1.8x faster than 128 at 160-1,600 stimuli and 2,000-4,000 cells on
2 cores, even where the slab no longer fits in L2 (:func:`slab_width`).

Every cell's sum runs over the stimuli in the same order whatever the thread count (threads
split the cells), so the numbers do not depend on it.
"""

import warnings

import numpy as np

from ..errors import MetricError

SLAB_TARGET = 512  # cells per slab at most, give or take the rounding of slab_width


def slab_width(n_cells, threads):
    """Cells per slab of the compiled kernel: at most about :data:`SLAB_TARGET`, a multiple of
    16 (whole SIMD vectors), and a slab count that is a multiple of ``threads`` so that no
    thread is left with one slab more than the others (2,112 cells on 2 threads: 6 slabs of
    352, not 4 of 512 and one of 64)."""
    n_slabs = threads * -(-n_cells // (threads * SLAB_TARGET))
    width = -(-n_cells // max(n_slabs, 1))
    return max(16, -(-width // 16) * 16)


def _gathered_dot_numpy(Pz, Yz, permutations, out, block_size=8):
    """Reference and fallback: slabs of cells that fit in cache, ``block_size`` draws at a
    time through one einsum."""
    n, n_cells = Pz.shape
    width = max(64, int(160_000 // max(n, 1)))
    scale = Pz.dtype.type(n)
    for c0 in range(0, n_cells, width):
        P_slab = np.ascontiguousarray(Pz[:, c0:c0 + width])
        Y_slab = np.ascontiguousarray(Yz[:, c0:c0 + width])
        for start in range(0, len(permutations), block_size):
            block = permutations[start:start + block_size]
            out[start:start + len(block), c0:c0 + width] = (
                np.einsum("bic,ic->bc", Y_slab[block], P_slab, optimize=False) / scale)
    return out


_KERNEL = {}


def compiled_kernels():
    """The compiled kernels' module (:mod:`workbench.stats.numba_kernels`), imported on first
    use (importing numba costs ~1 s, so ``import workbench`` does not pay it); ``None``
    where numba cannot load."""
    if "kernel" not in _KERNEL:
        try:
            from . import numba_kernels
        except Exception as error:  # numba is a dependency; this keeps the test usable if it breaks
            warnings.warn(f"numba does not load ({error}); the permutation nulls use the slower "
                          "numpy kernel (fix: pip install numba)", RuntimeWarning, stacklevel=3)
            _KERNEL["kernel"] = None
            return None

        _KERNEL["kernel"] = numba_kernels
    return _KERNEL["kernel"]


def thread_count():
    """Threads the compiled kernels may use: torch's setting, which a report task limits (so
    that parallel tasks do not oversubscribe the cores) and which is the core count otherwise."""
    import torch

    return max(1, torch.get_num_threads())


def limit_threads(kernels):
    """Limit the calling thread's compiled kernels to :func:`thread_count` threads (numba's
    setting is per thread) and return ``kernels``."""
    import numba

    numba.set_num_threads(min(numba.config.NUMBA_NUM_THREADS, thread_count()))
    return kernels


def overlapping_calls_are_safe():
    """Whether two threads may run compiled parallel kernels at once: numba's ``omp`` and
    ``tbb`` threading layers allow it; its fallback ``workqueue`` layer aborts. Asked after a
    parallel kernel ran (numba chooses the layer on the first launch); ``True`` where numba
    has not loaded (the numpy kernels hold no such lock)."""
    if _KERNEL.get("kernel") is None:
        return True
    import numba

    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel kernel launched yet: the layer is not chosen
        return False


def compiled():
    """Whether the compiled kernel is available (numba loads)."""
    return compiled_kernels() is not None


def use_compiled(engine="auto"):
    """The compiled kernels for ``engine`` (``"auto"``, ``"numba"`` or ``"numpy"``), or
    ``None`` for the numpy code; a named error for ``"numba"`` without numba."""
    if engine not in ("auto", "numba", "numpy"):
        raise MetricError(f"engine must be 'auto', 'numba' or 'numpy', got {engine!r}")
    kernels = None if engine == "numpy" else compiled_kernels()
    if kernels is None and engine == "numba":
        raise MetricError("engine='numba' but numba is not importable (fix: pip install numba, or engine='auto')")
    return kernels if kernels is None else limit_threads(kernels)


def gathered_dot(Pz, Yz, permutations, engine="auto"):
    """Null statistics ``(draws, cells)``: ``sum_i Pz[i] Yz[perm(i)] / n`` for each row of
    ``permutations``.

    Parameters
    ----------
    Pz, Yz : ndarray ``(n_stimuli, n_cells)``
        Standardised predictions and targets, float32 or float64 (the output's dtype).
    permutations : int ndarray ``(draws, n_stimuli)``
    engine : {"auto", "numba", "numpy"}
        ``"auto"``: the compiled kernel when numba is importable.
    """
    Pz = np.ascontiguousarray(Pz)
    Yz = np.ascontiguousarray(Yz, dtype=Pz.dtype)
    out = np.empty((len(permutations), Pz.shape[1]), dtype=Pz.dtype)
    kernels = None if len(permutations) == 0 else use_compiled(engine)
    if kernels is None:
        return _gathered_dot_numpy(Pz, Yz, permutations, out)
    import numba

    width = slab_width(Pz.shape[1], numba.get_num_threads())
    return kernels.gathered_dot_numba(Pz, Yz, np.ascontiguousarray(permutations, dtype=np.int64), out, width)
