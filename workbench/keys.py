"""Content keys: the one hashing helper behind every cache (activations, trained models,
report tasks, simulated data).

A key is the SHA-256 of everything that can change a result. Callers feed it JSON-able
descriptions (options, configs, versions), arrays (weights, images) and files (weights,
recordings) through one :class:`ContentKey`, so every cache hashes the same way: a
dict's key order, an array's memory layout or a path's spelling never change a key,
and a changed byte always does.
"""

import hashlib
import json
from pathlib import Path

import numpy as np


# packages whose code is identified by their version, not their files
_LIBRARY_ROOTS = {"builtins", "torch", "torchvision", "timm", "numpy", "scipy", "typing", "abc", "collections"}


def _canonical(obj):
    """Deterministic JSON text of ``obj`` (sorted keys; tuples as lists; others as str)."""
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def _plain(value, depth=0):
    """Whether ``value`` is a plain setting: a number, string, bool or None, or a short list,
    tuple or dict of them (never a tensor, module or function)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if depth < 2 and isinstance(value, (list, tuple)) and len(value) <= 64:
        return all(_plain(item, depth + 1) for item in value)
    if depth < 2 and isinstance(value, dict) and len(value) <= 64:
        return all(isinstance(key, str) and _plain(item, depth + 1) for key, item in value.items())
    return False


class ContentKey:
    """An incremental SHA-256 over labelled parts.

    Every part is written with its label and kind, so two different sequences of parts
    never collide by concatenation.
    """

    def __init__(self, *payload):
        self._digest = hashlib.sha256()
        for item in payload:
            self.json("payload", item)

    def json(self, label, obj):
        """Add a JSON-able object (dict key order does not matter)."""
        text = _canonical(obj).encode()
        self._digest.update(f"json|{label}|{len(text)}|".encode())
        self._digest.update(text)
        return self

    def array(self, label, array):
        """Add an array's dtype, shape and bytes (C order, whatever its strides)."""
        array = np.ascontiguousarray(array)
        self._digest.update(f"array|{label}|{array.dtype.str}|{array.shape}|".encode())
        self._digest.update(array.tobytes())
        return self

    def bytes(self, label, data):
        self._digest.update(f"bytes|{label}|{len(data)}|".encode())
        self._digest.update(data)
        return self

    def file(self, label, path):
        """Add a file's SHA-256 (its content, never its name or time stamps)."""
        return self.json(label, file_sha256(path))

    def module_state(self, label, module):
        """Add every parameter and buffer of a ``torch.nn.Module``, non-persistent buffers too
        (names, dtypes, shapes and exact bytes), and every module's plain public attributes.
        Read as float32 they were not: a float64 model's weights hashed alike when they
        differed below float32's precision, and a model's dtype not at all."""
        import torch

        state = dict(module.state_dict())
        # buffers registered with persistent=False are not in the state dict, yet change results
        state.update({f"{name} (not persistent)": buffer for name, buffer in module.named_buffers()
                      if name not in state})
        for name, tensor in sorted(state.items()):
            if isinstance(tensor, torch.nn.parameter.UninitializedTensorMixin):  # a lazy module not yet called
                self._digest.update(f"tensor|{label}.{name}|uninitialized|".encode())
                continue
            tensor = tensor.detach().cpu().contiguous()
            # the raw bytes: numpy has no bfloat16 or float8, and a cast would round
            raw = tensor.reshape(-1).view(torch.uint8).numpy() if tensor.numel() else np.empty(0, np.uint8)
            self._digest.update(f"tensor|{label}.{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            self._digest.update(raw.tobytes())
        # plain settings kept as attributes (a loop's ``times``, a step size) change what the
        # same weights compute, and a builder may read them from a file its key cannot see
        settings = {f"{name}.{key}": value for name, sub in module.named_modules()
                    for key, value in vars(sub).items()
                    if not key.startswith("_") and key != "training" and _plain(value)}
        return self.json(f"{label}.settings", settings)

    def source(self, label, *objects):
        """Add the source files that define ``objects`` (functions, classes, or instances:
        every class in their MRO and, for a ``torch.nn.Module``, every submodule's class), so
        editing a model's code changes the key. Library code (torch, the standard library)
        is left out: its version is part of the caller's payload."""
        import inspect
        import sys

        names = set()
        for obj in objects:
            if inspect.isfunction(obj) or inspect.ismethod(obj):
                names.add(obj.__module__)
                continue
            classes = [obj] if inspect.isclass(obj) else [type(obj)]
            if hasattr(obj, "modules") and not inspect.isclass(obj):
                classes += [type(sub) for sub in obj.modules()]
            names.update(k.__module__ for cls in classes for k in cls.__mro__)
        for name in sorted(names):
            module = sys.modules.get(name)
            path = getattr(module, "__file__", None)
            if not path or name.split(".")[0] in _LIBRARY_ROOTS or path.startswith(sys.base_prefix):
                continue
            self.file(f"{label}:{name}", path)
        return self

    def hexdigest(self, length=None):
        digest = self._digest.hexdigest()
        return digest[:length] if length else digest


def content_key(*payload):
    """SHA-256 hex digest of JSON-able ``payload`` items (shorthand for :class:`ContentKey`)."""
    return ContentKey(*payload).hexdigest()


def file_sha256(path, block_size=1 << 20):
    """SHA-256 hex digest of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()


def package_code_digest(*packages):
    """SHA-256 over the source of ``packages`` (every ``.py`` file under each package's
    folder, by relative path), read afresh at each call (~15 ms for the workbench and its
    loaders), so an edit in a live session counts too.

    The key part for results that any of their code can change (a report task runs loaders,
    extraction, metrics and statistics): a fixed version string would keep serving a result
    computed before a fix. Any edit, a comment included, is a new key; recomputing is the
    price of never being stale."""
    return _package_code_digest(tuple(str(Path(package.__file__).parent) for package in packages))


def _package_code_digest(folders):
    digest = hashlib.sha256()
    for folder in map(Path, folders):
        for path in sorted(folder.rglob("*.py")):
            digest.update(f"{folder.name}/{path.relative_to(folder).as_posix()}|".encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()
