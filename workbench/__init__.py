"""Compare the dynamics of recurrent vision models with brain recordings and behaviour.

>>> import workbench as wb
>>> wb.assembly.validate(assembly)

Importing the package loads only the contract (errors, assembly); every other layer is a
subpackage imported where it is used (``docs/architecture.md``).
"""

from . import assembly
from .errors import (AssemblyError, ConfigError, DataFormatError, DataWarning, ExtractionError, MetricError,
                     WorkbenchError)

__version__ = "0.1.0"
__all__ = [
    "AssemblyError",
    "ConfigError",
    "DataFormatError",
    "DataWarning",
    "ExtractionError",
    "MetricError",
    "WorkbenchError",
    "assembly",
]
