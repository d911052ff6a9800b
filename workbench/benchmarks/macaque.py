"""Temporal macaque encoding: one ridge map shared over time (Nayebi et al. 2018).

``sim-macaque.{V4,IT}.shared-time-ridge`` (simulated BrainIO recording) and
``macaque.REGION.shared-time-ridge`` (``path=`` a BrainIO netCDF such as the MajajHong2015
temporal release, ``stimuli=`` its stimulus-set CSV). Each model's layers are mapped to the
region on a mapping half of the images; the chosen layer is scored on the other half with
one ridge map shared over 10 ms bins. ``value`` is the median over sites of the mean r over
usable bins, ``normalized`` the median over sites of sum sign(r) r^2 / sum ceiling over those
bins (:func:`workbench.metrics.summarize`), with a held-out permutation p-value and
a bootstrap CI over images.
"""

import numpy as np
import pandas as pd

from ..errors import WorkbenchError
from ..scores import Score, Scores
from .base import Panel, VariantBenchmark
from .data import embedded_of, macaque_recording, render_stimuli
from .registry import register

REGIONS = ("V4", "IT")
# Components of each layer's seeded sparse projection. A random projection mixes a wide
# layer's low-variance tail into every component: scored at 256 the generating network kept
# 0.85 of the simulated V4's ceiling, at 512 0.90, at 1,024 0.91 (the order of Brain-Score's
# 1,000 principal components), but a ridge fit's cost grows as p^3 (eigendecompositions in
# nested CV). So every candidate layer is *chosen* on a sketch, its first SKETCH components
# (themselves a sparse random projection of the layer: the rows of the matrix are
# independent), and only the chosen layer is *scored* on all PROJECTION components.
PROJECTION = 512
SKETCH = 256
LATENCY_BOOT = 200
IMAGE_STEPS, BLANK_STEPS = 10, 15

CITATION = """@inproceedings{nayebi2018task,
  title = {Task-Driven Convolutional Recurrent Models of the Visual System},
  author = {Nayebi, Aran and Bear, Daniel and Kubilius, Jonas and Kar, Kohitij and Ganguli, Surya and
            Sussillo, David and DiCarlo, James J. and Yamins, Daniel L. K.},
  booktitle = {Advances in Neural Information Processing Systems},
  year = {2018}
}
@article{majaj2015simple,
  title = {Simple Learned Weighted Sums of Inferior Temporal Neuronal Firing Rates Accurately Predict
           Human Core Object Recognition Performance},
  author = {Majaj, Najib J. and Hong, Ha and Solomon, Ethan A. and DiCarlo, James J.},
  journal = {Journal of Neuroscience}, volume = {35}, number = {39}, pages = {13402--13418}, year = {2015}
}"""


