"""Column-wise correlations shared by ceilings and encoding scores."""

import numpy as np


def pearson_columns(a, b, axis=0):
    """Pearson r between matching columns of ``a`` and ``b``, along ``axis``.

    Parameters
    ----------
    a, b : numpy.ndarray
        Same shape ``(n_samples, ...)`` (samples along ``axis``). Computed in float64
        whatever their dtype (float32 sums of products lose about 1e-7 of r).
    axis : int
        The samples' axis. Correlating along an inner axis in place is 4x faster than along
        axis 0 of a transposed view, which strides through memory, and gives the same values.

    Returns
    -------
    numpy.ndarray
        ``a``'s shape without ``axis``; NaN where either column is constant.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    squares_a, squares_b = (a * a).sum(axis=axis), (b * b).sum(axis=axis)
    denominator = np.sqrt(squares_a * squares_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=axis) / denominator
    # Guard against round-off on constant columns: tiny denominators mean no variance.
    scale = np.sqrt(squares_a.max(initial=0) * squares_b.max(initial=0))
    return np.where(denominator > 1e-12 * max(scale, 1e-300), r, np.nan)


def prediction_r(prediction, target):
    """Pearson r of predictions with their targets, column-wise along axis 0, with 0 (not NaN)
    where the prediction is constant but the target varies.

    A model whose prediction does not vary with the stimulus explains none of the target's
    variance: its score is 0. Reporting NaN instead would drop those cells from the summary,
    so a model that goes silent after image offset (a feedforward network shown a grey frame)
    would be scored only on the bins it can predict and could outrank the network that
    predicts every bin. Where the target itself is constant, r stays NaN (nothing to explain).

    A prediction counts as constant where it varies by no more than round-off: by at most
    1e-5 of the largest spread the same target's prediction has in any other column (the
    leading axes of ``prediction.shape[1:]``, e.g. time bins, against the last, targets).
    Features of a network shown the same grey frame for every image after offset differ only
    in their last bits (2e-8 to 3e-7 of their spread during the image), so do the late bins'
    predictions (at most 1.2e-7 of the same site's spread while the image is on, in the
    macaque positive control), and their r with the data is the correlation of that
    round-off with it: any value within +-1/sqrt(n) (the control's feedforward network
    scored |r| up to 0.065 this way, and the value moved with a GEMM's summation order).
    Measured against the prediction's spread in the target's other columns, not against its
    magnitude, so an offset in the data (a BOLD baseline of 1,000) cannot hide a small real
    spread. Without other columns (2-D input) only an exactly constant prediction counts.
    """
    r = pearson_columns(prediction, target)
    spread = target.max(axis=0) - target.min(axis=0)
    scale = np.abs(target).max(initial=0)
    varies = prediction.max(axis=0) - prediction.min(axis=0)
    others = tuple(range(varies.ndim - 1))  # the columns of each target (its last axis)
    rounding = varies <= 1e-5 * varies.max(axis=others, keepdims=True) if others else varies <= 0
    return np.where((np.isnan(r) | rounding) & (spread > 1e-12 * max(scale, 1e-300)), 0.0, r)


def nan_pearson_columns(a, b, min_pairs=3):
    """:func:`pearson_columns` over the rows where both columns are finite, per column.

    Returns ``(r, n_pairs)``: ``r`` is NaN where fewer than ``min_pairs`` rows are finite
    in both (or a column is constant over them); ``n_pairs`` counts the rows used.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    valid = np.isfinite(a) & np.isfinite(b)
    n = valid.sum(axis=0)
    count = np.maximum(n, 1)
    a0, b0 = np.where(valid, a, 0.0), np.where(valid, b, 0.0)
    a0 = np.where(valid, a0 - a0.sum(axis=0) / count, 0.0)
    b0 = np.where(valid, b0 - b0.sum(axis=0) / count, 0.0)
    r = pearson_columns(a0, b0)  # zero rows add nothing to the centred sums
    return np.where(n >= min_pairs, r, np.nan), n


def spearman_brown(r, factor=2.0):
    """Spearman-Brown prophecy: reliability of a measure ``factor`` times as long.

    ``factor * r / (1 + (factor - 1) * r)``; with the default 2 it corrects a split-half
    correlation to the reliability of the full data.
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1.0 + (factor - 1.0) * r)
