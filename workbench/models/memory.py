"""Memory of this process and of the machine, and a measured probe of a model's extraction:
what the preflight (:mod:`workbench.benchmarks.preflight`) needs to say, before minutes of
work, whether a task fits.

The probe runs the real extraction on two and on six images with the kernel's high-water
mark reset before each (Linux: ``/proc/self/clear_refs``), so it measures what the model,
its calling convention, the recorder and the reduction actually allocate (convolution
workspaces included), and extrapolates linearly in the batch size. Elsewhere it returns
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


def probe_extraction(model, stimuli, layers, protocol, reduction, convention, device="auto"):
    """Measured extraction memory: ``(fixed, per_image)`` bytes above the resident memory
    before it (``fixed`` covers one-time allocations of a batch), or ``None`` where the
    high-water mark cannot be reset.

    Runs :func:`~workbench.models.extract` on the first image (lazy initialisation), then on
    the first two and the first six: the slope between those two is the cost of an image
    (far enough apart that the allocator's reuse of freed memory does not dominate it).
    Memory depends on the architecture and the shapes, not on weight values or image content,
    so a probe is measured once per process for each architecture, image shape, layers,
    protocol, reduction, convention and device (a report's regions and datasets share it).
    """
    from .extraction import extract

    if rss_bytes() is None or not reset_high_water():
        return None
    first = np.asarray(stimuli.subset([0]).images)
    key = (type(model).__module__, type(model).__qualname__, repr(model),
           tuple((name, tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()),
           tuple(layers or ()),
           # where the steps sit on the time axis does not change what is allocated
           None if protocol is None else (protocol.image_steps, protocol.blank_steps, protocol.unrolling),
           json.dumps(reduction.spec() if reduction is not None else None, sort_keys=True, default=str),
           str(convention), first.shape, str(first.dtype), str(device))
    if key in _PROBES:
        return _PROBES[key]
    peaks = {}
    for size in (1, 2, 6):
        subset = stimuli.subset(list(range(min(size, len(stimuli)))))
        before = rss_bytes()
        reset_high_water()
        extract(model, subset, layers=layers, protocol=protocol, batch_size=size, device=device, progress=False,
                reduction=reduction, convention=convention)
        peaks[size] = max(high_water_bytes() - before, 0)
    per_image = max((peaks[6] - peaks[2]) / 4.0, 0.0)
    _PROBES[key] = (max(peaks[2] - 2 * per_image, 0.0), per_image)
    return _PROBES[key]


_PROBES = {}