class EncodingPanel(Panel):
    title = "Macaque recordings: one ridge map shared over time"
    explanation = ("Each model's layers are mapped to a region on half of the images (each layer as a 256-component "
                   "seeded projection); the chosen layer is scored on the other half (as 512 components) with one "
                   "linear map shared by all 10 ms bins. r is the Pearson correlation "
                   "across held-out images per site and bin; the ceiling is the reliability of the trial average "
                   "(split-half, Spearman-Brown) on the scale of r^2, drawn as sqrt(ceiling) beside r; normalized = "
                   "sign(r) r^2 / ceiling, summed over a site's reliable bins before dividing (1: as good as the "
                   "data allow). The p-value tests the held-out prediction "
                   "against uniform permutations of the pairing; bars mark time clusters where the region's median r "
                   "is significant (cluster-mass test, FWE over bins); onset is the first such bin, with a bootstrap "
                   "CI over images. Each dataset has its own panel. The layer x time map shows every candidate "
                   "layer's median r per bin on the mapping images (which layer explains which moment). Each model "
                   "sees the images at its own declared input (size, channels, normalisation) and is called by its "
                   "convention; a static-recurrent model is given one static image, so it cannot see the offset and "
                   "holds its final state. A model's first step is placed at the region's response onset in the data "
                   "(the half-rise of the median split-half ceiling), the same for every model. Positive control: on a "
                   "simulated recording, the model named \"generating network\" is the simulator's hidden network "
                   "itself (a trained gruCNN whose middle layer drives V4 and last layer IT); it must rank first on each "
                   "region and be mapped to its true layers (layers.1 for V4, layers.2 for IT). If it does not, the "
                   "benchmark cannot recover a planted truth and its ranking of other models means little.")
    columns = ("model", "benchmark", "region", "layer", "input", "convention", "value", "ceiling", "normalized",
               "p_value", "onset_ms", "onset_ms_ci", "peak_ms", "rise50_ms", "note")

    def figures(self, results):
        from ..plots import figure_png, layer_time_figure, time_course_figure

        files = []
        for benchmark in dict.fromkeys(r["benchmark"] for r in results if r.get("panel")):
            mine = [r for r in results if r["benchmark"] == benchmark and r.get("panel")]
            rows = [{"model": r["model"], "region": benchmark, "time_ms": t, "r": v, "sqrt_ceiling": c}
                    for r in mine for t, v, c in zip(r["panel"]["time_ms"], r["panel"]["r"], r["panel"]["sqrt_ceiling"])]
            clusters = {r["model"]: r["panel"].get("clusters_ms", []) for r in mine}
            name = _slug(benchmark)
            files.append((f"time_course_{name}.png", figure_png(time_course_figure(pd.DataFrame(rows), clusters)),
                          f"{benchmark}: median r over sites per bin (held-out images); grey: sqrt of the ceiling; "
                          "bars: significant clusters per model"))
            maps = {r["model"]: r["panel"]["layer_time"] for r in mine if r["panel"].get("layer_time")}
            if maps:
                files.append((f"layer_time_{name}.png",
                              figure_png(layer_time_figure(maps, mine[0]["panel"]["time_ms"], benchmark)),
                              f"{benchmark}: layer x time map, median r per candidate layer and bin (mapping images)"))
        return files

    def tables(self, results):
        records = [record for result in results for record in result["records"]]
        return [("Layer-to-region map, time clusters and latencies (chosen on the mapping half, scored on the other)",
                 records, list(self.columns))] if records else []


def sketch(features, n_components=SKETCH):
    """The layers' first ``n_components`` projected components (kept small layers whole)."""
    component = features.coords["component"].values
    return features.isel(neuroid=np.flatnonzero(component < n_components))


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text)


