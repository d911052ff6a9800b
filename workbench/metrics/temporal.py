"""Temporal generalisation of linear encoding maps: fit on bin t, test on bin t'.

For every training bin ``t`` one ridge map (per-target alpha by inner CV over stimuli, the
same folds as :func:`~workbench.metrics.encoding_score`) is fitted from the features at ``t``
to the responses at ``t``; each outer fold's map then predicts its held-out stimuli's
responses at every bin ``t'`` from the features at ``t'``. ``r[t, t']`` is the Pearson r
across held-out stimuli (mean over folds, as in ``encoding_score``). The diagonal is the
per-bin fit (``mode="per_bin"``); the shared-over-time fit is the special case that trains
one map on all bins at once. A map that generalises off the diagonal means the mapping from
features to responses is stable over time; a narrow diagonal means it changes.

Cost: one nested ridge fit per training bin (``T`` fits, not ``T**2``).
"""

import warnings

import numpy as np
import xarray as xr

from ..assembly import align, align_time_bins, average_repetitions, has_repetitions, validate
from ..errors import AssemblyError, MetricError
from .correlation import pearson_columns
from .folds import stimulus_folds
from .ridge import DEFAULT_ALPHAS, RidgeCV


def temporal_generalization(features, recording, alphas=DEFAULT_ALPHAS, inner_splits=3, n_splits=5, seed=0,
                            by="region"):
    """Train-bin x test-bin encoding scores.

    Parameters
    ----------
    features : xarray.DataArray
        Model (or neural) assembly ``(presentation, neuroid, time_bin)``.
    recording : xarray.DataArray
        Neural assembly (trial-level or averaged); aligned by ``stimulus_id`` and time bin.
    alphas, inner_splits : ridge grid and inner folds
    n_splits, seed : outer folds over stimuli (stratified like ``encoding_score``)
    by : str
        Neuroid coord of the recording for the group summary.

    Returns
    -------
    xarray.Dataset
        ``r`` ``(train_bin, test_bin, neuroid)``; ``summary`` ``(group, train_bin,
        test_bin)``: the median over each group's sites; ``time_bin_start`` coords on both
        bin dims (ms).
    """
    validate(features)
    validate(recording)
    neural = average_repetitions(recording) if has_repetitions(recording) else recording
    try:
        features, neural = align(features, neural)
        features, neural = align_time_bins(features, neural)
    except AssemblyError as error:
        raise MetricError(str(error)) from error
    X = np.asarray(features.values, dtype=np.float64).transpose(0, 2, 1)  # (S, T, P)
    Y = np.asarray(neural.values, dtype=np.float64).transpose(0, 2, 1)  # (S, T, N)
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise MetricError("features and responses must be finite for temporal generalisation")
    n_stimuli, n_bins, n_targets = Y.shape
    strata = next((neural.coords[c].values for c in ("object_name", "category_name") if c in neural.coords), None)
    folds = stimulus_folds(n_stimuli, n_splits, seed, strata)
    r = np.empty((n_bins, n_bins, n_targets))
    for t in range(n_bins):
        ridge = RidgeCV(alphas=alphas, cv=inner_splits, seed=seed)
        ridge.cross_val_predict(X[:, t:t + 1], Y[:, t:t + 1], folds, strata=strata, predict_also=X)
        predicted = ridge.also_prediction_  # (S, T', N)
        per_fold = np.stack([pearson_columns(predicted[test], Y[test]) for _, test in folds])  # (K, T', N)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r[t] = np.nanmean(per_fold, axis=0)
    starts = neural.coords["time_bin_start"].values
    groups = neural.coords[by].values if by in neural.coords else np.array(["all"] * n_targets)
    labels = list(dict.fromkeys(groups.tolist()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = np.stack([np.nanmedian(r[:, :, groups == g], axis=2) for g in labels])
    return xr.Dataset(
        {"r": (("train_bin", "test_bin", "neuroid"), r),
         "summary": (("group", "train_bin", "test_bin"), summary)},
        coords={"train_bin": np.arange(n_bins), "test_bin": np.arange(n_bins),
                "train_time_ms": ("train_bin", starts), "test_time_ms": ("test_bin", starts),
                "neuroid_id": ("neuroid", neural.coords["neuroid_id"].values), "group": labels},
        attrs={"metric": "temporal generalisation of ridge maps (fit on bin t, test on bin t')",
               "r": "Pearson r across held-out stimuli, mean over folds", "n_splits": n_splits, "seed": seed})


def step_bin_correspondence(features, recording, alphas=DEFAULT_ALPHAS, inner_splits=3, n_splits=5, seed=0,
                            by="region"):
    """Which model step predicts which brain bin best.

    For every model time bin (step) ``s``, one ridge map from the features at ``s`` to the
    responses at every recorded bin ``t`` at once (per-target alphas by inner CV; outer CV
    by stimulus). ``r[s, t]`` is the held-out Pearson r (mean over folds); the best step of
    each brain bin, ``argmax_s r[s, t]``, traces the model's timeline against the brain's
    (a model whose steps run in step with the brain puts the maximum near the diagonal,
    shifted by the latency). Unlike :func:`temporal_generalization`, features and responses
    need not share time bins: the model's bins are its steps.

    Returns
    -------
    xarray.Dataset
        ``r`` ``(step, brain_bin, neuroid)``, ``summary`` ``(group, step, brain_bin)`` (median
        over the group's sites) and ``best_step`` ``(group, brain_bin)``.
    """
    validate(features)
    validate(recording)
    neural = average_repetitions(recording) if has_repetitions(recording) else recording
    try:
        features, neural = align(features, neural)
    except AssemblyError as error:
        raise MetricError(str(error)) from error
    X = np.asarray(features.values, dtype=np.float64).transpose(0, 2, 1)  # (S, steps, P)
    Y = np.asarray(neural.values, dtype=np.float64)  # (S, N, T)
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise MetricError("features and responses must be finite")
    n_stimuli, n_sites, n_bins = Y.shape
    targets = Y.reshape(n_stimuli, 1, n_sites * n_bins)
    strata = next((neural.coords[c].values for c in ("object_name", "category_name") if c in neural.coords), None)
    folds = stimulus_folds(n_stimuli, n_splits, seed, strata)
    r = np.empty((X.shape[1], n_sites, n_bins))
    for s in range(X.shape[1]):
        if not (X[:, s].std(axis=0) > 0).any():  # a silent step (e.g. a deep layer before it is reached)
            r[s] = np.nan
            continue
        predicted, _ = RidgeCV(alphas=alphas, cv=inner_splits, seed=seed).cross_val_predict(
            X[:, s:s + 1], targets, folds, strata=strata)
        per_fold = np.stack([pearson_columns(predicted[test, 0], targets[test, 0]) for _, test in folds])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r[s] = np.nanmean(per_fold, axis=0).reshape(n_sites, n_bins)
    groups = neural.coords[by].values if by in neural.coords else np.array(["all"] * n_sites)
    labels = list(dict.fromkeys(groups.tolist()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = np.stack([np.nanmedian(r[:, groups == g, :], axis=1) for g in labels])  # (G, steps, T)
        best = np.where(np.isfinite(summary).any(axis=1), np.nanargmax(np.nan_to_num(summary, nan=-np.inf), axis=1), -1)
    return xr.Dataset(
        {"r": (("step", "neuroid", "brain_bin"), r), "summary": (("group", "step", "brain_bin"), summary),
         "best_step": (("group", "brain_bin"), best)},
        coords={"step": np.arange(X.shape[1]), "step_ms": ("step", features.coords["time_bin_start"].values),
                "brain_bin": np.arange(n_bins), "brain_ms": ("brain_bin", neural.coords["time_bin_start"].values),
                "neuroid_id": ("neuroid", neural.coords["neuroid_id"].values), "group": labels},
        attrs={"metric": "model step x brain bin: ridge from the features at a step to the responses at every bin",
               "r": "Pearson r across held-out stimuli, mean over folds"})


def split_half_features(trials, seed=0):
    """The recording as its own predictor, for temporal generalisation *of the data*: the
    average of a random half of each stimulus's trials as features (neuroids renamed
    ``<id>|A``) and the other half's trials as the recording. ``temporal_generalization(
    *split_half_features(trials))`` shows how a population code generalises over time,
    with no model involved."""
    import pandas as pd

    from .ceiling import random_half_masks

    validate(trials)
    if not has_repetitions(trials):
        raise MetricError("the data's own temporal generalisation needs repeated trials to split in halves")
    codes = pd.factorize(trials.coords["stimulus_id"].values)[0]
    half_a = next(random_half_masks(codes, 1, seed))
    features = average_repetitions(trials.isel(presentation=np.flatnonzero(half_a)))
    features = features.assign_coords(neuroid_id=("neuroid", [f"{i}|A" for i in features.neuroid_id.values]))
    return features, trials.isel(presentation=np.flatnonzero(~half_a))
