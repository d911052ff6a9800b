"""Simulators that write real file formats from a planted ground truth (DESIGN §5)."""

from .macaque import MacaqueSimulation, simulate_macaque

__all__ = ["MacaqueSimulation", "simulate_macaque"]
