"""Model adapters: run PyTorch models over stimuli and record activations over time."""

from . import zoo
from .cache import cache_key, cached_extract
from .conventions import with_forward_options
from .extraction import LayerRecorder, extract
from .protocol import PresentationProtocol
from .reductions import PCA, Reduction, SparseRandomProjection, SpatialPool
from .spec import ModelSpec
from .store import open_activations
from .weights import load_weights, save_weights
from .zoo import BLNet

__all__ = ["BLNet", "LayerRecorder", "ModelSpec", "PCA", "PresentationProtocol", "Reduction",
           "SparseRandomProjection", "SpatialPool", "cache_key", "cached_extract", "extract",
           "load_weights", "open_activations", "save_weights", "with_forward_options", "zoo"]
