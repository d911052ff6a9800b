"""Named benchmarks: a dataset, a metric and a presentation protocol.

Names read ``DATASET[.REGION].METRIC``:

- ``sim-macaque.{V4,IT}.shared-time-ridge`` / ``macaque.REGION.shared-time-ridge`` (``path=``
  a BrainIO netCDF): layer-to-region mapping on half the images, one ridge map shared over
  time bins scored on the other half; value = median r over sites (mean over usable
  bins), ``normalized`` = r^2 / ceiling, held-out permutation p-value, bootstrap CI;
- ``sim-blur-fmri.{V1,V2,V4,LOC}.denoising`` / ``blur-fmri.ROI.denoising`` (``path=`` a
  BData .h5): the model's de-noising index (late vs early step, 25 % blur) at the layer of
  matching relative depth, next to the brain's (late vs early bin) in that ROI, and the
  participation ratio of the blurred-image responses early and late (model and brain);
- ``sim-human.rt-uncertainty`` / ``human.rt-uncertainty`` (``path=`` psiTurk sqlite or CSV):
  held-out Spearman rho of entropy reaction times with human uncertainty;
- ``replication.{lindsay,spoerer,hartmann,crcn,nayebi}``: model-free; the seed papers'
  claims (:mod:`workbench.replications`).

Real-file variants show models their stimuli by ``stimulus_id``: from the images listed in
a stimulus-set CSV given as ``stimuli=`` (columns ``stimulus_id``/``image_id`` and
``filename``), or, without one, scikit-learn digits named ``digit_0042`` (as the
simulators write).
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import WorkbenchError

MACAQUE_REGIONS = ("V4", "IT")
FMRI_ROIS = ("V1", "V2", "V4", "LOC")
BLUR_LEVEL = 25.0
IMAGE_SIZE = 32
PROJECTION = 256
RT_STEPS = 8
DENOISING_STEPS = 4


@dataclass(frozen=True)
class BenchmarkDefinition:
    name: str
    family: str  # macaque | fmri | human | replication
    region: str = None
    simulated: bool = True
    needs_path: bool = False
    model_free: bool = False
    primary: str = "value"  # the leaderboard column


def simulated_benchmarks():
    """Every simulated benchmark and replication name (the demo runs them all)."""
    from ..replications import REPLICATIONS

    return ([f"sim-macaque.{r}.shared-time-ridge" for r in MACAQUE_REGIONS]
            + [f"sim-blur-fmri.{r}.denoising" for r in FMRI_ROIS]
            + ["sim-human.rt-uncertainty"] + [f"replication.{n}" for n in REPLICATIONS])


def valid_names():
    """Simulated names plus the real-file patterns (for error messages)."""
    return simulated_benchmarks() + ["macaque.REGION.shared-time-ridge (path=)", "blur-fmri.ROI.denoising (path=)",
                                     "human.rt-uncertainty (path=)"]


def parse_benchmark(name):
    """A :class:`BenchmarkDefinition` from a name; unknown names list the valid ones."""
    from ..replications import REPLICATIONS

    if not isinstance(name, str):
        raise WorkbenchError(f"benchmark name must be a string, got {name!r}")
    match = re.fullmatch(r"(sim-)?macaque\.([A-Za-z0-9_-]+)\.shared-time-ridge", name)
    if match:
        simulated = bool(match.group(1))
        if simulated and match.group(2) not in MACAQUE_REGIONS:
            raise WorkbenchError(f"unknown region {match.group(2)!r} in {name!r}; simulated regions: "
                                 f"{', '.join(MACAQUE_REGIONS)}")
        return BenchmarkDefinition(name, "macaque", match.group(2), simulated, not simulated, primary="normalized")
    match = re.fullmatch(r"(sim-)?blur-fmri\.([A-Za-z0-9_-]+)\.denoising", name)
    if match:
        simulated = bool(match.group(1))
        if simulated and match.group(2) not in FMRI_ROIS:
            raise WorkbenchError(f"unknown ROI {match.group(2)!r} in {name!r}; simulated ROIs: {', '.join(FMRI_ROIS)}")
        return BenchmarkDefinition(name, "fmri", match.group(2), simulated, not simulated)
    if name in ("sim-human.rt-uncertainty", "human.rt-uncertainty"):
        simulated = name.startswith("sim-")
        return BenchmarkDefinition(name, "human", None, simulated, not simulated)
    match = re.fullmatch(r"replication\.(\w+)", name)
    if match and match.group(1) in REPLICATIONS:
        return BenchmarkDefinition(name, "replication", None, True, False, model_free=True)
    raise WorkbenchError(f"unknown benchmark {name!r}; valid names: {', '.join(valid_names())}")


# ------------------------------------------------------------------ data (cached, atomic)


def _image_set(spec):
    """The images a benchmark can show (its ``stimuli=`` CSV, else the digits) at the zoo's
    resolution, and where they come from (for messages)."""
    from ..stimuli import digits, from_image_files

    if spec and spec.get("stimuli"):
        return from_image_files(spec["stimuli"], size=IMAGE_SIZE), spec["stimuli"]
    return digits(size=IMAGE_SIZE), "scikit-learn digits (pass stimuli= a stimulus-set CSV)"


def _shown_stimuli(stimulus_ids, source, spec=None, images=None):
    """The images of ``stimulus_ids`` at the zoo's resolution, in that order."""
    shown, where = images or _image_set(spec)
    index = pd.Index(shown.stimulus_ids).get_indexer(list(stimulus_ids))
    if (index < 0).any():
        missing = np.asarray(stimulus_ids)[index < 0][0]
        raise WorkbenchError(f"{source}: stimulus {missing!r} has no image in {where}")
    return shown.subset(index)


