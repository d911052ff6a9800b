"""Simulators that write real file formats from a planted ground truth (DESIGN §5)."""

from .human import HumanSimulation, simulate_human_ratings
from .macaque import MacaqueSimulation, simulate_macaque

__all__ = ["HumanSimulation", "MacaqueSimulation", "simulate_human_ratings", "simulate_macaque"]
