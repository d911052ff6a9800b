"""Presentation protocols: how model steps map to milliseconds after stimulus onset."""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import ExtractionError, check_count, check_interval

UNROLLINGS = ("network_per_step", "layer_per_step")


@dataclass(frozen=True)
class PresentationProtocol:
    """A stimulus shown for ``image_steps`` steps, then a grey frame for ``blank_steps``.

    Step ``k`` covers ``[onset_ms + k * step_ms, onset_ms + (k + 1) * step_ms)``
    milliseconds after stimulus onset. ``onset_ms`` is where the model's first step sits
    on the neural time axis (a response latency, e.g. 50 ms for V4-like data).

    ``unrolling`` names the convention: ``"network_per_step"`` (every step is a full pass
    through the network: Spoerer BL, gruCNN frames) or ``"layer_per_step"`` (every arrow
    costs one step, so layer ``k`` first responds at step ``k``: Nayebi ConvRNNs).
    """

    image_steps: int = 10
    blank_steps: int = 15
    step_ms: float = 10.0
    onset_ms: float = 0.0
    unrolling: str = "network_per_step"

    def __post_init__(self):
        check_count("image_steps", self.image_steps, 1, error=ExtractionError)
        check_count("blank_steps", self.blank_steps, 0, error=ExtractionError)
        check_interval("step_ms", self.step_ms, "(0, inf)", error=ExtractionError)
        check_interval("onset_ms", self.onset_ms, "(-inf, inf)", error=ExtractionError)  # NaN or inf: no finite time bin
        if self.unrolling not in UNROLLINGS:
            raise ExtractionError(
                f"unknown unrolling {self.unrolling!r}; choose one of {UNROLLINGS}"
            )

    @property
    def n_steps(self):
        return self.image_steps + self.blank_steps

    def frames(self, images):
        """Per-step input ``(batch, n_steps, C, H, W)``: the image, then zeros (grey)."""
        blank = torch.zeros_like(images)
        steps = [images] * self.image_steps + [blank] * self.blank_steps
        return torch.stack(steps, dim=1)

    def time_bins(self):
        """``(time_bin_start, time_bin_end)`` in ms, one entry per step."""
        start = self.onset_ms + self.step_ms * np.arange(self.n_steps, dtype=np.float64)
        return start, start + self.step_ms

    def as_dict(self):
        return asdict(self)