def macaque_recording(spec, settings, data_dir):
    import data_adapters

    if spec.get("path"):
        return data_adapters.load(spec["path"]), spec["path"]
    path = Path(data_dir) / f"sim_macaque_seed{settings['seed']}_n{settings['n_stimuli']}.nc"
    if not path.exists():
        data_adapters.simulate_macaque(path, n_stimuli=settings["n_stimuli"], seed=settings["seed"],
                                       brain_seed=settings["seed"])
    return data_adapters.load(path), str(path)


def blur_fmri(spec, settings, data_dir):
    import data_adapters
    from ..assembly import average_repetitions

    if spec.get("path"):
        paths = [spec["path"]]
    else:
        directory = Path(data_dir) / f"sim_blur_fmri_seed{settings['seed']}"
        marker = directory / "complete.json"
        if not marker.exists():
            from ..storage import write_json

            simulation = data_adapters.simulate_blur_fmri(directory, write_nifti=False, seed=settings["seed"])
            write_json(marker, {"bdata": {s: str(p) for s, p in simulation.bdata.items()}})
        import json

        paths = list(json.loads(marker.read_text())["bdata"].values())
    return [average_repetitions(data_adapters.load(p)) for p in paths], paths


def human_ratings(spec, settings, data_dir):
    import data_adapters
    from ..replications import human_uncertainty, spoerer_stimuli

    if spec.get("path"):
        uncertainty = human_uncertainty(data_adapters.load(spec["path"]))
        images = _image_set(spec)
        known = set(images[0].stimulus_ids)
        ids = [i for i in uncertainty.index if i in known]
        if not ids:
            raise WorkbenchError(f"{spec['path']}: no rated stimulus has an image (e.g. {uncertainty.index[0]!r})")
        return _shown_stimuli(ids, spec["path"], images=images), uncertainty, spec["path"]
    stimuli, planted = spoerer_stimuli(seed=settings["seed"])
    path = Path(data_dir) / f"sim_human_seed{settings['seed']}.sqlite"
    if not path.exists():
        data_adapters.simulate_human_ratings(path, uncertainty=planted, seed=settings["seed"])
    return stimuli, human_uncertainty(data_adapters.load(path)), str(path)


# ------------------------------------------------------------------ runners


def _protocol(model, image_steps, blank_steps, onset_ms=0.0):
    from ..models import PresentationProtocol

    return PresentationProtocol(image_steps=image_steps, blank_steps=blank_steps, step_ms=10, onset_ms=onset_ms,
                                unrolling=getattr(model, "unrolling", "network_per_step"))


def _layers(model, model_spec):
    layers = model_spec.get("layers") or list(getattr(model, "default_layers", []) or [])
    if not layers:
        raise WorkbenchError(f"model {model_spec['name']!r} names no layers: add layers = [...] to its config entry")
    return layers


