"""Blur fMRI de-noising (Lindsay et al.): model vs brain, per ROI.

``sim-blur-fmri.{V1,V2,V4,LOC}.denoising`` (simulated BData files) and
``blur-fmri.ROI.denoising`` (``path=`` a BData .h5 / BrainDecoderToolbox2 .mat). The
model's de-noising index at 25 % blur at the layer of matching relative depth is reported
next to the brain's in that ROI, both as Lindsay et al. define it: ``d = r(clean first,
blurred last) - r(clean first, blurred first)`` with the first step (bin) as the feedforward
response and the last as the recurrent one
(:func:`workbench.metrics.denoising.fmri_denoising_index`), with the
participation ratio of the blurred-image responses early and late.
"""

import numpy as np
import pandas as pd

from ..errors import WorkbenchError
from ..scores import Score, Scores
from .base import Panel, VariantBenchmark
from .data import blur_fmri, render_stimuli
from .registry import register

ROIS = ("V1", "V2", "V4", "LOC")
BLUR_LEVEL = 25.0
STEPS = 4

CITATION = """@article{lindsay2022bio,
  title = {Bio-inspired neural networks implement different recurrent visual processing strategies than
           task-trained ones do},
  author = {Lindsay, Grace W. and Mrsic-Flogel, Thomas D. and Sahani, Maneesh},
  journal = {bioRxiv}, year = {2022}, doi = {10.1101/2022.03.07.483196}
}"""


class DenoisingPanel(Panel):
    title = "Blur fMRI: de-noising"
    explanation = ("De-noising index d = r(clean, blurred late) - r(clean, blurred early): Pearson correlation "
                   "across an ROI's units (the model: the layer of matching relative depth) per image pair, at "
                   "25 % blur. d > 0: later responses to the blurred image look more like the clean image's. "
                   "The brain's value (black marks) comes from the same index on the fMRI bins; p-values from "
                   "sign flips over image pairs.")

    def figures(self, results):
        from ..plots import figure_png, model_vs_brain_figure

        rows = [{"model": r["model"], "region": r["records"][0]["region"], **r["panel"]}
                for r in results if r.get("panel")]
        if not rows:
            return []
        table = pd.DataFrame(rows)
        return [("denoising.png", figure_png(model_vs_brain_figure(
                    table, "model_d", "brain_d", "de-noising index d (clean first bin as reference)")),
                 "De-noising index: model (bars) vs brain (marks), 25 % blur; d = r(clean first, blurred last) - r(clean first, blurred first)"),
                ("dimensionality.png", figure_png(model_vs_brain_figure(
                    table, "model_pr_change", "brain_pr_change", "participation ratio change (late - early)")),
                 "Participation ratio, late minus early step (model) / bin (brain)")]

    def tables(self, results):
        rows = [record for result in results for record in result["records"]]
        if not rows:
            return []
        return [("De-noising", rows, ["model", "region", "layer", "value", "p_value", "brain_value",
                                      "brain_p_value"]),
                ("Dimensionality of the blurred-image responses", rows,
                 ["model", "region", "layer", "pr_early", "pr_late", "brain_pr_early", "brain_pr_late"])]


def depth_matched_layer(layers, roi, rois):
    """The layer at the ROI's relative depth in ``rois`` (the last layer for unknown ROIs)."""
    position = rois.index(roi) / max(len(rois) - 1, 1) if roi in rois else 1.0
    return layers[int(round(position * (len(layers) - 1)))]


