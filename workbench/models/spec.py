"""Model specs: what a user names (a zoo family, an entry point, a weights file) and everything
derived from it: the built ``nn.Module``, its content identity, its layers and its
presentation protocol.

A spec is a small, JSON-able record, so it travels to dask workers and into
``provenance.json``; building it is deferred to the task that needs the model.

Sources:

- ``zoo = "bl"``: a zoo family (:func:`workbench.models.zoo.available`, including
  families other packages register through the ``workbench.models`` entry-point group);
  ``train = true`` runs its recipe once (content-keyed cache);
- ``zoo = "torchvision:resnet18"`` / ``"timm:NAME"``: another library's model (random init
  or ``weights``; :mod:`.hub`);
- ``entry_point = "package.module:function"``: a function returning an ``nn.Module``.
  The config's folder and the current folder are importable, as for a script.
  Importing it runs the user's code, like running a Python script.

How the model is called (``convention``: ``frames``, ``frames_time_first``, ``video``,
``static_recurrent``, ``stepwise`` or ``feedforward``, :mod:`.conventions`) and how it must
see images (``input_size``, ``channels``, ``normalization``:
:class:`workbench.stimuli.Preprocessing`) are declared by the spec, else by
the model (``model.convention``, ``model.preprocessing``), else by its source's standard (zoo
and registered families: 32 px greyscale standardised over the set; CORnet, torchvision, timm
and entry points: 224 px RGB with the ImageNet mean and sd). An undeclared convention is detected by calling the model.
"""

import contextlib
import importlib
import inspect
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..assembly import control_character_id
from ..errors import ConfigError, ExtractionError, WorkbenchError, check_plain
from ..stimuli import Preprocessing, canonical_normalization
from .hub import is_hub_name
from .weights import torch_save_format

MAX_SEED = 2 ** 32 - 1  # numpy's legacy seeds are 32-bit (torch's 64-bit)

KEYS = ("name", "zoo", "entry_point", "train", "epochs", "seed", "config", "weights", "layers", "convention",
        "input_size", "channels", "normalization", "reset", "forward_options", "search_path")
# An ordinary PyTorch vision model (an entry point that declares nothing) expects ImageNet input.
STANDARD_INPUT = Preprocessing(size=224, channels="rgb", normalization="imagenet")
# spec key -> Preprocessing field
INPUT_KEYS = {"input_size": "size", "channels": "channels", "normalization": "normalization"}


