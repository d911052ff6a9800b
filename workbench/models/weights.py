"""Model weights on disk: state dicts only, loaded without unpickling arbitrary objects."""

from pathlib import Path

import torch

from ..errors import ExtractionError
from ..storage import atomic_path


def save_weights(model, path):
    """Write ``model.state_dict()`` with ``torch.save``, atomically."""
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def load_weights(model, path, device="cpu"):
    """Load a state dict into ``model`` (``torch.load(..., weights_only=True)``).

    Raises
    ------
    ExtractionError
        The file is unreadable, not a state dict, or from another architecture (the message
        lists missing / unexpected / mis-shaped parameters).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError as error:
        raise ExtractionError(f"{path}: weights file not found") from error
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        # weights_only refuses pickled objects: that is a file we will not execute.
        raise ExtractionError(f"{path}: not a loadable state dict ({error})") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExtractionError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    expected = model.state_dict()
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
