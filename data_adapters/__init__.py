"""Loaders for real recording/behaviour file formats, and simulators that write them.

>>> import data_adapters
>>> assembly = data_adapters.load("MajajHong2015.nc")      # format recognised from content
"""

from workbench.errors import DataFormatError

from .registry import load, supported_formats
from .simulate import MacaqueSimulation, simulate_macaque

__all__ = [
    "DataFormatError",
    "MacaqueSimulation",
    "load",
    "simulate_macaque",
    "supported_formats",
]
