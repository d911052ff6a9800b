"""One model scored end to end on a MajajHong2015-size recording, stage by stage.

    python perf/bench_recording.py [--json OUT] [--recording FILE.nc] [--workdir DIR]
                                   [--model cornet-s] [--n-stimuli 0] [--permutations 10000]
                                   [--folds 10] [--batch-size 32] [--device auto]

Without ``--recording`` it first writes the simulated MajajHong2015-size recording
(``workbench simulate macaque --scale majajhong2015 --image-size 224``: 3,200 HvM-style
objects, 88 V4 + 168 IT sites, 10 ms bins from -100 to 300 ms, 50 repetitions, 6.5 GB) into
``--workdir`` (kept there for the next run; not timed). ``--n-stimuli N`` keeps the first N
images (a quick check of the script). Stages, each timed (``<stage>_s``) with its own peak
resident memory (``<stage>_rss_gb``, the kernel's high-water mark reset before the stage):

- ``load``: lazy open, repetition average and variance-components ceiling, streamed from
  disk in one pass (``average_and_ceiling``; the trial array, 6.5 GB, is never in memory);
- ``extract``: the model at its declared input over the stimulus PNGs read batch by batch,
  every candidate layer reduced on the device to 512 dimensions (sparse random projection,
  the macaque benchmark's ``PROJECTION``), streamed into a zarr store;
- ``mapping``: the layer per region chosen on the mapping half from each layer's first 256
  components (shared-over-time ridge, 5 folds), as the macaque benchmark does;
- ``encoding``: the committed layer on the held-out half, shared-over-time ridge with
  ``--folds`` folds, normalised by the streamed ceiling (``score_regions``: regions committed
  to the same layer in one fit, per-site alphas);
- ``test``: the ``--permutations``-draw held-out permutation test with max-T (FWE) p-values
  and the cluster correction over time bins, for every site and bin.

``total_s`` and ``peak_rss_gb`` cover all of them. Before them, the memory preflight
estimates the peak (``preflight_estimate_gb``; the extraction measured on a few images, the
rest by formula, :mod:`workbench.benchmarks.preflight`): ``preflight_error`` =
|estimated - measured| / measured peak. ``speedup_vs_brainscore_style``: a
Brain-Score-style pipeline on the same committed features, timed in the same run
(scikit-learn ``PLSRegression(25, scale=False)`` fitted per time bin, ``--folds`` folds,
per-neuroid Pearson r, no permutations: ``brainscore_style_s``; region by region, as
Brain-Score's one-benchmark-per-region design runs it, and as PLS must: its components mix
the targets) / our ``encoding`` + ``test`` time, which also gives every cell's p-value.
"""

import time
from pathlib import Path

from _cli import speed_parser


def options():
    """The command line (built before the heavy imports, so that --help is instant)."""
    return speed_parser(__doc__, recording="", workdir="/tmp/workbench-recording", model="cornet-s", n_stimuli=0,
                        permutations=10000, folds=10, batch_size=32, device="auto")


if __name__ == "__main__":
    options().parse_args()  # --help and a mistyped option answer at once, before the imports below

import numpy as np
import pandas as pd

from workbench.assembly import select_neuroids
from workbench.resources import high_water_bytes, reset_high_water
from workbench.benchmarks.macaque import PROJECTION, SKETCH, sketch


class Stages:
    """Times and peak memory of named stages."""

    def __init__(self):
        self.figures, self.peaks = {}, []

    def run(self, name, function, *args, **kwargs):
        reset_high_water()  # the next reading is this stage's own peak
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        start = time.perf_counter()
        value = function(*args, **kwargs)
        self.figures[f"{name}_s"] = time.perf_counter() - start
        self.figures[f"{name}_rss_gb"] = high_water_bytes() / 1e9
        self.peaks.append(self.figures[f"{name}_rss_gb"])
        print(f"    {self.figures[f'{name}_s']:.1f} s, peak {self.figures[f'{name}_rss_gb']:.2f} GB", flush=True)
        return value


