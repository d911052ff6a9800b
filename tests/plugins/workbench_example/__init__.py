"""A third-party plugin as the docs' recipes write one (docs/architecture.md).

It is found through its ``workbench_example-0.1.dist-info/entry_points.txt`` when this
folder is on ``sys.path``, exactly as if it were pip-installed: the workbench's code is
not touched. It adds:

- a model family ``example-tiny`` (``[workbench.models]``);
- a metric, :func:`step_stability`;
- a benchmark ``example.step-stability`` using that metric, with its report panel
  (``[workbench.benchmarks]``);
- a data format ``tinyrec`` (``[workbench.formats]``): a text file starting ``TINYREC``.
"""

import numpy as np
import torch
import xarray as xr
from torch import nn

from workbench.benchmarks import Benchmark, Panel
from workbench.errors import DataFormatError
from workbench.scores import Score, Scores


# ---------------------------------------------------------------- a model family
class TinyRecurrent(nn.Module):
    """One conv layer with a leaky recurrent state, called as model(frames)."""

    default_layers = ["conv"]

    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.readout = nn.Linear(channels, 10)

    def forward(self, frames):
        state, logits = 0, []
        for t in range(frames.shape[1]):
            state = 0.5 * state + torch.relu(self.conv(frames[:, t]))
            logits.append(self.readout(state.mean((2, 3))))
        return torch.stack(logits, 1)


def build_tiny(seed=0, channels=4):
    torch.manual_seed(seed)
    return TinyRecurrent(channels)


# ---------------------------------------------------------------- a metric
def step_stability(features):
    """Per layer: mean over units of the Pearson r across images between the first and the last
    step's activations (1: the representation does not change over time).

    features: (presentation, neuroid, time_bin) with a ``layer`` coord. Returns Scores.
    """
    scores = Scores()
    for layer in dict.fromkeys(features.layer.values.tolist()):
        units = features.isel(neuroid=np.flatnonzero(features.layer.values == layer)).values
        first, last = units[:, :, 0], units[:, :, -1]
        first, last = first - first.mean(0), last - last.mean(0)
        norm = np.sqrt((first ** 2).sum(0) * (last ** 2).sum(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (first * last).sum(0) / norm
        scores.append(Score(value=float(np.nanmean(r)), n=int(np.isfinite(r).sum()), units="pearson_r",
                            extra={"layer": layer}))
    return scores


# ---------------------------------------------------------------- a benchmark and its panel
class StabilityPanel(Panel):
    title = "Example plugin: step stability"
    explanation = "How similar each layer's first and last step are across images (a plugin's panel)."
    columns = ("model", "benchmark", "layer", "value", "n")


class StepStability(Benchmark):
    names = ("example.step-stability",)
    version = "1"
    citation = "@misc{example, title = {An example plugin benchmark}}"
    simulated = True
    panel = StabilityPanel
    units = "pearson_r"

    def stimuli(self, model_spec=None):
        from workbench.stimuli import digits

        return digits(24, size=16, seed=self.seed)

    def run(self, model_spec):
        from workbench.models import PresentationProtocol, extract
        from workbench.models.spec import ModelSpec

        spec = ModelSpec.from_dict(model_spec)
        model = spec.build(self.cache_dir)
        features = extract(model, self.stimuli(spec), layers=spec.layers_of(model),
                           protocol=PresentationProtocol(image_steps=3, blank_steps=0), progress=False)
        return step_stability(features), {}


# ---------------------------------------------------------------- a data format
class TinyRecFormat:
    """``TINYREC`` then one line per presentation: stimulus_id and one value per neuroid."""

    description = "example plugin text recording (TINYREC)"

    @staticmethod
    def sniff(path, head):
        return head.startswith(b"TINYREC\n")

    @staticmethod
    def read(path, **options):
        lines = open(path, encoding="utf-8").read().splitlines()[1:]
        if not lines:
            raise DataFormatError(path, "no presentations after the TINYREC line", "add 'stimulus_id v1 v2 ...' lines")
        rows = [line.split() for line in lines]
        try:
            values = np.array([[float(v) for v in row[1:]] for row in rows])
        except ValueError as error:
            raise DataFormatError(path, f"a value is not a number ({error})") from None
        if values.ndim != 2:
            raise DataFormatError(path, "rows have different numbers of values")
        return xr.DataArray(values[:, :, None], dims=("presentation", "neuroid", "time_bin"), coords={
            "stimulus_id": ("presentation", [row[0] for row in rows]),
            "neuroid_id": ("neuroid", [f"n{i}" for i in range(values.shape[1])]),
            "time_bin_start": ("time_bin", [0.0]), "time_bin_end": ("time_bin", [100.0])})


TINYREC = TinyRecFormat()
