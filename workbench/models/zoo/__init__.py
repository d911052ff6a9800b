"""The seed model zoo: small, configurable versions of the five families of the seed papers.

``build(name, **config)`` makes one by name (``available()`` lists them); every model follows
the call convention of :mod:`.base` and states its equations in its docstring.
"""

from ...errors import WorkbenchError
from .base import ZooModel
from .convrnn import ConvRNN, ReciprocalGatedCell
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
}
CLASSES = {cls.name: cls for cls, _ in ZOO.values()}


def available():
    """Names accepted by :func:`build`."""
    return sorted(ZOO)


def build(name, **config):
    """A zoo model by name, with the paper's defaults overridden by ``config``."""
    if name not in ZOO:
        raise WorkbenchError(f"unknown model {name!r}; available: {', '.join(available())}")
    cls, defaults = ZOO[name]
    model = cls(**{**defaults, **config})
    model.config["zoo_name"] = name
    return model


def from_config(config):
    """Rebuild any zoo model from the ``config`` stored in a model card or assembly attrs."""
    if config.get("name") not in CLASSES:
        raise WorkbenchError(f"config names class {config.get('name')!r}; known: {sorted(CLASSES)}")
    arguments = {k: v for k, v in config.items() if k != "zoo_name"}
    model = CLASSES[config["name"]].from_config(arguments)
    if "zoo_name" in config:
        model.config["zoo_name"] = config["zoo_name"]
    return model


__all__ = ["BLCell", "BLNet", "CRCN", "ConvGRUCell", "ConvRNN", "ContextualModule", "GruCNN",
           "LindsayNet", "ReciprocalGatedCell", "ZOO", "ZooModel", "available",
           "bayesian_integration", "build", "difference_of_gaussians", "from_config"]
