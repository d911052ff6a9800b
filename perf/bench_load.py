"""Lazy open + streaming repetition average of a large BrainIO file vs an eager load.

    python perf/bench_load.py [--json OUT] [--gb 2.05] [--dir DIR] [--keep]

Simulates a temporal (10 ms bins, -100..300 ms) trial-level assembly of at least ``--gb``
GB (1 GB = 10^9 bytes) with ``simulators.simulate_macaque``, then, each in a fresh
process so peak memory is its own:

- lazy: ``data_adapters.load(path, lazy=True)`` (timed: ``lazy_open_s``), then
  ``average_repetitions`` streaming the file (peak RSS: ``avg_reps_peak_rss_gb``);
- baseline: ``data_adapters.load(path)`` (everything in memory), then the same average.

Prints both, their ratios and the largest difference between the two averages.
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _rss import peak_rss_gb

import numpy as np

N_STIMULI, SITES_PER_REGION, N_BINS, BYTES = 1000, 128, 40, 4  # float32 counts


def child(mode, path, out):
    """Run in a fresh interpreter: open, average, report timings and peak RSS."""
    import data_adapters
    from workbench.assembly import average_repetitions

    start = time.perf_counter()
    da = data_adapters.load(path, lazy=(mode == "lazy"))
    open_s = time.perf_counter() - start
    start = time.perf_counter()
    averaged = average_repetitions(da)
    average_s = time.perf_counter() - start
    np.save(out, averaged.values)
    print(json.dumps({"open_s": open_s, "average_s": average_s, "peak_rss_gb": peak_rss_gb()}))


def run_child(mode, path, out):
    result = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(out)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--gb", type=float, default=2.05, help="minimum file size, 10^9 bytes")
    parser.add_argument("--dir", type=Path, help="where to write the file (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the simulated file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    from workbench import simulators

    row_bytes = N_STIMULI * 2 * SITES_PER_REGION * N_BINS * BYTES
    n_repetitions = max(2, math.ceil(args.gb * 1e9 / row_bytes))
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="bench_load_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "temporal.nc"
    print(f"simulating {N_STIMULI} stimuli x {n_repetitions} repetitions x "
          f"{2 * SITES_PER_REGION} sites x {N_BINS} bins ...", flush=True)
    start = time.perf_counter()
    simulators.simulate_macaque(path, n_stimuli=N_STIMULI, sites_per_region=SITES_PER_REGION,
                                   n_repetitions=n_repetitions, seed=0)
    simulate_s = time.perf_counter() - start
    file_gb = path.stat().st_size / 1e9
    print(f"file: {file_gb:.2f} GB written in {simulate_s:.0f} s", flush=True)
    try:
        lazy = run_child("lazy", path, workdir / "lazy.npy")
        eager = run_child("eager", path, workdir / "eager.npy")
        diff = float(np.nanmax(np.abs(np.load(workdir / "lazy.npy") - np.load(workdir / "eager.npy"))))
    finally:
        if not args.keep:
            for name in ("temporal.nc", "temporal_stimuli.csv", "lazy.npy", "eager.npy"):
                (workdir / name).unlink(missing_ok=True)
    figures = {
        "file_gb": file_gb,
        "lazy_open_s": lazy["open_s"],
        "avg_reps_s": lazy["average_s"],
        "avg_reps_peak_rss_gb": lazy["peak_rss_gb"],
        "eager_open_s": eager["open_s"],
        "eager_avg_reps_s": eager["average_s"],
        "eager_peak_rss_gb": eager["peak_rss_gb"],
        "open_speedup_vs_eager": eager["open_s"] / lazy["open_s"],
        "peak_rss_ratio_eager_over_lazy": eager["peak_rss_gb"] / lazy["peak_rss_gb"],
        "max_abs_diff": diff,
    }
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:.4g}")
    if args.json:
        from workbench.storage import write_json

        write_json(args.json, figures)


if __name__ == "__main__":
    main()
