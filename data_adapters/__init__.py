"""Loaders for real recording/behaviour file formats, and simulators that write them.

>>> import data_adapters
>>> assembly = data_adapters.load("MajajHong2015.nc")      # format recognised from content
"""

from workbench.errors import DataFormatError

from .registry import load, supported_formats
from .simulate import MacaqueSimulation, simulate_macaque
from .stimulus_set import load_stimulus_set, merge_stimulus_set

__all__ = [
    "DataFormatError",
    "MacaqueSimulation",
    "load",
    "load_stimulus_set",
    "merge_stimulus_set",
    "simulate_macaque",
    "supported_formats",
]
