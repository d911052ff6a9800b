"""The project's exceptions: one base class so callers can catch everything we raise."""

import math
import numbers

import numpy as np


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class AssemblyError(WorkbenchError, ValueError):
    """An xarray object does not follow the Assembly contract (docs/DESIGN.md §3)."""


class DataFormatError(WorkbenchError, ValueError):
    """A file cannot be read as the format it claims (or was asked) to be.

    The message names the file, the offending field and the expected form.
    """

    def __init__(self, path, problem, fix=None):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class ExtractionError(WorkbenchError, ValueError):
    """Activations cannot be extracted from a model as requested."""


class MetricError(WorkbenchError, ValueError):
    """A metric was given inputs it cannot score."""


class DataWarning(UserWarning):
    """Data that loads but deserves attention (e.g. overlapping time windows)."""


class ConfigError(WorkbenchError, ValueError):
    """A configuration (report config, model spec, benchmark options) is malformed; the
    message names the key."""

    def __init__(self, key, problem):
        self.key, self.problem = key, problem
        super().__init__(f"config key {key!r}: {problem}")

    def under(self, prefix):
        """The same error with its key inside ``prefix`` (e.g. ``models[0]``)."""
        return ConfigError(f"{prefix}.{self.key}" if self.key else prefix, self.problem)


def check_count(name, value, minimum=None, why="", error=WorkbenchError):
    """Raise ``error`` naming ``name`` unless ``value`` is an integer (a Python or numpy
    integer; a bool or a float is not) and, when ``minimum`` is given, >= ``minimum``.
    Checked where an option enters, so numpy never answers with its own TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise error(f"{name} must be an integer{bound}{' ' + why if why else ''}, got {value!r}")


def check_finite_columns(name, column_means, error=WorkbenchError):
    """Raise ``error`` naming ``name`` if any of ``column_means`` (one per column, over all
    samples) is NaN or infinite: a NaN or infinity anywhere in a column makes its mean so,
    so an estimator that takes the means anyway checks its whole input at no cost."""
    bad = np.flatnonzero(~np.isfinite(column_means))
    if len(bad):
        raise error(f"the {name} hold NaN or infinite values in {len(bad)} column(s) (e.g. column {int(bad[0])}); "
                    "fix: drop or impute them before fitting")


def check_interval(name, value, interval="(0, 1)", error=WorkbenchError):
    """Raise ``error`` naming ``name`` unless ``value`` is a real number (not a bool, not NaN)
    inside ``interval``, written as in mathematics: ``"(0, 1)"``, ``"(0, 1]"``, ``"[0, 1)"``
    or ``"[0, 1]"``. The companion of :func:`check_count` for levels, alphas and fractions."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    inside = (isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
              and (low <= value if interval[0] == "[" else low < value)
              and (value <= high if interval[-1] == "]" else value < high))
    if not inside:
        raise error(f"{name} must be a number in {interval}, got {value!r}")


def check_plain(key, value):
    """Raise :class:`ConfigError` naming the place in ``value`` (under ``key``) that is not
    plain data: text, a number, a bool, a list or a table with text keys. TOML also has
    dates and times, which no option here takes and JSON (scores, provenance) cannot hold:
    refused where the config is read, not as a TypeError when the report is written."""
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise ConfigError(key, f"keys must be text, got {name!r}")
            check_plain(f"{key}.{name}", item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_plain(f"{key}[{index}]", item)
    elif value is not None and not isinstance(value, (str, bool, numbers.Real)):
        raise ConfigError(key, f"{value!r} ({type(value).__name__}) is not an option value: give text, a number, a "
                               "bool, a list or a table (a date or time in quotes, as text)")
