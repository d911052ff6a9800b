"""Metrics: compare model and neural assemblies (encoding, ceilings, ...)."""

from .ceiling import split_half_ceiling
from .correlation import pearson_columns, spearman_brown
from .encoding import RidgeCV, shared_time_encoding, stimulus_folds, summarize

__all__ = [
    "RidgeCV",
    "pearson_columns",
    "shared_time_encoding",
    "spearman_brown",
    "split_half_ceiling",
    "stimulus_folds",
    "summarize",
]