@dataclass(frozen=True)
class ModelSpec:
    """A model as a user names it.

    Attributes
    ----------
    name : str
        Display name (any text; never part of a cache key).
    zoo, entry_point : str
        Exactly one: a zoo family name, or ``"package.module:function"``.
    train : bool
        Train a zoo family with its recipe (default: when no weights are given).
    epochs, seed : int
    config : dict
        Keyword arguments of the family's builder / the entry point.
    weights : str, optional
        A state dict file, loaded with ``weights_only=True``.
    layers : tuple of str, optional
        Module paths to record (default: the model's ``default_layers``).
    convention : {"frames", "frames_time_first", "video", "static_recurrent", "stepwise", "feedforward"}, optional
        How the model is called (default: declared by the model, else detected).
    input_size, channels, normalization : optional
        The model's input (default: declared by the model, else its source's standard).
    reset : str, optional
        The name of a method of the model that clears the state it keeps between calls
        (e.g. ``"reset"`` for a spiking network whose neurons keep their membrane
        potentials): called before every call of the model, so that each batch starts from
        rest. A dotted name reaches a submodule's method (``"snn.reset_states"``); a
        ``"module:function"`` is a function called with the model, as spiking-network
        libraries reset one (``"snntorch.utils:reset"``,
        ``"spikingjelly.activation_based.functional:reset_net"``).
    forward_options : dict, optional
        Keywords given to the model's ``forward`` on every call (``{"n_steps": 8}`` for a
        ``forward(x, n_steps)`` without a default; ``{"return_all": True}`` for a net that
        returns every step's readout only when asked): part of the model's identity.
    search_path : str, optional
        A folder put on ``sys.path`` while importing the entry point (the config's folder).
    """

    name: str
    zoo: str = None
    entry_point: str = None
    train: bool = False
    epochs: int = 4
    seed: int = 0
    config: dict = field(default_factory=dict)
    weights: str = None
    layers: tuple = None
    convention: str = None
    input_size: int = None
    channels: str = None
    normalization: str = None
    reset: str = None
    forward_options: dict = None
    search_path: str = None

    # ---------------------------------------------------------------- validation
    @classmethod
    def from_dict(cls, spec, base=None):
        """Validate a spec dict (as a report config or the CLI gives it).

        Relative ``weights`` resolve against ``base`` (the config's folder), which also
        becomes the entry point's search path. Raises :class:`ConfigError` naming the key.
        """
        if isinstance(spec, ModelSpec):
            return spec
        if not isinstance(spec, dict):
            raise ConfigError("", f"must be a table, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(KEYS))
        if unknown:
            raise ConfigError(unknown[0], f"unknown key; valid keys: {', '.join(k for k in KEYS if k != 'search_path')}")
        if not isinstance(spec.get("name"), str) or not spec["name"].strip():
            raise ConfigError("name", "every model needs a non-empty name")
        if control_character_id([spec["name"]]) is not None:  # it names files, table rows and plots
            raise ConfigError("name", f"{spec['name']!r} holds a control character; names must be printable text")
        sources = [k for k in ("zoo", "entry_point") if k in spec]
        if len(sources) != 1:
            raise ConfigError("", "give exactly one of 'zoo' (a zoo family) or 'entry_point' ('module:function')")
        data = dict(spec)
        for name, kind in (("epochs", int), ("seed", int), ("config", dict), ("train", bool),
                           ("layers", (list, tuple)), ("weights", str), ("convention", str), ("input_size", int),
                           ("channels", str), ("normalization", str), ("reset", str), ("forward_options", dict)):
            value = data.get(name)
            if name in data and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
                expected = kind.__name__ if isinstance(kind, type) else "list"
                raise ConfigError(name, f"must be {expected}, got {value!r}")
        if data.get("epochs", 1) < 1:
            raise ConfigError("epochs", f"must be >= 1, got {data['epochs']!r}")
        if not 0 <= data.get("seed", 0) <= MAX_SEED:
            raise ConfigError("seed", f"must be between 0 and {MAX_SEED:,}, got {data['seed']!r}")
        if "layers" in data and not all(isinstance(layer, str) for layer in data["layers"]):
            raise ConfigError("layers", "must be a list of module paths (strings)")
        if "reset" in data and not _is_reset_name(data["reset"]):
            raise ConfigError("reset", f"must name a method of the model (e.g. 'reset' or 'snn.reset_states') or a "
                                       f"function called with it ('snntorch.utils:reset'), got {data['reset']!r}")
        for key in ("config", "forward_options"):  # plain data: they reach the provenance's JSON
            if key in data:
                check_plain(key, data[key])
        for name in data.get("forward_options", {}):
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError("forward_options", f"{name!r} is not a keyword name (e.g. forward_options = "
                                                     "{n_steps = 8})")
        if not data.get("forward_options", True):  # an empty table is no options: the same model
            del data["forward_options"]
        if "convention" in data:
            from .conventions import CONVENTIONS

            if data["convention"] not in CONVENTIONS:
                raise ConfigError("convention", f"unknown calling convention {data['convention']!r}; "
                                  f"valid: {', '.join(CONVENTIONS)}")
        for key, attribute in INPUT_KEYS.items():
            problem = Preprocessing.problem(attribute, data[key]) if key in data else None
            if problem:
                raise ConfigError(key, problem)
        if "normalization" in data:  # one text per statistics (the identity)
            data["normalization"] = canonical_normalization(data["normalization"])
        base = Path(base) if base is not None else None
        if "zoo" in data and is_hub_name(data["zoo"]):
            data.setdefault("train", False)
            if data["train"]:
                raise ConfigError("train", f"{data['zoo']!r} has no training recipe here; give weights or train = false")
        elif "zoo" in data:
            from . import zoo

            if data["zoo"] not in zoo.available():
                raise ConfigError("zoo", f"unknown model {data['zoo']!r}; valid names: {', '.join(zoo.available())}")
            from .training import RECIPES

            data.setdefault("train", "weights" not in data and data["zoo"] in RECIPES)
            if data["train"] and data["zoo"] not in RECIPES:
                raise ConfigError("train", f"{data['zoo']!r} has no training recipe; give weights or train = false")
            problem = zoo.config_problem(data["zoo"], data.get("config", {}))
            if problem:
                raise ConfigError(f"config.{problem[0]}", problem[1])
        else:
            entry = data["entry_point"]
            if not isinstance(entry, str) or entry.count(":") != 1 or not all(entry.split(":")):
                raise ConfigError("entry_point", f"must look like 'package.module:function', got {entry!r}")
            data.setdefault("train", False)
            if data["train"]:
                raise ConfigError("train", "only zoo models have training recipes")
            if base is not None:
                data.setdefault("search_path", str(base.resolve()))
        if "weights" in data:
            path = Path(data["weights"])
            path = path if path.is_absolute() or base is None else base / path
            if not path.is_file():
                raise ConfigError("weights", f"file not found: {path}")
            if torch_save_format(path) is None:  # a glance, not a load: a model card or a text file by mistake
                raise ConfigError("weights", f"{path} is not a torch.save or safetensors file (give the .pt or "
                                             ".safetensors state dict the model card names)")
            data["weights"] = str(path.resolve())
        if "layers" in data:
            data["layers"] = tuple(data["layers"])
        return cls(**data)

    def as_dict(self):
        """The spec as plain JSON-able data (defaults included, ``None`` left out)."""
        data = {k: v for k, v in asdict(self).items() if v is not None}
        if "layers" in data:
            data["layers"] = list(data["layers"])
        return data

    # ---------------------------------------------------------------- building
    def entry_function(self):
        """The entry point's function (imported with the search path on ``sys.path``).

        The module is the one :meth:`code_files` hashes: an already-imported module of the
        same name from another folder, or one whose files changed since it was imported (a
        notebook user editing their model), is imported afresh, so the code that runs is the
        code in the cache key."""
        module_name, function_name = self.entry_point.split(":")
        files = self.code_files()
        digest = _code_digest(files)
        top = module_name.split(".")[0]
        loaded = sys.modules.get(module_name)
        if loaded is not None and _IMPORTED.get(module_name) != digest:
            origin = getattr(loaded, "__file__", None)
            if module_name in _IMPORTED or origin is None or Path(origin).resolve() not in files:
                for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
                    del sys.modules[name]
        try:
            with _importable(self.search_path):
                function = getattr(importlib.import_module(module_name), function_name)
            _IMPORTED[module_name] = digest
        except (ImportError, AttributeError) as error:
            raise WorkbenchError(f"model {self.name!r}: cannot import entry point {self.entry_point!r} "
                                 f"({error})") from error
        return function

    def build(self, cache_dir=None, models_dir=None):
        """The ``nn.Module`` in eval mode. A zoo recipe with ``train`` is trained once into
        ``models_dir`` (default ``cache_dir/models``), or without either once per process
        (:func:`workbench.models.training.train`: its memo, or the folder that
        ``WORKBENCH_MODEL_CACHE`` names)."""
        import torch

        from . import zoo
        from .training import train, train_cached
        from .weights import load_weights

        if self.zoo and is_hub_name(self.zoo):
            from . import hub

            model = hub.build(self.zoo, seed=self.seed, **self.config)
        elif self.zoo:
            if self.train:
                if models_dir is None and cache_dir is not None:
                    models_dir = Path(cache_dir) / "models"
                if models_dir is None:
                    model, _ = train(self.zoo, seed=self.seed, epochs=self.epochs, config=dict(self.config),
                                     progress=False)
                else:
                    model, _ = train_cached(self.zoo, models_dir, seed=self.seed, epochs=self.epochs,
                                            config=dict(self.config))
            else:
                model = zoo.build(self.zoo, seed=self.seed, **self.config)
        else:
            builder = self.entry_function()
            try:
                # a builder that draws its initial weights without seeding gets the spec's
                # seed: the same spec builds the same model in every process and every run
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed)
                    model = builder(**self.config)
            except Exception as error:  # noqa: BLE001 - the user's code: named, with its own message
                detail = " ".join(str(error).split())  # one line (TorchScript's errors span many)
                raise WorkbenchError(
                    f"model {self.name!r}: its builder {self.entry_point}({_arguments(self.config)}) raised "
                    f"{type(error).__name__}: {detail[:600]}{' ...' if len(detail) > 600 else ''}"
                    f"{_builder_call_fix(builder, error)}") from error
        if isinstance(model, torch.jit.ScriptModule):
            raise WorkbenchError(f"model {self.name!r}: its builder returned a TorchScript module "
                                 "(torch.jit.script/trace), whose layers run without Python hooks and cannot be "
                                 "recorded (fix: return the model built from its Python class, and load its "
                                 "weights with weights = FILE)")
        if not isinstance(model, torch.nn.Module):
            raise WorkbenchError(f"model {self.name!r}: its builder returned {type(model).__name__}, "
                                 "not a torch.nn.Module")
        model = _unwrapped(model)
        if self.forward_options:
            from .conventions import with_forward_options

            try:
                with_forward_options(model, **self.forward_options)
            except ExtractionError as error:
                raise WorkbenchError(f"model {self.name!r}: forward_options: {error}") from error
        if _has_lazy_parameters(model):
            # lazy modules (nn.LazyLinear...) draw their weights at their first call: made here,
            # under the spec's seed, so that weights load into them and the same spec is the
            # same model (drawn at the first extraction, they depended on what ran before)
            _materialize(model, self.preprocessing(model), self.seed)
        if self.weights:
            load_weights(model, self.weights)
        if self.reset:
            _reset_before_each_call(model, self.reset, self.name, self.search_path)
        return model.eval()

    def state_digest(self, model):
        """Hash of what an entry point's ``model`` was built with (every weight and buffer, exact
        bytes): its identity cannot see files its builder loads itself (``torch.load`` inside
        ``build()``), so a cached score is trusted only if the model builds to the same state;
        ``None`` for zoo and library models, whose identity determines their state."""
        if not self.entry_point:
            return None
        from ..keys import ContentKey

        return ContentKey().module_state("state", model).hexdigest()

    def code_files(self):
        """The source files of an entry point's code, found without running it: the module's
        file, or every ``.py`` file of the package it belongs to (its helpers change results
        too)."""
        from importlib.machinery import PathFinder

        module_name = self.entry_point.split(":")[0]
        parts = module_name.split(".")
        # PathFinder searches the folders only: a module of the same name imported earlier
        # from elsewhere (sys.modules) must not stand in for the one this spec names
        folders = [str(Path(p).resolve()) for p in (self.search_path, ".") if p] + [p for p in sys.path if p]
        try:
            top = found = PathFinder.find_spec(parts[0], folders)
            for index in range(1, len(parts)):
                if found is None or not found.submodule_search_locations:
                    found = None
                    break
                found = PathFinder.find_spec(".".join(parts[:index + 1]), list(found.submodule_search_locations))
        except (ImportError, ValueError) as error:
            raise ConfigError("entry_point", f"cannot find module {module_name!r} ({error})") from None
        if found is None or not found.origin or not Path(found.origin).is_file():
            raise ConfigError("entry_point", f"cannot find module {module_name!r} (is the config's folder, "
                              "the current folder or an installed package holding it?)")
        if top.submodule_search_locations:
            return sorted(p.resolve() for folder in top.submodule_search_locations for p in Path(folder).rglob("*.py"))
        return [Path(found.origin).resolve()]

    def identity(self):
        """What determines the model's outputs, for cache keys (never the display name):
        the spec, the weights file's hash and, for an entry point, the hash of its source
        files. Nothing is built or imported here: planning a report runs no user code."""
        from ..keys import file_sha256

        identity = {k: v for k, v in self.as_dict().items() if k not in ("name", "search_path")}
        if self.weights:
            identity["weights"] = file_sha256(self.weights)
        if self.reset and ":" in self.reset:  # a library's reset function: its version
            identity["reset_library"] = _distribution_version(self.reset.split(".")[0].split(":")[0])
        if self.entry_point:
            identity["code"] = _code_digest(self.code_files())
        elif self.zoo and is_hub_name(self.zoo):
            from . import hub

            identity["library_version"] = hub.version_of(self.zoo)
        elif self.zoo:
            from . import zoo

            if self.zoo not in zoo.ZOO:  # a plugin family: its code is part of the identity
                identity["code"] = _code_digest(zoo.family_code_files(self.zoo))
        return identity

    # ---------------------------------------------------------------- what the model is shown
    def layers_of(self, model):
        """The layers to record: the spec's, else the model's ``default_layers``, else the
        candidates of :func:`workbench.models.hub.candidate_layers` (every stage and block
        with parameters, two levels deep) that respond at every step when the model is called
        (:func:`workbench.models.extraction.responding_layers`); the benchmarks commit to one
        per region."""
        from .hub import candidate_layers

        declared = list(self.layers or getattr(model, "default_layers", []) or [])
        if declared:
            return declared
        candidates = candidate_layers(model)
        if candidates:
            from .extraction import responding_layers

            # candidates nobody chose: those that give no response per step (an unused head, an
            # auxiliary classifier that runs only in training) are left out, not a failed task
            candidates = responding_layers(model, candidates, self.preprocessing(model), self.convention_of(model))
        if not candidates:
            raise WorkbenchError(f"model {self.name!r} names no layers: add layers = [...] to its config entry "
                                 "(command line: --layers)")
        return candidates

    def preprocessing(self, model):
        """How ``model`` must see images: the spec's declaration over the model's
        ``preprocessing`` over its source's standard (:data:`STANDARD_INPUT`)."""
        declared = getattr(model, "preprocessing", None)
        if not isinstance(declared, Preprocessing):
            if self.zoo and is_hub_name(self.zoo):
                from .hub import preprocessing

                declared = preprocessing(self.zoo, model, self.normalization)
            elif self.zoo:  # a registered family that declares nothing: the zoo's input
                declared = Preprocessing()
            else:
                declared = STANDARD_INPUT
        return Preprocessing(**{attribute: getattr(self, key) or getattr(declared, attribute)
                                for key, attribute in INPUT_KEYS.items()})

    def convention_of(self, model):
        """The declared calling convention (spec, else ``model.convention``); ``None``: detect."""
        if self.convention:
            return self.convention
        if getattr(model, "convention", None):
            return model.convention
        if self.zoo and is_hub_name(self.zoo):
            # a library's image models take one image; its video networks a clip
            return "video" if type(model).__module__.startswith("torchvision.models.video") else "feedforward"
        return None

    @staticmethod
    def protocol(model, image_steps, blank_steps, step_ms=10, onset_ms=0.0):
        """The presentation protocol (image on for ``image_steps``, then ``blank_steps`` of
        grey), in the model's declared unrolling convention."""
        from .protocol import PresentationProtocol

        return PresentationProtocol(image_steps=image_steps, blank_steps=blank_steps, step_ms=step_ms,
                                    onset_ms=onset_ms, unrolling=getattr(model, "unrolling", "network_per_step"))


