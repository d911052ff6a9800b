"""Time-resolved activation extraction from any ``torch.nn.Module``.

A recurrent model calls the same submodule once per time step. Forward hooks that store
``outputs[name] = output`` keep only the last call; :class:`LayerRecorder` appends every
call instead, so the T calls of a reused module become T time bins.

Outputs stay on the model's device and are reduced there (:mod:`.reductions`); each batch
crosses to the host once and goes to a sink (memory, or a zarr store streamed to disk), so
peak memory is one batch plus the result, or one batch when a store is used.
"""

import contextlib

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from ..assembly import DIMS
from ..backend import resolve_device
from ..errors import ExtractionError, check_count
from .conventions import (FRAMES, check_convention, detect_convention, model_dtype, named_items, run_steps,
                          sees_offset, sequence_layouts, split_steps, stepped_layers)
from .protocol import PresentationProtocol
from .reductions import Reduction
from .store import MemorySink, ZarrSink

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _first_item(output):
    """What a layer's output is recorded as: the output itself, or the first item of a tuple
    or list (an LSTM's ``(output, (h, c))``), of a dict (insertion order: a block's
    ``{"out": ..., "state": ...}``) or of a dataclass."""
    if isinstance(output, (tuple, list)):
        return output[0] if output else output
    fields = named_items(output)
    return output if fields is None else next(iter(fields.values()), output)


class LayerRecorder:
    """Context manager that records every output of the named submodules.

    Parameters
    ----------
    model : torch.nn.Module
    layers : list of str
        Dotted module paths as in ``model.named_modules()``.
    transform : callable, optional
        ``transform(name, output) -> tensor`` applied to each output where it was made
        (on its device); default: detach, move to the CPU as float32.
    sequences : dict of str to str, optional
        Layers that run once over a whole sequence of ``steps`` frames, and how their output
        holds the steps (:func:`~workbench.models.conventions.sequence_layouts`): each such
        output is recorded as ``steps`` calls, one per step.
    steps : int, optional
        The frames of each call (needed with ``sequences``).

    Attributes
    ----------
    calls : dict of str to list of torch.Tensor
        The (transformed) outputs of each layer in call order.
    shapes : dict of str to tuple
        Per-sample shape of each layer's raw output (from its first call).
    """

    def __init__(self, model, layers, transform=None, sequences=None, steps=None):
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
        scripted = [name for name in layers if isinstance(modules[name], torch.jit.ScriptModule)]
        if scripted:
            raise ExtractionError(f"layer(s) {scripted} are TorchScript modules (torch.jit.script/trace), which run "
                                  "without Python hooks, so their outputs cannot be recorded (fix: build them from "
                                  "their Python classes)")
        self.layers = list(layers)
        self._modules = [modules[name] for name in self.layers]
        self._transform = transform or (lambda name, output: output.detach().to("cpu", torch.float32))
        self.sequences, self.steps = dict(sequences or {}), steps
        self._handles = []
        self.shapes = {}
        self.calls = {name: [] for name in self.layers}
        self.call_order = []  # layer names in the order of their first call since the last pop

    def _hook(self, name):
        def record(module, inputs, output):
            output = _first_item(output)
            if not isinstance(output, torch.Tensor):
                raise ExtractionError(
                    f"layer {name!r} returned {type(output).__name__}, not a tensor (nor a tuple, list, dict or "
                    "dataclass whose first item is one)"
                )
            layout = self.sequences.get(name)
            parts = [output] if layout is None else split_steps(output, layout, self.steps)
            if parts is None:
                raise ExtractionError(f"layer {name!r} returned {tuple(output.shape)}, which does not hold the "
                                      f"{self.steps} steps of its sequence as it did when detected ({layout})")
            if not self.calls[name]:
                self.call_order.append(name)
            for part in parts:
                shape = tuple(part.shape[1:])
                if self.shapes.setdefault(name, shape) != shape:
                    raise ExtractionError(f"layer {name!r} changed shape from {self.shapes[name]} to {shape}")
                value = self._transform(name, part.detach())
                # the model may overwrite an output after its module returned it (the next
                # ReLU(inplace=True), ``x += skip``): what is kept must not share its memory
                if (torch.is_tensor(value) and value.layout == part.layout == torch.strided
                        and value.untyped_storage().data_ptr() == part.untyped_storage().data_ptr()):
                    value = value.clone()
                self.calls[name].append(value)

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
        self.call_order = []
        return calls


