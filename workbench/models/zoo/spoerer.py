"""B and BL networks (Spoerer, McClure & Kriegeskorte 2017; Spoerer et al. 2020)."""

import torch
from torch import nn

from .base import StepNorms, ZooModel, global_pool, seeded


class BLCell(nn.Module):
    """One bottom-up + lateral layer, weights shared over time.

    .. math:: h_t = \\mathrm{ReLU}(N_t(W_b * x_t + W_l * h_{t-1} + b)), \\quad h_{-1} = 0

    ``*`` is a 3x3 'same' convolution and ``N_t`` an optional batch normalisation with its
    own statistics per time step (Spoerer et al. 2020; steps beyond ``max_steps`` share the
    last one, and a step the network was not trained for uses the latest trained one). The module is called once per time step, which is exactly the case where
    ordinary forward hooks keep only the last call.
    """

    def __init__(self, in_channels, out_channels, lateral=True, norm=None, max_steps=8):
        super().__init__()
        self.bottom_up = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.lateral = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False) if lateral else None
        self.norms = StepNorms(out_channels, max_steps) if norm == "batch" else None

    def forward(self, bottom_up, previous, step=0):
        drive = self.bottom_up(bottom_up)
        if self.lateral is not None and previous is not None:
            drive = drive + self.lateral(previous)
        if self.norms is not None:
            drive = self.norms(drive, step)
        return torch.relu(drive)

    def norm_index(self, step):
        """The per-step norm of ``step`` (:meth:`StepNorms.index`: its own once trained, else
        the latest trained one before it; a BL trained for 4 steps and run for 8 fell from .74
        to .50 accuracy on fresh norms)."""
        return self.norms.index(step)


class BLNet(ZooModel):
    """A small B/BL network: stacked :class:`BLCell` layers, 2x2 max-pooling between them,
    and a linear readout of the globally averaged last layer at every step.

    .. math:: \\ell_t = W_o \\,\\mathrm{GAP}(h^L_t) + b_o, \\qquad
              \\text{cumulative readout: } p_t = \\mathrm{softmax}(\\textstyle\\sum_{s \\le t} \\ell_s)

    Parameters
    ----------
    channels : tuple of int
        Channels per layer; layers are named ``layers.0``, ``layers.1``, ...
    in_channels, n_classes : int
    lateral : bool
        ``True`` for BL, ``False`` for the feedforward B twin.
    norm : {None, "none", "batch"}
        Per-step batch normalisation (Spoerer et al. 2020); ``"none"`` (what a TOML config
        can write) is ``None``.
    readout : {"per_step", "cumulative"}
        Return each step's logits, or their running sum (whose softmax is the cumulative
        readout whose entropy gives Spoerer's reaction times).
    max_steps : int
        Number of per-step normalisation layers.
    seed : int, optional
        Seeds the weight initialisation without touching torch's global generator.
    """

    name = "BLNet"

    def __init__(self, channels=(8, 16), in_channels=1, n_classes=10, lateral=True, seed=None,
                 norm=None, readout="per_step", max_steps=8):
        if norm not in (None, "none", "batch"):
            raise ValueError(f"norm must be None (or 'none', as a TOML config writes it) or 'batch', got {norm!r}")
        norm = None if norm == "none" else norm
        super().__init__(channels=list(channels), in_channels=in_channels, n_classes=n_classes,
                         lateral=lateral, seed=seed, norm=norm, readout=readout, max_steps=max_steps)
        if readout not in ("per_step", "cumulative"):
            raise ValueError(f"readout must be 'per_step' or 'cumulative', got {readout!r}")
        with seeded(seed):
            sizes = (in_channels,) + tuple(channels)
            self.layers = nn.ModuleList(
                BLCell(sizes[i], sizes[i + 1], lateral, norm, max_steps) for i in range(len(channels))
            )
            self.readout = nn.Linear(channels[-1], n_classes)

    default_layers = property(lambda self: [f"layers.{i}" for i in range(len(self.layers))])

    def run(self, frames, history):
        states = [None] * len(self.layers)
        logits, total = [], 0
        for t in range(frames.shape[1]):
            x = frames[:, t]
            for i, layer in enumerate(self.layers):
                if i:
                    x = nn.functional.max_pool2d(x, 2)
                states[i] = x = layer(x, states[i], t)
                history.add(f"layers.{i}", x)
            step_logits = self.readout(global_pool(x))
            total = total + step_logits
            logits.append(total if self.config["readout"] == "cumulative" else step_logits)
        return logits
