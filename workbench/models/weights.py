"""Model weights on disk: state dicts only, loaded without unpickling arbitrary objects."""

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
    """``"zip"`` (torch.save's container), ``"legacy"`` (its older pickle stream) or None (not
    a torch.save file), from the first two bytes; nothing is loaded."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return "zip" if head == b"PK" else "legacy" if head.startswith(b"\x80") else None


def load_weights(model, path, device="cpu"):
    """Load a state dict into ``model`` (``torch.load(..., weights_only=True)``).

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
        state = torch.load(path, map_location=device, weights_only=True)
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
