"""gruCNN (ConvGRU layers) and its feedforward cCNN twin (Hartmann et al.)."""

import torch
from torch import nn

from .base import History, kaiming_init, ZooModel, global_pool, seeded


def bayesian_integration(logits, log_prior=None):
    """Posterior over classes after each frame for a model that sees frames independently.

    .. math:: \\log P(c \\mid f_{1..t}) = \\log P(c) + \\sum_{s \\le t} \\log \\mathrm{softmax}(\\ell_s)_c + \\text{const}

    Parameters
    ----------
    logits : torch.Tensor
        Per-frame logits ``(batch, frames, classes)``.
    log_prior : torch.Tensor, optional
        ``(classes,)``; uniform by default.

    Returns
    -------
    torch.Tensor
        Unnormalised log posteriors ``(batch, frames, classes)``; their softmax is the
        posterior after each frame.
    """
    integrated = torch.log_softmax(logits, dim=-1).cumsum(dim=1)
    return integrated if log_prior is None else integrated + log_prior


class ConvGRUCell(nn.Module):
    """Convolutional GRU (Hartmann et al. eq. 1-4), 3x3 'same' convolutions (the input
    convolutions :math:`W_{z,r,\\cdot} * x_t` are batch-normalised, statistics shared over time):

    .. math::
        z_t &= \\sigma(W_z * x_t + U_z * h_{t-1} + b_z) \\\\
        r_t &= \\sigma(W_r * x_t + U_r * h_{t-1} + b_r) \\\\
        \\tilde h_t &= \\tanh(W * x_t + U * (r_t \\odot h_{t-1}) + b) \\\\
        h_t &= (1 - z_t) \\odot h_{t-1} + z_t \\odot \\tilde h_t, \\qquad h_{-1} = 0
    """

    def __init__(self, in_channels, hidden_channels):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.input_gates = nn.Sequential(nn.Conv2d(in_channels, 3 * hidden_channels, 3, padding=1),
                                         nn.BatchNorm2d(3 * hidden_channels))
        self.hidden_gates = nn.Conv2d(hidden_channels, 2 * hidden_channels, 3, padding=1, bias=False)
        self.hidden_candidate = nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1, bias=False)

    def forward(self, x, previous):
        wz, wr, wh = self.input_gates(x).chunk(3, dim=1)
        if previous is None:
            previous = torch.zeros_like(wz)
        uz, ur = self.hidden_gates(previous).chunk(2, dim=1)
        update = torch.sigmoid(wz + uz)
        reset = torch.sigmoid(wr + ur)
        candidate = torch.tanh(wh + self.hidden_candidate(reset * previous))
        return (1 - update) * previous + update * candidate


class FeedforwardCell(nn.Module):
    """The cCNN twin's layer: :math:`h_t = \\mathrm{ReLU}(\\mathrm{BN}(W * x_t))`, no memory."""

    def __init__(self, in_channels, hidden_channels):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, hidden_channels, 3, padding=1),
                                  nn.BatchNorm2d(hidden_channels))

    def forward(self, x, previous=None):
        return torch.relu(self.conv(x))


class GruCNN(ZooModel):
    """Stacked ConvGRU layers with 2x2 max-pooling between them, one frame per step, and a
    linear readout of the globally averaged last layer after every frame.

    ``recurrent=False`` gives the cCNN twin (same channels, :class:`FeedforwardCell`), which
    sees every frame independently; with ``integrate=True`` its output is the Bayesian
    posterior over frames (:func:`bayesian_integration`) while training still sees the
    per-frame logits (Hartmann et al. train the cCNN on single frames).

    Layers are named ``layers.0``, ``layers.1``, ...
    """

    name = "GruCNN"

    def __init__(self, channels=(8, 16), in_channels=1, n_classes=10, recurrent=True,
                 integrate=False, seed=None):
        super().__init__(channels=list(channels), in_channels=in_channels, n_classes=n_classes,
                         recurrent=recurrent, integrate=integrate, seed=seed)
        cell = ConvGRUCell if recurrent else FeedforwardCell
        with seeded(seed):
            sizes = (in_channels,) + tuple(channels)
            self.layers = nn.ModuleList(cell(sizes[i], sizes[i + 1]) for i in range(len(channels)))
            self.readout = nn.Linear(channels[-1], n_classes)
            kaiming_init(self)

    default_layers = property(lambda self: [f"layers.{i}" for i in range(len(self.layers))])

    def _frame_logits(self, frames, history):
        states = [None] * len(self.layers)
        logits = []
        for t in range(frames.shape[1]):
            x = frames[:, t]
            for i, layer in enumerate(self.layers):
                if i:
                    x = nn.functional.max_pool2d(x, 2)
                states[i] = x = layer(x, states[i])
                history.add(f"layers.{i}", x)
            logits.append(self.readout(global_pool(x)))
        return logits

    def run(self, frames, history):
        logits = self._frame_logits(frames, history)
        if self.config["integrate"]:
            logits = list(bayesian_integration(torch.stack(logits, dim=1)).unbind(dim=1))
        return logits

    def training_logits(self, frames):
        return torch.stack(self._frame_logits(frames, History([], keep=False)), dim=1)


def ccnn(**config):
    """The feedforward cCNN twin with Bayesian frame integration."""
    return GruCNN(**{"recurrent": False, "integrate": True, **config})
