"""Split-half ceiling: the vectorised engine vs a per-neuroid, per-bin loop, same splits.

    python perf/bench_ceiling.py [--json OUT] [--stimuli 400] [--sites 64]

Prints both timings, their ratio and the largest difference of the two results.
"""

import json
import time

from _cli import speed_parser


def options():
    """The command line (built before the heavy imports, so that --help is instant)."""
    return speed_parser(__doc__, stimuli=400, sites=64, bins=20, reps=20, splits=5)


if __name__ == "__main__":
    options().parse_args()  # --help and a mistyped option answer at once, before the imports below

import numpy as np
import pandas as pd

from workbench.metrics.ceiling import random_half_masks, split_half_ceiling
from workbench.metrics.correlation import spearman_brown
from workbench.storage import write_json


def simulated_trials(n_stimuli, n_sites, n_bins, n_reps, seed=0):
    import xarray as xr

    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n_stimuli, n_sites, n_bins))
    values = np.tile(signal, (n_reps, 1, 1)) + 2.0 * rng.standard_normal((n_reps * n_stimuli, n_sites, n_bins))
    return xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.tile([f"s{i}" for i in range(n_stimuli)], n_reps).astype(object)),
        "neuroid_id": ("neuroid", np.array([f"n{i}" for i in range(n_sites)], dtype=object)),
        "time_bin_start": ("time_bin", 10.0 * np.arange(n_bins)),
        "time_bin_end": ("time_bin", 10.0 * np.arange(n_bins) + 10),
    })


def loop_baseline(trials, n_splits, seed):
    """Straightforward reference: pandas group means and np.corrcoef per neuroid and bin."""
    codes, _ = pd.factorize(trials.stimulus_id.values)
    values = trials.values
    result = np.zeros(values.shape[1:])
    for half_a in random_half_masks(codes, n_splits, seed):
        for n in range(values.shape[1]):
            for t in range(values.shape[2]):
                column = pd.Series(values[:, n, t])
                mean_a = column[half_a].groupby(codes[half_a]).mean()
                mean_b = column[~half_a].groupby(codes[~half_a]).mean()
                result[n, t] += spearman_brown(np.corrcoef(mean_a, mean_b)[0, 1])
    return result / n_splits


def main():
    args = options().parse_args()
    trials = simulated_trials(args.stimuli, args.sites, args.bins, args.reps)

    start = time.perf_counter()
    engine = split_half_ceiling(trials, n_splits=args.splits, seed=0).values
    engine_s = time.perf_counter() - start
    start = time.perf_counter()
    baseline = loop_baseline(trials, args.splits, seed=0)
    baseline_s = time.perf_counter() - start

    figures = {
        "engine_s": engine_s,
        "loop_baseline_s": baseline_s,
        "speedup_vs_loop": baseline_s / engine_s,
        "max_abs_diff_vs_loop": float(np.abs(engine - baseline).max()),
        "shape": {"stimuli": args.stimuli, "sites": args.sites, "bins": args.bins,
                  "reps": args.reps, "splits": args.splits},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
