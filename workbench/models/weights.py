"""Model weights on disk: state dicts only, loaded without unpickling arbitrary objects:
``torch.save`` files (``weights_only=True``) and safetensors files (read here: a JSON header
and raw little-endian tensor bytes, no code at all)."""

import json
import math
import sys
from pathlib import Path

import torch

from ..errors import DataFormatError, ExtractionError
from ..storage import atomic_path


class WeightsFileError(DataFormatError, ExtractionError):
    """A weights file that cannot be used: a data-format error naming the file, and an
    extraction error for callers that catch those."""


def save_weights(model, path):
    """Write ``model.state_dict()`` with ``torch.save``, atomically."""
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def torch_save_format(path):
    """``"zip"`` (torch.save's container), ``"legacy"`` (its older pickle stream),
    ``"safetensors"`` or None (none of these), from the first bytes; nothing is loaded."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head[:2] == b"PK":
        return "zip"
    if head.startswith(b"\x80"):
        return "legacy"
    # safetensors: an 8-byte little-endian header length, then the JSON header
    if len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= _MAX_HEADER_BYTES:
        return "safetensors"
    return None


# safetensors' own limit on its JSON header (100 MB)
_MAX_HEADER_BYTES = 100_000_000
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}
for _name, _attribute in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attribute):
        _SAFETENSORS_DTYPES[_name] = getattr(torch, _attribute)


def read_safetensors(path):
    """``{name: tensor}`` of a safetensors file, every field checked (a damaged or hostile
    file is a :class:`WeightsFileError` naming the file, the tensor and the problem)."""
    path = Path(path)
    fix = "re-export the weights (safetensors.torch.save_file, or torch.save of the state_dict)"
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise WeightsFileError(path, f"cannot be read ({error.strerror or error})", "check the path") from None
    if len(data) < 8:
        raise WeightsFileError(path, "safetensors file shorter than its 8-byte header length", fix)
    size = int.from_bytes(data[:8], "little")
    if not 2 <= size <= min(_MAX_HEADER_BYTES, len(data) - 8):
        raise WeightsFileError(path, f"safetensors header length {size} does not fit the file ({len(data)} bytes; "
                                     "truncated?)", fix)
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise WeightsFileError(path, f"safetensors header is not JSON ({str(error)[:200]})", fix) from None
    if not isinstance(header, dict):
        raise WeightsFileError(path, f"safetensors header is a JSON {type(header).__name__}, not an object", fix)
    if sys.byteorder != "little":
        raise WeightsFileError(path, "safetensors files are little-endian and this machine is not",
                               "convert the weights with torch.save on this machine")
    body, tensors = memoryview(data)[8 + size:], {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"safetensors tensor {name!r}"
        if not isinstance(entry, dict):
            raise WeightsFileError(path, f"{where}: its entry is not an object", fix)
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _SAFETENSORS_DTYPES:
            raise WeightsFileError(path, f"{where}: dtype {dtype!r} is not one of {sorted(_SAFETENSORS_DTYPES)}", fix)
        if (not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(n) is int for n in offsets) or not 0 <= offsets[0] <= offsets[1] <= len(body)):
            raise WeightsFileError(path, f"{where}: shape {shape!r} or data_offsets {offsets!r} is not valid for a "
                                         f"body of {len(body)} bytes (truncated?)", fix)
        torch_dtype = _SAFETENSORS_DTYPES[dtype]
        itemsize = torch.empty((), dtype=torch_dtype).element_size()
        if math.prod(shape) * itemsize != offsets[1] - offsets[0]:
            raise WeightsFileError(path, f"{where}: {offsets[1] - offsets[0]} bytes for shape {shape} of {dtype}", fix)
        raw = body[offsets[0]:offsets[1]]
        tensor = (torch.frombuffer(bytearray(raw), dtype=torch_dtype) if len(raw)
                  else torch.empty(0, dtype=torch_dtype))
        tensors[name] = tensor.reshape(shape)
    if not tensors:
        raise WeightsFileError(path, "safetensors file holds no tensor", fix)
    return tensors


def load_weights(model, path, device="cpu"):
    """Load a state dict into ``model`` (``torch.load(..., weights_only=True)``, or a
    safetensors file: :func:`read_safetensors`).

    Raises
    ------
    WeightsFileError (a DataFormatError and an ExtractionError)
        The file is missing, unreadable, a pickle of objects or not a state dict.
    ExtractionError
        The weights belong to another architecture (the message lists missing /
        unexpected / mis-shaped parameters).
    """
    path = Path(path)
    try:
        if path.is_file() and (path.suffix == ".safetensors" or torch_save_format(path) == "safetensors"):
            state = {name: tensor.to(device) for name, tensor in read_safetensors(path).items()}
        else:
            state = torch.load(path, map_location=device, weights_only=True)
    except WeightsFileError:
        raise
    except FileNotFoundError:
        raise WeightsFileError(path, "weights file not found", "check the path") from None
    except Exception as error:  # noqa: BLE001 - torch raises many types; none may leak
        # weights_only refuses pickled objects: that is a file we will not execute. The
        # library's own message suggests turning that safety off, so it is not repeated.
        try:
            zipped = torch_save_format(path) == "zip"
        except OSError:
            zipped = False
        kind = ("it holds pickled Python objects besides tensors" if zipped
                else "not a torch.save file (text, a plain pickle or another format)")
        raise WeightsFileError(path, f"cannot be loaded as weights: {kind} ({type(error).__name__})",
                              "save the model's state_dict() with torch.save; the workbench never "
                              "unpickles arbitrary objects") from None
    expected = model.state_dict()
    state = _model_state(state, expected, path)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or mis_shaped:
        parts = [f"missing {missing[:5]}" if missing else "",
                 f"unexpected {unexpected[:5]}" if unexpected else "",
                 "shape differs for " + ", ".join(
                     f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in mis_shaped[:5])
                 if mis_shaped else ""]
        raise ExtractionError(
            f"{path}: weights of another architecture than {type(model).__name__}: "
            + "; ".join(p for p in parts if p)
            + " (fix: build the model with the config it was trained with)")
    model.load_state_dict(state)
    return model


# Prefixes that wrappers put before a model's own parameter names: DataParallel and
# DistributedDataParallel ("module."), torch.compile ("_orig_mod."), a LightningModule or
# training wrapper holding the network as an attribute ("model.", "net.", "network.")
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "network.")


def _is_state_dict(value):
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _unwrapped(state, expected):
    """``state`` with wrapper prefixes removed while every key has one and the model's own
    names have none (a model whose parameters really start with "model." keeps them)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in expected):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def _model_state(loaded, expected, path):
    """The model's state dict in what ``torch.load`` returned: the dict itself, or, in a
    training checkpoint (``{"state_dict": ..., "epoch": 3}``, ``{"model": ..., "optimizer":
    ...}``), the one nested state dict whose names are the model's (wrapper prefixes removed).
    Several that fit (a model and its EMA copy) or none: a named error."""
    if not isinstance(loaded, dict):
        raise WeightsFileError(path, f"expected a state dict of tensors, got {type(loaded).__name__}",
                              "save the model's state_dict() with torch.save")
    if _is_state_dict(loaded):
        return _unwrapped(loaded, expected)
    nested = {key: _unwrapped(value, expected) for key, value in loaded.items() if _is_state_dict(value)}
    fitting = [key for key, value in nested.items() if set(value) == set(expected)]
    if len(fitting) == 1:
        return nested[fitting[0]]
    keys = ", ".join(repr(k) for k in list(loaded)[:8])
    if len(fitting) > 1:
        raise WeightsFileError(path, f"a checkpoint with several state dicts of this model ({', '.join(map(repr, fitting))})",
                              "save the one to score: torch.save(checkpoint[KEY], 'weights.pt')")
    if len(nested) == 1:  # the architecture check names what differs
        return next(iter(nested.values()))
    what = f"state dicts under {', '.join(map(repr, nested))}, none with this model's names" if nested else \
        "no state dict of tensors"
    raise WeightsFileError(path, f"a checkpoint dict (keys {keys}) with {what}",
                          "save the model's state_dict() with torch.save")
