"""The one place that decides where arrays live (CUDA, then MPS, then CPU) and which
array library (numpy or torch) the linear-algebra engines run on, and how many CPU threads a
result is computed with."""

import contextlib
import contextvars
import ctypes
import os
import platform
import threading
from collections import OrderedDict

import numpy
import torch

from .errors import WorkbenchError


def _mps_available():
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(device="auto"):
    """Return a :class:`torch.device`; ``"auto"`` picks CUDA, then Apple MPS, then CPU.

    Raises
    ------
    WorkbenchError
        If a named accelerator is requested but not available.
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):  # torch's message lists 20 device types
        raise WorkbenchError(f"unknown device {device!r} (fix: 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps')") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError(
            f"device {device!r} requested but CUDA is not available "
            "(fix: device='auto' or 'cpu'; for a CUDA build of torch see README, GPU install)"
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise WorkbenchError(f"device {device!r} requested but this machine has {torch.cuda.device_count()} "
                             "CUDA device(s) (fix: device='cuda' for the first)")
    if resolved.type == "mps" and not _mps_available():
        raise WorkbenchError(f"device {device!r} requested but Apple MPS is not available (fix: device='auto' or 'cpu')")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise WorkbenchError(f"device {device!r}: the workbench runs on 'cpu', 'cuda' or 'mps'")
    return resolved


class ArrayBackend:
    """numpy or torch (CPU/GPU) arrays behind one small interface.

    The linear-algebra engines (ridge, PLS, permutation nulls) are written once against
    this seam; only the methods below differ between libraries. float32 is the default
    (twice the GEMM throughput, and accurate enough after the engines centre and scale
    their inputs); pass ``dtype="float64"`` for reference computations.

    Parameters
    ----------
    name : {"numpy", "torch"}
    device : str
        For torch: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``...
    dtype : {"float32", "float64"}
    """

    def __init__(self, name="numpy", device="auto", dtype="float32"):
        if name not in ("numpy", "torch"):
            raise WorkbenchError(f"unknown array backend {name!r}: use 'numpy' or 'torch'")
        if dtype not in ("float32", "float64"):
            raise WorkbenchError(f"unknown dtype {dtype!r}: use 'float32' or 'float64'")
        self.name = name
        self.dtype_name = dtype
        if name == "torch":
            self.device = resolve_device(device)
            if self.device.type == "mps" and dtype == "float64":
                raise WorkbenchError("MPS has no float64: use dtype='float32' or device='cpu'")
            self.dtype = getattr(torch, dtype)
            # MPS has no float64: engines that want a float64 step fall back without it
            self.float64 = None if self.device.type == "mps" else torch.float64
        else:
            self.device = None
            self.dtype = numpy.dtype(dtype)
            self.float64 = numpy.dtype("float64")
        if self.device is None or self.device.type == "cpu":
            reuse_freed_memory()

    def __repr__(self):
        where = f", device={self.device}" if self.device is not None else ""
        return f"ArrayBackend({self.name!r}{where}, dtype={self.dtype_name!r})"

    def asarray(self, values, dtype=None):
        """A backend array of ``values`` (the backend's float dtype unless ``dtype``)."""
        if self.name == "torch":
            if isinstance(values, torch.Tensor):
                return values.to(device=self.device, dtype=dtype or self.dtype)
            return torch.as_tensor(numpy.asarray(values), dtype=dtype or self.dtype, device=self.device)
        return numpy.asarray(values, dtype=dtype or self.dtype)

    def to_numpy(self, values):
        if self.name == "torch" and isinstance(values, torch.Tensor):
            return values.detach().cpu().numpy()
        return numpy.asarray(values)

    def index(self, values):
        """Integer indices usable on this backend's arrays."""
        if self.name == "torch":
            return torch.as_tensor(numpy.asarray(values), dtype=torch.long, device=self.device)
        return values

    def empty(self, shape, dtype=None):
        """An uninitialised array (every element is written before it is read), of the
        backend's float dtype unless ``dtype``."""
        if self.name == "torch":
            return torch.empty(shape, dtype=dtype or self.dtype, device=self.device)
        return numpy.empty(shape, dtype=dtype or self.dtype)

    def zeros(self, shape):
        if self.name == "torch":
            return torch.zeros(shape, dtype=self.dtype, device=self.device)
        return numpy.zeros(shape, dtype=self.dtype)

    def eigh(self, matrix, remember=None, out=None):
        """Eigenvalues (ascending) and eigenvectors of a symmetric matrix.

        ``out``: ``(values, vectors)`` buffers to write into (torch; from
        :meth:`Workspace.eigh_out`); numpy allocates its own.

        Inside :func:`remembering_eigh` (or with ``remember=True``), CPU results are
        remembered by the matrix's bytes (:class:`_EighMemo`), and a second decomposition of
        the same bytes is the same answer: for callers that decompose the same Grams twice,
        e.g. two regions scored one after the other on the same features, stimuli and folds.
        Off by default: the workbench's own fits decompose every Gram once (regions on one
        layer share one fit), and keeping each result cost about 2 % of a fit's time for no
        hit. ``remember=False`` never looks (a timing of the decomposition itself)."""
        if remember is None:
            remember = _REMEMBER_EIGH.get()
        entry = _EIGH_MEMO.entry(self, matrix) if remember else None
        found = None if entry is None else _EIGH_MEMO.get(entry)
        if found is not None:
            return found
        if self.name == "torch":
            # LAPACK overwrites a column-major copy of the matrix with the eigenvectors. The
            # transposed view of a symmetric matrix is that layout already: copied straight,
            # not transposed element by element (3.4 of 45 ms for a 1,024 x 1,024 Gram).
            # ``out`` (values, column-major vectors) reuses buffers instead of fresh pages.
            values, vectors = torch.linalg.eigh(matrix.mT, out=out)
        else:
            # numpy's LAPACK, not scipy's: scipy ships a second OpenBLAS whose idle threads
            # contend with numpy's GEMMs between calls (measured slower end to end).
            values, vectors = numpy.linalg.eigh(matrix)
        if entry is not None:
            _EIGH_MEMO.put(entry, values, vectors)
        return values, vectors

    def concurrent_slots(self, wanted=None):
        """How many independent pieces of one computation are worth running side by side
        (:class:`SideBySide`): 2 for torch on a CPU with at least 2 threads, else 1.

        Why: LAPACK's symmetric eigensolver is mostly memory-bound (its tridiagonal
        reduction), and a second thread speeds one decomposition up by only 1.6x here, while
        two decompositions side by side, each on half the threads, finish in 0.83 of the time
        of the two in turn; GEMMs lose under 5 % that way. GPUs queue their kernels anyway,
        and numpy's BLAS threads are not this seam's to split. ``wanted``: the caller's own
        limit (1 = in turn; more than 2 is taken as 2)."""
        if self.name != "torch" or self.device.type != "cpu" or torch.get_num_threads() < 2:
            return 1
        return 2 if wanted is None else max(1, min(int(wanted), 2))

    def sqrt(self, values):
        return torch.sqrt(values) if self.name == "torch" else numpy.sqrt(values)

    def clip_min(self, values, minimum):
        if self.name == "torch":
            return torch.clamp(values, min=minimum)
        return numpy.maximum(values, minimum)

    def where(self, condition, a, b):
        if self.name == "torch":
            return torch.where(condition, a, b)
        return numpy.where(condition, a, b)

    def permute(self, values, axes):
        """Reorder axes (numpy ``transpose`` / torch ``permute``)."""
        return values.permute(*axes) if self.name == "torch" else values.transpose(axes)

    def matmul(self, a, b, out=None):
        """``a @ b``, written into ``out`` when given (a preallocated block: no copy after)."""
        if self.name == "torch":
            return torch.matmul(a, b, out=out)
        return numpy.matmul(a, b, out=out)

    def subtract_outer(self, matrix, u, v, inplace=False):
        """``matrix - outer(u, v)`` (into ``matrix`` when ``inplace``): one pass over the
        matrix with torch, no outer-product temporary."""
        if self.name == "torch":
            return matrix.addr_(u, v, alpha=-1) if inplace else torch.addr(matrix, u, v, alpha=-1)
        if inplace:
            matrix -= u[:, None] * v[None, :]
            return matrix
        return matrix - u[:, None] * v[None, :]

    def subtract_product(self, matrix, u, w, inplace=False):
        """``matrix - u @ w`` (into ``matrix`` when ``inplace``): with ``u`` (m, k) and ``w``
        (k, n) of a small rank k, one pass over the matrix with torch (k rank-one updates
        were k passes)."""
        if self.name == "torch":
            return matrix.addmm_(u, w, alpha=-1) if inplace else torch.addmm(matrix, u, w, alpha=-1)
        if inplace:
            matrix -= u @ w
            return matrix
        return matrix - u @ w

    def copy(self, source, out):
        """Write ``source`` into the array ``out`` (of the same shape); returns ``out``."""
        if self.name == "torch":
            return out.copy_(source)
        out[...] = source
        return out

    def subtract(self, a, b, out=None):
        """``a - b``, written into ``out`` when given."""
        if self.name == "torch":
            return torch.sub(a, b, out=out)
        return numpy.subtract(a, b, out=out)

    def add(self, a, b, out=None):
        """``a + b``, written into ``out`` when given."""
        if self.name == "torch":
            return torch.add(a, b, out=out)
        return numpy.add(a, b, out=out)

    def divide(self, a, b, out=None):
        """``a / b``, written into ``out`` when given (``out`` may be wider than ``a``: the
        division then reads ``a`` in ``out``'s dtype without a widened copy of it)."""
        if self.name == "torch":
            return torch.div(a, b, out=out)
        return numpy.divide(a, b, out=out)

    def fill_diagonal(self, matrix, value):
        """Set the main diagonal of a square ``matrix`` to ``value`` in place."""
        if self.name == "torch":
            matrix.fill_diagonal_(value)
        else:
            numpy.fill_diagonal(matrix, value)
        return matrix

    def stack(self, arrays):
        return torch.stack(list(arrays)) if self.name == "torch" else numpy.stack(list(arrays))

    def synchronize(self):
        """Wait for queued GPU work (benchmarks time complete work, not launches)."""
        if self.name == "torch" and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class Workspace:
    """Scratch arrays of one computation, reused by role instead of allocated afresh.

    An engine that makes the same large temporaries over and over (a ridge fit's p x p
    Grams, rotations and error terms, once per fold) asks for them by role: the first
    request allocates, later ones with the same shape and dtype return the same array. A
    fresh array of several MB is new pages from the kernel, each faulted in and zeroed on
    first touch: 100,000+ page faults and 5-10 % of a cross-validated fit's time, more than
    the arithmetic on some of those arrays. The caller guarantees that an array's previous
    use is over before it asks for the same role again.
    """

    def __init__(self, backend):
        self.backend = backend
        self._arrays = {}

    def get(self, role, shape, dtype=None, column_major=False):
        """An uninitialised array for ``role`` (``dtype`` defaults to the backend's)."""
        bk = self.backend
        dtype = bk.dtype if dtype is None else dtype
        key = (tuple(int(n) for n in shape), dtype, column_major)
        kept = self._arrays.get(role)
        if kept is not None and kept[0] == key:
            return kept[1]
        if bk.name == "torch":
            if column_major:  # a transposed view of a row-major block (2-D)
                array = torch.empty(key[0][::-1], dtype=dtype, device=bk.device).mT
            else:
                array = torch.empty(key[0], dtype=dtype, device=bk.device)
        else:
            array = numpy.empty(key[0], dtype=dtype, order="F" if column_major else "C")
        self._arrays[role] = (key, array)
        return array

    def eigh_out(self, role, size):
        """``out`` for :meth:`ArrayBackend.eigh` of a ``size x size`` matrix (None for numpy,
        whose eigensolver has no output arguments)."""
        if self.backend.name != "torch":
            return None
        return (self.get(role + ".eigenvalues", (size,)),
                self.get(role + ".eigenvectors", (size, size), column_major=True))


class _EighMemo:
    """The last eigendecompositions of CPU matrices, found by their exact bytes: a hit is an
    identical matrix, so nothing stale can be served.

    A matrix is looked up by a fingerprint that costs O(p) (library, dtype, shape and its
    diagonal and first row), and a candidate with that fingerprint counts only if its bytes
    equal the matrix's (a comparison at memory speed, ~1 ms for a 1,024 x 1,024 float32
    Gram). Hashing every matrix's bytes instead cost 4.4 ms per Gram on every call, a miss
    included: 5 % of a cross-validated fit whose 20 Grams are all distinct. Each entry keeps
    a copy of its matrix for that comparison. Bounded: matrices over
    :attr:`max_entry_bytes` are not kept, and the oldest go once the total passes
    :attr:`max_bytes`. Each hit returns copies, so a caller that writes into its result
    cannot change what the next caller gets."""

    max_bytes = 96 * 2**20
    max_entry_bytes = 16 * 2**20

    def __init__(self):
        self._entries = OrderedDict()  # fingerprint -> [(matrix bytes as integers, values, vectors)]
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    def entry(self, backend, matrix):
        """``(fingerprint, integer view of the matrix)``, or None for a matrix not kept (on
        a GPU, with gradients, not floating point, or too large)."""
        if backend.name == "torch":
            if matrix.device.type != "cpu" or matrix.requires_grad:
                return None
            data = matrix.detach().contiguous().numpy()
        else:
            data = numpy.ascontiguousarray(matrix)
        if data.nbytes > self.max_entry_bytes or data.dtype.kind != "f" or data.ndim != 2 or 0 in data.shape:
            return None
        # equal bytes, not equal values: -0.0 is not 0.0 and a NaN equals its own bytes
        bits = data.view(f"u{data.dtype.itemsize}")
        fingerprint = (backend.name, str(data.dtype), data.shape,
                       numpy.diagonal(bits).tobytes(), bits[0].tobytes())
        return fingerprint, bits

    @staticmethod
    def _copy(values):
        return values.clone() if isinstance(values, torch.Tensor) else values.copy()

    def get(self, entry):
        fingerprint, bits = entry
        with self._lock:
            for kept, values, vectors in self._entries.get(fingerprint, ()):
                if numpy.array_equal(kept, bits):
                    self._entries.move_to_end(fingerprint)
                    self.hits += 1
                    return self._copy(values), self._copy(vectors)
        return None

    def put(self, entry, values, vectors):
        fingerprint, bits = entry
        with self._lock:
            candidates = self._entries.setdefault(fingerprint, [])
            if any(numpy.array_equal(kept, bits) for kept, _, _ in candidates):
                return
            candidates.append((bits.copy(), self._copy(values), self._copy(vectors)))
            self._entries.move_to_end(fingerprint)
            self._bytes += bits.nbytes + _nbytes(values) + _nbytes(vectors)
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, old = self._entries.popitem(last=False)
                self._bytes -= sum(kept.nbytes + _nbytes(v) + _nbytes(w) for kept, v, w in old)

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = 0


def _nbytes(values):
    return values.numel() * values.element_size() if isinstance(values, torch.Tensor) else values.nbytes


_EIGH_MEMO = _EighMemo()
_REMEMBER_EIGH = contextvars.ContextVar("remember_eigh", default=False)


@contextlib.contextmanager
def remembering_eigh():
    """Inside the block, :meth:`ArrayBackend.eigh` remembers CPU decompositions by the
    matrix's bytes and answers a repeated matrix from memory (exact: equal bytes only).

    Examples
    --------
    >>> with remembering_eigh():  # doctest: +SKIP
    ...     v4 = encoding_score(features, recording.sel(neuroid=recording.region == "V4"))
    ...     it = encoding_score(features, recording.sel(neuroid=recording.region == "IT"))
    """
    token = _REMEMBER_EIGH.set(True)
    try:
        yield _EIGH_MEMO
    finally:
        _REMEMBER_EIGH.reset(token)


class _SidePool:
    """Worker threads that each run torch on their share of the caller's CPU threads.
    Made again when the caller's thread count or the process changes (a forked child has
    the pool object but not its threads).

    Why the care in starting them: torch's thread count is per thread (OpenMP's and MKL's
    settings), but ``torch.set_num_threads`` also stores the count that every thread takes
    when it first runs torch work. A worker therefore takes its own count first (so that a
    later default cannot replace it) and sets its share; then the caller's count is stored
    again, so that threads started later (the user's, dask's) still get the caller's."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool, self._key = None, None
        self._local = threading.local()

    def executor(self, slots):
        from concurrent.futures import ThreadPoolExecutor

        key = (int(slots), max(1, torch.get_num_threads() // int(slots)), os.getpid())
        with self._lock:
            if self._key != key:
                if self._pool is not None and self._key[2] == key[2]:
                    self._pool.shutdown(wait=False)
                counter = iter(range(key[0]))
                local, threads, lock = self._local, key[1], threading.Lock()
                ready = threading.Barrier(key[0] + 1)

                def start():
                    with lock:
                        local.slot = next(counter)
                    torch.get_num_threads()  # torch's per-thread setup, done now
                    torch.set_num_threads(threads)
                    ready.wait(timeout=60)

                caller = torch.get_num_threads()
                self._pool = ThreadPoolExecutor(key[0], thread_name_prefix="workbench-side", initializer=start)
                for _ in range(key[0]):  # every worker started (one thread per submission)
                    self._pool.submit(int)
                try:
                    ready.wait(timeout=60)
                except threading.BrokenBarrierError:
                    self._pool.shutdown(wait=False)
                    self._pool, self._key = None, None
                    raise WorkbenchError("the side-by-side worker threads did not start (fix: RidgeCV(n_jobs=1))") from None
                torch.set_num_threads(caller)  # the count new threads take: the caller's again
                self._key = key
            return self._pool

    def slot(self):
        """The calling worker's index (0 outside the pool)."""
        return getattr(self._local, "slot", 0)


_SIDE_POOL = _SidePool()


class _Done:
    """A piece run at once in the calling thread, with :class:`concurrent.futures.Future`'s
    ``result`` and ``cancel``."""

    def __init__(self, function, item):
        self._value, self._error = None, None
        try:
            self._value = function(item, 0)
        except Exception as error:  # raised where the result is asked for, as a future does
            self._error = error  # (an interrupt goes up at once)

    def result(self):
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self):
        return False

    def done(self):
        return True