class _BatchBuffers:
    """Two reusable ``(batch, units, steps)`` blocks on the device (and two pinned host
    blocks for an accelerator): each batch's per-step outputs are copied in once, with no
    stack/concatenate temporaries and no fresh allocation per batch. Two, because the zarr
    sink may still be writing the previous batch while this one is filled."""

    def __init__(self, calls, layers, n_steps, batch_size, device):
        widths = [calls[name][0].shape[1] for name in layers]
        self.offsets = np.concatenate([[0], np.cumsum(widths)])
        self.layers = layers
        shape = (batch_size, int(self.offsets[-1]), n_steps)
        self.device = [torch.empty(shape, device=device) for _ in range(2)]
        self.host = ([torch.empty(shape, pin_memory=True) for _ in range(2)]
                     if device.type == "cuda" else self.device)
        self.turn = 0

    def fill(self, calls, n):
        self.turn = 1 - self.turn
        block = self.device[self.turn][:n]
        for name, lo, hi in zip(self.layers, self.offsets[:-1], self.offsets[1:]):
            for t, output in enumerate(calls[name]):
                block[:, lo:hi, t].copy_(output)
        return block

    def to_host(self, block):
        host = self.host[self.turn][:len(block)]
        if host.data_ptr() != block.data_ptr():
            host.copy_(block)
        return host.numpy()


def resolve_convention(model, layers, images, convention=None, device=None):
    """The declared convention (argument, else ``model.convention``), else the detected one
    (two images through the model on ``device``, default where its parameters are)."""
    convention = convention or getattr(model, "convention", None)
    if convention is not None:
        return check_convention(convention)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return detect_convention(model, layers, _model_input(model, images[:2], device), LayerRecorder)
    finally:
        model.train(was_training)


def responding_layers(model, layers, preprocessing, convention=None):
    """The ``layers`` of ``model`` that respond at every step (called at all; for a frames
    model, once per step or once over the sequence with a time axis), found by calling it on
    two seeded random images of its declared input ``preprocessing``
    (:func:`workbench.models.conventions.stepped_layers`); all of them when none does
    (extraction then says why). For candidate layers, never for declared ones."""
    rng = np.random.default_rng(0)  # pixels in [0, 1], normalised as the model expects them
    images = preprocessing.normalize(rng.random((2, preprocessing.n_channels, preprocessing.size, preprocessing.size)))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            sample = _model_input(model, images, device)
            convention = convention or getattr(model, "convention", None) or detect_convention(
                model, layers, sample, LayerRecorder)
            found = stepped_layers(model, layers, sample, check_convention(convention), LayerRecorder)
    except Exception:  # noqa: BLE001 - the user's model, probed: extraction reports what fails, layers as given
        return list(layers)
    finally:
        model.train(was_training)
    return found or list(layers)


def _model_input(model, images, device, dtype=None):
    """``images`` (float, ``(n, C, H, W)``, any layout) as the tensor ``model`` takes: on
    ``device``, in its dtype (``dtype``, found once by the caller of a loop, else
    :func:`~workbench.models.conventions.model_dtype`)."""
    array = np.asarray(images)
    contiguous = np.ascontiguousarray(array, dtype=np.float32)
    tensor = torch.from_numpy(contiguous)
    moved = tensor.to(device, dtype or model_dtype(model))
    # the model's own copy: a forward that normalises its input in place (x -= mean) wrote
    # into the caller's stimulus images, seen by every later model and extraction
    if moved.data_ptr() == tensor.data_ptr() and np.may_share_memory(contiguous, array):
        moved = moved.clone()
    return moved


def resolve_protocol(model, protocol):
    """``protocol``, or the model's default; an error when it contradicts the model's unrolling."""
    declared = getattr(model, "unrolling", None)
    if protocol is None:
        protocol = getattr(model, "default_protocol", None) or PresentationProtocol()
    if declared is not None and protocol.unrolling != declared:
        raise ExtractionError(
            f"{type(model).__name__} unrolls {declared!r} but the protocol says "
            f"{protocol.unrolling!r} (fix: PresentationProtocol(unrolling={declared!r}))"
        )
    return protocol


