"""ConvRNN with Reciprocal Gated Cells (Nayebi et al. 2018, 2022), one layer per step."""

import torch
from torch import nn

from ..protocol import PresentationProtocol
from .base import kaiming_init, Taps, ZooModel, global_pool, seeded


class ReciprocalGatedCell(nn.Module):
    """Reciprocal gated cell: the memory ``c`` gates the output ``h`` and vice versa, and
    the input bypasses both (it enters ``h`` and ``c`` directly):

    .. math::
        a^h_t &= 1 - \\sigma(m_\\tau (W_{ch} * c_{t-1}) + b_\\tau), &\\quad
        g^h_t &= 1 - \\sigma(m_g (W_{hh} * h_{t-1}) + b_g) \\\\
        a^c_t &= 1 - \\sigma(m_\\tau (W_{hc} * h_{t-1}) + b_\\tau), &\\quad
        g^c_t &= 1 - \\sigma(m_g (W_{cc} * c_{t-1}) + b_g) \\\\
        h_t &= \\mathrm{ReLU}(a^h_t \\odot x_t + g^h_t \\odot h_{t-1}), &\\quad
        c_t &= \\mathrm{ReLU}(a^c_t \\odot x_t + g^c_t \\odot c_{t-1})

    ``x_t`` is the cell's feedforward input (already convolved), ``*`` 3x3 convolutions;
    ``tau_offset``/``tau_multiplier`` (:math:`b_\\tau, m_\\tau`) and ``gate_offset``/
    ``gate_multiplier`` (:math:`b_g, m_g`) set how strongly input and memory pass.
    """

    def __init__(self, channels, tau_offset=0.0, tau_multiplier=1.0, gate_offset=0.0,
                 gate_multiplier=1.0):
        super().__init__()
        self.c_to_h = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.h_to_h = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.h_to_c = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.c_to_c = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.tau = (tau_offset, tau_multiplier)
        self.gate = (gate_offset, gate_multiplier)

    def forward(self, x, h, c):
        (bt, mt), (bg, mg) = self.tau, self.gate
        pass_h = 1 - torch.sigmoid(mt * self.c_to_h(c) + bt)
        keep_h = 1 - torch.sigmoid(mg * self.h_to_h(h) + bg)
        pass_c = 1 - torch.sigmoid(mt * self.h_to_c(h) + bt)
        keep_c = 1 - torch.sigmoid(mg * self.c_to_c(c) + bg)
        return torch.relu(pass_h * x + keep_h * h), torch.relu(pass_c * x + keep_c * c)


class ConvRNN(ZooModel):
    """Convolutional layers with RGCs, unrolled one layer per step.

    Every arrow costs one step: layer ``k``'s input at step ``t`` is layer ``k-1``'s output
    at step ``t-1`` (2x2 max-pooled, then a 3x3 convolution and layer norm; layer 0 convolves frame
    ``t``), so layer ``k`` is silent (exactly 0) before step ``k`` and first responds at
    step ``k``. An optional long-range feedback ``(source, target)`` adds a convolution of
    the upsampled source output from step ``t-1`` to the target's input. The readout is a
    linear map of the globally pooled last layer at each step.

    Layers are recorded as ``out.layer0``, ``out.layer1``, ...
    """

    name = "ConvRNN"
    unrolling = "layer_per_step"
    default_protocol = PresentationProtocol(unrolling="layer_per_step")

    def __init__(self, channels=(8, 16, 32), in_channels=1, n_classes=10, feedback=None,
                 tau_offset=0.0, tau_multiplier=1.0, gate_offset=0.0, gate_multiplier=1.0, seed=None):
        if feedback is not None:
            source, target = (int(v) for v in feedback)
            if not 0 <= target < source < len(channels):
                raise ValueError(f"feedback {feedback} must go from a higher to a lower layer")
            feedback = [source, target]
        super().__init__(channels=list(channels), in_channels=in_channels, n_classes=n_classes,
                         feedback=feedback, tau_offset=tau_offset, tau_multiplier=tau_multiplier,
                         gate_offset=gate_offset, gate_multiplier=gate_multiplier, seed=seed)
        gating = dict(tau_offset=tau_offset, tau_multiplier=tau_multiplier,
                      gate_offset=gate_offset, gate_multiplier=gate_multiplier)
        with seeded(seed):
            sizes = (in_channels,) + tuple(channels)
            self.inputs = nn.ModuleList(nn.Sequential(nn.Conv2d(sizes[i], sizes[i + 1], 3, padding=1),
                                                      nn.GroupNorm(1, sizes[i + 1]))
                                        for i in range(len(channels)))
            self.cells = nn.ModuleList(ReciprocalGatedCell(c, **gating) for c in channels)
            self.long_range = (nn.Conv2d(channels[feedback[0]], channels[feedback[1]], 3, padding=1,
                                         bias=False) if feedback else None)
            self.readout = nn.Linear(channels[-1], n_classes)
            kaiming_init(self)
        self.out = Taps([f"layer{i}" for i in range(len(channels))])

    default_layers = property(lambda self: [f"out.layer{i}" for i in range(len(self.cells))])

    def run(self, frames, history):
        batch, n_steps = frames.shape[:2]
        n_layers = len(self.cells)
        h = [None] * n_layers
        c = [None] * n_layers
        logits = []
        feedback = self.config["feedback"]
        for t in range(n_steps):
            previous = list(h)
            for k in range(n_layers):
                if k == 0:
                    source = frames[:, t]
                elif previous[k - 1] is None:
                    source = None
                else:
                    source = nn.functional.max_pool2d(previous[k - 1], 2)
                if source is None:
                    # not reached yet: exactly silent (no bias-driven activity before step k)
                    state = None
                else:
                    x = self.inputs[k](source)
                    if feedback and k == feedback[1] and previous[feedback[0]] is not None:
                        up = nn.functional.interpolate(previous[feedback[0]], size=x.shape[-2:])
                        x = x + self.long_range(up)
                    hk = h[k] if h[k] is not None else torch.zeros_like(x)
                    ck = c[k] if c[k] is not None else torch.zeros_like(x)
                    state, c[k] = self.cells[k](x, hk, ck)
                h[k] = state
                shown = state if state is not None else self._silent(frames, k)
                shown = self.out[f"layer{k}"](shown)
                history.add(f"out.layer{k}", shown)
            logits.append(self.readout(global_pool(shown)))  # the last layer's output
        return logits

    def _silent(self, frames, k):
        size = frames.shape[-1] // 2 ** k
        return frames.new_zeros(frames.shape[0], self.config["channels"][k], size, size)
