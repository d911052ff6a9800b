"""The one place that decides where arrays live (CUDA, then MPS, then CPU) and which
array library (numpy or torch) the linear-algebra engines run on, and how many CPU threads a
result is computed with."""

import contextlib

import numpy
import torch

from .errors import WorkbenchError


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
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise WorkbenchError(
            f"device {device!r} requested but CUDA is not available "
            "(fix: device='auto' or 'cpu'; for a CUDA build of torch see README, GPU install)"
        )
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

    def zeros(self, shape):
        if self.name == "torch":
            return torch.zeros(shape, dtype=self.dtype, device=self.device)
        return numpy.zeros(shape, dtype=self.dtype)

    def eigh(self, matrix):
        """Eigenvalues (ascending) and eigenvectors of a symmetric matrix."""
        if self.name == "torch":
            return torch.linalg.eigh(matrix)
        # numpy's LAPACK, not scipy's: scipy ships a second OpenBLAS whose idle threads
        # contend with numpy's GEMMs between calls (measured slower end to end).
        return numpy.linalg.eigh(matrix)

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

    def stack(self, arrays):
        return torch.stack(list(arrays)) if self.name == "torch" else numpy.stack(list(arrays))

    def synchronize(self):
        """Wait for queued GPU work (benchmarks time complete work, not launches)."""
        if self.name == "torch" and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


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