def _autocast(device, autocast):
    if autocast is None:
        return contextlib.nullcontext()
    if autocast not in AUTOCAST_DTYPES:
        raise ExtractionError(f"autocast must be None or one of {sorted(AUTOCAST_DTYPES)}, got {autocast!r}")
    if device.type == "cpu" and autocast == "fp16":
        raise ExtractionError("fp16 autocast needs an accelerator (fix: autocast='bf16' or None on CPU)")
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[autocast])


def _template(stimuli, layers, shapes, reduction, protocol, model, options):
    """An assembly of the final shape and coords whose values are placeholders."""
    coords = {}
    for name in layers:
        for key, column in reduction.coords(name, shapes[name]).items():
            coords.setdefault(key, []).append(column)
    n_units = sum(map(len, coords["neuroid_id"]))
    time_start, time_end = protocol.time_bins()
    presentation = {column: ("presentation", stimuli.metadata[column].to_numpy())
                    for column in stimuli.metadata.columns}
    presentation["stimulus_id"] = ("presentation", stimuli.stimulus_ids.astype(object))
    placeholder = np.broadcast_to(np.float32(0), (len(stimuli), n_units, protocol.n_steps))
    return xr.DataArray(
        placeholder,
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
            "model": model_config(model),
            "stimuli": stimuli.identifier,
            "protocol": protocol.as_dict(),
            "reduction": reduction.spec(),
            "extraction": options,
            "simulated": False,
        },
    )


def model_config(model):
    """The model's ``config`` as plain JSON data (for the activations' attributes and cache
    keys): a zoo model's dict as it is, a library's config object by its ``to_dict()`` (a
    Hugging Face ``PretrainedConfig``), values that are not JSON as text; ``{"name": class
    name}`` for a model without one."""
    import json

    config = getattr(model, "config", None)
    if config is None:
        return {"name": type(model).__name__}
    if not isinstance(config, dict) and callable(getattr(config, "to_dict", None)):
        config = config.to_dict()
    if not isinstance(config, dict):
        return {"name": type(model).__name__, "config": str(config)}
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def _fit_reduction(model, images, layers, reduction, protocol, device, dtype, autocast, batch_size, convention,
                   sequences):
    """Fit a reduction (PCA) on the raw outputs of a seeded subset of stimuli."""
    rng = np.random.default_rng(getattr(reduction, "seed", 0))
    n_fit = min(getattr(reduction, "n_fit", len(images)), len(images))
    subset = np.sort(rng.choice(len(images), size=n_fit, replace=False))
    collected = {name: [] for name in layers}
    with LayerRecorder(model, layers, transform=lambda name, out: out.float(), sequences=sequences,
                       steps=protocol.n_steps) as recorder:
        for start in range(0, len(subset), batch_size):
            batch = _model_input(model, images[subset[start:start + batch_size]], device, dtype)
            with _autocast(device, autocast):
                calls = run_steps(model, batch, protocol, convention, recorder)
            for name, outputs in calls.items():
                collected[name].extend(outputs)
    for name in layers:
        reduction.fit(name, torch.cat(collected.pop(name)))


