"""Loaders for real recording/behaviour file formats, and simulators that write them.

>>> import data_adapters
>>> assembly = data_adapters.load("MajajHong2015.nc")      # format recognised from content
"""

from workbench.errors import DataFormatError

from .registry import load, supported_formats
from .human import HumanRatings
from .simulate import (BlurFmriSimulation, HumanSimulation, MacaqueSimulation, simulate_blur_fmri,
                       simulate_human_ratings, simulate_macaque)
from .stimulus_set import load_stimulus_set, merge_stimulus_set

__all__ = [
    "BlurFmriSimulation",
    "DataFormatError",
    "HumanRatings",
    "HumanSimulation",
    "MacaqueSimulation",
    "load",
    "load_stimulus_set",
    "merge_stimulus_set",
    "simulate_blur_fmri",
    "simulate_human_ratings",
    "simulate_macaque",
    "supported_formats",
]
