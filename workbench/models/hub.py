"""Models of other libraries by name: ``torchvision:resnet18``, ``timm:resnet18``.

Random initialisation (seeded) or a state-dict file; nothing is downloaded. Each is shown
RGB images as its weights' transforms name them (torchvision: 224 px with the ImageNet mean
and sd for most, 112 px Kinetics-400 for the video networks; timm: the model's own
``pretrained_cfg`` input size and its ImageNet or Inception mean and sd).

torchvision must match the installed torch: ``pip install -e ".[vision]"`` installs a
matching pair (README, "Models from torchvision and timm").
"""

from ..errors import ConfigError, WorkbenchError
from ..stimuli import CHANNEL_STATS, Preprocessing, stats_text

LIBRARIES = ("torchvision", "timm")
INSTALL = 'pip install -e ".[vision]" (installs a torch/torchvision pair that match; README, "Models from torchvision and timm")'


def is_hub_name(name):
    return isinstance(name, str) and name.split(":", 1)[0] in LIBRARIES and name.count(":") == 1 and bool(name.split(":")[1])


def _library(name):
    import importlib

    library = name.split(":", 1)[0]
    try:
        return importlib.import_module(library)
    except Exception as error:  # noqa: BLE001 - a broken install raises RuntimeError/OSError, not only ImportError
        raise WorkbenchError(f"model {name!r} needs {library}, which cannot be imported here "
                             f"({type(error).__name__}: {str(error)[:160]}); fix: {INSTALL}") from None


def version_of(name):
    """The library's version (part of the model's identity)."""
    return getattr(_library(name), "__version__", "unknown")


def build(name, seed=0, **config):
    """The model ``library:NAME`` with random weights (seeded)."""
    import torch

    library = _library(name)
    model_name = name.split(":", 1)[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if library.__name__ == "torchvision":
            if model_name not in library.models.list_models():
                raise ConfigError("zoo", f"torchvision has no model {model_name!r} (see torchvision.models.list_models())")
            model = library.models.get_model(model_name, weights=None, **config)
        else:
            if model_name not in library.list_models():
                raise ConfigError("zoo", f"timm has no model {model_name!r} (see timm.list_models())")
            model = library.create_model(model_name, pretrained=False, **config)
    return model


def preprocessing(name, model, normalization=None):
    """The input a library's model expects: the size, mean and sd of its weights' own
    transforms (torchvision: 224 px ImageNet for most, 299 px for inception_v3, 112 px
    Kinetics-400 for r3d_18; 224 px ImageNet where it names none), or timm's config (its
    input size, and ImageNet or Inception mean and sd)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if name.split(":", 1)[0] == "torchvision":
        cfg = _torchvision_input(name)
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    stats = (tuple(cfg.get("mean", CHANNEL_STATS["imagenet"][0])), tuple(cfg.get("std", CHANNEL_STATS["imagenet"][1])))
    named = [key for key, value in CHANNEL_STATS.items()
             if all(abs(a - b) < 1e-3 for a, b in zip(value[0] + value[1], stats[0] + stats[1]))]
    if normalization:  # declared by the spec: it wins
        named = [normalization]
    if not named:  # statistics of its own (MViT's 0.45/0.225): rendered as they are
        named = [stats_text(*stats)]
    return Preprocessing(size=size, channels="rgb", normalization=named[0])


def _torchvision_input(name):
    """``{"input_size": (3, size, size), "mean": ..., "std": ...}`` of a torchvision model's
    default weights' transforms (their crop, mean and sd; building them downloads nothing),
    or ``{}`` where it has none."""
    try:
        transforms = _library(name).models.get_model_weights(name.split(":", 1)[1]).DEFAULT.transforms()
    except Exception:  # noqa: BLE001 - a model without registered weights: the library's standard input
        return {}
    crop, mean, std = (getattr(transforms, attribute, None) for attribute in ("_crop_size", "_mean", "_std"))
    found = {}
    if crop:
        found["input_size"] = (3, int(crop[-1]), int(crop[-1]))
    if mean and std:
        found["mean"], found["std"] = tuple(mean), tuple(std)
    return found


def candidate_layers(model, max_depth=2):
    """The default layers of a model that names none: every module up to ``max_depth``
    levels deep (stages and their blocks, e.g. ``layer3``, ``layer3.1``) that has parameters
    or children, in definition order; the classifier is included (it is a layer too).

    An ``nn.ModuleList``/``nn.ModuleDict`` is a container that is never called: it is no
    layer and no level, and its items stand at its own level (a transformer's blocks
    ``vit.layers.0``, ``vit.layers.1``... are candidates beside ``vit.embeddings``)."""
    import torch

    containers = (torch.nn.ModuleList, torch.nn.ModuleDict)
    names, level, is_container = [], {"": -1}, {"": False}
    for name, module in model.named_modules():  # a module's parent comes before it
        is_container[name] = isinstance(module, containers)
        if not name:
            continue
        parent_name = name.rpartition(".")[0]
        level[name] = level[parent_name] + (0 if is_container[parent_name] else 1)
        if level[name] >= max_depth or isinstance(module, containers):
            continue
        if any(True for _ in module.parameters()) or any(True for _ in module.children()):
            names.append(name)
    return names
