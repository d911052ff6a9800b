"""The benchmark registry: names -> :class:`~workbench.benchmarks.base.Benchmark` classes.

Built-in families register themselves when :mod:`workbench.benchmarks` is imported;
other packages add theirs without touching this repository, through the entry-point group
``workbench.benchmarks`` (like xarray's backends)::

    # the plugin's pyproject.toml
    [project.entry-points."workbench.benchmarks"]
    my-benchmarks = "my_package.benchmarks"      # a module that calls register(...)
    # or:  "example.mean-activity" = "my_package.benchmarks:MeanActivity"   (a class)

Entry points are loaded on the first lookup; one that fails to load is reported by name
and does not hide the others.
"""

import warnings

from ..errors import WorkbenchError
from .base import Benchmark, check_identifier

ENTRY_POINT_GROUP = "workbench.benchmarks"
_CLASSES = []
_STATE = {"plugins_loaded": False}


def register(cls):
    """Register a :class:`Benchmark` subclass (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Benchmark)):
        raise WorkbenchError(f"register() takes a Benchmark subclass, got {cls!r}")
    if not cls.names and not cls.pattern:
        raise WorkbenchError(f"{cls.__name__} names no benchmark: set names = (...) or pattern")
    taken = {name for other in _CLASSES if other is not cls for name in other.names}
    clash = sorted(taken & set(cls.names))
    if clash:
        raise WorkbenchError(f"{cls.__name__}: benchmark {clash[0]!r} is already registered")
    if cls not in _CLASSES:
        _CLASSES.append(cls)
    return cls


def _load_plugins():
    if _STATE["plugins_loaded"]:
        return
    _STATE["plugins_loaded"] = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as error:  # a broken plugin must not hide the others
            warnings.warn(f"benchmark plugin {point.name!r} ({point.value}) failed to load: {error}",
                          stacklevel=2)
            continue
        if isinstance(loaded, type) and issubclass(loaded, Benchmark):
            register(loaded)


def classes():
    """Every registered Benchmark class (built-in first, then plugins in load order)."""
    _load_plugins()
    return list(_CLASSES)


def available():
    """Every benchmark name: the concrete ones, then the templates of parameterised ones
    (e.g. ``macaque.{region}.shared-time-ridge``)."""
    return [name for cls in classes() for name in cls.listed_names()]


def demo_names():
    """The benchmarks ``workbench demo`` runs (built-in, simulated)."""
    return [name for cls in classes() if cls.in_demo for name in cls.names]


def lookup(identifier):
    """``(class, options)`` serving ``identifier``; unknown names list the valid ones."""
    check_identifier(identifier)
    for cls in classes():
        options = cls.match(identifier)
        if options is not None:
            return cls, options
    raise WorkbenchError(f"unknown benchmark {identifier!r}; valid names: {', '.join(available())}")


def get(identifier, **options):
    """An instance of the benchmark ``identifier`` configured with ``options`` (``path``,
    ``stimuli``, ``seed``, ``n_permutations``, ``n_stimuli``, ``cache_dir``)."""
    cls, matched = lookup(identifier)
    return cls(identifier, **matched, **options)
