"""Argument checks shared by the simulators: checked before any work, named in the error."""

import numpy as np

from ..errors import WorkbenchError


def check_count(name, value, minimum, why=""):
    """``value`` is an integer >= ``minimum`` (a bool or a float is not), else a WorkbenchError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise WorkbenchError(f"{name} must be an integer >= {minimum}{' ' + why if why else ''}, got {value!r}")