def extract(model, stimuli, layers=None, protocol=None, batch_size=64, device="auto",
            progress=True, reduction=None, store=None, autocast=None, convention=None):
    """Run ``model`` over a stimulus set and return activations at every step.

    Parameters
    ----------
    model : torch.nn.Module
        Called by its calling convention (:mod:`.conventions`): ``model(frames)`` with
        ``frames`` ``(batch, steps, C, H, W)``, or ``model(x)`` with ``(batch, C, H, W)``.
    stimuli : workbench.stimuli.StimulusSet
    layers : list of str, optional
        Module paths to record; default ``model.default_layers``.
    protocol : PresentationProtocol, optional
        Maps steps to milliseconds; default the model's ``default_protocol``, else 10 image
        steps then 15 grey, 10 ms each. Its ``unrolling`` must match the model's.
    batch_size : int
    device : str or torch.device
        ``"auto"`` uses CUDA, then MPS, then the CPU.
    progress : bool
        Show a progress bar over batches.
    reduction : workbench.models.reductions.Reduction, optional
        Applied to every recorded output on the device (``SpatialPool``,
        ``SparseRandomProjection``, ``PCA``); default: every unit.
    store : path, optional
        Stream the activations into this zarr store (replaced atomically at the end) and
        return it opened lazily; default: hold them in memory.
    autocast : {None, "bf16", "fp16"}
        Mixed precision for the forward pass (meant for GPUs); values are stored as float32.
    convention : {None, "frames", "frames_time_first", "video", "static_recurrent", "stepwise", "feedforward"}
        How to call the model; default ``model.convention``, else detected (an error names
        the conventions when the model fits none).

    Returns
    -------
    xarray.DataArray
        Assembly ``(presentation, neuroid, time_bin)``, float32, with neuroid coords
        ``layer``, ``channel``, ``y``, ``x`` (and ``component`` for projections), time
        coords from the protocol plus ``time_step``.

    Raises
    ------
    ExtractionError
        Unknown layers (the message lists the available ones), images that are not float
        ``(n, C, H, W)``, a layer not called once per step, non-finite activations.
    """
    protocol = resolve_protocol(model, protocol)
    if layers is None:
        layers = getattr(model, "default_layers", None)
        if not layers:
            raise ExtractionError("name the layers to record (this model has no default_layers)")
    layers = list(layers)
    check_count("batch_size", batch_size, 1, error=ExtractionError)
    images = stimuli.images if hasattr(stimuli.images, "content_digest") else np.asarray(stimuli.images)
    if images.ndim != 4 or not np.issubdtype(images.dtype, np.floating):
        raise ExtractionError(
            f"stimulus images must be float (n, C, H, W), got {images.dtype} {images.shape}"
        )
    if isinstance(images, np.ndarray):
        images = images.astype(np.float32, copy=False)
    reduction = reduction or Reduction()
    device = resolve_device(device)
    model.to(device)
    convention = resolve_convention(model, layers, images, convention, device)
    options = {"autocast": autocast, "convention": convention, "sees_offset": sees_offset(convention)}
    sink = ZarrSink(store, batch_size) if store is not None else MemorySink()
    was_training = model.training
    model.eval().to(device)
    buffers = None
    dtype = model_dtype(model)  # the inputs' dtype, found once
    try:
        with torch.inference_mode():
            sequences = {}
            if convention in FRAMES:  # layers that run once over the whole sequence of frames
                sequences = sequence_layouts(model, layers, _model_input(model, images[:2], device, dtype),
                                             LayerRecorder, convention=convention)
                if sequences:
                    options["sequence_layers"] = sequences
            if reduction.needs_fit:
                _fit_reduction(model, images, layers, reduction, protocol, device, dtype, autocast, batch_size,
                               convention, sequences)
            with LayerRecorder(model, layers, transform=reduction, sequences=sequences,
                               steps=protocol.n_steps) as recorder:
                starts = range(0, len(images), batch_size)
                for start in tqdm(starts, desc="extracting", unit="batch", disable=not progress):
                    batch = _model_input(model, images[start:start + batch_size], device, dtype)
                    with _autocast(device, autocast):
                        calls = run_steps(model, batch, protocol, convention, recorder)
                    if buffers is None:  # the first batch fixes the units: allocate once
                        buffers = _BatchBuffers(calls, layers, protocol.n_steps, batch_size, device)
                        sink.open(_template(stimuli, layers, recorder.shapes, reduction, protocol,
                                            model, options))
                    block = buffers.fill(calls, len(batch))
                    # a sum is non-finite iff some value is (or it overflows: then count exactly)
                    if not bool(torch.isfinite(block.sum())) and not bool(torch.isfinite(block).all()):
                        bad = (~torch.isfinite(block)).sum().item()
                        raise ExtractionError(
                            f"the model produced {bad} non-finite activations in the batch starting "
                            f"at stimulus {stimuli.stimulus_ids[start]!r} (fix: check the weights and "
                            "the input scale; under autocast try bf16 or None)"
                        )
                    sink.write(start, buffers.to_host(block))
        return sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        model.train(was_training)
