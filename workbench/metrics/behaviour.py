"""Behavioural metrics of recurrent classifiers (Hartmann et al., CRCN, Lindsay et al.).

Inputs are per-step class probabilities ``(n_images, n_steps, n_classes)`` (softmax of the
logits; for a feedforward frame model, the Bayesian integration of its frames, see
:func:`workbench.models.zoo.hartmann.bayesian_integration`) and integer labels.

- :func:`accuracy_over_steps`: accuracy per step and condition (SNR, noise level);
- :func:`fit_integration_curve`: Hartmann's fit ``f(x) = (c - a) exp(-x / tau) + c`` of
  accuracy over frames ``x`` (``c``: the asymptote; ``tau``: how many frames the
  integration takes);
- :func:`false_rejection_rate` (Hartmann et al.): pool every predicted probability of every
  category, reject the categories in the lowest quintile of that pool; the share of images
  whose *correct* category is rejected. :func:`top_confidence_rejection_rate` keeps the
  workbench's earlier variant (reject the images with the least top-class confidence);
- :func:`calibration_curve` (Hartmann et al.): every class probability is a prediction that
  the class is correct, binned in 50 log-spaced bins; :func:`reliability_diagram` is the
  top-class variant; :func:`fit_log_calibration` (``log y = a (1 - exp(c log p))``);
- :func:`mcnemar_test`: exact McNemar test of paired correctness (statsmodels);
- :func:`incorrect_label_agreement` and :func:`logit_difference_correlation`: do two
  networks fail the same way?
"""

import numpy as np
import pandas as pd
import scipy.optimize
from statsmodels.stats.contingency_tables import mcnemar

from ..errors import MetricError, check_count, check_interval


