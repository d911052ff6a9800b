"""Batch report configuration: a TOML file of models x benchmarks, validated up front.

::

    [settings]                 # all optional
    seed = 0
    n_permutations = 1000      # or "auto": enough draws for each test's family of cells
    title = "My models vs the simulated recordings"

    [[models]]
    name = "BL (trained)"      # shown in the report; any text (escaped in HTML)
    zoo = "bl"                 # a zoo family (workbench.models.zoo.available())
    train = true               # train with its recipe (cached by content); false = random init
    epochs = 4
    config = { channels = [8, 16, 32] }

    [[models]]
    name = "my net"
    entry_point = "mypackage.nets:build"   # a function returning an nn.Module
    weights = "weights/my_net.pt"          # optional state dict (loaded weights_only)

    [[benchmarks]]
    name = "sim-macaque.IT.shared-time-ridge"
    [[benchmarks]]
    name = "human.rt-uncertainty"          # a real-file variant
    path = "data/ratings.sqlite"           # (blur-fmri: one file per subject, path = ["s1.h5", "s2.h5"])
    stimuli = "data/stimulus_set.csv"      # optional: images (stimulus_id, filename); default digits
    load_options = { labels = { f = 0, j = 1 } }  # optional: the file format reader's options

A bare string is also accepted for a benchmark (``benchmarks = ["sim-human.rt-uncertainty"]``).
Every problem raises :class:`ConfigError` naming the key, before anything is written.
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, WorkbenchError, check_plain

BENCHMARK_KEYS = {"name", "path", "stimuli", "load_options"}
SETTING_KEYS = {"seed", "n_permutations", "title", "n_stimuli", "stimulus_set", "batch_size"}
DEFAULT_SETTINGS = {"seed": 0, "n_permutations": 1000, "title": "Brain-score report", "n_stimuli": 200,
                    "stimulus_set": "digits", "batch_size": 64}


@dataclass(frozen=True)
class ReportConfig:
    """Validated models, benchmarks and settings (plain dicts, JSON-serialisable)."""

    models: tuple
    benchmarks: tuple
    settings: dict = field(default_factory=dict)
    source: str = "<dict>"

    def as_dict(self):
        return {"models": [dict(m) for m in self.models], "benchmarks": [dict(b) for b in self.benchmarks],
                "settings": dict(self.settings), "source": self.source}


def _existing_path(value, base, key, problem, exists):
    """``value`` resolved against the config's folder; a :class:`ConfigError` naming ``key``
    unless ``exists(path)``."""
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not exists(path):
        raise ConfigError(key, f"{problem}: {path}")
    return str(path.resolve())


def _model(index, spec, base):
    """A validated model spec dict (:meth:`workbench.models.ModelSpec.from_dict`)."""
    from ..models.spec import ModelSpec

    try:
        return ModelSpec.from_dict(spec, base=base).as_dict()
    except ConfigError as error:
        raise error.under(f"models[{index}]") from None


def _benchmark(index, spec, base):
    """A validated benchmark spec dict: a registered name, and the files a real-file variant
    reads (resolved against the config's folder)."""
    from ..benchmarks import lookup

    key = f"benchmarks[{index}]"
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise ConfigError(key, f"must be a name or a table, got {type(spec).__name__}")
    unknown = sorted(set(spec) - BENCHMARK_KEYS)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown key; valid keys: {', '.join(sorted(BENCHMARK_KEYS))}")
    benchmark = dict(spec)
    try:
        cls, options = lookup(spec.get("name"))
        # the constructor checks which files the benchmark takes; nothing is read yet
        cls(spec["name"], path=spec.get("path"), stimuli=spec.get("stimuli"), load_options=spec.get("load_options"),
            **options)
    except ConfigError as error:
        raise error.under(key) from None
    except WorkbenchError as error:
        raise ConfigError(f"{key}.name", str(error)) from None
    if isinstance(spec.get("path"), list):  # one file per subject (the constructor said it may)
        benchmark["path"] = [_existing_path(p, base, f"{key}.path[{i}]", "data path not found", Path.exists)
                             for i, p in enumerate(spec["path"])]
    elif "path" in spec:
        benchmark["path"] = _existing_path(spec["path"], base, f"{key}.path", "data path not found", Path.exists)
    if "stimuli" in spec:
        benchmark["stimuli"] = _existing_path(spec["stimuli"], base, f"{key}.stimuli",
                                              "stimulus-set CSV not found", Path.is_file)
    if "load_options" in spec:
        benchmark["load_options"] = _load_options(spec["load_options"], base, benchmark.get("path"),
                                                  f"{key}.load_options")
    return benchmark


# a loader option's text value that looks like a file name (a folder in it, or an extension):
# NIfTI's events table, mask and label images
_FILE_LIKE = re.compile(r"[/\\]|\.[A-Za-z][A-Za-z0-9]{0,5}(\.gz)?$")


def _load_options(options, base, path, key):
    """Loader options, file names among their values (at any depth, e.g. ``masks = { V1 =
    "masks/V1.nii.gz" }``) resolved against the config's folder and checked to exist, and
    each option checked to apply to the data file's format; the reader checks the values
    when a task loads the file."""
    def resolve(value, where):
        if isinstance(value, dict):
            return {k: resolve(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and _FILE_LIKE.search(value):
            return _existing_path(value, base, where, "file not found", Path.exists)
        return value

    check_plain(key, options)
    resolved = {name: resolve(value, f"{key}.{name}") for name, value in options.items()}
    import data_adapters

    # an option a data file's format does not take: named now, not in a task
    for file in [] if path is None else path if isinstance(path, list) else [path]:
        try:
            data_adapters.check_options(file, resolved)
        except WorkbenchError as error:
            raise ConfigError(key, str(error)) from None
    return resolved


def parse_config(data, base=Path("."), source="<dict>"):
    """Validate a configuration dict (as read from TOML). Raises :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError("<root>", "must be a table")
    unknown = sorted(set(data) - {"models", "benchmarks", "settings"})
    if unknown:
        raise ConfigError(unknown[0], "unknown top-level key; valid keys: benchmarks, models, settings")
    for key in ("models", "benchmarks"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise ConfigError(key, "must be a non-empty array (see the README's batch report example)")
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ConfigError("settings", "must be a table")
    bad = sorted(set(settings) - SETTING_KEYS)
    if bad:
        raise ConfigError(f"settings.{bad[0]}", f"unknown setting; valid: {', '.join(sorted(SETTING_KEYS))}")
    settings = {**DEFAULT_SETTINGS, **settings}
    from ..models.spec import MAX_SEED
    from ..stats.permutation import MAX_PERMUTATIONS

    for name in ("seed", "n_permutations", "n_stimuli", "batch_size"):
        if name == "n_permutations" and settings[name] == "auto":
            continue  # sized from each test's family (workbench.stats.permutation.draws_for_family)
        if not isinstance(settings[name], int) or isinstance(settings[name], bool) or settings[name] < (
                1 if name != "seed" else 0):
            kind = "non-negative integer" if name == "seed" else "positive integer"
            kind += ' or "auto"' if name == "n_permutations" else ""
            raise ConfigError(f"settings.{name}", f"must be a {kind}, got {settings[name]!r}")
    # seeds the libraries take; p-values need no more than 10^7 draws
    for name, most in (("seed", MAX_SEED), ("n_permutations", MAX_PERMUTATIONS)):
        if isinstance(settings[name], int) and settings[name] > most:
            raise ConfigError(f"settings.{name}", f"must be at most {most:,}, got {settings[name]:,}")
    if not isinstance(settings["title"], str):
        raise ConfigError("settings.title", f"must be a string, got {settings['title']!r}")
    from ..benchmarks.base import STIMULUS_SETS

    if settings["stimulus_set"] not in STIMULUS_SETS:
        raise ConfigError("settings.stimulus_set", f"must be one of {', '.join(STIMULUS_SETS)} (objects: HvM-style "
                          f"rendered objects), got {settings['stimulus_set']!r}")
    if settings["n_stimuli"] > 1797 and settings["stimulus_set"] == "digits":
        raise ConfigError("settings.n_stimuli", f"at most 1797 (scikit-learn's digits), got {settings['n_stimuli']}")
    models = tuple(_model(i, spec, base) for i, spec in enumerate(data["models"]))
    names = [m["name"] for m in models]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError("models", f"model names must be unique; repeated: {duplicated[0]!r}")
    benchmarks = tuple(_benchmark(i, spec, base) for i, spec in enumerate(data["benchmarks"]))
    # a score is known by model x benchmark name (scores.json records, provenance, the page):
    # two entries of one name, e.g. one recording with and without its stimulus set, or two
    # animals' files, would give records no reader could tell apart
    first = {}
    for i, benchmark in enumerate(benchmarks):
        if benchmark["name"] in first:
            raise ConfigError(f"benchmarks[{i}]", f"{benchmark['name']!r} is listed already (benchmarks["
                              f"{first[benchmark['name']]}]): their scores would be indistinguishable (fix: one "
                              "entry per benchmark name; score other files or options in another report)")
        first[benchmark["name"]] = i
    return ReportConfig(models, benchmarks, settings, source)


def load_config(path):
    """Read and validate a TOML configuration file. Raises :class:`ConfigError`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError("--config", f"{path} is not valid TOML: {error}") from None
    except RecursionError:  # arrays nested thousands deep: tomllib recurses per level
        raise ConfigError("--config", f"{path} nests arrays or tables too deeply to be a report configuration") from None
    return parse_config(data, base=path.parent, source=str(path))


# The simulator's generating network (the zoo's trained gruCNN) is added to every demo as
# GENERATING_NETWORK, so gruCNN is not listed twice.
DEMO_MODELS = ("b", "bl", "ccnn", "crcn", "crcn-ff", "lindsay-ff", "lindsay-predictive", "convrnn")
GENERATING_NETWORK = "generating network (gruCNN)"


def generating_network_spec(seed=0):
    """The simulated macaque recording's hidden network as a report model: the positive
    control, which must rank first on each simulated region."""
    from ..simulators.macaque import DEFAULT_BRAIN

    return {**DEFAULT_BRAIN, "name": GENERATING_NETWORK, "seed": int(seed)}


def demo_config(n_stimuli=200, seed=0, n_permutations=1000, models=DEMO_MODELS, replications=True):
    """The embedded default: every seed zoo family (trained) x every simulated benchmark,
    plus the five replications. The simulator's generating network is always one of the
    models (:data:`GENERATING_NETWORK`), as the benchmark's positive control."""
    from ..benchmarks import classes
    from ..replications import model_config

    # the replications' configs (channels 8/16/32; Lindsay's with 3x3 lateral and feedback
    # kernels): a model the demo scores is then the model its replication trains, trained once
    models = [{"name": name, "zoo": name, "train": True, "config": model_config(name)} for name in models]
    models.insert(0, generating_network_spec(seed))
    benchmarks = [{"name": name} for cls in classes() if cls.in_demo and (replications or not cls.model_free)
                  for name in cls.names]
    return parse_config({"models": models, "benchmarks": benchmarks,
                         "settings": {"seed": seed, "n_permutations": n_permutations, "n_stimuli": n_stimuli,
                                      "title": "Embedded default: seed zoo vs simulated recordings"}},
                        source="embedded demo")