def run_macaque(definition, spec, model, model_spec, settings, cache_dir):
    from ..metrics import map_layers_to_regions, summarize
    from ..models.cache import cached_extract
    from ..models.reductions import SparseRandomProjection
    from ..stats import bootstrap_encoding_ci, heldout_permutation_test
    from data_adapters.simulate.macaque import DEFAULT_REGIONS

    recording, source = macaque_recording(spec, settings, Path(cache_dir) / "data")
    if "region" not in recording.coords or definition.region not in set(recording.region.values):
        raise WorkbenchError(f"{source}: no sites with region == {definition.region!r}")
    recording = recording.isel(neuroid=np.flatnonzero(recording.region.values == definition.region))
    shown = _shown_stimuli(pd.unique(recording.stimulus_id.values), source, spec)
    protocol = _protocol(model, 10, 15, onset_ms=min(latency for _, _, latency in DEFAULT_REGIONS))
    reduction = SparseRandomProjection(PROJECTION, seed=settings["seed"], keep_small=True)
    features, _ = cached_extract(model, shown, Path(cache_dir) / "activations", layers=_layers(model, model_spec),
                                 protocol=protocol, reduction=reduction, progress=False)
    features = features.load()
    mapping = map_layers_to_regions(features, recording, seed=settings["seed"])
    result = mapping.evaluation[definition.region]
    summary = summarize(result, by="region")[0]
    test = heldout_permutation_test(result, n_permutations=settings["n_permutations"], seed=settings["seed"])
    ci = bootstrap_encoding_ci(result, n_boot=500, seed=settings["seed"])
    ci = ci.get(definition.region, {}) if isinstance(ci, dict) else {}
    record = {"region": definition.region, "value": summary["value"], "ceiling": summary["ceiling"],
              "normalized": summary["normalized"], "value_fold_std": summary["value_fold_std"],
              "p_value": test.groups[definition.region]["p_value"], "null_n": test.n_permutations,
              "ci_low": ci.get("ci_low", float("nan")), "ci_high": ci.get("ci_high", float("nan")),
              "normalized_ci_low": ci.get("normalized_ci_low", float("nan")),
              "normalized_ci_high": ci.get("normalized_ci_high", float("nan")), "n": summary["n"],
              "layer": mapping.layer_for_region[definition.region], "data": source,
              "simulated_data": bool(recording.attrs.get("simulated", False))}
    r = result["r"].median("neuroid").values
    ceiling = np.sqrt(np.clip(result["ceiling"].median("neuroid").values, 0, None))
    panel = {"time_ms": result["time_bin_start"].values.tolist(), "r": r.tolist(), "sqrt_ceiling": ceiling.tolist(),
             "selection": {str(layer): float(mapping.selection.sel(layer=layer, region=definition.region))
                           for layer in mapping.selection.layer.values}}
    return [record], panel


def _depth_matched_layer(layers, roi, rois):
    position = rois.index(roi) / max(len(rois) - 1, 1) if roi in rois else 1.0
    return layers[int(round(position * (len(layers) - 1)))]


