"""Simulators that write real file formats from a planted ground truth (docs/DESIGN.md §5)."""

from .fmri import BlurFmriSimulation, simulate_blur_fmri
from .human import HumanSimulation, simulate_human_ratings
from .macaque import MacaqueSimulation, simulate_macaque

__all__ = ["BlurFmriSimulation", "simulate_blur_fmri", "HumanSimulation", "MacaqueSimulation", "simulate_human_ratings", "simulate_macaque"]
