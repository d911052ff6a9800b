"""Model adapters: run PyTorch models over stimuli and record activations over time."""

from .cache import cache_key, cached_extract
from .extraction import LayerRecorder, extract
from .protocol import PresentationProtocol
from .weights import load_weights, save_weights
from .zoo import BLNet

__all__ = ["BLNet", "LayerRecorder", "PresentationProtocol", "cache_key", "cached_extract",
           "extract", "load_weights", "save_weights"]
