"""Simulated macaque array recordings written in BrainIO format, with known ground truth.

The hidden "brain" is a trained recurrent network: by default the zoo's gruCNN (Hartmann et
al.; three ConvGRU layers of 8, 16 and 32 channels, trained 4 epochs on noisy digit
sequences with its recipe, seed ``brain_seed``) shown each image for 100 ms then a grey
screen at its 32 px input. Regions form a hierarchy: V4 sites read the middle layer, IT
sites the last, with V4 answering 20 ms earlier; after the image goes off the sites follow
the network's own gated states, so responses persist and decay as the network's do. (The
zoo's BL was tried first: trained for 4 steps, its last layer's activity grows without
bound over 25, which no recording does; gruCNN's gates keep its states bounded.) This network is
the positive control of every macaque benchmark: scored as a model
(:attr:`MacaqueSimulation.brain` is its model spec, ``"generating network"``) it must rank
first and map V4 and IT to its true layers.

Each site of a region reads a random linear combination of one layer's units; its firing
rate per 10 ms bin is

.. math:: \\lambda = b + g\\,\\mathrm{softplus}(z_{t - \\ell} + c),

with ``z`` the site's standardised drive, ``\\ell`` the region's latency, ``b`` the
baseline, ``g`` a per-site gain (log-uniform, so sites span a range of reliabilities) and
``c`` = :data:`DRIVE_OFFSET` the operating point on the rate function. With ``c = 1`` sites
fire above threshold for most images, where softplus is nearly linear: a linear readout of a
Gaussian drive explains 97 % of the rate variance (92 % at ``c = 0``). The benchmarks map
models to sites linearly, so the planted truth then lies almost inside their model class,
which is what lets the generating network reach the ceiling (the positive control).
Spike counts are Poisson(λ) per trial and bin. Before the latency the network is at rest
(state zero), so early bins carry no stimulus information (true reliability 0).

For ``n`` repetitions the true reliability of a site's trial-averaged response in one
bin (the correlation across stimuli between two independent n-trial averages, which the
split-half Spearman-Brown ceiling estimates) is

.. math:: \\rho = \\frac{\\mathrm{Var}_s(\\lambda)}{\\mathrm{Var}_s(\\lambda) + \\mathrm{E}_s(\\lambda) / n}.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
import pandas as pd
import xarray as xr

from workbench import stimuli as stimulus_sets
from workbench.assembly import DIMS, to_netcdf
from workbench.errors import WorkbenchError, check_count
from workbench.models import PresentationProtocol, extract

# (region, layer of the hidden network, latency in ms): V4 reads the middle layer and answers
# before IT, which reads the last.
DEFAULT_REGIONS = (("V4", "layers.1", 50.0), ("IT", "layers.2", 70.0))
# Sites read mixtures of this many leading principal components of their layer (_region_drives).
POPULATION_RANK = 16
# Where a site's standardised drive sits on its softplus rate function (module docstring).
DRIVE_OFFSET = 1.0
# The generating network as a model spec (workbench.models.ModelSpec): the zoo's gruCNN trained
# with its recipe. ``seed`` is set from ``brain_seed``.
DEFAULT_BRAIN = {"name": "generating network", "zoo": "grucnn", "train": True, "epochs": 4,
                 "config": {"channels": [8, 16, 32]}, "input_size": 32}


@dataclass
class MacaqueSimulation:
    """What :func:`simulate_macaque` wrote and the truth it planted.

    Attributes
    ----------
    path : pathlib.Path
        The BrainIO netCDF file (trial-level spike counts).
    stimuli : workbench.stimuli.StimulusSet
        The images shown, in the file's stimulus order.
    rates : xarray.DataArray
        True expected counts per bin, ``(presentation, neuroid, time_bin)``, one
        presentation per stimulus.
    reliability : xarray.DataArray
        True reliability of the ``n_repetitions``-trial average, ``(neuroid, time_bin)``.
    site_reliability : xarray.DataArray
        Per-site reliability ``(neuroid,)``: the mean of ``reliability`` over the site's
        response window (bins starting from its region's latency for as long as the image
        is shown), given by ``response_window`` ``(neuroid, time_bin)`` (bool).
    brain : dict
        The hidden network as a model spec (``ModelSpec.from_dict(brain)`` builds it, and a
        report config can score it: the positive control); :meth:`generating_network`
        returns it built.
    protocol : workbench.models.PresentationProtocol
        How the hidden network was shown the stimuli (onset at 0 ms).
    regions : tuple
        ``(region, layer, latency_ms)`` triples.
    n_repetitions, seed : int
    """

    path: Path
    stimuli: object
    rates: xr.DataArray
    reliability: xr.DataArray
    site_reliability: xr.DataArray
    response_window: xr.DataArray
    brain: dict
    protocol: PresentationProtocol
    regions: tuple
    n_repetitions: int
    seed: int

    def generating_network(self):
        """The hidden network itself (``torch.nn.Module``, eval mode)."""
        return build_brain(self.brain)


def build_brain(brain, cache_dir=None):
    """The network a brain spec (a report model spec) names, built as a report builds its
    models: trained with its zoo recipe once (kept in ``cache_dir``, a report's
    ``cache/models``, or once per process) or at random init (``train: false``)."""
    from workbench.models.spec import ModelSpec

    return ModelSpec.from_dict({"name": "brain", **brain}).build(models_dir=cache_dir)


def simulate_macaque(path, n_stimuli=200, sites_per_region=16, n_repetitions=20, seed=0,
                     brain_seed=0, time_window=(-100, 300), bin_ms=10, regions=DEFAULT_REGIONS,
                     baseline=0.1, gain_range=(0.2, 2.0), brain=None, progress=False, stimuli="digits",
                     image_size=None, model_cache=None, drive_offset=DRIVE_OFFSET):
    """Simulate a trial-level macaque recording and write it as BrainIO netCDF.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.nc`` file (written atomically).
    n_stimuli : int
        Number of digits shown (a seeded subset of scikit-learn's 1,797).
    sites_per_region : int or sequence of int
        Sites of each region, or one count per region in ``regions``' order (MajajHong2015:
        88 V4 and 168 IT sites, :data:`MAJAJHONG2015`).
    n_repetitions : int
        Trials per stimulus (>= 2; even numbers make split halves equal).
    seed : int
        Seeds stimulus choice, readout weights, gains and spike counts.
    brain_seed : int
        Seeds the hidden network's weights and training (the generating network, whose
        features should explain the data best).
    time_window : (float, float)
        First bin start and last bin end, ms from stimulus onset.
    bin_ms : float
        Bin width (10 ms, as the MajajHong2015 temporal release).
    regions : sequence of (str, str, float)
        Region name, hidden-network layer it reads (a layer name, or an int ``k`` for
        ``layers.k``), latency in ms.
    baseline : float
        Baseline expected count per bin (0.1 per 10 ms = 10 spikes/s).
    gain_range : (float, float)
        Range of the log-uniform per-site gain (expected counts per bin); the default
        gives trial-average reliabilities of about 0.4-0.95, like curated array sites.
    brain : dict, optional
        The hidden network as a model spec (:data:`DEFAULT_BRAIN`, the zoo's trained BL, by
        default; e.g. ``{"zoo": "bl", "train": False, "config": {"channels": [8, 16]}}`` for
        an untrained one). It sees the stimuli at ``input_size`` px greyscale.
    stimuli : {"digits", "objects", "characters"}
        scikit-learn's digits, the HvM-style rendered objects
        (:func:`workbench.object_stimuli.objects`, RGB on natural backgrounds) or letters
        rendered in matplotlib's fonts (:func:`workbench.character_stimuli.characters`); the
        hidden network sees them at its input size, greyscale, a model at its own declared
        input.
    drive_offset : float
        ``c`` in the rate equation (module docstring): 0 puts the mean drive at the
        softplus knee, larger values make the rates more linear in the drive.
    model_cache : path, optional
        Where the trained brain is kept (a report's ``cache/models``: the same entry as the
        generating network scored as a model); default: trained once per process.
    image_size : int, optional
        Also write every stimulus as an RGB PNG of this size into ``<stem>_images/`` (the
        stimulus CSV names them in its ``filename`` column), as a real stimulus set on disk;
        the brain's ``input_size`` (32 px by default) is the size it saw them at. None: no
        PNGs, and the CSV names no files (its ``id`` names the embedded stimuli).

    Returns
    -------
    MacaqueSimulation
    """
    # checked before the brain is trained (a minute), not after
    check_count("n_stimuli", n_stimuli, 1)
    check_count("n_repetitions", n_repetitions, 2, "for a reliability")
    check_count("seed", seed, 0)
    check_count("brain_seed", brain_seed, 0)
    if image_size is not None:  # None: no PNGs
        check_count("image_size", image_size, 1, "(pixels; None writes no PNGs)")
    _check_embedded_set(stimuli)
    try:
        start_ms, end_ms = (float(t) for t in time_window)
    except (TypeError, ValueError):
        raise WorkbenchError(f"time_window must be (start_ms, end_ms), got {time_window!r}") from None
    if not end_ms - start_ms >= bin_ms > 0:
        raise WorkbenchError(f"time_window {time_window} must span at least one {bin_ms} ms bin")
    counts = _site_counts(sites_per_region, regions)
    regions = tuple((str(region), f"layers.{layer}" if isinstance(layer, (int, np.integer)) else str(layer),
                     float(latency)) for region, layer, latency in regions)
    rng_weights, rng_gains, rng_counts = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    brain = {**DEFAULT_BRAIN, **(brain or {}), "seed": int(brain_seed)}
    brain.setdefault("name", "generating network")
    network = build_brain(brain, model_cache)
    stimuli = embedded_stimuli(stimuli, n_stimuli, seed,
                               preprocessing=stimulus_sets.Preprocessing(size=int(brain.get("input_size", 32))))
    protocol = PresentationProtocol(image_steps=10, blank_steps=15, step_ms=bin_ms)
    drives = _region_drives(network, stimuli, protocol, regions, counts, rng_weights, progress)

    bin_start = np.arange(start_ms, end_ms - bin_ms + 1e-9, bin_ms, dtype=np.float64)
    rates, window, region_of_site, site_ids = [], [], [], []
    for (region, layer, latency), sites_per_region, drive in zip(regions, counts, drives):
        rest = np.zeros(sites_per_region)  # drive of the network at rest (state 0)
        mean = drive.mean(axis=(0, 2))
        std = drive.std(axis=(0, 2))
        z = (drive - mean[None, :, None]) / std[None, :, None]
        z_rest = (rest - mean) / std
        # Drive in each recording bin: the network step that bin falls in, after latency.
        step = np.floor((bin_start - latency) / bin_ms).astype(int)
        z_bins = np.where(
            (step >= 0)[None, None, :],
            z[:, :, np.clip(step, 0, protocol.n_steps - 1)],
            z_rest[None, :, None],
        )
        gain = np.exp(rng_gains.uniform(*np.log(gain_range), size=sites_per_region))
        rates.append(baseline + gain[None, :, None] * np.logaddexp(0.0, z_bins + drive_offset))
        window.append(np.tile(
            (bin_start >= latency) & (bin_start < latency + protocol.image_steps * bin_ms),
            (sites_per_region, 1),
        ))
        region_of_site += [region] * sites_per_region
        site_ids += [f"{region}_{i:03d}" for i in range(sites_per_region)]
    rates = np.concatenate(rates, axis=1)  # (S, N, T)

    n_stim = len(stimuli)
    time_coords = {
        "time_bin_start": ("time_bin", bin_start),
        "time_bin_end": ("time_bin", bin_start + bin_ms),
    }
    neuroid_coords = {
        "neuroid_id": ("neuroid", np.array(site_ids, dtype=object)),
        "region": ("neuroid", np.array(region_of_site, dtype=object)),
        "animal": ("neuroid", np.array(["sim"] * len(site_ids), dtype=object)),
    }
    metadata = _hvm_metadata(stimuli, rng_weights)
    trial_coords = {
        c: ("presentation", np.tile(v, n_repetitions)) for c, v in metadata.items()
    }
    trial_coords["repetition"] = ("presentation", np.repeat(np.arange(n_repetitions), n_stim))
    parameters = dict(
        n_stimuli=n_stimuli, sites_per_region=list(counts), n_repetitions=n_repetitions,
        seed=seed, brain_seed=brain_seed, time_window=list(time_window), bin_ms=bin_ms,
        regions=[list(r) for r in regions], baseline=baseline, gain_range=list(gain_range),
        drive_offset=float(drive_offset),
        brain=json.dumps(brain, sort_keys=True), stimuli=stimuli.attrs["embedded"]["name"],
    )
    trials = xr.DataArray(
        _poisson_trials(rates, n_repetitions, rng_counts),
        dims=DIMS,
        coords={**trial_coords, **neuroid_coords, **time_coords},
        attrs={
            "identifier": f"sim.macaque-{stimuli.attrs['embedded']['name']}",
            "embedded_stimuli": json.dumps(stimuli.attrs["embedded"]),
            "source": "data_adapters.simulate_macaque",
            "simulator_parameters": parameters,
            "simulated": True,
            "units": "spike counts per bin",
        },
    )
    to_netcdf(trials, path)  # streams the dask blocks: memory stays at one repetition
    _write_stimulus_set(Path(path), metadata, stimuli.attrs["embedded"], image_size)

    stimulus_coords = {c: ("presentation", v) for c, v in metadata.items()}
    rates_da = xr.DataArray(
        rates, dims=DIMS, coords={**stimulus_coords, **neuroid_coords, **time_coords},
        attrs={"units": "expected spike counts per bin", "simulated": True},
    )
    signal_var = rates.var(axis=0)
    noise_var = rates.mean(axis=0) / n_repetitions  # Poisson: variance = mean, per trial
    with np.errstate(invalid="ignore", divide="ignore"):
        reliability = signal_var / (signal_var + noise_var)
    # Constant rates (e.g. before the latency) carry no stimulus information: exactly 0,
    # not the round-off left by var() of identical values.
    reliability[np.ptp(rates, axis=0) == 0] = 0.0
    reliability_da = xr.DataArray(
        reliability, dims=("neuroid", "time_bin"), coords={**neuroid_coords, **time_coords},
        attrs={"definition": "Var_s(rate) / (Var_s(rate) + E_s(rate) / n_repetitions)"},
    )
    window = xr.DataArray(
        np.concatenate(window), dims=("neuroid", "time_bin"), coords={**neuroid_coords, **time_coords}
    )
    site_reliability = reliability_da.where(window).mean("time_bin")
    site_reliability.attrs["definition"] = "mean reliability over the site's response window"
    return MacaqueSimulation(
        path=Path(path), stimuli=stimuli, rates=rates_da, reliability=reliability_da,
        site_reliability=site_reliability, response_window=window,
        brain=brain, protocol=protocol, regions=tuple(tuple(r) for r in regions),
        n_repetitions=n_repetitions, seed=seed,
    )


# HvM's variation levels and their shares of the 5,760 images (V0: 640, V3 and V6: 2,560 each).
HVM_VARIATIONS = ("V0", "V3", "V6")
HVM_VARIATION_SHARES = (640 / 5760, 2560 / 5760, 2560 / 5760)


# The size of MajajHong2015's temporal release (Majaj et al. 2015, J Neurosci): 3,200 HvM
# images (V3 and V6 variations), 88 V4 and 168 IT sites, ~50 repetitions, 10 ms bins.
MAJAJHONG2015 = dict(n_stimuli=3200, sites_per_region=(88, 168), n_repetitions=50, stimuli="objects",
                     time_window=(-100, 300), bin_ms=10)


def _region_drives(brain, stimuli, protocol, regions, counts, rng, progress, batch=256,
                   population_rank=POPULATION_RANK):
    """Each region's linear drive ``(S, sites, steps)``: its layer's states through random
    weights (``rng``, drawn in region order). The states are read ``batch`` stimuli at a
    time, so the hidden network's activations (3.9 GB for 3,200 objects at 32 px) are never
    held at once.

    With ``population_rank`` = K, a site reads a random mixture of the layer's K leading
    principal components (each scaled to unit variance, estimated on the first batch, over
    stimuli and steps): recorded populations are low-dimensional, and a site then depends on
    what the layer mostly encodes rather than on a dense mixture of thousands of units that
    no finite set of images could pin down. ``None`` reads a dense mixture of all units.
    """
    layers = {layer: layer for layer in sorted({layer for _, layer, _ in regions})}
    weights, parts = None, [[] for _ in regions]
    starts = range(0, len(stimuli), batch)
    for start in (tqdm(starts, desc="hidden network", unit="batch") if progress else starts):
        states = extract(brain, stimuli.subset(np.arange(start, min(start + batch, len(stimuli)))),
                         layers=list(layers.values()), protocol=protocol, progress=False)
        units = [states.sel(neuroid=states.layer == layers[layer]).values for _, layer, _ in regions]  # (s, U, steps)
        if weights is None:
            weights = [_site_weights(u, n, rng, population_rank) for u, n in zip(units, counts)]
        for part, u, w in zip(parts, units, weights):
            part.append(np.matmul(u.transpose(0, 2, 1), w).transpose(0, 2, 1))  # BLAS, not einsum's loop
    return [np.concatenate(part) for part in parts]


def _site_weights(units, n_sites, rng, population_rank):
    """``(U, n_sites)`` readout weights of one region's sites from a batch of its layer's
    states ``units`` ``(s, U, steps)``: dense Gaussian, or a mixture of the leading
    ``population_rank`` principal components (randomised range finder with ``rng``, so the
    weights are seeded)."""
    n_units = units.shape[1]
    if population_rank is None:
        return rng.standard_normal((n_units, n_sites)) / np.sqrt(n_units)
    rows = units.transpose(0, 2, 1).reshape(-1, n_units).astype(np.float64)
    rows -= rows.mean(axis=0)
    rank = min(int(population_rank), *rows.shape)
    sketch = rows @ rng.standard_normal((n_units, rank + 10))
    for _ in range(2):  # power iterations sharpen the leading subspace
        sketch, _ = np.linalg.qr(sketch)
        sketch = rows @ (rows.T @ sketch)
    basis, _ = np.linalg.qr(sketch)
    _, singular, vt = np.linalg.svd(basis.T @ rows, full_matrices=False)
    components = vt[:rank].T * (np.sqrt(len(rows)) / np.maximum(singular[:rank], 1e-12))  # unit variance each
    return components @ (rng.standard_normal((rank, n_sites)) / np.sqrt(rank))


EMBEDDED_SETS = ("digits", "objects", "characters")
#: pixels at which each embedded set is rendered when no size is asked for (digits: their
#: native 8 px); the simulated brain sees them at its own input size
NATIVE_IMAGE_SIZE = {"digits": 8, "objects": 32, "characters": 32}


def _check_embedded_set(name):
    if name not in EMBEDDED_SETS:
        raise WorkbenchError(f"stimuli must be one of {', '.join(map(repr, EMBEDDED_SETS))}, got {name!r}")


def _site_counts(sites_per_region, regions):
    """One site count per region, from an int (every region) or a sequence (in order)."""
    counts = ([sites_per_region] * len(regions) if np.ndim(sites_per_region) == 0
              else list(sites_per_region))
    if len(counts) != len(regions) or not all(isinstance(c, (int, np.integer)) and c >= 1 for c in counts):
        names = ", ".join(str(r[0]) for r in regions)
        raise WorkbenchError(f"sites_per_region must be an int >= 1 or one such count per region ({names}), "
                             f"got {sites_per_region!r}")
    return tuple(int(c) for c in counts)


def embedded_stimuli(name, n_stimuli, seed, preprocessing=None, ids=None):
    """The embedded stimuli of a simulated recording, rendered at ``preprocessing``
    (default: 8 px digits, their native size; 32 px greyscale objects and characters):
    ``"digits"`` (a seeded subset of scikit-learn's), ``"objects"`` (HvM-style, enough per
    object for ``n_stimuli``, then a seeded subset) or ``"characters"`` (26 letters in 8
    fonts at 3 variation levels, enough per glyph, then a seeded subset); ``ids`` renders
    only those (the set's order). ``attrs["embedded"]`` records how to render them again."""
    from workbench.object_stimuli import N_OBJECTS, CATEGORIES, object_ids, objects

    _check_embedded_set(name)
    if name != "digits":  # digits() checks its own n_stimuli, which it does not need with ids
        check_count("n_stimuli", n_stimuli, 1)  # how many the recording showed
    if name == "digits":
        preprocessing = preprocessing or stimulus_sets.Preprocessing(size=NATIVE_IMAGE_SIZE[name])
        shown = stimulus_sets.digits(n_stimuli, seed=seed, preprocessing=preprocessing, ids=ids)
        embedded = {"name": "digits", "n_stimuli": n_stimuli, "seed": seed}
    elif name == "objects":
        preprocessing = preprocessing or stimulus_sets.Preprocessing(size=NATIVE_IMAGE_SIZE[name])
        n_per_object = -(-n_stimuli // (len(CATEGORIES) * N_OBJECTS * 3))
        if ids is None:  # a seeded subset of the full set, and only it rendered (the same images)
            every = object_ids(n_per_object)
            keep = np.sort(np.random.default_rng(seed).choice(len(every), n_stimuli, replace=False))
            ids = [every[i] for i in keep]
        shown = objects(n_per_object=n_per_object, seed=seed, preprocessing=preprocessing, ids=ids)
        shown.metadata["label"] = pd.Categorical(shown.metadata["category_name"], categories=CATEGORIES).codes
        shown.metadata["variation"] = "V" + shown.metadata["variation"].astype(str)
        embedded = {"name": "objects", "n_stimuli": n_stimuli, "seed": seed}
    else:
        from workbench.character_stimuli import FONTS, LETTERS, VARIATION_RANGES, characters

        preprocessing = preprocessing or stimulus_sets.Preprocessing(size=NATIVE_IMAGE_SIZE[name])
        n_per_glyph = -(-n_stimuli // (len(LETTERS) * len(FONTS) * len(VARIATION_RANGES)))
        shown = characters(n_per_glyph=n_per_glyph, seed=seed, preprocessing=preprocessing, ids=ids)
        if ids is None:
            keep = np.sort(np.random.default_rng(seed).choice(len(shown), n_stimuli, replace=False))
            shown = shown.subset(keep)
        shown.metadata["variation"] = "V" + shown.metadata["variation"].astype(str)
        embedded = {"name": "characters", "n_stimuli": n_stimuli, "seed": seed}
    shown.attrs["embedded"] = embedded
    return shown


def _hvm_metadata(stimuli, rng):
    """Presentation coords with MajajHong2015's names.

    ``image_id`` = ``stimulus_id``; ``category_name`` the digit (``"3"``) and
    ``object_name`` its name (``digit_3``), as :func:`workbench.stimuli.digits` gives them;
    ``variation`` a seeded HvM level (``V0``, ``V3``, ``V6``) in HvM's proportions, so the
    public (V0+V3) / private (V6) split applies; rendered objects keep their own level.
    """
    frame = stimuli.metadata
    ids = stimuli.stimulus_ids.astype(object)
    if "variation" in frame:  # the rendered objects have their own levels
        variation = frame["variation"].to_numpy(dtype=object)
    else:
        variation = rng.choice(np.array(HVM_VARIATIONS, dtype=object), size=len(ids), p=HVM_VARIATION_SHARES)
    return {
        "stimulus_id": ids,
        "image_id": ids.copy(),
        "object_name": frame["object_name"].to_numpy(dtype=object),
        "category_name": frame["category_name"].to_numpy(dtype=object),
        "label": frame["label"].to_numpy(),
        "variation": variation,
    }


def _write_stimulus_set(path, metadata, embedded, image_size=None):
    """``<stem>_stimuli.csv`` beside the assembly, with HvM's column names, and, when
    ``image_size`` is given, the images as RGB PNGs in ``<stem>_images/`` with their
    ``filename`` column (without, the stimuli are the embedded set, named by ``id``)."""
    from workbench.storage import atomic_path

    folder = f"{path.stem}_images"
    frame = pd.DataFrame({"id": metadata["stimulus_id"], "obj": metadata["object_name"],
                          "category": metadata["category_name"], "var": metadata["variation"],
                          "label": metadata["label"]})
    if image_size:
        # without images the table names no files: a filename column of absent PNGs read as a
        # stimulus set on disk and failed only when a model was to be shown them
        frame["filename"] = [f"{folder}/{i}.png" for i in metadata["stimulus_id"]]
        _write_images(path.with_name(folder), embedded, image_size, metadata["stimulus_id"])
    with atomic_path(path.with_name(f"{path.stem}_stimuli.csv")) as tmp:
        frame.to_csv(tmp, index=False)


def _poisson_trials(rates, n_repetitions, rng):
    """Spike counts ``(n_repetitions * n_stimuli, n_sites, n_bins)`` float32, repetition-major.

    A dask array with one block per repetition, each drawn from its own child seed, so the
    counts are the same however the blocks are computed and a file of any size is written
    one repetition at a time.
    """
    import dask
    import dask.array

    seeds = rng.bit_generator.seed_seq.spawn(n_repetitions)

    def draw(seed):
        return np.random.default_rng(seed).poisson(rates).astype(np.float32)

    blocks = [dask.array.from_delayed(dask.delayed(draw)(seed), shape=rates.shape, dtype=np.float32)
              for seed in seeds]
    return dask.array.concatenate(blocks, axis=0)


def _write_images(folder, embedded, size, ids, batch=128):
    """Each stimulus as an 8-bit RGB PNG (the embedded set rendered in [0, 1] at ``size``)."""
    from .images import write_png

    rgb = stimulus_sets.Preprocessing(size=size, channels="rgb", normalization="imagenet")
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(ids)
    for start in range(0, len(ids), batch):  # rendered a batch at a time: 3,200 at 224 px are 1.9 GB
        raw = embedded_stimuli(embedded["name"], embedded["n_stimuli"], embedded["seed"], preprocessing=rgb,
                               ids=ids[start:start + batch])
        for sid, image in zip(raw.stimulus_ids, rgb.unit_range(raw.images)):
            write_png(folder / f"{sid}.png", image)