class SideBySide:
    """Pieces of one computation run ``slots`` at a time on worker threads that share the
    caller's CPU threads out between them (``slots`` from
    :meth:`ArrayBackend.concurrent_slots`; with 1, each piece runs at once in the calling
    thread, when it is submitted).

    ``submit(function, item)`` runs ``function(item, slot)`` and returns a future.
    ``slot`` (``0 .. slots - 1``) names the worker, so that each can keep its own scratch
    arrays: two pieces with the same slot never run at the same time. Context variables
    (e.g. :func:`remembering_eigh`) are the submitter's in every piece. Used as a context
    manager, pieces still queued when the block is left (by an error) are cancelled and
    those running are waited for, so that nothing of the computation runs on after it.
    """

    def __init__(self, slots):
        self.slots = max(1, int(slots))
        self._pool = _SIDE_POOL.executor(self.slots) if self.slots > 1 else None
        self._futures = []

    def submit(self, function, item):
        if self._pool is None:
            return _Done(function, item)

        def run(context, item):
            return context.run(function, item, _SIDE_POOL.slot())

        future = self._pool.submit(run, contextvars.copy_context(), item)
        self._futures = [kept for kept in self._futures if not kept.done()] + [future]
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for future in self._futures:
            future.cancel()
        for future in self._futures:
            if not future.cancelled():
                future.exception()  # waits; its error, if any, is the caller's to see elsewhere
        self._futures = []
        return False