_IMPORTED = {}  # entry-point module -> digest of its files when this process imported it


def _code_digest(files):
    """Hash of source files by name and content (a moved folder keeps its key)."""
    from ..keys import ContentKey

    key = ContentKey()
    for path in files:
        key.file(path.name, path)
    return key.hexdigest()


@contextlib.contextmanager
def _importable(folder):
    """``folder`` and the current folder on ``sys.path`` for the duration (as ``python script``)."""
    added = [str(Path(p).resolve()) for p in (folder, ".") if p]
    added = [p for p in dict.fromkeys(added) if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for path in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(path)


def _builder_call_fix(builder, error):
    """The fix for a builder called with arguments that do not fit its signature ("" for any
    other error): the required ones it was not given, or the names it takes."""
    # only the call of the builder itself, refused before any of its code ran (its own
    # signature: a function's or a class's __init__), not a TypeError raised inside it
    if not isinstance(error, TypeError) or error.__traceback__ is None or error.__traceback__.tb_next is not None:
        return ""
    text = str(error)
    if "unexpected keyword argument" in text:
        try:
            taken = [name for name in inspect.signature(builder).parameters]
        except (TypeError, ValueError):
            return ""
        return f" (fix: its options are {', '.join(taken) or 'none'}; check the config / --model-option names)"
    names = re.findall(r"'(\w+)'", text) if "required" in text and "argument" in text else []
    if not names:
        return ""
    table = ", ".join(f"{name} = ..." for name in names)
    options = " ".join(f"--model-option {name}=VALUE" for name in names)
    what = "it as a config option" if len(names) == 1 else "them as config options"
    return f" (fix: give {what}: config = {{{table}}} in the model's table, {options})"


def _is_reset_name(text):
    """A method name (``reset``, ``snn.reset_states``) or ``module.path:function``."""
    module, colon, function = text.partition(":")
    parts = (module.split(".") + function.split(".")) if colon else text.split(".")
    return all(part.isidentifier() for part in parts)


def _reset_before_each_call(model, name, model_name, search_path=None):
    """Call ``model``'s method ``name`` (dotted: a submodule's), or the function
    ``module:function`` with the model, before every call of the model."""
    if ":" in name:
        module_name, _, function_name = name.partition(":")
        try:
            with _importable(search_path):
                owner = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 - a missing or broken library: named, with the fix
            raise WorkbenchError(f"model {model_name!r}: reset = {name!r}, but {module_name} cannot be imported "
                                 f"({type(error).__name__}: {str(error)[:160]}; fix: install it, or name a method "
                                 "of the model)") from None
        for part in function_name.split("."):
            owner = getattr(owner, part, None)
        if not callable(owner):
            raise WorkbenchError(f"model {model_name!r}: reset = {name!r}, but {module_name} has no function "
                                 f"{function_name!r}")
        function = owner
        model.register_forward_pre_hook(lambda module, args: function(module))
        return
    owner, *path = [model] + name.split(".")
    for part in path[:-1]:
        owner = getattr(owner, part, None)
    method = getattr(owner, path[-1], None) if owner is not None else None
    if not callable(method):
        methods = sorted(n for n in dir(type(model)) if not n.startswith("_") and "reset" in n.lower())
        hint = f" (its methods named like it: {', '.join(methods)})" if methods else ""
        raise WorkbenchError(f"model {model_name!r}: reset = {name!r}, but the model has no method {name!r}{hint}")
    model.register_forward_pre_hook(lambda module, args: method())


def _distribution_version(top_level):
    """The installed version of the distribution that provides the top-level module
    ``top_level`` (read from its metadata, nothing imported), or None (a local module)."""
    from importlib import metadata

    for distribution in metadata.packages_distributions().get(top_level, []):
        try:
            return f"{distribution}=={metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def _unwrapped(model):
    """The network inside the wrappers training code leaves around it: ``nn.DataParallel`` and
    ``DistributedDataParallel`` (``.module``) and ``torch.compile`` (``._orig_mod``). Layer
    names are then the network's own (``features.3``, not ``module.features.3``), its stages
    are candidate layers, and hooks see its eager modules."""
    import torch

    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    for _ in range(8):  # nested wrappers, never a cycle
        if isinstance(model, wrappers):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), torch.nn.Module):
            model = model._orig_mod
        else:
            break
    return model


def _has_lazy_parameters(model):
    import torch

    return any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in model.parameters())


def _materialize(model, preprocessing, seed):
    """Call ``model`` once on a grey image of its declared input (a static batch, else one
    frame) under ``seed``, so that its lazy modules create their weights; a model that takes
    neither is left as it is (its first real call then names the problem)."""
    import torch

    image = torch.zeros(1, preprocessing.n_channels, preprocessing.size, preprocessing.size)
    was_training = model.training
    model.eval()
    try:
        for inputs in (image, image[:, None]):
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(seed)
                try:
                    model(inputs)
                except Exception:  # noqa: BLE001 - probing: try the other input, else leave it
                    continue
            if not _has_lazy_parameters(model):
                return
    finally:
        model.train(was_training)


def _arguments(config):
    """``config`` as the keyword arguments of a call, for messages."""
    return ", ".join(f"{key}={value!r}" for key, value in config.items())
