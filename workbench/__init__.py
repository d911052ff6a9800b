"""Compare the dynamics of recurrent vision models with brain recordings and behaviour.

>>> import workbench as wb
>>> wb.assembly.validate(assembly)
"""

from . import assembly, stimuli
from .errors import (AssemblyError, DataFormatError, DataWarning, ExtractionError, MetricError,
                     WorkbenchError)

__version__ = "0.1.0"
__all__ = [
    "AssemblyError",
    "DataFormatError",
    "DataWarning",
    "ExtractionError",
    "MetricError",
    "WorkbenchError",
    "assembly",
    "stimuli",
]
