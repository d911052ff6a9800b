"""Column-wise correlations shared by ceilings and encoding scores."""

import numpy as np


def pearson_columns(a, b):
    """Pearson r between matching columns of ``a`` and ``b``, along axis 0.

    Parameters
    ----------
    a, b : numpy.ndarray
        Same shape ``(n_samples, ...)``.

    Returns
    -------
    numpy.ndarray
        Shape ``a.shape[1:]``; NaN where either column is constant.
    """
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denominator = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / denominator
    # Guard against round-off on constant columns: tiny denominators mean no variance.
    scale = np.sqrt((a * a).sum(axis=0).max(initial=0) * (b * b).sum(axis=0).max(initial=0))
    return np.where(denominator > 1e-12 * max(scale, 1e-300), r, np.nan)


def spearman_brown(r, factor=2.0):
    """Spearman-Brown prophecy: reliability of a measure ``factor`` times as long.

    ``factor * r / (1 + (factor - 1) * r)``; with the default 2 it corrects a split-half
    correlation to the reliability of the full data.
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1.0 + (factor - 1.0) * r)
