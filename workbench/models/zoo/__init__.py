"""The seed model zoo: small, configurable versions of the five families of the seed papers.

``build(name, **config)`` makes one by name (``available()`` lists them); every model follows
the call convention of :mod:`.base` and states its equations in its docstring.
"""

import inspect
import numbers

from ...errors import WorkbenchError
from .base import ZooModel
from .convrnn import ConvRNN, ReciprocalGatedCell
from .cornet import CORnetRT, CORnetS, CORnetZ
from .crcn import CRCN, ContextualModule
from .hartmann import ConvGRUCell, GruCNN, bayesian_integration
from .lindsay import LindsayNet, difference_of_gaussians
from .spoerer import BLCell, BLNet

_THREE = {"channels": (16, 32, 64)}  # three stages, so the global pool sees an 8x8 map at 32 px
# name -> (class, paper defaults); config given to build() overrides the defaults.
ZOO = {
    "b": (BLNet, {**_THREE, "lateral": False, "norm": "batch", "readout": "cumulative"}),
    "bl": (BLNet, {**_THREE, "lateral": True, "norm": "batch", "readout": "cumulative"}),
    "grucnn": (GruCNN, {**_THREE, "recurrent": True}),
    "ccnn": (GruCNN, {**_THREE, "recurrent": False, "integrate": True}),
    "crcn": (CRCN, {**_THREE}),
    "crcn-ff": (CRCN, {**_THREE, "loops": []}),
    "lindsay-ff": (LindsayNet, {"recurrence": None}),
    "lindsay-feedback": (LindsayNet, {"recurrence": "feedback"}),
    "lindsay-lateral": (LindsayNet, {"recurrence": "lateral"}),
    "lindsay-predictive": (LindsayNet, {"recurrence": "predictive"}),
    "lindsay-surround": (LindsayNet, {"recurrence": "surround"}),
    "convrnn": (ConvRNN, {**_THREE}),
    # Kubilius et al. 2019, at their own 224 px RGB ImageNet input (random init unless weights)
    "cornet-z": (CORnetZ, {}),
    "cornet-rt": (CORnetRT, {"times": 5}),
    "cornet-s": (CORnetS, {"times": (2, 4, 2)}),
}
CLASSES = {cls.name: cls for cls, _ in ZOO.values()}


# Model families added by other packages: ``[project.entry-points."workbench.models"]``
# ``name = "package.module:build"``, where ``build(seed=0, **config)`` returns an nn.Module.
ENTRY_POINT_GROUP = "workbench.models"
_REGISTERED = {}


def register(name, builder):
    """Add a model family: ``builder(seed=0, **config)`` returns a ``torch.nn.Module``.

    The name is then accepted by :func:`build`, by report configs (``zoo = "name"``) and by
    the CLI; a family cannot replace a built-in one.
    """
    if name in ZOO:
        raise WorkbenchError(f"model family {name!r} is built in and cannot be replaced")
    if not callable(builder):
        raise WorkbenchError(f"model family {name!r}: the builder must be callable, got {builder!r}")
    _REGISTERED[name] = builder


def _plugins():
    """Entry-point families (loaded on first use; a broken plugin is named, not fatal)."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in _REGISTERED and point.name not in ZOO:
            _REGISTERED[point.name] = point  # loaded lazily in build()
    return _REGISTERED


def family_code_files(name):
    """Source files of a registered family's builder, found without calling it (an entry
    point's module is located, not imported)."""
    import importlib.util
    from pathlib import Path

    builder = _plugins().get(name)
    if builder is None:
        raise WorkbenchError(f"unknown model {name!r}; available: {', '.join(available())}")
    if hasattr(builder, "load"):
        found = importlib.util.find_spec(builder.module)
        origin = found.origin if found is not None else None
    else:
        origin = inspect.getsourcefile(builder)
    return [Path(origin)] if origin and Path(origin).is_file() else []


def available():
    """Names accepted by :func:`build`: the built-in zoo and registered families."""
    return sorted(set(ZOO) | set(_plugins()))


def options(name):
    """The configuration options a built-in family's constructor takes (None: any, for a
    registered family or a constructor with ``**kwargs``)."""
    if name not in ZOO:
        return None
    parameters = inspect.signature(ZOO[name][0]).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def unknown_options(name, config):
    """Keys of ``config`` that family ``name`` does not take, sorted (empty when unknown)."""
    taken = options(name)
    return [] if taken is None else sorted(set(config) - set(taken))


def build(name, **config):
    """A zoo model by name, with the paper's defaults overridden by ``config``."""
    if name in ZOO:
        cls, defaults = ZOO[name]
        arguments = {**defaults, **config}
        problem = config_problem(name, arguments)
        if problem:
            raise WorkbenchError(f"model {name!r}, option {problem[0]!r}: {problem[1]}")
        model = cls(**arguments)
        model.config["zoo_name"] = name
        return model
    builder = _plugins().get(name)
    if builder is None:
        raise WorkbenchError(f"unknown model {name!r}; available: {', '.join(available())}")
    if hasattr(builder, "load"):  # an entry point
        try:
            builder = _REGISTERED[name] = builder.load()
        except Exception as error:
            raise WorkbenchError(f"model family {name!r}: cannot load its entry point ({error})") from error
    return builder(**config)


def config_problem(name, config):
    """``(option, problem)`` for the first option of ``config`` that family ``name`` cannot take,
    or None: an option its constructor lacks, or (built-in families) channel counts that are not positive
    integers (torch's own error came from deep inside the first convolution). Used by
    :func:`build` and by report configs, which name the config key."""
    unknown = unknown_options(name, config)
    if unknown:
        return unknown[0], f"not an option of {name!r}; it takes {', '.join(options(name))}"
    channels = config.get("channels")
    if channels is None or name not in ZOO:  # a registered family's options mean what it says they mean
        return None
    if not isinstance(channels, (list, tuple)) or not channels:
        return "channels", f"must be a list of positive integers, got {channels!r}"
    bad = [count for count in channels
           if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1]
    return ("channels", f"each count must be an integer >= 1, got {bad[0]!r}") if bad else None


def from_config(config):
    """Rebuild any zoo model from the ``config`` stored in a model card or assembly attrs."""
    if config.get("name") not in CLASSES:
        raise WorkbenchError(f"config names class {config.get('name')!r}; known: {sorted(CLASSES)}")
    arguments = {k: v for k, v in config.items() if k != "zoo_name"}
    model = CLASSES[config["name"]].from_config(arguments)
    if "zoo_name" in config:
        model.config["zoo_name"] = config["zoo_name"]
    return model


__all__ = ["BLCell", "BLNet", "CORnetRT", "CORnetS", "CORnetZ", "CRCN", "ConvGRUCell", "ConvRNN", "ContextualModule", "GruCNN",
           "LindsayNet", "ReciprocalGatedCell", "ZOO", "ZooModel", "available",
           "bayesian_integration", "build", "difference_of_gaussians", "from_config", "register"]
