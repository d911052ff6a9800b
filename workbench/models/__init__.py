"""Model adapters: run PyTorch models over stimuli and record activations over time."""

from .extraction import LayerRecorder, extract
from .protocol import PresentationProtocol
from .zoo import BLNet

__all__ = ["BLNet", "LayerRecorder", "PresentationProtocol", "extract"]