def ensure_recording(args):
    if args.recording:
        return Path(args.recording)
    from workbench.simulators import simulate_macaque
    from workbench.simulators.macaque import MAJAJHONG2015

    path = Path(args.workdir) / "majajhong2015_sim.nc"
    if not path.exists():
        print(f"writing the MajajHong2015-size recording to {path} (once; not timed)", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        simulate_macaque(path, seed=0, progress=True, image_size=224, **MAJAJHONG2015)
    return path


def load(path, n_stimuli):
    import data_adapters
    from workbench.metrics import average_and_ceiling

    trials = data_adapters.load(path, lazy=True)
    if n_stimuli:
        keep = pd.unique(trials.stimulus_id.values)[:n_stimuli]
        trials = trials.isel(presentation=np.flatnonzero(np.isin(trials.stimulus_id.values, keep)))
    return (*average_and_ceiling(trials), trials.sizes["presentation"])


def extract_features(args, path, averaged, workdir):
    import shutil

    from workbench.benchmarks.macaque import BLANK_STEPS, IMAGE_STEPS
    from workbench.metrics.latency import data_onset_ms
    from workbench.models.extraction import extract
    from workbench.models.reductions import SparseRandomProjection
    from workbench.models.spec import ModelSpec
    import data_adapters
    from workbench.stimuli import from_image_files

    spec = ModelSpec.from_dict({"name": args.model, "zoo": args.model, "train": False})
    model = spec.build(workdir / "cache")
    table = data_adapters.load_stimulus_set(path.with_name(path.stem + "_stimuli.csv"))
    table = table[table.stimulus_id.isin(averaged.stimulus_id.values)]
    stimuli = from_image_files(table, preprocessing=spec.preprocessing(model), lazy=True)
    onset_ms, _ = data_onset_ms(averaged.isel(neuroid=np.flatnonzero(averaged.region.values == "V4")))
    protocol = spec.protocol(model, IMAGE_STEPS, BLANK_STEPS, onset_ms=onset_ms)
    store = workdir / "features.zarr"
    shutil.rmtree(store, ignore_errors=True)
    features = extract(model, stimuli, layers=spec.layers_of(model), protocol=protocol, batch_size=args.batch_size,
                       device=args.device, progress=True,
                       reduction=SparseRandomProjection(PROJECTION, seed=0, keep_small=True),
                       store=store, convention=spec.convention_of(model))
    return features.load(), spec.preprocessing(model).describe()


def preflight(args, path, workdir):
    """The estimated peak before any work: the load by formula, the extraction measured on a
    few images, the fits and the test by formula (``workbench.benchmarks.preflight``)."""
    import xarray as xr

    import data_adapters
    from workbench.benchmarks.macaque import BLANK_STEPS, IMAGE_STEPS
    from workbench.benchmarks.preflight import (MemoryEstimate, encoding_bytes, heldout_test_bytes, mapping_bytes,
                                                recording_bytes)
    from workbench.models.memory import probe_extraction
    from workbench.resources import rss_bytes
    from workbench.models.reductions import SparseRandomProjection
    from workbench.models.spec import ModelSpec
    from workbench.stimuli import from_image_files

    with xr.open_dataset(path, engine="netcdf4") as header:  # sizes only
        sizes = dict(header["data"].sizes)
        n_stimuli = len(pd.unique(header["stimulus_id"].values))
        region = header["region"].values.astype(str)
    n_stimuli = min(n_stimuli, args.n_stimuli) if args.n_stimuli else n_stimuli
    n_sites, n_bins = sizes["neuroid"], sizes["time_bin"]
    spec = ModelSpec.from_dict({"name": args.model, "zoo": args.model, "train": False})
    model = spec.build(workdir / "cache")
    table = data_adapters.load_stimulus_set(path.with_name(path.stem + "_stimuli.csv")).iloc[:args.batch_size]
    probe_set = from_image_files(table, preprocessing=spec.preprocessing(model), lazy=True)
    protocol = spec.protocol(model, IMAGE_STEPS, BLANK_STEPS, onset_ms=50.0)
    layers = spec.layers_of(model)
    probe = probe_extraction(model, probe_set, layers, protocol, SparseRandomProjection(PROJECTION, seed=0, keep_small=True),
                             spec.convention_of(model), device=args.device, batch_size=args.batch_size)
    fixed, per_image = probe or (0.0, 0.0)
    averaged = n_stimuli * n_sites * n_bins * 4 * 2  # the average and its ceiling, held throughout
    features = n_stimuli * PROJECTION * len(layers) * protocol.n_steps * 4
    largest = max(int((region == r).sum()) for r in set(region))
    steps = min(protocol.n_steps, n_bins)
    estimate = MemoryEstimate(rss_bytes(), measured=probe is not None)
    estimate.stages["load"] = recording_bytes(n_stimuli, n_sites * n_bins)
    estimate.stages["extract"] = averaged + fixed + per_image * args.batch_size + features
    # (the mapping scores its choice on the sketch here; the encoding stage refits it on all components)
    # regions committed to one layer are scored in one fit: all sites at worst
    estimate.stages["mapping"] = averaged + features + mapping_bytes(n_stimuli, steps, len(layers), SKETCH, SKETCH,
                                                                     n_sites, n_sites)
    estimate.stages["encoding"] = averaged + features + encoding_bytes(n_stimuli // 2, steps, PROJECTION, n_sites,
                                                                       args.folds)
    estimate.stages["test"] = averaged + features + heldout_test_bytes(n_stimuli // 4, largest * steps, largest,
                                                                       args.permutations)
    del model
    return estimate


def brainscore_style(features, neural, n_folds, seed=0):
    """PLS(25) per time bin, ``n_folds`` folds over stimuli, per-neuroid Pearson r (the
    Brain-Score recipe: sklearn's PLSRegression, scale=False), no ceiling, no permutations."""
    from sklearn.cross_decomposition import PLSRegression
    from workbench.assembly import align, align_time_bins
    from workbench.metrics import pearson_columns, stimulus_folds

    features, neural = align(features, neural)
    features, neural = align_time_bins(features, neural)
    X = features.values.transpose(2, 0, 1)  # (T, S, P)
    Y = neural.values.transpose(2, 0, 1)
    r = np.zeros((X.shape[0], Y.shape[2]))
    folds = stimulus_folds(X.shape[1], n_folds, seed)
    for t in range(X.shape[0]):
        if not np.ptp(X[t], axis=0).any():  # a blank bin (the features are constant): nothing to fit
            r[t] = np.nan
            continue
        for train, test in folds:
            pls = PLSRegression(n_components=25, scale=False).fit(X[t, train], Y[t, train])
            r[t] += pearson_columns(pls.predict(X[t, test]), Y[t, test]) / len(folds)
    return r


def main():
    args = options().parse_args()
    from workbench.metrics import map_layers_to_regions, score_regions
    from workbench.stats import heldout_permutation_test
    from workbench.storage import write_json

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = ensure_recording(args)
    start = time.perf_counter()
    estimate = preflight(args, path, workdir)
    preflight_s = time.perf_counter() - start
    print(estimate.describe(), flush=True)
    stages = Stages()
    averaged, ceiling, n_trials = stages.run("load", load, path, args.n_stimuli)
    features, model_input = stages.run("extract", extract_features, args, path, averaged, workdir)
    mapping = stages.run("mapping", map_layers_to_regions, sketch(features), averaged, seed=0, ceiling=ceiling)

    def encode():
        # one fit per committed layer (regions on the same layer share it), as the mapping's
        # own evaluation does
        scored = score_regions(features, averaged, mapping.layer_for_region, stimuli=mapping.evaluation_stimuli,
                               n_splits=args.folds, seed=0, ceiling=ceiling)
        held_out = averaged.isel(presentation=np.flatnonzero(np.isin(averaged.stimulus_id.values,
                                                                      mapping.evaluation_stimuli)))
        return {region: (result, select_neuroids(features, layer=mapping.layer_for_region[region]),
                         held_out.isel(neuroid=np.flatnonzero(held_out.region.values == region)))
                for region, result in scored.items()}

    encoded = stages.run("encoding", encode)

    def test():
        return {region: heldout_permutation_test(result, n_permutations=args.permutations, seed=0, clusters=True)
                for region, (result, _, _) in encoded.items()}

    tests = stages.run("test", test)
    start = time.perf_counter()
    r_pls = {region: brainscore_style(chosen, held_out, args.folds) for region, (_, chosen, held_out) in encoded.items()}
    pls_s = time.perf_counter() - start

    figures = {"model": args.model, "model_input": model_input, "recording": str(path), "n_trials": n_trials,
               "n_stimuli": int(averaged.sizes["presentation"]), "n_sites": int(averaged.sizes["neuroid"]),
               "n_time_bins": int(averaged.sizes["time_bin"]), "n_features": int(features.sizes["neuroid"]),
               "permutations": args.permutations, "folds": args.folds,
               **stages.figures,
               "total_s": sum(v for k, v in stages.figures.items() if k.endswith("_s")),
               "peak_rss_gb": max(stages.peaks),
               "preflight_s": preflight_s, "preflight_estimate_gb": estimate.peak / 1e9,
               "preflight_stages_gb": {name: (estimate.baseline + value) / 1e9 for name, value in estimate.stages.items()},
               "preflight_error": abs(estimate.peak / 1e9 - max(stages.peaks)) / max(stages.peaks),
               "brainscore_style_s": pls_s,
               "speedup_vs_brainscore_style": pls_s / (stages.figures["encoding_s"] + stages.figures["test_s"])}
    for region, (result, _, _) in encoded.items():
        test_result = tests[region]
        figures[f"{region}_layer"] = mapping.layer_for_region[region]
        figures[f"{region}_median_r"] = float(np.nanmedian(result["r"].values))
        figures[f"{region}_median_r_pls"] = float(np.nanmedian(r_pls[region]))
        figures[f"{region}_median_normalized"] = float(np.nanmedian(result["normalized"].values))
        figures[f"{region}_cells_p_fwe_05"] = int((test_result.cells.p_fwe.values < 0.05).sum())
        figures[f"{region}_cells"] = int(test_result.cells.p_fwe.size)
    for key, value in figures.items():
        print(f"{key:>32}: {value:.4g}" if isinstance(value, float) else f"{key:>32}: {value}")
    goals = {"total_s": ("<=", 900), "peak_rss_gb": ("<=", 6), "speedup_vs_brainscore_style": (">=", 20),
             "preflight_error": ("<=", 0.25)}
    for key, (sense, goal) in goals.items():
        met = figures[key] <= goal if sense == "<=" else figures[key] >= goal
        print(f"{key} {figures[key]:.3g} {'meets' if met else 'MISSES'} the goal ({sense} {goal})")
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
