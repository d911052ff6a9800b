"""The one place that decides where tensors live (CUDA, then MPS, then CPU)."""

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
