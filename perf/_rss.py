"""Peak resident memory of this process, for benchmarks run in fresh child processes."""


def peak_rss_gb():
    """VmHWM from /proc/self/status in GB (10^9 bytes).

    Not ``getrusage().ru_maxrss``: Linux carries that over fork + exec, so a child started by a
    large parent reports the parent's peak. VmHWM belongs to the child's own address space.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
