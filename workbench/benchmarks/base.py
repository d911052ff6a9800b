"""The :class:`Benchmark` base class and the :class:`Panel` a benchmark contributes to reports.

A benchmark is a dataset, a metric and a presentation protocol with an identifier and a
version. Subclasses set the class attributes and implement :meth:`Benchmark.run`; one
subclass usually serves a family of identifiers (``sim-macaque.V4...``,
``sim-macaque.IT...``), matched by :attr:`Benchmark.names` or :attr:`Benchmark.pattern`.

Minimal example (see ``docs/architecture.md``, "Add a benchmark")::

    from workbench.benchmarks import Benchmark, register
    from workbench.scores import Score, Scores

    @register
    class MeanActivity(Benchmark):
        names = ("example.mean-activity",)
        version = "1"

        def run(self, model_spec):
            model = self.build_model(model_spec)
            ...
            return Scores([Score(value=..., units="a.u.")]), {}
"""

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from ..errors import ConfigError, WorkbenchError
from ..scores import Scores


@dataclass
class Section:
    """A report section: title, what the numbers mean, figures and tables.

    ``figures``: ``[(file name, PNG bytes, caption)]``; ``tables``: ``[(caption, rows,
    columns)]`` where rows are dicts (every string is escaped when rendered).
    """

    title: str
    explanation: str = ""
    figures: list = field(default_factory=list)
    tables: list = field(default_factory=list)


class Panel:
    """A benchmark family's contribution to a report; one section for all its benchmarks.

    Subclasses set ``title`` and ``explanation`` and override :meth:`figures`/:meth:`tables`.
    ``results`` are the finished tasks of the family's benchmarks: dicts with ``model``,
    ``benchmark``, ``records`` (score dicts) and ``panel`` (the data :meth:`Benchmark.run`
    returned for figures).
    """

    title = "Scores"
    explanation = ""
    columns = ("model", "benchmark", "region", "value", "ci_low", "ci_high", "p_value")

    def figures(self, results):
        return []

    def tables(self, results):
        records = [record for result in results for record in result["records"]]
        return [("Scores", records, list(self.columns))] if records else []

    def section(self, results):
        return Section(self.title, self.explanation, self.figures(results), self.tables(results))


STIMULUS_SETS = ("digits", "objects", "characters")


