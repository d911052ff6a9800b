"""Model reaction times from readout entropy vs human uncertainty (Spoerer et al. 2020).

A recurrent network's cumulative readout ``p_t = softmax(sum_{s<=t} logits_s)`` sharpens
over steps. Its entropy ``H_t`` falls below a threshold ``theta`` at the model's reaction
time ``RT = min{t : H_t < theta}`` (censored at the last step when it never does). Images
that are hard for humans (uncertainty ``D = 0.5 - |0.5 - PC|``) should take the model
longer: Spearman's rho between RT and D.

``theta`` is fitted to maximise rho on training images and evaluated on held-out ones
(K-fold over images). Significance: the whole cross-validated procedure is repeated under
permutations of D over images (so the threshold search is inside the null), ranks and
per-threshold RTs computed once and every draw's threshold search done by one GEMM per
fold. A within-category shuffle gives the control null; a paired per-image swap test
compares the trained network with its randomly initialised twin.
"""

import numpy as np
import pandas as pd
import scipy.special
import scipy.stats
import xarray as xr

from ..errors import MetricError
from ..scores import Score
from ..stats.permutation import permutation_chunks
from ..stats.resampling import paired_swap_test, shuffled_indices, unit_ranks
from .folds import fold_labels, stimulus_folds


def cumulative_probabilities(logits, cumulative=True):
    """Softmax of the running sum of per-step logits ``(n_images, n_steps, n_classes)``.

    Pass ``cumulative=False`` when the logits already are running sums (e.g. a BLNet
    built with ``readout="cumulative"``).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3:
        raise MetricError(f"logits must be (n_images, n_steps, n_classes), got shape {logits.shape}")
    if not np.isfinite(logits).all():
        raise MetricError("logits contain NaN or infinite values")
    running = np.cumsum(logits, axis=1) if cumulative else logits
    return scipy.special.softmax(running, axis=2)


def readout_entropy(probabilities, base=2.0):
    """Entropy (bits by default) per image and step of ``(n_images, n_steps, n_classes)``."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 3:
        raise MetricError(f"probabilities must be (n_images, n_steps, n_classes), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise MetricError("probabilities contain NaN or infinite values (did a softmax overflow?)")
    if (p < -1e-9).any() or not np.allclose(p.sum(-1), 1.0, atol=1e-5):
        raise MetricError("probabilities must be non-negative and sum to 1 over classes")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(-1) / np.log(base)


def entropy_reaction_times(entropy, threshold):
    """First step whose entropy is below ``threshold`` (0-based), censored at the last step.

    ``entropy`` ``(n_images, n_steps)``; ``threshold`` scalar or ``(k,)``. Returns
    ``(rt, censored)`` with shapes ``(n_images,)`` or ``(n_images, k)``.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    if entropy.ndim != 2:
        raise MetricError(f"entropy must be (n_images, n_steps), got shape {entropy.shape}")
    if entropy.shape[1] < 2:
        raise MetricError("reaction times need at least 2 steps; the readout has 1")
    thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
    below = entropy[:, :, None] < thresholds[None, None, :]  # (n, T, k)
    crossed = below.any(1)
    rt = np.where(crossed, below.argmax(1), entropy.shape[1] - 1)
    if np.ndim(threshold) == 0:
        return rt[:, 0], ~crossed[:, 0]
    return rt, ~crossed


class _CrossValidatedRho:
    """Held-out Spearman rho of RT with a target, for many targets at once.

    ``rts`` ``(n, k)``: the reaction time of every image under each of ``k`` candidate
    thresholds (fixed, target-independent). For each fold, the training images' RT ranks
    are computed once; a batch of targets ``(P, n)`` (observed or permuted) picks its best
    threshold per fold with one GEMM, and the held-out RTs are pooled and correlated.
    """

    def __init__(self, rts, folds):
        self.rts = rts
        self.folds = folds
        self.train_ranks = [unit_ranks(rts[folds != k], axis=0) for k in range(folds.max() + 1)]

    def __call__(self, targets):
        targets = np.atleast_2d(targets)
        heldout = np.empty(targets.shape)
        chosen = np.empty((targets.shape[0], self.folds.max() + 1), dtype=np.int64)
        for k, ranks in enumerate(self.train_ranks):
            train, test = self.folds != k, self.folds == k
            target_ranks = unit_ranks(targets[:, train], axis=1)  # (P, n_train)
            rho = target_ranks @ ranks  # (P, k) training rho per threshold
            # a threshold that gives every training image the same RT has rho 0; ties ->
            # the first (lowest) threshold, a deterministic choice
            chosen[:, k] = np.argmax(np.nan_to_num(rho, nan=-np.inf), axis=1)
            heldout[:, test] = self.rts[np.flatnonzero(test)[None, :], chosen[:, k][:, None]]
        # a constant held-out RT vector has no rank correlation: rho 0
        rho = (unit_ranks(heldout, axis=1) * unit_ranks(targets, axis=1)).sum(1)
        return rho, heldout, chosen


def _aligned(entropy, uncertainty):
    if not isinstance(entropy, xr.DataArray) or "stimulus_id" not in entropy.coords:
        raise MetricError("entropy must be a DataArray (presentation, time_bin) with a stimulus_id coord")
    if isinstance(uncertainty, xr.DataArray):
        uncertainty = pd.Series(uncertainty.values, index=uncertainty["stimulus_id"].values)
    if not isinstance(uncertainty, pd.Series):
        raise MetricError("uncertainty must be a pandas Series indexed by stimulus_id or a DataArray with one")
    if uncertainty.index.has_duplicates:
        raise MetricError("uncertainty repeats stimulus ids; reduce trials to one value per stimulus first")
    model_ids = pd.Index(entropy["stimulus_id"].values.astype(str))
    common = model_ids.intersection(uncertainty.index.astype(str))
    if len(common) == 0:
        raise MetricError(f"model and human stimuli do not overlap (model e.g. {model_ids[0]!r}, human e.g. "
                          f"{uncertainty.index[0]!r}); align the stimulus ids")
    if len(common) < 10:
        raise MetricError(f"only {len(common)} stimuli shared by model and humans; need at least 10")
    rows = model_ids.get_indexer(common)
    target = uncertainty.reindex(common).to_numpy(dtype=np.float64)
    if not np.isfinite(target).all():
        raise MetricError("human uncertainty contains NaN for shared stimuli")
    return entropy.isel(presentation=rows), target, np.asarray(common)


def rt_uncertainty_score(entropy, uncertainty, thresholds=None, n_thresholds=40, n_splits=5, seed=0, n_permutations=10000,
                         within=None, chunk_size=500):
    """Cross-validated Spearman rho between entropy RTs and human uncertainty, with p-values.

    Parameters
    ----------
    entropy : xarray.DataArray ``(presentation, time_bin)``
        Readout entropy per image and step, with ``stimulus_id`` (and the ``within``
        coord if given).
    uncertainty : pandas.Series
        Human uncertainty D per ``stimulus_id``; aligned by id (never by position).
    thresholds : array, optional
        Candidate thresholds; default ``n_thresholds`` quantiles of all entropies (fixed
        before seeing D).
    n_splits, seed : int
        K-fold over images for the threshold fit.
    n_permutations : int
        Draws of the permutation null (D permuted over images, threshold refitted).
    within : str, optional
        Presentation coord (e.g. ``category_name``): also compute the within-category
        shuffle control null and its p-value.

    Returns
    -------
    dict
        Score record: ``value`` (held-out rho), ``p_value``, ``null_n``, ``p_within``
        (if asked), ``thresholds`` per fold, ``n``, ``seed``, plus ``rt`` (held-out RTs,
        pandas Series by stimulus id).
    """
    entropy, target, ids = _aligned(entropy, uncertainty)
    values = entropy.transpose("presentation", "time_bin").values
    if thresholds is None:
        thresholds = np.quantile(values, np.linspace(0.02, 0.98, n_thresholds))
    thresholds = np.unique(np.asarray(thresholds, dtype=np.float64))
    rts, _ = entropy_reaction_times(values, thresholds)
    folds = fold_labels(stimulus_folds(len(ids), n_splits=n_splits, seed=seed), len(ids))
    score = _CrossValidatedRho(rts.astype(np.float64), folds)
    rho, heldout, chosen = score(target)
    record = {"metric": "rt_uncertainty_spearman", "value": float(rho[0]), "n": int(len(target)),
              "seed": seed, "thresholds": thresholds[chosen[0]].tolist(), "n_splits": n_splits}
    blocks = {"p_value": None}
    if within is not None:
        if within not in entropy.coords:
            raise MetricError(f"entropy has no presentation coord {within!r} for the within-category control")
        blocks["p_within"] = entropy[within].values
    for key, codes in blocks.items():
        exceed, n = 0, 0
        for _, size, sequence in permutation_chunks(seed + (key == "p_within"), n_permutations, chunk_size):
            index = shuffled_indices(np.random.default_rng(sequence), size, len(target), codes)
            null, _, _ = score(target[index])
            exceed += int((null >= rho[0] - 1e-12).sum())
            n += size
        record[key] = (1 + exceed) / (1 + n)
    record["null_n"] = n_permutations
    record["rt"] = pd.Series(heldout[0], index=ids, name="rt_step")
    fields = {name: record.pop(name) for name in ("value", "n", "p_value", "null_n") if name in record}
    return Score(**fields, seed=seed, units="spearman_rho", extra=record)


def compare_rt_scores(record_a, record_b, uncertainty, n_permutations=10000, seed=0, alternative="two-sided"):
    """Paired per-image swap test: do model A's and B's held-out RTs track D differently?

    Two-tailed by default, as Spoerer et al. test the difference between networks' RT-human
    correlations (``alternative="greater"``: A tracks D better, one-sided).
    """
    common = record_a["rt"].index.intersection(record_b["rt"].index)
    if len(common) < 10:
        raise MetricError(f"models share only {len(common)} scored stimuli")
    d = uncertainty.reindex(common).to_numpy(dtype=np.float64)
    return paired_swap_test(record_a["rt"].reindex(common).to_numpy(), record_b["rt"].reindex(common).to_numpy(),
                            d, n_permutations=n_permutations, seed=seed, alternative=alternative)


def flops_per_step(model, frame_shape, n_steps):
    """Multiply-accumulate operations of each step of a zoo model on one image.

    Counted by forward hooks on every ``Conv2d`` and ``Linear`` for runs of 1..n_steps
    steps; the per-step cost is the difference of consecutive totals.
    """
    import torch

    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total[0] += output.numel() * kernel
        else:
            total[0] += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    cumulative = []
    try:
        with torch.no_grad():
            for steps in range(1, n_steps + 1):
                total[0] = 0
                model(torch.zeros((1, steps) + tuple(frame_shape)))
                cumulative.append(total[0])
    finally:
        for handle in handles:
            handle.remove()
    return np.diff(np.asarray(cumulative, dtype=np.float64), prepend=0.0)


def accuracy_flops_curve(probabilities, labels, step_flops, thresholds=None):
    """Accuracy vs mean cumulative FLOPs when each image stops at its entropy RT.

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``threshold``, ``accuracy``, ``mean_flops``, ``mean_rt``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    entropy = readout_entropy(p)
    if thresholds is None:
        thresholds = np.quantile(entropy, np.linspace(0, 1, 21)) + 1e-12
    rts, _ = entropy_reaction_times(entropy, np.asarray(thresholds))
    cumulative = np.cumsum(step_flops)
    predictions = p.argmax(-1)  # (n, T)
    rows = []
    for j, threshold in enumerate(np.atleast_1d(thresholds)):
        chosen = predictions[np.arange(len(p)), rts[:, j]]
        rows.append({"threshold": float(threshold), "accuracy": float((chosen == labels).mean()),
                     "mean_flops": float(cumulative[rts[:, j]].mean()), "mean_rt": float(rts[:, j].mean())})
    return pd.DataFrame(rows)
