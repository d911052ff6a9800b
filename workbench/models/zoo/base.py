"""What every zoo model shares: a config, seeded construction, and the call convention.

Call convention: ``model(frames)`` with ``frames`` ``(batch, steps, channels, H, W)``
returns the per-step decision logits ``(batch, steps, classes)``;
``model(frames, return_states=True)`` also returns a dict of per-step layer states
``name -> (batch, steps, ...)``. The modules named in ``default_layers`` are called once
per step, so :func:`workbench.models.extract` records one time bin per step.
"""

import contextlib

import torch
from torch import nn

from ...stimuli import Preprocessing


@contextlib.contextmanager
def seeded(seed):
    """Seed weight initialisation without touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


class ZooModel(nn.Module):
    """Base class: subclasses implement :meth:`run` and list ``default_layers``."""

    name = None
    unrolling = "network_per_step"
    convention = "frames"  # see workbench.models.conventions
    preprocessing = Preprocessing()  # 32 px greyscale, standardised over the set

    def __init__(self, **config):
        super().__init__()
        self.config = {"name": self.name, **config}

    @classmethod
    def from_config(cls, config, **overrides):
        """Rebuild a network from its ``config`` (as stored in model cards and attrs)."""
        arguments = {key: value for key, value in config.items() if key != "name"}
        return cls(**{**arguments, **overrides})

    def run(self, frames, history):
        """Return the per-step logits (a list); ``history.add(layer, state)`` each step."""
        raise NotImplementedError

    def forward(self, frames, return_states=False):
        history = History(self.default_layers, keep=return_states)
        logits = torch.stack(self.run(frames, history), dim=1)
        if not return_states:
            return logits
        return logits, history.stacked()

    def training_logits(self, frames):
        """Logits the training loss sees (the per-frame ones for a frame-integrating model)."""
        return self(frames)


class History:
    """Per-step layer states, kept only when asked for (holding every step's full state
    would make extraction and inference memory grow with the number of steps)."""

    def __init__(self, names, keep):
        self.keep = keep
        self.states = {name: [] for name in names}

    def add(self, name, value):
        if self.keep:
            self.states[name].append(value)

    def stacked(self):
        return {name: torch.stack(values, dim=1) for name, values in self.states.items()}


class Taps(nn.ModuleDict):
    """Identity modules that name a state for recording (``out.<name>``).

    Passing a state through its tap costs nothing and gives hooks a module that runs
    exactly once per step with the state the next step sees.
    """

    def __init__(self, names):
        super().__init__({name: nn.Identity() for name in names})


def kaiming_init(module):
    """He-normal convolution and linear weights, zero biases: keeps activity from shrinking
    layer by layer in the small normalisation-free nets (PyTorch's default init does)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def global_pool(x):
    return x.mean(dim=(2, 3))


class StepNorms(nn.ModuleList):
    """One ``BatchNorm2d`` per time step (``max_steps`` of them), for a layer whose input
    statistics change over steps (recurrent or feedback input is added from step 1 on).

    ``norm(x, step)`` normalises with step ``step``'s norm while training (so every trained
    step's norm sees data). In evaluation it uses that norm once it has been trained (it has
    seen a training batch), else the latest trained one before it: a network trained for 4
    steps and run for 25 would otherwise normalise steps 4-24 with a fresh norm's mean 0 and
    variance 1, statistics that never saw data.
    """

    def __init__(self, channels, max_steps):
        super().__init__(nn.BatchNorm2d(channels) for _ in range(max_steps))

    def index(self, step):
        """The index of the norm that normalises ``step``."""
        index = min(step, len(self) - 1)
        if self.training:
            return index
        while index > 0 and int(self[index].num_batches_tracked) == 0:
            index -= 1
        return index

    def forward(self, x, step=0):
        return self[self.index(step)](x)