class Benchmark:
    """One scientific benchmark.

    Class attributes
    ----------------
    names : tuple of str
        Concrete identifiers this class serves.
    pattern : str, optional
        A regular expression (named groups become constructor options) for parameterised
        identifiers, e.g. real-file variants whose region is any region of the file;
        ``template`` is how lists show it.
    version : str
        Changes whenever the definition changes (part of every cache key and score).
    citation : str
        BibTeX of the data and/or the method.
    simulated : bool
        The data come from a simulator (the report's banner says so).
    needs_path : bool
        The benchmark reads a user's file (``path=``, optionally ``stimuli=``).
    model_free : bool
        Scores no model (replications): one task, no model spec.
    in_demo : bool
        Part of ``workbench demo``.
    primary : str
        The leaderboard column (a score field, e.g. ``"value"`` or ``"normalized"``).
    units : str
        What ``value`` is.
    panel : type of :class:`Panel`
        The report section its results go into (benchmarks sharing a panel class share a
        section).

    Parameters
    ----------
    identifier : str
        One of ``names`` or a match of ``pattern``.
    path, stimuli : str, optional
        A real-file variant's data file and stimulus-set CSV. A benchmark whose data come one
        file per subject (:attr:`files_per_subject`) takes a list of files for ``path``.
    load_options : dict, optional
        A real-file variant's options for :func:`data_adapters.load` (the format reader's:
        e.g. ``labels={"f": 0, "j": 1}`` for key presses, ``fields=``, ``worker_column=``,
        ``events=`` / ``masks=`` files for NIfTI, ``variable=`` for BrainIO). They enter the
        identity, and files they name by content.
    seed, n_permutations, n_stimuli : int
        Run settings (the report's ``[settings]``); ``n_permutations`` may be ``"auto"``
        (:meth:`draws`).
    stimulus_set : {"digits", "objects", "characters"}
        The embedded images a simulated dataset shows (where it can show either).
    cache_dir : path, optional
        Where simulated data, trained models and activations are cached.
    batch_size : int
        Images per forward pass when extracting (memory, not results: not in the identity).
    **options
        The named groups of ``pattern``.
    """

    names = ()
    pattern = None
    template = None
    version = "1"
    citation = ""
    simulated = True
    needs_path = False
    files_per_subject = False
    model_free = False
    in_demo = False
    primary = "value"
    units = ""
    panel = Panel

    def __init__(self, identifier, path=None, stimuli=None, seed=0, n_permutations=1000, n_stimuli=200,
                 cache_dir=None, stimulus_set="digits", batch_size=64, load_options=None, **options):
        self.identifier = identifier
        if stimulus_set not in STIMULUS_SETS:
            raise ConfigError("stimulus_set", f"must be one of {', '.join(STIMULUS_SETS)}, got {stimulus_set!r}")
        self.stimulus_set = stimulus_set
        if isinstance(path, (list, tuple)):
            if not path or not all(isinstance(p, (str, PurePath)) for p in path):
                raise ConfigError("path", f"must be a data file or a non-empty list of them, got {path!r}")
            if len(path) > 1 and not self.files_per_subject:
                raise ConfigError("path", f"{identifier!r} reads one data file, got {len(path)}")
        elif path is not None and not isinstance(path, (str, PurePath)):
            raise ConfigError("path", f"must be a data file, got {path!r}")
        #: every data file (one per subject where the benchmark takes several); ``path`` is the first
        self.paths = [str(p) for p in path] if isinstance(path, (list, tuple)) else ([] if path is None else [str(path)])
        self.stimuli_path = None if stimuli is None else str(stimuli)
        self.seed, self.n_permutations, self.n_stimuli = seed, n_permutations, n_stimuli
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path("workbench-cache")
        self.options = options
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError("batch_size", f"must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size  # how the work is done, not what it computes: not in identity()
        if self.needs_path and self.path is None:
            raise ConfigError("path", f"{identifier!r} reads a real file: give its path")
        if load_options is not None and not (isinstance(load_options, dict)
                                             and all(isinstance(k, str) and k.isidentifier() for k in load_options)):
            raise ConfigError("load_options", "must be a table of the data format's reader options, e.g. "
                              f"{{ labels = {{ f = 0, j = 1 }} }}, got {load_options!r}")
        self.load_options = dict(load_options or {})
        if not self.needs_path:
            for name, value in (("path", path), ("stimuli", stimuli), ("load_options", load_options)):
                if value is not None:
                    raise ConfigError(name, f"{identifier!r} is simulated and takes no {name}")

    @property
    def path(self):
        """The data file of a real-file variant (the first of :attr:`paths`), or None."""
        return self.paths[0] if self.paths else None

    @path.setter
    def path(self, value):  # one file; derived from paths, so the two never disagree
        self.paths = [] if value is None else [str(value)]

    # ---------------------------------------------------------------- identification
    @classmethod
    def match(cls, identifier):
        """The constructor options of ``identifier`` if this class serves it, else None."""
        found = re.fullmatch(cls.pattern, identifier) if cls.pattern else None
        if found:
            return found.groupdict()
        return {} if identifier in cls.names else None

    @classmethod
    def listed_names(cls):
        """Names for ``available()``: the concrete ones, then the template."""
        return list(cls.names) + ([cls.template] if cls.template else [])

    def identity(self):
        """Everything about the benchmark that determines its scores, for cache keys: the
        identifier, version, options and the content of every input file."""
        identity = {"identifier": self.identifier, "version": self.version, "class": type(self).__qualname__,
                    "options": self.options, "seed": self.seed, "n_permutations": self.n_permutations,
                    "n_stimuli": self.n_stimuli}
        if self.stimulus_set != "digits":  # (absent for digits: existing cache keys stay valid)
            identity["stimulus_set"] = self.stimulus_set
        if self.path:  # one file: its digest alone, as before lists were taken
            identity["data"] = data_digest(self.path) if len(self.paths) == 1 else [data_digest(p) for p in self.paths]
        if self.stimuli_path:
            identity["stimuli"] = _stimulus_files_digest(self.stimuli_path)
        if self.load_options:  # (absent without: existing cache keys stay valid)
            identity["load_options"] = options_identity(self.load_options)
        return identity

    # ---------------------------------------------------------------- the work
    def draws(self, n_tests=1):
        """Permutation draws for a family of ``n_tests``: the setting, or with ``"auto"``
        enough that the floor ``1/(n+1)`` is below ``0.05 / n_tests`` (at least 1,000)."""
        from ..stats.permutation import draws_for_family

        return draws_for_family(n_tests) if self.n_permutations == "auto" else self.n_permutations

    def build_model(self, model_spec):
        """The ``nn.Module`` of a model spec (trained zoo models come from the cache)."""
        from ..models.spec import ModelSpec

        return ModelSpec.from_dict(model_spec).build(self.cache_dir)

    def model_input(self, model_spec, model=None):
        """The :class:`~workbench.stimuli.Preprocessing` a model declares (``None`` without a
        model spec: the stimulus set's default rendering); ``model`` saves building it again."""
        from ..models.spec import ModelSpec

        if model_spec is None:
            return None
        spec = ModelSpec.from_dict(model_spec)
        return spec.preprocessing(model if model is not None else spec.build(self.cache_dir))

    def required_models(self):
        """Model specs (dicts) this benchmark trains itself; a report prepares them first."""
        return []

    def stimuli(self, model_spec=None):
        """The stimuli the model must see (a :class:`~workbench.stimuli.StimulusSet`)."""
        raise NotImplementedError

    def load_data(self):
        """The benchmark's data (an assembly, or what the metric needs)."""
        raise NotImplementedError

    def ceiling(self):
        """The data's reliability (a :class:`~workbench.scores.Score` or NaN when undefined)."""
        return float("nan")

    def run(self, model_spec):
        """Score a model (None for model-free benchmarks).

        Returns
        -------
        (Scores, dict)
            The score records and the data of the report panel's figures.
        """
        raise NotImplementedError

    def score(self, model_spec=None):
        """The :class:`~workbench.scores.Scores` of a model spec (dict or ModelSpec)."""
        scores, _ = self.run(model_spec)
        return Scores(scores)

    def __repr__(self):
        return f"{type(self).__name__}({self.identifier!r}, version={self.version!r})"


class VariantBenchmark(Benchmark):
    """A benchmark with a simulated variant (identifier ``sim-...``, data written by a
    simulator into the cache) and a real-file variant (the same name without ``sim-``, reading
    ``path=``).

    Subclasses set ``dataset`` and ``metric``; the identifiers follow:
    ``[sim-]DATASET.REGION.METRIC`` when ``regional`` (``simulated_regions`` lists the regions
    the simulator writes, a real file may have any; ``region_kind`` names them, e.g. "ROI"),
    else ``[sim-]DATASET.METRIC``.
    """

    dataset = None
    metric = None
    regional = True
    simulated_regions = ()
    region_kind = "region"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not (cls.dataset and cls.metric):
            return
        dataset, metric = re.escape(cls.dataset), re.escape(cls.metric)
        if cls.regional:
            cls.names = tuple(f"sim-{cls.dataset}.{region}.{cls.metric}" for region in cls.simulated_regions)
            cls.pattern = rf"(?P<sim>sim-)?{dataset}\.(?P<region>[A-Za-z0-9_-]+)\.{metric}"
            cls.template = f"{cls.dataset}.{cls.region_kind.upper()}.{cls.metric} (path=)"
        else:
            cls.names = (f"sim-{cls.dataset}.{cls.metric}",)
            cls.pattern = rf"{dataset}\.{metric}"
            cls.template = f"{cls.dataset}.{cls.metric} (path=)"

    def __init__(self, identifier, region=None, sim=None, **options):
        simulated = identifier.startswith("sim-")
        if simulated and self.simulated_regions and region not in self.simulated_regions:
            raise WorkbenchError(f"unknown {self.region_kind} {region!r} in {identifier!r}; simulated "
                                 f"{self.region_kind}s: {', '.join(self.simulated_regions)}")
        self.simulated, self.needs_path = simulated, not simulated
        super().__init__(identifier, **options)
        self.region = region


def options_identity(options):
    """Loader options as a cache identity: values as given, and the content of every file or
    folder a text value names (an events table, a mask image), so an edited file is a new key."""
    def named(value):
        if isinstance(value, str) and value.strip() and len(value) < 4096:
            try:
                if Path(value).exists():
                    return {"path": value, "content": data_digest(value)}
            except OSError:  # a name too long or otherwise not a path
                pass
        if isinstance(value, (list, tuple)):
            return [named(v) for v in value]
        if isinstance(value, dict):
            return {str(k): named(v) for k, v in value.items()}
        return value

    return {key: named(value) for key, value in sorted(options.items())}


def data_digest(path):
    """Hash of every file a loader reads for ``path``: the file itself (its SHA-256 alone, so
    the keys of single-file datasets are unchanged), or with the files read beside it (an
    Analyze ``.img`` for its ``.hdr``, a BIDS run's JSON sidecar and events table), or every
    file of a folder. Hashing the path alone missed edits to a folder's volumes."""
    from data_adapters.nifti import bids_sidecar

    from ..keys import ContentKey, file_sha256

    path = Path(path)
    if path.is_dir():
        key = ContentKey()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            key.file(str(item.relative_to(path)), item)
        return key.hexdigest()
    if not path.is_file():
        return str(path)
    # an Analyze pair's other half, and SPM's .mat beside it (its orientation: see data_adapters.nifti._oriented)
    companions = [path.with_suffix(suffix) for suffix in (".img", ".hdr", ".mat")
                  if path.suffix.lower() in (".hdr", ".img")]
    companions += [bids_sidecar(path), bids_sidecar(path, suffix="events", extension=".tsv")]
    companions = [p for p in companions if p is not None and p != path and p.is_file()]
    if not companions:
        return file_sha256(path)
    key = ContentKey().file("data", path)
    for companion in companions:
        key.file(companion.name, companion)
    return key.hexdigest()


def _stimulus_files_digest(csv):
    """Hash of a stimulus-set CSV and every image file it lists (a replaced image is a new key)."""
    import pandas as pd

    from ..keys import ContentKey

    key = ContentKey().file("csv", csv)
    try:
        table = pd.read_csv(csv, dtype={"filename": str})
    except Exception:  # unreadable: the CSV's own hash already identifies it; loading names the problem
        return key.hexdigest()
    from ..stimuli import image_location

    names = table.get("filename", pd.Series(dtype=str)).fillna("").astype(str)
    base = image_location(csv, names)
    if base.is_file():  # the set's ZIP archive (a BrainIO stimulus set): its bytes hold every image
        return key.file("archive", base).hexdigest()
    for name in names:
        if not name.strip():  # no file named: loading the set names the problem
            key.json("<no file>", "missing")
            continue
        path = Path(name) if Path(name).is_absolute() else base / name
        if path.is_file():
            key.file(name, path)
        else:
            key.json(name, "missing")
    return key.hexdigest()


def check_identifier(identifier):
    if not isinstance(identifier, str):
        raise WorkbenchError(f"benchmark name must be a string, got {identifier!r}")