def run_fmri(definition, spec, model, model_spec, settings, cache_dir):
    import xarray as xr

    from ..metrics.denoising import denoising_test, fmri_denoising_index
    from ..models import extract
    from ..stimuli import blur

    subjects, sources = blur_fmri(spec, settings, Path(cache_dir) / "data")
    from ..metrics.dimensionality import participation_ratio

    brain, brain_pr = [], []
    for da in subjects:
        if definition.region not in set(da.region.values):
            raise WorkbenchError(f"{sources[0]}: no voxels in ROI {definition.region!r}")
        index = fmri_denoising_index(da.isel(neuroid=np.flatnonzero(da.region.values == definition.region)),
                                     level=BLUR_LEVEL, by=None)
        brain.append(index.values[:, 0])
        roi = da.isel(neuroid=np.flatnonzero(da.region.values == definition.region))
        brain_pr.append([participation_ratio(roi.isel(time_bin=t).values) for t in (0, -1)])
    brain_d = np.concatenate(brain)
    brain_index = xr.DataArray(brain_d[:, None], dims=("pair", "group"), coords={"group": [definition.region]})
    brain_record = denoising_test(brain_index, n_permutations=settings["n_permutations"], seed=settings["seed"])[0]

    clean_ids = sorted({str(i) for i in subjects[0].image_code.values})
    clean = _shown_stimuli(clean_ids, sources[0], spec)
    blurred = blur(clean, BLUR_LEVEL)
    layers = _layers(model, model_spec)
    protocol = _protocol(model, DENOISING_STEPS, 0)
    parts = []
    for shown, level in ((clean, 0.0), (blurred, BLUR_LEVEL)):
        da = extract(model, shown, layers=layers, protocol=protocol, progress=False)
        source_ids = shown.metadata["source_id"].to_numpy(str) if "source_id" in shown.metadata else shown.stimulus_ids
        extra = [name for name, c in da.coords.items() if c.dims == ("presentation",) and name != "stimulus_id"]
        parts.append(da.drop_vars(extra).assign_coords(blur_level=("presentation", np.full(len(shown), level)),
                                      image_code=("presentation", np.asarray(source_ids))))
    activity = xr.concat(parts, dim="presentation")
    layer = _depth_matched_layer(layers, definition.region, list(FMRI_ROIS))
    units = activity.isel(neuroid=np.flatnonzero(activity.layer.values == layer))
    # the early step is the layer's first step with any image-dependent activity (a
    # layer-per-step network's deep layers are silent at step 0)
    variance = units.var("presentation").sum("neuroid").values
    early = int(np.flatnonzero(variance > 0)[0]) if (variance > 0).any() else 0
    model_index = fmri_denoising_index(units, level=BLUR_LEVEL, early=early, late=-1, by="layer")
    model_record = denoising_test(model_index, n_permutations=settings["n_permutations"], seed=settings["seed"])[0]
    degraded = units.isel(presentation=np.flatnonzero(units.blur_level.values == BLUR_LEVEL))
    model_pr = [participation_ratio(degraded.isel(time_bin=t).values) for t in (early, -1)]
    brain_pr = np.mean(brain_pr, axis=0)
    record = {"region": definition.region, "layer": layer, "value": model_record["value"],
              "ci_low": model_record["ci_low"], "ci_high": model_record["ci_high"],
              "p_value": model_record["p_value"], "null_n": model_record["null_n"], "n": model_record["n"],
              "brain_value": brain_record["value"], "brain_p_value": brain_record["p_value"],
              "pr_early": model_pr[0], "pr_late": model_pr[1], "brain_pr_early": float(brain_pr[0]),
              "brain_pr_late": float(brain_pr[1]),
              "ceiling": float("nan"), "normalized": float("nan"), "data": ", ".join(sources),
              "simulated_data": any(bool(da.attrs.get("simulated", False)) for da in subjects)}
    panel = {"layer": layer, "model_d": model_record["value"], "brain_d": brain_record["value"],
             "model_pr_change": model_pr[1] - model_pr[0], "brain_pr_change": float(brain_pr[1] - brain_pr[0])}
    return [record], panel


def run_human(definition, spec, model, model_spec, settings, cache_dir):
    import torch
    import xarray as xr

    from ..metrics import reaction_time as rt

    stimuli, uncertainty, source = human_ratings(spec, settings, Path(cache_dir) / "data")
    with torch.no_grad():
        frames = torch.from_numpy(stimuli.images)[:, None].expand(-1, RT_STEPS, -1, -1, -1)
        logits = model.eval()(frames)
    logits = logits[0] if isinstance(logits, tuple) else logits
    if logits.ndim != 3:
        raise WorkbenchError(f"model {model_spec['name']!r} must return per-step logits (batch, steps, classes) "
                             f"for reaction times; got shape {tuple(logits.shape)}")
    cumulative = getattr(model, "config", {}).get("readout") != "cumulative"
    entropy = rt.readout_entropy(rt.cumulative_probabilities(logits.numpy(), cumulative=cumulative))
    category = next((c for c in ("category_name", "label", "object_name") if c in stimuli.metadata), None)
    coords = {"stimulus_id": ("presentation", stimuli.stimulus_ids)}
    if category:
        coords["category"] = ("presentation", stimuli.metadata[category].astype(str).to_numpy())
    entropy = xr.DataArray(entropy, dims=("presentation", "time_bin"), coords=coords)
    score = rt.rt_uncertainty_score(entropy, uncertainty, n_permutations=settings["n_permutations"],
                                    seed=settings["seed"], within="category" if category else None)
    record = {"region": None, "value": score["value"], "p_value": score["p_value"],
              "p_within": score.get("p_within", float("nan")),
              "null_n": score["null_n"], "n": score["n"], "ceiling": float("nan"), "normalized": float("nan"),
              "data": source}
    held = score["rt"]
    panel = {"rt": held.to_numpy().tolist(), "uncertainty": uncertainty.reindex(held.index).to_numpy().tolist()}
    return [record], panel


def run_replication(definition, settings, cache_dir):
    from .. import replications

    replications.use_model_cache(Path(cache_dir) / "models")
    findings = replications.run_replication(definition.name.split(".", 1)[1])
    return [finding.record() for finding in findings], {}


RUNNERS = {"macaque": run_macaque, "fmri": run_fmri, "human": run_human}