@register
class BlurDenoising(VariantBenchmark):
    """Model vs brain de-noising of blurred images in one ROI."""

    dataset, metric = "blur-fmri", "denoising"
    simulated_regions, region_kind = ROIS, "ROI"
    version = "2"  # 2: stimuli rendered at the model's declared input, called by its convention
    citation = CITATION
    files_per_subject = True  # the experiment comes one file per subject (BData or NIfTI run)
    in_demo = True
    units = "denoising_index"
    panel = DenoisingPanel

    def load_data(self):
        """Per-subject assemblies (repetitions averaged) and their files."""
        return blur_fmri(self.paths or None, self.seed, self.cache_dir / "data", self.load_options)

    def stimuli(self, model_spec=None, subjects=None, sources=None, model=None):
        """The clean images, rendered as the model declares (it also sees them blurred)."""
        if subjects is None:
            subjects, sources = self.load_data()
        first = subjects[0]
        if "blur_level" in first.coords and (first.blur_level.values == 0).any():
            # the clean presentations' own ids (a BIDS events table's image_code is a number
            # shared with the blurred versions, its stimulus_id the image's name)
            clean_ids = sorted({str(i) for i in first.stimulus_id.values[first.blur_level.values == 0]})
        else:
            clean_ids = sorted({str(i) for i in first.image_code.values})
        return render_stimuli(clean_ids, sources[0], self.stimuli_path,
                              preprocessing=self.model_input(model_spec, model))

    def _brain(self, subjects, sources):
        import xarray as xr

        from ..metrics.denoising import denoising_test, fmri_denoising_index
        from ..metrics.dimensionality import participation_ratio

        brain, brain_pr = [], []
        for da in subjects:
            if self.region not in set(da.region.values):
                raise WorkbenchError(f"{sources[0]}: no voxels in ROI {self.region!r}")
            roi = da.isel(neuroid=np.flatnonzero(da.region.values == self.region))
            brain.append(fmri_denoising_index(roi, level=BLUR_LEVEL, by=None).values[:, 0])
            brain_pr.append([participation_ratio(roi.isel(time_bin=t).values) for t in (0, -1)])
        index = xr.DataArray(np.concatenate(brain)[:, None], dims=("pair", "group"), coords={"group": [self.region]})
        record = denoising_test(index, n_permutations=self.draws(), seed=self.seed)[0]
        return record, np.mean(brain_pr, axis=0)

    def run(self, model_spec):
        import xarray as xr

        from ..assembly import select_neuroids
        from ..metrics.denoising import denoising_test, fmri_denoising_index
        from ..metrics.dimensionality import participation_ratio
        from ..models import extract
        from ..models.conventions import LoopLongerThanProtocol
        from ..models.spec import ModelSpec
        from ..stimuli import blur

        spec = ModelSpec.from_dict(model_spec)
        subjects, sources = self.load_data()
        brain_record, brain_pr = self._brain(subjects, sources)
        model = spec.build(self.cache_dir)
        clean = self.stimuli(spec, subjects, sources, model=model)
        layers = spec.layers_of(model)
        protocol = spec.protocol(model, STEPS, 0)
        convention = spec.convention_of(model)

        def extracted(protocol):
            parts = []
            for shown, level in ((clean, 0.0), (blur(clean, BLUR_LEVEL), BLUR_LEVEL)):
                da = extract(model, shown, layers=layers, protocol=protocol, progress=False, convention=convention)
                source_ids = (shown.metadata["source_id"].to_numpy(str) if "source_id" in shown.metadata
                              else shown.stimulus_ids)
                extra = [name for name, c in da.coords.items() if c.dims == ("presentation",) and name != "stimulus_id"]
                parts.append(da.drop_vars(extra).assign_coords(
                    blur_level=("presentation", np.full(len(shown), level)),
                    image_code=("presentation", np.asarray(source_ids))))
            return parts

        try:
            parts = extracted(protocol)
        except LoopLongerThanProtocol as error:
            # a model looping over one image more than STEPS times: its own loop is the time
            # axis (early and late are its first responsive step and its final state, as with
            # any longer protocol, since the final state is held); both sets with the same axis
            parts = extracted(spec.protocol(model, error.steps_needed, 0))
        activity = xr.concat(parts, dim="presentation")
        layer = depth_matched_layer(layers, self.region, list(ROIS))
        units = select_neuroids(activity, layer=layer)
        # the early step is the layer's first step with any image-dependent activity (a
        # layer-per-step network's deep layers are silent at step 0)
        variance = units.var("presentation").sum("neuroid").values
        early = int(np.flatnonzero(variance > 0)[0]) if (variance > 0).any() else 0
        model_index = fmri_denoising_index(units, level=BLUR_LEVEL, early=early, late=-1, by="layer")
        model_record = denoising_test(model_index, n_permutations=self.draws(), seed=self.seed)[0]
        degraded = units.isel(presentation=np.flatnonzero(units.blur_level.values == BLUR_LEVEL))
        model_pr = [participation_ratio(degraded.isel(time_bin=t).values) for t in (early, -1)]
        score = Score(
            value=model_record["value"], region=self.region, ci_low=model_record["ci_low"],
            ci_high=model_record["ci_high"], p_value=model_record["p_value"], null_n=model_record["null_n"],
            n=model_record["n"], units=self.units,
            simulated=self.simulated or any(bool(da.attrs.get("simulated", False)) for da in subjects),
            extra={"layer": layer, "brain_value": brain_record["value"], "brain_p_value": brain_record["p_value"],
                   "pr_early": model_pr[0], "pr_late": model_pr[1], "brain_pr_early": float(brain_pr[0]),
                   "brain_pr_late": float(brain_pr[1]), "data": ", ".join(sources)})
        panel = {"layer": layer, "model_d": model_record["value"], "brain_d": brain_record["value"],
                 "model_pr_change": model_pr[1] - model_pr[0], "brain_pr_change": float(brain_pr[1] - brain_pr[0])}
        return Scores([score]), panel
