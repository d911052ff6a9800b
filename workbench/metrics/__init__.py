"""Metrics: compare model and neural assemblies (encoding, ceilings, layer mapping), and the
seed papers' analyses (de-noising, dimensionality, reaction times, behaviour)."""

from . import behaviour, denoising, dimensionality, latency, reaction_time, temporal

from .ceiling import average_and_ceiling, split_half_ceiling, variance_components_ceiling
from .correlation import pearson_columns, spearman_brown
from .encoding import MODES, encoding_score, shared_time_encoding, summarize
from .folds import stimulus_folds
from .mapping import map_layers_to_regions, score_regions
from .pls import PLSRegression
from .ridge import DEFAULT_ALPHAS, RidgeCV

__all__ = [
    "DEFAULT_ALPHAS",
    "average_and_ceiling",
    "behaviour",
    "denoising",
    "dimensionality",
    "latency",
    "temporal",
    "reaction_time",
    "MODES",
    "PLSRegression",
    "RidgeCV",
    "encoding_score",
    "map_layers_to_regions",
    "score_regions",
    "pearson_columns",
    "shared_time_encoding",
    "variance_components_ceiling",
    "spearman_brown",
    "split_half_ceiling",
    "stimulus_folds",
    "summarize",
]
