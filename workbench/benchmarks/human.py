"""Reaction times vs human uncertainty (Spoerer et al. 2020).

``sim-human.rt-uncertainty`` (simulated psiTurk ratings of noisy digits) and
``human.rt-uncertainty`` (``path=`` psiTurk sqlite or a tidy CSV of trials, ``stimuli=``
the images). A model's reaction time per image is the first step whose cumulative-readout
entropy falls below a threshold fitted on training images; ``value`` is the held-out
Spearman rho between those RTs and human uncertainty D = 0.5 - |0.5 - PC|.
"""

import numpy as np

from ..errors import ExtractionError, WorkbenchError
from ..scores import Score, Scores
from ..stimuli import Preprocessing
from .base import Panel, VariantBenchmark
from .data import human_ratings
from .registry import register

STEPS = 8

CITATION = """@article{spoerer2020recurrent,
  title = {Recurrent neural networks can explain flexible trading of speed and accuracy in biological vision},
  author = {Spoerer, Courtney J. and Kietzmann, Tim C. and Mehrer, Johannes and Charest, Ian and
            Kriegeskorte, Nikolaus},
  journal = {PLoS Computational Biology}, volume = {16}, number = {10}, pages = {e1008215}, year = {2020}
}"""


class ReactionTimePanel(Panel):
    title = "Reaction times vs human uncertainty"
    explanation = ("Each model's reaction time per image is the first step at which the entropy of its "
                   "cumulative readout falls below a threshold fitted on training images. The value is the "
                   "Spearman correlation between those reaction times and human uncertainty on held-out images "
                   "(positive: the model is slower where people are unsure); the permutation null refits the "
                   "threshold for every draw.")
    columns = ("model", "benchmark", "value", "p_value", "p_within", "n")

    def figures(self, results):
        from ..plots import figure_png, rt_scatter_figure

        panels = [(r["model"], r["records"][0]["value"], r["panel"]["rt"], r["panel"]["uncertainty"])
                  for r in results if r.get("panel")]
        if not panels:
            return []
        return [("rt_vs_uncertainty.png", figure_png(rt_scatter_figure(panels)),
                 "Held-out entropy RT vs human uncertainty D")]


@register
class RTUncertainty(VariantBenchmark):
    """Entropy reaction times vs human uncertainty on held-out images."""

    dataset, metric, regional = "human", "rt-uncertainty", False
    # 2: refuses models that are not called with frames or expect another input; 3: also
    # reads models that loop over one image (per-step readouts), and the real-file variant
    # shows its images at the model's declared input
    version = "3"
    citation = CITATION
    in_demo = True
    units = "spearman_rho"
    panel = ReactionTimePanel

    def load_data(self, preprocessing=None):
        """``(stimuli, human uncertainty per image, source)``; the rated images of a ratings
        file rendered at ``preprocessing`` (default the zoo's 32 px greyscale)."""
        return human_ratings(self.path, self.stimuli_path, self.seed, self.cache_dir / "data", self.load_options,
                             preprocessing=preprocessing)

    def stimuli(self, model_spec=None):
        """The rated images: a ratings file's as the model declares its input; the simulated
        variant's noisy digits at the zoo's 32 px greyscale (the only size they exist at)."""
        return self.load_data(self.model_input(model_spec) if self.path else None)[0]

    def run(self, model_spec):
        import torch
        import xarray as xr

        from ..metrics import reaction_time as rt
        from ..models.conventions import step_readouts
        from ..models.spec import ModelSpec

        spec = ModelSpec.from_dict(model_spec)
        model = spec.build(self.cache_dir)
        convention = spec.convention_of(model)
        declared = self.model_input(spec, model)
        if not self.path and declared != Preprocessing():
            raise WorkbenchError(f"model {spec.name!r} expects {declared.describe()}; this benchmark's simulated "
                                 "noisy digits exist only at the zoo's 32 px greyscale (the real-file variant, "
                                 "human.rt-uncertainty with path= and stimuli=, renders its images at any input)")
        stimuli, uncertainty, source = self.load_data(declared)  # the simulated variant's digits: 32 px
        with torch.no_grad():
            images = torch.from_numpy(np.asarray(stimuli.images, dtype=np.float32))
            try:
                logits = step_readouts(model.eval(), images, STEPS, convention, batch_size=self.batch_size)
            except ExtractionError as error:
                raise WorkbenchError(f"model {spec.name!r}: {error}") from error
        cumulative = getattr(model, "config", {}).get("readout") != "cumulative"
        entropy = rt.readout_entropy(rt.cumulative_probabilities(logits.numpy(), cumulative=cumulative))
        category = next((c for c in ("category_name", "label", "object_name") if c in stimuli.metadata), None)
        coords = {"stimulus_id": ("presentation", stimuli.stimulus_ids)}
        if category:
            coords["category"] = ("presentation", stimuli.metadata[category].astype(str).to_numpy())
        entropy = xr.DataArray(entropy, dims=("presentation", "time_bin"), coords=coords)
        result = rt.rt_uncertainty_score(entropy, uncertainty, n_permutations=self.draws(),
                                         seed=self.seed, within="category" if category else None)
        score = Score(value=result["value"], p_value=result["p_value"], null_n=result["null_n"], n=result["n"],
                      units=self.units, simulated=self.simulated,
                      extra={"p_within": result.get("p_within", float("nan")), "data": source})
        held = result["rt"]
        panel = {"rt": held.to_numpy().tolist(),
                 "uncertainty": uncertainty.reindex(held.index).to_numpy().tolist()}
        return Scores([score]), panel