def _probabilities(p, name="probabilities"):
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2:
        p = p[:, None, :]
    if p.ndim != 3:
        raise MetricError(f"{name} must be (n_images, n_steps, n_classes), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise MetricError(f"{name} contain NaN or infinite values")
    if (p < -1e-9).any() or not np.allclose(p.sum(-1), 1.0, atol=1e-4):
        raise MetricError(f"{name} must be non-negative and sum to 1 over classes (pass softmax outputs)")
    return p


def _labels(labels, n):
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise MetricError(f"labels must have one entry per image ({n}), got shape {labels.shape}")
    return labels


def accuracy_over_steps(conditions, labels):
    """Accuracy per condition and step.

    Parameters
    ----------
    conditions : dict
        ``{condition: probabilities (n_images, n_steps, n_classes)}`` (e.g. per SNR).
    labels : array ``(n_images,)``

    Returns
    -------
    pandas.DataFrame ``condition``, ``step``, ``accuracy``, ``n``
    """
    rows = []
    for condition, p in conditions.items():
        p = _probabilities(p, f"probabilities of {condition!r}")
        correct = p.argmax(-1) == _labels(labels, len(p))[:, None]
        rows += [{"condition": condition, "step": t, "accuracy": float(correct[:, t].mean()), "n": len(p)}
                 for t in range(p.shape[1])]
    return pd.DataFrame(rows)


def integration_curve(x, a, c, tau):
    """Hartmann et al.'s integration fit ``(c - a) exp(-x / tau) + c``."""
    return (c - a) * np.exp(-np.asarray(x, dtype=np.float64) / tau) + c


def fit_integration_curve(frames, accuracy):
    """Least-squares fit of :func:`integration_curve` to accuracy over frames.

    Returns
    -------
    dict ``a``, ``c``, ``tau``, ``rmse``
    """
    x = np.asarray(frames, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if len(x) < 3 or x.shape != y.shape:
        raise MetricError("the integration fit has 3 parameters: give at least 3 (frame, accuracy) points")
    c0 = y[-1]
    start = (2 * c0 - y[0], c0, max(1.0, (x[-1] - x[0]) / 3))
    try:
        (a, c, tau), _ = scipy.optimize.curve_fit(integration_curve, x, y, p0=start,
                                                  bounds=([-np.inf, -np.inf, 1e-3], [np.inf, np.inf, 1e3]),
                                                  maxfev=20000)
    except RuntimeError as error:
        raise MetricError(f"integration fit did not converge: {error}") from error
    rmse = float(np.sqrt(np.mean((integration_curve(x, a, c, tau) - y) ** 2)))
    return {"a": float(a), "c": float(c), "tau": float(tau), "rmse": rmse}


def false_rejection_rate(probabilities, labels, quantile=0.2):
    """Hartmann et al.'s false rejection rate: how often the correct category is rejected.

    Every image's predicted probability for every category is pooled (``n_images x
    n_classes`` values); a category is rejected for an image when its probability lies in
    the lowest ``quantile`` of that pool (a quintile by default). The rate is the share of
    images whose correct category is rejected: a network whose low probabilities are
    trustworthy rarely rejects the truth (rate near 0). (Definition as the paper describes
    it, paraphrased; the paper's text is not reproduced here.)

    Parameters
    ----------
    probabilities : array ``(n_images, n_classes)`` or ``(n_images, n_steps, n_classes)``
        Class probabilities; with steps, the last step is used.
    labels : array ``(n_images,)`` of int
    quantile : float in (0, 1)

    Returns
    -------
    float
    """
    check_interval("quantile", quantile, "(0, 1)", error=MetricError)
    p = _probabilities(probabilities)[:, -1]
    labels = _labels(labels, len(p))
    threshold = np.quantile(p, quantile)
    return float((p[np.arange(len(p)), labels] <= threshold).mean())


def top_confidence_rejection_rate(probabilities, labels, quantile=0.2):
    """Share of correctly classified images among those rejected for low confidence.

    The workbench's earlier reading of false rejection, kept under its own name: images
    whose top-class probability lies in the bottom ``quantile`` are rejected; a good
    confidence signal rejects mostly errors (rate near 0). ``probabilities`` as in
    :func:`false_rejection_rate`.
    """
    p = _probabilities(probabilities)[:, -1]
    labels = _labels(labels, len(p))
    confidence = p.max(-1)
    rejected = confidence <= np.quantile(confidence, quantile)
    correct = p.argmax(-1) == labels
    return float(correct[rejected].mean())


def calibration_curve(probabilities, labels, n_bins=50, floor=1e-6):
    """Hartmann et al.'s calibration: all class probabilities in log-spaced bins.

    Each of the ``n_images x n_classes`` probabilities is a prediction that its class is
    the image's category. They are binned in ``n_bins`` bins evenly spaced in log
    probability from ``floor`` to 1 (probabilities below ``floor`` go to the first bin);
    per non-empty bin, ``confidence`` is the mean predicted probability and ``accuracy``
    the share of its (image, class) pairs whose class is the correct one. A calibrated
    network lies on the diagonal at every scale, including the small probabilities a
    top-class diagram never shows. (Definition as the paper describes it, paraphrased.)

    Returns
    -------
    pandas.DataFrame
        ``bin_low``, ``bin_high`` (edges), ``confidence``, ``accuracy``, ``n`` (pairs).
    """
    check_count("n_bins", n_bins, 2, error=MetricError)
    check_interval("floor", floor, "(0, 1)", error=MetricError)
    p = _probabilities(probabilities)[:, -1]
    labels = _labels(labels, len(p))
    truth = np.zeros(p.shape, dtype=np.float64)
    truth[np.arange(len(p)), labels] = 1.0
    edges = np.logspace(np.log10(floor), 0.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, p.ravel(), side="right") - 1, 0, n_bins - 1)
    n = np.bincount(bins, minlength=n_bins)
    confidence = np.bincount(bins, weights=p.ravel(), minlength=n_bins)
    hits = np.bincount(bins, weights=truth.ravel(), minlength=n_bins)
    keep = n > 0
    return pd.DataFrame({"bin_low": edges[:-1][keep], "bin_high": edges[1:][keep],
                         "confidence": confidence[keep] / n[keep], "accuracy": hits[keep] / n[keep],
                         "n": n[keep]})


def reliability_diagram(probabilities, labels, n_bins=10):
    """Accuracy per bin of confidence (top-class probability): the top-class variant of
    :func:`calibration_curve`.

    Returns
    -------
    pandas.DataFrame ``confidence`` (mean in bin), ``accuracy``, ``n`` (non-empty bins)
    """
    p = _probabilities(probabilities)[:, -1]
    labels = _labels(labels, len(p))
    confidence = p.max(-1)
    correct = (p.argmax(-1) == labels).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "confidence": confidence, "correct": correct})
    table = frame.groupby("bin").agg(confidence=("confidence", "mean"), accuracy=("correct", "mean"),
                                     n=("correct", "size")).reset_index(drop=True)
    return table