@register
class SharedTimeEncoding(VariantBenchmark):
    """Shared-over-time ridge encoding of a macaque array recording, per region."""

    dataset, metric = "macaque", "shared-time-ridge"
    simulated_regions = REGIONS
    # 2: permutation test, clusters, latencies; 3: declared model input; 4: onset from the data;
    # 5: layers chosen on 256 projected components, scored on 512, normalized pooled over each site's bins, sites above threshold
    # 6: a bin whose prediction varies only by round-off scores r = 0, not the round-off's r with the data
    version = "6"
    citation = CITATION
    in_demo = True
    primary = "normalized"
    units = "pearson_r"
    panel = EncodingPanel

    def required_models(self):
        """The simulated recording's hidden network (trained once, before this benchmark's
        tasks start, so report workers read it from the model cache instead of each training
        it)."""
        if self.path:
            return []
        from ..simulators.macaque import DEFAULT_BRAIN

        return [{**DEFAULT_BRAIN, "name": "simulated brain", "seed": int(self.seed)}]

    def load_data(self):
        """The recording's sites in this region (trial level) and the file it came from."""
        recording, source = macaque_recording(self.path, self.seed, self.n_stimuli, self.cache_dir / "data",
                                              self.stimulus_set, self.load_options)
        if "region" not in recording.coords or self.region not in set(recording.region.values):
            raise WorkbenchError(f"{source}: no sites with region == {self.region!r}")
        return recording.isel(neuroid=np.flatnonzero(recording.region.values == self.region)), source

    def stimuli(self, model_spec=None, recording=None, source=None, model=None):
        """The recording's images rendered as the model declares (size, channels,
        normalisation; the zoo's 32 px greyscale without a model)."""
        if recording is None:
            recording, source = self.load_data()
        return render_stimuli(pd.unique(recording.stimulus_id.values), source, self.stimuli_path,
                              preprocessing=self.model_input(model_spec, model), embedded=embedded_of(recording))

    def preflight(self, model, spec, shown, recording, protocol, reduction, extracting=True):
        """Estimate the task's peak memory (extraction measured on one batch, the fits by
        formula), print it, and refuse before the work when it cannot fit
        (:class:`~workbench.benchmarks.preflight.PreflightError`). ``extracting=False``
        (the activations are cached): no extraction stage, nothing to measure."""
        import sys

        from ..models.memory import probe_extraction
        from ..resources import available_bytes, rss_bytes
        from .preflight import MemoryEstimate, heldout_test_bytes, mapping_bytes

        layers = spec.layers_of(model)
        probe = probe_extraction(model, shown, layers, protocol, reduction, spec.convention_of(model),
                                 batch_size=self.batch_size) if extracting else None
        fixed, per_image = probe or (0.0, 0.0)
        n_stimuli, n_sites = len(shown), recording.sizes["neuroid"]
        n_bins, n_features = recording.sizes["time_bin"], PROJECTION * len(layers)
        features = n_stimuli * n_features * protocol.n_steps * 4  # the extracted assembly, held by the fits
        estimate = MemoryEstimate(rss_bytes() or 0.0, measured=probe is not None or not extracting)
        # with cached activations (no probe) the stage is the assembly read back from the store
        estimate.stages["extraction"] = fixed + per_image * min(self.batch_size, n_stimuli) + features
        # every layer chosen on its sketch, the chosen one scored on all its components
        estimate.stages["encoding"] = features + mapping_bytes(n_stimuli, min(n_bins, protocol.n_steps), len(layers),
                                                               SKETCH, PROJECTION, n_sites, n_sites)
        estimate.stages["permutation test"] = features + heldout_test_bytes(
            n_stimuli // 4, n_sites * n_bins, n_sites, self.draws(n_sites * n_bins))
        print(f"{self.identifier} x {spec.name}: {estimate.describe()}", file=sys.stderr, flush=True)
        return estimate.check(available_bytes(), {
            "extraction": f"a smaller batch size (settings.batch_size / --batch-size, now {self.batch_size}) or "
                          f"fewer layers (the model's layers = [...], now {len(layers)})",
            "encoding": f"fewer layers (the model's layers = [...], now {len(layers)}) or fewer stimuli",
            "permutation test": "fewer permutation draws (settings.n_permutations / --permutations)"})

    def run(self, model_spec):
        from ..assembly import has_repetitions
        from ..metrics import map_layers_to_regions, summarize
        from ..metrics.latency import data_onset_ms, response_latencies
        from ..models.cache import cached_extract
        from ..models.conventions import LoopLongerThanProtocol, strided_layers
        from ..models.reductions import SparseRandomProjection
        from ..models.spec import ModelSpec
        from ..stats import bootstrap_encoding_ci, heldout_permutation_test

        spec = ModelSpec.from_dict(model_spec)
        model = spec.build(self.cache_dir)
        recording, source = self.load_data()
        shown = self.stimuli(spec, recording, source, model=model)
        # the model's first step sits where this region's responses start in the data
        onset_ms, onset_measure = data_onset_ms(recording, seed=self.seed)
        protocol = spec.protocol(model, IMAGE_STEPS, BLANK_STEPS, onset_ms=onset_ms)
        reduction = SparseRandomProjection(PROJECTION, seed=self.seed, keep_small=True)
        try:
            features, _ = cached_extract(model, shown, self.cache_dir / "activations", layers=spec.layers_of(model),
                                         protocol=protocol, reduction=reduction, progress=False,
                                         convention=spec.convention_of(model), batch_size=self.batch_size,
                                         before=lambda hit: self.preflight(model, spec, shown, recording, protocol,
                                                                           reduction, extracting=not hit))
        except LoopLongerThanProtocol as error:
            # here the steps are the recording's 10 ms bins: calls past its window have no data
            # to be compared with, so the model is refused, with a fix its author can apply
            raise WorkbenchError(
                f"model {spec.name!r} loops over one image for {error.steps_needed} steps; this benchmark's "
                f"time axis is {protocol.n_steps} steps of {protocol.step_ms:g} ms, the recording's window (fix: "
                f"build the model with at most {protocol.n_steps} iterations of its loop)") from error
        features = features.load()
        convention = features.attrs["extraction"]["convention"]
        mapping = map_layers_to_regions(sketch(features), recording, seed=self.seed, evaluation_features=features)
        result = mapping.evaluation[self.region]
        summary = summarize(result, by="region")[0]
        full_test = heldout_permutation_test(result, n_permutations=self.n_permutations, seed=self.seed, clusters=True)
        test = full_test.scores()
        ci = bootstrap_encoding_ci(result, n_boot=500, seed=self.seed).get(self.region) or Score()
        latency = {s["latency"]: s for s in response_latencies(result, full_test, n_boot=LATENCY_BOOT, seed=self.seed)
                   if s.region == self.region}
        clusters = [c for c in full_test.clusters.significant(level="group") if c.unit == self.region]
        nan = float("nan")
        score = Score(
            value=summary["value"], region=self.region, ceiling=summary["ceiling"],
            normalized=summary["normalized"], p_value=test[self.region].p_value, null_n=test[self.region].null_n,
            ci_low=ci.ci_low, ci_high=ci.ci_high, n=summary["n"], units=self.units,
            simulated=self.simulated or bool(recording.attrs.get("simulated", False)),
            extra={**{f"{name}_ms": latency[name].value for name in latency},
                   **{f"{name}_ms_ci": [latency[name].ci_low, latency[name].ci_high] for name in latency},
                   "clusters_ms": [[c.start_ms, c.end_ms, c.p_value] for c in clusters],
                   "value_fold_std": summary["value_fold_std"], "ceiling_method": summary["ceiling_method"],
                   "ceiling_scale": "r^2 (normalized = sum sign(r) r^2 / sum ceiling per site)",
                   "normalized_ci_low": ci.get("normalized_ci_low", nan),
                   "normalized_ci_high": ci.get("normalized_ci_high", nan),
                   "layer": mapping.layer_for_region[self.region], "data": source,
                   "input": self.model_input(spec, model).describe(), "convention": convention,
                   "model_onset_ms": onset_ms, "model_onset_from": f"half-rise of the data's {onset_measure}"})
        stride = strided_layers(features.attrs["extraction"].get("sequence_layers", {})).get(score.extra["layer"])
        notes = [
            convention == "static_recurrent" and (
                "the model takes one static image, so it cannot see the stimulus offset: its final state is held "
                "over the later bins"),
            stride and (
                f"layer {score.extra['layer']!r} comes after a stride over time: it has one response per {stride} "
                f"steps ({stride * protocol.step_ms:g} ms), held over those steps, so its time course is coarser"),
            not has_repetitions(recording) and (
                "one repetition per stimulus: no split-half ceiling can be estimated, so ceiling and normalized "
                "are undefined")]
        if any(notes):
            score.extra["note"] = "; ".join(filter(None, notes))
        r = result["r"].median("neuroid").values
        ceiling = np.sqrt(np.clip(result["ceiling"].median("neuroid").values, 0, None))
        layer_time = mapping.layer_time.sel(region=self.region)
        panel = {"time_ms": result["time_bin_start"].values.tolist(), "r": r.tolist(),
                 "sqrt_ceiling": ceiling.tolist(), "clusters_ms": [[c.start_ms, c.end_ms] for c in clusters],
                 "onset_ms": latency["onset"].value if "onset" in latency else None,
                 "layer_time": {str(layer): layer_time.sel(layer=layer).values.tolist()
                                for layer in layer_time.layer.values},
                 "selection": {str(layer): float(mapping.selection.sel(layer=layer, region=self.region))
                               for layer in mapping.selection.layer.values}}
        return Scores([score]), panel

