"""Loaders for real recording/behaviour file formats.

They depend only on the contract (``workbench.errors``, ``workbench.assembly``,
``workbench.storage``); the simulators that write these formats live above the models,
in :mod:`workbench.simulators`.

>>> import data_adapters
>>> assembly = data_adapters.load("MajajHong2015.nc")      # format recognised from content
"""

from workbench.errors import DataFormatError

from .registry import check_options, detect_format, load, register_format, supported_formats
from .human import HumanRatings
from .stimulus_set import load_stimulus_set, merge_stimulus_set

__all__ = [
    "DataFormatError",
    "HumanRatings",
    "check_options",
    "detect_format",
    "load",
    "load_stimulus_set",
    "merge_stimulus_set",
    "register_format",
    "supported_formats",
]
