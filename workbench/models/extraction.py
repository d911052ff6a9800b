"""Time-resolved activation extraction from any ``torch.nn.Module``.

A recurrent model calls the same submodule once per time step. Forward hooks that store
``outputs[name] = output`` keep only the last call; :class:`LayerRecorder` appends every
call instead, so the T calls of a reused module become T time bins.
"""

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ..assembly import DIMS, validate
from ..backend import resolve_device
from ..errors import ExtractionError
from .protocol import PresentationProtocol


class LayerRecorder:
    """Context manager that records every output of the named submodules.

    Parameters
    ----------
    model : torch.nn.Module
    layers : list of str
        Dotted module paths as in ``model.named_modules()``.

    Attributes
    ----------
    calls : dict of str to list of torch.Tensor
        The outputs of each layer in call order (detached, on the CPU, float32).
    """

    def __init__(self, model, layers):
        modules = dict(model.named_modules())
        unknown = [name for name in layers if name not in modules or name == ""]
        if unknown:
            available = [name for name in modules if name]
            raise ExtractionError(
                f"unknown layer(s) {unknown}; available: {available[:50]}"
                + (" ..." if len(available) > 50 else "")
            )
        if len(set(layers)) != len(layers):
            raise ExtractionError(f"layers listed twice: {layers}")
        self.layers = list(layers)
        self._modules = [modules[name] for name in self.layers]
        self._handles = []
        self.calls = {name: [] for name in self.layers}

    def _hook(self, name):
        def record(module, inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise ExtractionError(
                    f"layer {name!r} returned {type(output).__name__}, not a tensor"
                )
            self.calls[name].append(output.detach().to("cpu", torch.float32))

        return record

    def __enter__(self):
        self._handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in zip(self.layers, self._modules)
        ]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def pop(self):
        """Return and clear the recorded calls."""
        calls, self.calls = self.calls, {name: [] for name in self.layers}
        return calls


def _neuroid_coords(layer, shape):
    """Coords for the units of one layer output of per-sample ``shape`` (C[, H, W])."""
    if len(shape) == 3:
        channel, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    elif len(shape) == 1:
        channel = np.arange(shape[0])
        y = x = np.zeros_like(channel)
    else:
        raise ExtractionError(
            f"layer {layer!r} outputs per-sample shape {tuple(shape)}; expected (C,) or (C, H, W)"
        )
    channel, y, x = channel.ravel(), y.ravel(), x.ravel()
    ids = np.char.add(np.char.add(np.char.add(f"{layer}/", channel.astype(str)), "/"),
                      np.char.add(np.char.add(y.astype(str), "/"), x.astype(str)))
    return {
        "neuroid_id": ids.astype(object),
        "layer": np.full(channel.shape, layer, dtype=object),
        "channel": channel,
        "y": y,
        "x": x,
    }


def extract(model, stimuli, layers=None, protocol=None, batch_size=64, device="auto",
            progress=True):
    """Run ``model`` over a stimulus set and return activations at every step.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(frames)`` with ``frames`` ``(batch, steps, C, H, W)``.
    stimuli : workbench.stimuli.StimulusSet
    layers : list of str, optional
        Module paths to record; default ``model.default_layers``.
    protocol : PresentationProtocol, optional
        Maps steps to milliseconds; default 10 image steps then 15 grey, 10 ms each.
    batch_size : int
    device : str or torch.device
        ``"auto"`` uses CUDA, then MPS, then the CPU.
    progress : bool
        Show a progress bar over batches.

    Returns
    -------
    xarray.DataArray
        Assembly ``(presentation, neuroid, time_bin)``, float32, with neuroid coords
        ``layer``, ``channel``, ``y``, ``x`` and time coords from the protocol plus
        ``time_step``.
    """
    protocol = protocol or PresentationProtocol()
    if layers is None:
        layers = getattr(model, "default_layers", None)
        if not layers:
            raise ExtractionError("name the layers to record (this model has no default_layers)")
    if batch_size < 1:
        raise ExtractionError(f"batch_size must be >= 1, got {batch_size}")
    images = np.asarray(stimuli.images)
    if images.ndim != 4 or not np.issubdtype(images.dtype, np.floating):
        raise ExtractionError(
            f"stimulus images must be float (n, C, H, W), got {images.dtype} {images.shape}"
        )
    device = resolve_device(device)
    was_training = model.training
    model.eval().to(device)
    per_layer = {name: [] for name in layers}
    shapes = {}
    try:
        with LayerRecorder(model, layers) as recorder, torch.inference_mode():
            starts = range(0, len(images), batch_size)
            for start in tqdm(starts, desc="extracting", unit="batch", disable=not progress):
                batch = torch.from_numpy(images[start:start + batch_size]).to(device)
                model(protocol.frames(batch))
                for name, calls in recorder.pop().items():
                    if len(calls) != protocol.n_steps:
                        raise ExtractionError(
                            f"layer {name!r} was called {len(calls)} times for "
                            f"{protocol.n_steps} steps; record modules that run once per step"
                        )
                    # (steps, batch, ...) -> (batch, units, steps)
                    stacked = torch.stack(calls, dim=-1)
                    per_layer[name].append(stacked.reshape(stacked.shape[0], -1, stacked.shape[-1]).numpy())
                    if shapes.setdefault(name, calls[0].shape[1:]) != calls[0].shape[1:]:
                        raise ExtractionError(f"layer {name!r} changed shape between batches")
    finally:
        model.train(was_training)

    values, coords = [], {key: [] for key in ("neuroid_id", "layer", "channel", "y", "x")}
    for name in layers:
        values.append(np.concatenate(per_layer[name], axis=0))
        for key, column in _neuroid_coords(name, tuple(shapes[name])).items():
            coords[key].append(column)
    data = np.concatenate(values, axis=1)
    if not np.isfinite(data).all():
        raise ExtractionError(
            f"the model produced {np.size(data) - np.isfinite(data).sum()} non-finite activations"
        )
    time_start, time_end = protocol.time_bins()
    presentation = {
        column: ("presentation", stimuli.metadata[column].to_numpy())
        for column in stimuli.metadata.columns
    }
    presentation["stimulus_id"] = ("presentation", stimuli.stimulus_ids.astype(object))
    assembly = xr.DataArray(
        data,
        dims=DIMS,
        coords={
            **presentation,
            **{key: ("neuroid", np.concatenate(parts)) for key, parts in coords.items()},
            "time_bin_start": ("time_bin", time_start),
            "time_bin_end": ("time_bin", time_end),
            "time_step": ("time_bin", np.arange(protocol.n_steps)),
        },
        attrs={
            "source": "model activations",
            "model": getattr(model, "config", {"name": type(model).__name__}),
            "stimuli": stimuli.identifier,
            "protocol": protocol.as_dict(),
            "simulated": False,
        },
    )
    return validate(assembly)