def fit_log_calibration(confidence, accuracy, weights=None):
    """Fit ``log y = a (1 - exp(c log p))`` (y accuracy, p confidence) by weighted least squares.

    ``a = 0`` is perfect calibration's limit only in shape; the fitted curve summarises
    over- (curve below the diagonal) or under-confidence. Bins with accuracy 0 are left
    out (log undefined).

    Returns
    -------
    dict ``a``, ``c``
    """
    p = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = (y > 0) & (p > 0) & (p < 1)
    if keep.sum() < 2:
        raise MetricError("log-calibration fit needs at least 2 bins with accuracy > 0 and 0 < confidence < 1")

    def model(log_p, a, c):
        return a * (1 - np.exp(c * log_p))

    try:
        (a, c), _ = scipy.optimize.curve_fit(model, np.log(p[keep]), np.log(y[keep]), p0=(-1.0, 1.0),
                                             sigma=1 / np.sqrt(w[keep]), maxfev=20000)
    except RuntimeError as error:
        raise MetricError(f"log-calibration fit did not converge: {error}") from error
    return {"a": float(a), "c": float(c)}


def mcnemar_test(correct_a, correct_b):
    """Exact McNemar test of paired correctness of two models on the same images.

    Returns
    -------
    dict ``statistic`` (discordant count of the smaller kind), ``p_value``,
    ``a_only`` and ``b_only`` (images only A, or only B, got right), ``n``
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise MetricError(f"paired correctness vectors must be 1-D and equal length, got {a.shape}, {b.shape}")
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    result = mcnemar(table, exact=True)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue),
            "a_only": table[0][1], "b_only": table[1][0], "n": int(len(a))}


def incorrect_label_agreement(probabilities_a, probabilities_b, labels):
    """Among images both networks misclassify, the share given the same wrong label."""
    a = _probabilities(probabilities_a)[:, -1].argmax(-1)
    b = _probabilities(probabilities_b)[:, -1].argmax(-1)
    labels = _labels(labels, len(a))
    both_wrong = (a != labels) & (b != labels)
    if not both_wrong.any():
        raise MetricError("no image is misclassified by both networks; agreement is undefined")
    return {"agreement": float((a[both_wrong] == b[both_wrong]).mean()), "n_both_wrong": int(both_wrong.sum())}


def logit_difference_correlation(logits_a, logits_b, labels):
    """Pearson r over images of the margin ``logit_true - max(other logits)`` of two networks."""
    margins = []
    for logits in (logits_a, logits_b):
        z = np.asarray(logits, dtype=np.float64)
        if z.ndim == 3:
            z = z[:, -1]
        if not np.isfinite(z).all():
            raise MetricError("logits contain NaN or infinite values")
        labels = _labels(labels, len(z))
        true = z[np.arange(len(z)), labels]
        other = np.where(np.eye(z.shape[1], dtype=bool)[labels], -np.inf, z).max(1)
        margins.append(true - other)
    if np.std(margins[0]) == 0 or np.std(margins[1]) == 0:
        raise MetricError("a network's logit margins are constant; correlation undefined")
    return float(np.corrcoef(margins[0], margins[1])[0, 1])
