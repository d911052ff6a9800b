"""Small recurrent vision models (the seed zoo; more families arrive with issue 4)."""

import torch
from torch import nn


class BLCell(nn.Module):
    """One bottom-up + lateral layer (Spoerer et al. 2017 'BL'), weights shared over time.

    .. math:: h_t = \\mathrm{ReLU}(W_b * x_t + W_l * h_{t-1} + b), \\quad h_{-1} = 0

    ``*`` is a 3x3 'same' convolution. The module is called once per time step, which is
    exactly the case where ordinary forward hooks keep only the last call.
    """

    def __init__(self, in_channels, out_channels, lateral=True):
        super().__init__()
        self.bottom_up = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.lateral = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False) if lateral else None

    def forward(self, bottom_up, previous):
        drive = self.bottom_up(bottom_up)
        if self.lateral is not None and previous is not None:
            drive = drive + self.lateral(previous)
        return torch.relu(drive)


class BLNet(nn.Module):
    """A small B/BL network: stacked :class:`BLCell` layers, 2x2 max-pooling between them,
    and a linear readout of the globally averaged last layer at every step.

    Parameters
    ----------
    channels : tuple of int
        Channels per layer; layers are named ``layers.0``, ``layers.1``, ...
    in_channels, n_classes : int
    lateral : bool
        ``True`` for BL, ``False`` for the feedforward B twin.
    seed : int, optional
        Seeds the weight initialisation without touching torch's global generator.

    Forward: ``frames`` ``(batch, steps, in_channels, H, W)`` -> logits
    ``(batch, steps, n_classes)``.
    """

    def __init__(self, channels=(8, 16), in_channels=1, n_classes=10, lateral=True, seed=None):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            sizes = (in_channels,) + tuple(channels)
            self.layers = nn.ModuleList(
                BLCell(sizes[i], sizes[i + 1], lateral) for i in range(len(channels))
            )
            self.readout = nn.Linear(channels[-1], n_classes)
        self.config = {
            "name": "BLNet",
            "channels": list(channels),
            "in_channels": in_channels,
            "n_classes": n_classes,
            "lateral": lateral,
            "seed": seed,
        }

    @classmethod
    def from_config(cls, config, **overrides):
        """Rebuild a network from its ``config`` (as stored in model cards and attrs)."""
        arguments = {key: value for key, value in config.items() if key != "name"}
        return cls(**{**arguments, **overrides})

    default_layers = property(lambda self: [f"layers.{i}" for i in range(len(self.layers))])

    def forward(self, frames):
        states = [None] * len(self.layers)
        logits = []
        for t in range(frames.shape[1]):
            x = frames[:, t]
            for i, layer in enumerate(self.layers):
                if i:
                    x = nn.functional.max_pool2d(x, 2)
                states[i] = layer(x, states[i])
                x = states[i]
            logits.append(self.readout(x.mean(dim=(2, 3))))
        return torch.stack(logits, dim=1)
