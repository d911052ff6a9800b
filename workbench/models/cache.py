"""Activation cache keyed by content, never by a name alone.

The key hashes everything that determines the activations: the model's class, config, the
source files of its code and every parameter and buffer (bytes), the stimulus images and ids, the presentation protocol,
the layers and any other extraction option. Renaming a model cannot return stale
activations; changing one weight is a miss.
"""

from pathlib import Path

from ..keys import ContentKey
from .conventions import run_steps
from .extraction import extract, model_config, resolve_convention, resolve_protocol
from .reductions import Reduction
from .store import is_complete, open_activations


def cache_key(model, stimuli, protocol, layers, **options):
    """SHA-256 hex digest of the model's code and weights + stimuli + protocol + layer spec +
    options + package versions."""
    import torch

    from .. import __version__

    key = ContentKey({"class": type(model).__qualname__, "config": model_config(model) if hasattr(model, "config") else {},
                      "protocol": protocol.as_dict(), "layers": list(layers), "options": options,
                      "versions": {"workbench": __version__, "torch": torch.__version__}})
    key.source("code", model).module_state("weights", model)
    # the code that runs the model and writes what it returns (calling conventions, the
    # presentation protocol, on-device reductions, the store): a fix there is a new key
    key.source("extraction", extract, type(protocol), Reduction, open_activations, run_steps)
    if hasattr(stimuli.images, "content_digest"):  # lazily rendered files: hash the files, not a rendering
        key.bytes("images", stimuli.images.content_digest().encode())
    else:
        key.array("images", stimuli.images)
    key.bytes("stimulus_ids", "\x00".join(stimuli.stimulus_ids).encode())
    return key.hexdigest()


def cached_extract(model, stimuli, cache_dir, layers=None, protocol=None, reduction=None, convention=None,
                   before=None, **options):
    """:func:`workbench.models.extract` into a zarr store ``cache_dir/<content hash>.zarr``.

    Returns ``(assembly, hit)``: ``hit`` is True when the activations came from the cache
    (then they are opened lazily from disk). The key covers weights, stimuli, protocol,
    layers, reduction, calling convention and autocast; batch size, device and progress bar do not change the
    values and are left out. The store is renamed into place only when complete, so an
    interrupted run is a miss, never a half-read entry. ``before(hit)``, when given, is
    called once the key is known and before any extraction (a memory preflight, which need
    not measure an extraction that will not run).
    """
    protocol = resolve_protocol(model, protocol)
    layers = list(layers or getattr(model, "default_layers", []) or [])
    reduction = reduction or Reduction()
    convention = resolve_convention(model, layers, stimuli.images, convention)
    key = cache_key(model, stimuli, protocol, layers, reduction=reduction.spec(), convention=convention,
                    **{k: v for k, v in options.items() if k not in ("progress", "device", "batch_size")})
    path = Path(cache_dir) / f"{key}.zarr"
    hit = is_complete(path)
    if before is not None:
        before(hit)
    if hit:
        return open_activations(path), True
    assembly = extract(model, stimuli, layers=layers or None, protocol=protocol,
                       reduction=reduction, store=path, convention=convention, **options)
    return assembly, False
