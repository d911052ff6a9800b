"""Contextual recurrent CNN (CRCN): VGG-style stages with feedback contextual modules."""

import torch
from torch import nn

from .base import StepNorms, Taps, ZooModel, global_pool, seeded


class ContextualModule(nn.Module):
    """Feedback from a higher stage ``h`` into a lower stage ``k``:

    .. math::
        u &= \\mathrm{up}(O_h) \\quad (\\text{nearest upsampling to } O_k\\text{'s size, 1x1 conv to its channels}) \\\\
        g &= \\tanh(\\mathrm{conv}_{3\\times3}([u, O_k])) \\\\
        O_k &\\leftarrow g \\odot u + O_k
    """

    def __init__(self, high_channels, low_channels):
        super().__init__()
        self.match = nn.Conv2d(high_channels, low_channels, 1)
        self.gate = nn.Conv2d(2 * low_channels, low_channels, 3, padding=1)

    def forward(self, high, low):
        up = self.match(nn.functional.interpolate(high, size=low.shape[-2:], mode="nearest"))
        gate = torch.tanh(self.gate(torch.cat([up, low], dim=1)))
        return gate * up + low


class Stage(nn.Module):
    """Two 3x3 conv + batch norm + ReLU, with one batch norm per step (:class:`StepNorms`):
    from step 1 on, feedback changes what the stage sees, so one set of statistics shared by
    all steps fits none of them (a shared norm left CRCN's own feedforward pass at .36
    accuracy against .94 for its twin)."""

    def __init__(self, in_channels, out_channels, max_steps):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm1 = StepNorms(out_channels, max_steps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = StepNorms(out_channels, max_steps)

    def forward(self, x, step=0):
        x = torch.relu(self.norm1(self.conv1(x), step))
        return torch.relu(self.norm2(self.conv2(x), step))


class CRCN(ZooModel):
    """VGG-style stages (two 3x3 conv + per-step batch norm + ReLU each, 2x2 max-pool between
    stages) with contextual feedback loops, unrolled over steps.

    Step 0 is the feedforward pass. At step ``t > 0`` stage ``k`` is computed from the
    current frame and stage ``k-1``, then every loop ``(h, k)`` updates it with the output of
    stage ``h`` from step ``t-1`` (:class:`ContextualModule`) before it feeds stage ``k+1``.
    With a static image repeated over steps this is the paper's unrolling; ``unroll`` steps
    of a longer protocol keep updating in the same way.

    Parameters
    ----------
    channels : tuple of int
        Channels per stage; stage outputs are recorded as ``out.stage0``, ...
    loops : list of (int, int)
        Feedback loops ``(higher stage, lower stage)``; by default between adjacent stages
        (2 -> 1, 1 -> 0): the paper finds loops that cross several pooling stages less useful.
    max_steps : int
        Per-step batch norms kept (later steps use the last trained one).
    """

    name = "CRCN"

    def __init__(self, channels=(8, 16, 32), loops=((1, 0), (2, 1)), in_channels=1, n_classes=10,
                 max_steps=8, seed=None):
        loops = [tuple(int(v) for v in loop) for loop in loops]
        for high, low in loops:
            if not 0 <= low < high < len(channels):
                raise ValueError(f"loop {(high, low)} must go from a higher to a lower stage "
                                 f"among {len(channels)} stages")
        super().__init__(channels=list(channels), loops=[list(loop) for loop in loops],
                         in_channels=in_channels, n_classes=n_classes, max_steps=max_steps, seed=seed)
        with seeded(seed):
            sizes = (in_channels,) + tuple(channels)
            self.stages = nn.ModuleList(Stage(sizes[i], sizes[i + 1], max_steps) for i in range(len(channels)))
            self.context = nn.ModuleDict(
                {f"{high}to{low}": ContextualModule(channels[high], channels[low]) for high, low in loops}
            )
            self.readout = nn.Linear(channels[-1], n_classes)
        self.out = Taps([f"stage{i}" for i in range(len(channels))])
        self.loops = loops

    default_layers = property(lambda self: [f"out.stage{i}" for i in range(len(self.stages))])

    def run(self, frames, history):
        previous = None
        logits = []
        for t in range(frames.shape[1]):
            x, current = frames[:, t], []
            for k, stage in enumerate(self.stages):
                if k:
                    x = nn.functional.max_pool2d(x, 2)
                x = stage(x, t)
                if previous is not None:
                    for high, low in self.loops:
                        if low == k:
                            x = self.context[f"{high}to{low}"](previous[high], x)
                x = self.out[f"stage{k}"](x)
                current.append(x)
                history.add(f"out.stage{k}", x)
            previous = current
            logits.append(self.readout(global_pool(x)))
        return logits
