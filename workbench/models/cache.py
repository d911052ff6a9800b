"""Activation cache keyed by content, never by a name alone.

The key hashes everything that determines the activations: the model's class, config and
every parameter and buffer (bytes), the stimulus images and ids, the presentation protocol,
the layers and any other extraction option. Renaming a model cannot return stale
activations; changing one weight is a miss.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from ..assembly import from_netcdf, to_netcdf
from .extraction import extract
from .protocol import PresentationProtocol


def _update_array(digest, name, array):
    array = np.ascontiguousarray(array)
    digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
    digest.update(array.tobytes())


def cache_key(model, stimuli, protocol, layers, **options):
    """SHA-256 hex digest of weights + stimuli + protocol + layer spec + options."""
    digest = hashlib.sha256()
    config = getattr(model, "config", {})
    digest.update(json.dumps({"class": type(model).__qualname__, "config": config,
                              "protocol": protocol.as_dict(), "layers": list(layers),
                              "options": options}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        _update_array(digest, name, tensor.detach().cpu().float().numpy())
    _update_array(digest, "images", stimuli.images)
    digest.update("\x00".join(stimuli.stimulus_ids).encode())
    return digest.hexdigest()


def cached_extract(model, stimuli, cache_dir, layers=None, protocol=None, **options):
    """:func:`workbench.models.extract`, stored under ``cache_dir/<content hash>.nc``.

    Returns ``(assembly, hit)``: ``hit`` is True when the activations came from the cache.
    Writes are atomic, so an interrupted run leaves no half-written entry.
    """
    protocol = protocol or PresentationProtocol()
    layers = list(layers or getattr(model, "default_layers", []) or [])
    key = cache_key(model, stimuli, protocol, layers,
                    **{k: v for k, v in options.items() if k not in ("progress", "device", "batch_size")})
    path = Path(cache_dir) / f"{key}.nc"
    if path.exists():
        return from_netcdf(path), True
    assembly = extract(model, stimuli, layers=layers or None, protocol=protocol, **options)
    assembly.attrs["cache_key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    to_netcdf(assembly, path)
    return assembly, False
