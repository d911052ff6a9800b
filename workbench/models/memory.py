"""Memory of this process and of the machine, and a measured probe of a model's extraction:
what the preflight (:mod:`workbench.benchmarks.preflight`) needs to say, before minutes of
work, whether a task fits.

The probe runs the real extraction on one image and on a whole batch with the kernel's
high-water mark reset before each (Linux: ``/proc/self/clear_refs``) and the C heap's free
pages released, so it measures what the model, its calling convention, the recorder and the
reduction actually allocate for a batch (convolution workspaces included). Elsewhere it returns
``None`` and the preflight says it could not measure.
"""

import json
import os
from pathlib import Path

import numpy as np

GB = 1e9


def _status(key):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes():
    """Resident memory of this process now (``None`` where ``/proc`` is missing)."""
    return _status("VmRSS:")


def high_water_bytes():
    """Peak resident memory of this process since start or the last :func:`reset_high_water`."""
    return _status("VmHWM:")


def reset_high_water():
    """Reset the high-water mark to the current resident memory; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def release_free_memory():
    """Hand the C heap's free pages back to the kernel (glibc's ``malloc_trim``), so that the
    resident memory counts live data only; a no-op where glibc is missing. Freed memory the
    allocator keeps would otherwise be reused by the next allocation without raising the
    high-water mark, and a probe would measure too little (CORnet-S at 224 px: 1.5 MB per
    image measured without it, 13 MB in fact)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def available_bytes():
    """Memory a task may use: the smallest of the kernel's ``MemAvailable`` (plus what this
    process already holds), the cgroup's limit and ``WORKBENCH_MEMORY_LIMIT_GB``."""
    limits = []
    held = rss_bytes() or 0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024 + held)
    except OSError:
        pass
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    override = os.environ.get("WORKBENCH_MEMORY_LIMIT_GB")
    if override:
        limits.append(float(override) * GB)
    return min(limits) if limits else None


def probe_extraction(model, stimuli, layers, protocol, reduction, convention, device="auto", batch_size=6):
    """Measured extraction memory: ``(fixed, per_image)`` bytes above the resident memory
    before it, with ``fixed + per_image * batch_size`` the measured peak of one batch of
    ``batch_size`` (at most ``len(stimuli)``), or ``None`` where the high-water mark cannot be
    reset.

    Runs :func:`~workbench.models.extract` on the first image (lazy initialisation), then on
    a whole batch, with the C heap's free pages released before each
    (:func:`release_free_memory`). The batch itself is measured, not extrapolated from a few
    images: the peak is not linear in the batch size (CORnet-S at 224 px: 0.18 GB above the
    resident memory for 2 images, 0.19 GB for 6, 0.29 GB for 16, 0.57 GB for 32; one-time
    buffers dominate small batches, activations large ones), so a slope taken on 2 and 6
    images predicted 0.21 GB for 32. Memory depends on the architecture and the shapes, not
    on weight values or image content, so a probe is measured once per process for each
    architecture, image shape, batch size, layers, protocol, reduction, convention and device
    (a report's regions and datasets share it).
    """
    from .extraction import extract

    if rss_bytes() is None or not reset_high_water():
        return None
    batch_size = max(1, min(int(batch_size), len(stimuli)))
    first = np.asarray(stimuli.subset([0]).images)
    key = (type(model).__module__, type(model).__qualname__, repr(model),
           tuple((name, tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()),
           tuple(layers or ()),
           # where the steps sit on the time axis does not change what is allocated
           None if protocol is None else (protocol.image_steps, protocol.blank_steps, protocol.unrolling),
           json.dumps(reduction.spec() if reduction is not None else None, sort_keys=True, default=str),
           str(convention), first.shape, str(first.dtype), str(device), batch_size)
    if key in _PROBES:
        return _PROBES[key]
    peaks = {}
    for size in dict.fromkeys((1, batch_size)):  # one image first: lazy initialisation
        subset = stimuli.subset(list(range(size)))
        release_free_memory()
        before = rss_bytes()
        reset_high_water()
        extract(model, subset, layers=layers, protocol=protocol, batch_size=size, device=device, progress=False,
                reduction=reduction, convention=convention)
        peaks[size] = max(high_water_bytes() - before, 0)
    per_image = max((peaks[batch_size] - peaks[1]) / (batch_size - 1), 0.0) if batch_size > 1 else 0.0
    _PROBES[key] = (max(peaks[batch_size] - batch_size * per_image, 0.0), per_image)
    return _PROBES[key]


_PROBES = {}
