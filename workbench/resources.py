"""Memory of this process and of the machine (Linux ``/proc`` and cgroups): what a loader
needs to refuse an array that cannot fit before allocating it, and what the preflight
(:mod:`workbench.benchmarks.preflight`) and the probe (:mod:`workbench.models.memory`) measure.
Every function returns ``None`` (or False) where the platform does not say."""

import os
from pathlib import Path

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
    return int(min(limits)) if limits else None