def map_concurrently(function, items, slots):
    """``[function(item, slot) for item in items]`` in the items' order, run ``slots`` at a
    time (:class:`SideBySide`). The first error raised by an item is raised here, after the
    items already started have finished."""
    with SideBySide(slots) as side:
        futures = [side.submit(function, item) for item in items]
        return [future.result() for future in futures]


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_ALLOCATOR = {"tuned": None}
_ALLOCATOR_LOCK = threading.Lock()


def reuse_freed_memory(mmap_threshold=32 * 2**20, trim_threshold=128 * 2**20):
    """Let glibc keep freed blocks of up to ``mmap_threshold`` bytes for reuse (once per
    process, on Linux with glibc; returns whether it is in effect).

    CPU engines make and free the same few MB-sized temporaries many times (a Gram, its
    eigensolver's workspace, error terms: per fold, per alpha grid). By default glibc gives
    the freed top of its heap back to the system as soon as it passes twice its adaptive
    mmap threshold, and every new block is then fresh pages, faulted in and zeroed one by
    one: 20,000-100,000 page faults and 5 % of a cross-validated ridge fit's time, mostly
    inside LAPACK's workspace allocations. Here blocks up to 32 MB come from the heap (the
    ceiling glibc's own adaptive threshold reaches) and up to 128 MB of freed heap is kept
    (at most that much more resident memory); larger arrays are still mapped and returned
    on free. Not applied when the process sets ``MALLOC_TRIM_THRESHOLD_`` or
    ``MALLOC_MMAP_THRESHOLD_`` itself, or ``WORKBENCH_REUSE_FREED_MEMORY=0``.
    """
    with _ALLOCATOR_LOCK:
        if _ALLOCATOR["tuned"] is None:
            _ALLOCATOR["tuned"] = _tune_glibc(mmap_threshold, trim_threshold)
        return _ALLOCATOR["tuned"]


def _tune_glibc(mmap_threshold, trim_threshold):
    if os.environ.get("WORKBENCH_REUSE_FREED_MEMORY", "1") == "0":
        return False
    if any(name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")):
        return False  # the user's own allocator settings stand
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the mmap threshold first: setting either fixes both (no more adaptation)
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


def get_backend(backend="numpy", device="auto", dtype="float32"):
    """An :class:`ArrayBackend` (pass-through when ``backend`` already is one)."""
    if isinstance(backend, ArrayBackend):
        return backend
    return ArrayBackend(backend, device=device, dtype=dtype)


@contextlib.contextmanager
def fixed_threads(threads):
    """BLAS and torch CPU threads fixed to ``threads`` inside the block, restored afterwards.

    Floating-point sums split over a different number of threads round differently, and
    training amplifies those differences (a replication's effect moved from 0.079 to 0.101
    between two threads and one). A result that must not depend on the machine's core count
    or on how tasks were scheduled is computed inside this block.
    """
    import threadpoolctl

    previous = torch.get_num_threads()
    with threadpoolctl.threadpool_limits(int(threads)):
        torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            torch.set_num_threads(previous)
