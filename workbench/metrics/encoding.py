"""Linear encoding scores: how well do model features predict each recorded site over time?

Three modes (``mode=``):

- ``"shared"`` (Nayebi et al.): ONE linear map from a model's features at time t to the
  recording at time t, for all time bins at once (stimulus x time-bin samples stacked);
- ``"per_bin"``: a separate map per time bin;
- ``"time_average"``: features and responses averaged over the shared time bins, one map,
  one output bin spanning them.

Cross-validation splits by stimulus, so no image is in both train and test in any time
bin; folds are stratified by ``object_name`` (else ``category_name``) when the recording
has it. Brain-Score's default is 10 folds (90/10).

Conventions (also written into every result's attrs):

- ``r``: Pearson correlation across held-out stimuli, per neuroid and time bin, mean over
  outer folds (``r_fold`` per fold, ``r_fold_std`` the spread);
- ``ceiling``: split-half Spearman-Brown reliability of the trial average
  (:func:`workbench.metrics.ceiling.split_half_ceiling`);
- ``normalized``: ceiling-normalised explained variance ``sign(r) * r**2 / ceiling``
  (1 = as good as the data's reliability allows; anti-correlated predictions count as
  negative), NaN where ``ceiling < min_ceiling``; a site's summary pools its usable bins
  (``sum sign(r) r**2 / sum ceiling``, :func:`summarize`);
- ``temporal_r``: per held-out image and site, Pearson r across time bins between the
  prediction and the response (Nayebi et al. Fig. S1b); NaN with fewer than 3 bins.
"""

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from ..assembly import align, align_time_bins, average_repetitions, has_repetitions, is_member, validate
from ..errors import AssemblyError, MetricError
from ..scores import Score, Scores
from .ceiling import CEILINGS, split_half_ceiling, variance_components_ceiling
from .correlation import pearson_columns, prediction_r
from .folds import fold_labels, stimulus_folds
from ..stats.groups import GroupSummary
from ..stats.permutation import columns_vary
from .ridge import DEFAULT_ALPHAS, RidgeCV

NORMALIZATION = "sign(r) * r**2 / ceiling"
MODES = ("shared", "per_bin", "time_average")
STRATA_COORDS = ("object_name", "category_name")


def _check_finite(name, da):
    n_bad = int(np.size(da.values) - np.isfinite(da.values).sum())
    if n_bad:
        raise MetricError(f"the {name} contain {n_bad} NaN/inf values; drop or impute them first")


def _check_variance(features, neural):
    """Name constant targets and feature layers with no variance across stimuli.

    Constant means a spread over the stimuli of at most 1e-12 of the largest magnitude
    (:func:`workbench.stats.permutation.columns_vary`, the permutation tests' rule): 0.1 at
    every stimulus has an sd of about 1e-17 in floating point, not 0, and passed a test of
    ``sd > 0``."""
    constant = np.argwhere(~columns_vary(neural.values))  # (N, T) cells
    if len(constant):
        ids = neural.coords["neuroid_id"].values
        cells = ", ".join(f"{ids[n]}@{neural.coords['time_bin_start'].values[t]:g}ms" for n, t in constant[:5])
        raise MetricError(
            f"{len(constant)} target cell(s) are constant across stimuli (e.g. {cells}); "
            "nothing can be predicted there (fix: drop those neuroids or time bins with "
            "select_neuroids / select_time_bins)"
        )
    unit_varies = columns_vary(features.values).any(axis=-1)  # (P,)
    layers = features.coords["layer"].values if "layer" in features.coords else np.array(["features"] * len(unit_varies))
    for layer in pd.unique(layers):
        if not unit_varies[layers == layer].any():
            raise MetricError(
                f"layer {str(layer)!r} has zero variance across the stimuli (every unit constant); "
                "check the layer name, the stimuli, or the extraction's reduction"
            )


def select_stimuli(da, ids):
    """The presentations of ``da`` whose ``stimulus_id`` is in ``ids`` (all repetitions)."""
    return da.isel(presentation=np.flatnonzero(is_member(da.coords["stimulus_id"].values, ids)))


def _restrict_trials(trials, neural):
    trials = select_stimuli(trials, neural.coords["stimulus_id"].values)
    return trials.isel(time_bin=np.flatnonzero(is_member(
        trials.coords["time_bin_start"].values, neural.coords["time_bin_start"].values)))


def _time_average(da):
    """Average over time bins, keeping one bin spanning them."""
    start = float(da.coords["time_bin_start"].values.min())
    end = float(da.coords["time_bin_end"].values.max())
    averaged = da.mean("time_bin", keep_attrs=True).expand_dims("time_bin", axis=2)
    return averaged.assign_coords(time_bin_start=("time_bin", [start]), time_bin_end=("time_bin", [end]))


def _strata(neural):
    for name in STRATA_COORDS:
        if name in neural.coords:
            return name, neural.coords[name].values
    return None, None


def _cross_val_predict(estimator, X, Y, folds, strata, progress):
    """Held-out predictions (S, T, N), per-fold alphas (K, N) or None, and the split-half
    predictions (S, T, N): the second half of the folds predicted by one model fitted on
    the first half, NaN elsewhere."""
    bar = (lambda items: tqdm(items, desc="encoding folds", leave=False)) if progress else None
    if isinstance(estimator, RidgeCV):
        predictions, alphas = estimator.cross_val_predict(X, Y, folds, strata=strata, progress=bar,
                                                          split_half=True)
        return predictions, alphas, estimator.split_prediction_
    n_bins = X.shape[1]

    def fit_predict(train, test):
        estimator.fit(X[train].reshape(-1, X.shape[2]), Y[train].reshape(-1, Y.shape[2]),
                      groups=np.repeat(train, n_bins))
        return estimator.predict(X[test].reshape(-1, X.shape[2])).reshape(len(test), n_bins, -1)

    predictions = np.empty(Y.shape, dtype=np.float64)
    for train, test in (bar(folds) if bar else folds):
        predictions[test] = fit_predict(train, test)
    outer = fold_labels(folds, len(X))
    first_half = (len(folds) + 1) // 2
    split = np.full(Y.shape, np.nan)
    test = np.flatnonzero(outer >= first_half)
    split[test] = fit_predict(np.flatnonzero(outer < first_half), test)
    return predictions, None, split


#: flops above which a cross-validated fit shows its progress (about 10 s on two cores)
LONG_FIT_FLOPS = 3e12


def long_fits(estimator, n_samples, n_features, n_splits, n_fits=1):
    """Whether ``n_fits`` cross-validations of ``estimator`` (``n_splits`` outer folds, each
    with its inner folds, and the split-half fit) on ``n_samples`` x ``n_features`` take
    long enough to show progress: each training set's eigendecomposition (of the smaller of
    its Gram and its kernel) and the products that form it, against :data:`LONG_FIT_FLOPS`."""
    if not isinstance(estimator, RidgeCV):
        return False
    inner = 0 if estimator.cv == "gcv" else int(estimator.cv)
    train = n_samples * (1 - 1 / max(2, n_splits))
    size = min(train, n_features)
    per_system = 4 * size ** 3 + train * n_features * size
    return bool(n_fits * (n_splits + 1) * (inner + 1) * per_system > LONG_FIT_FLOPS)


def encoding_score(features, recording, estimator=None, mode="shared", n_splits=10, seed=0,
                   ceiling_splits=10, min_ceiling=0.1, progress=None, ceiling="split_half"):
    """Score model features against a recording through cross-validated linear maps.

    Parameters
    ----------
    features : xarray.DataArray
        Model assembly ``(presentation, neuroid, time_bin)`` (units as neuroids).
    recording : xarray.DataArray
        Neural assembly, trial-level (needed for the ceiling) or already averaged (then
        ``ceiling`` and ``normalized`` are NaN).
    estimator : object with ``fit(X, Y, groups)`` and ``predict(X)``, optional
        Default ``RidgeCV(seed=seed)`` (per-target alpha by inner CV over stimuli);
        :class:`~workbench.metrics.PLSRegression` for Brain-Score comparability.
    mode : {"shared", "per_bin", "time_average"}
    n_splits : int
        Outer folds over stimuli (stratified by object/category when present).
    seed : int
        Seeds the folds and the ceiling's splits.
    ceiling_splits : int
    min_ceiling : float
        Cells with a lower ceiling get ``normalized = NaN`` (too unreliable to normalise).
    progress : bool or None
        A progress bar over the fits (outer folds, or time bins for ``"per_bin"``). None
        (default): shown when the fits are long, by their size (:func:`long_fits`: about
        10 s or more on two cores), so that minutes of work are never silent.
    ceiling : {"split_half", "variance_components"} or xarray.DataArray
        The noise-ceiling estimator (:mod:`workbench.metrics.ceiling`); both are on the
        scale of ``r**2``, and the result's attrs name the one used. Or a precomputed
        ``(neuroid, time_bin)`` ceiling on that scale (e.g. streamed from a recording too
        large to load: the recording passed may then be the repetition average).

    Returns
    -------
    xarray.Dataset
        ``r``, ``r_fold_std``, ``ceiling``, ``normalized`` over ``(neuroid, time_bin)``;
        ``r_fold`` ``(split, neuroid, time_bin)``; ``alpha`` ``(split, neuroid,
        time_bin)`` for ridge; ``prediction`` and ``target`` ``(presentation, neuroid,
        time_bin)`` (each stimulus predicted by the fold that held it out);
        ``split_prediction`` (same dims): the second half of the folds predicted by one
        model fitted on the first half, NaN elsewhere (the held-out set of the exact
        permutation test, :func:`workbench.stats.heldout_permutation_test`); ``temporal_r``
        ``(presentation, neuroid)``; coords ``stimulus_id`` and ``fold`` on presentation.

    Raises
    ------
    MetricError
        NaN/inf values, no shared stimuli or time bins, fewer stimuli than folds, constant
        targets, a layer with zero variance, an unknown mode.
    """
    if mode not in MODES:
        raise MetricError(f"unknown encoding mode {mode!r}; choose one of {', '.join(MODES)}")
    given_ceiling = ceiling if isinstance(ceiling, xr.DataArray) else None
    if given_ceiling is None and ceiling not in CEILINGS:
        raise MetricError(f"unknown ceiling {ceiling!r}; choose one of {', '.join(CEILINGS)} or pass a "
                          "(neuroid, time_bin) DataArray")
    validate(features)
    validate(recording)
    _check_finite("features", features)
    _check_finite("recording", recording)
    trials = recording if has_repetitions(recording) else None
    neural = average_repetitions(recording) if trials is not None else recording
    try:
        features, neural = align(features, neural)
        features, neural = align_time_bins(features, neural)
    except AssemblyError as error:  # same message, as the metric's own error
        raise MetricError(str(error)) from error
    if trials is not None:
        trials = _restrict_trials(trials, neural)
    if mode == "time_average":
        features, neural = _time_average(features), _time_average(neural)
        trials = _time_average(trials) if trials is not None else None
    _check_variance(features, neural)
    estimator = RidgeCV(seed=seed) if estimator is None else estimator
    if progress is None:
        n_samples = features.sizes["presentation"] * (1 if mode == "per_bin" else features.sizes["time_bin"])
        progress = long_fits(estimator, n_samples, features.sizes["neuroid"], n_splits,
                             features.sizes["time_bin"] if mode == "per_bin" else 1)

    values = features.values
    if not (isinstance(estimator, RidgeCV) and values.dtype in (np.float32, np.float64)):
        values = np.asarray(values, dtype=np.float64)
    # RidgeCV reads float32 features as they are, centring them in float64 arithmetic into
    # its working copy: a float64 copy here would cost as much again (0.26 GB at 1,600 images
    # x 512 features x 40 bins) for the same numbers
    X = values.transpose(0, 2, 1)  # (S, T, P)
    Y = np.asarray(neural.values, dtype=np.float64).transpose(0, 2, 1)  # (S, T, N)
    n_stimuli, n_bins, n_targets = Y.shape
    strata_name, strata = _strata(neural)
    folds = stimulus_folds(n_stimuli, n_splits, seed, strata)
    alpha = None
    if mode == "per_bin":
        prediction, split_prediction = np.empty_like(Y), np.empty_like(Y)
        alpha = np.full((n_splits, n_targets, n_bins), np.nan)
        for t in tqdm(range(n_bins), desc="time bins", disable=not progress):
            prediction[:, t:t + 1], chosen, split_prediction[:, t:t + 1] = _cross_val_predict(
                estimator, X[:, t:t + 1], Y[:, t:t + 1], folds, strata, False)
            if chosen is not None:
                alpha[:, :, t] = chosen
        alpha = alpha if np.isfinite(alpha).any() else None
    else:
        prediction, chosen, split_prediction = _cross_val_predict(estimator, X, Y, folds, strata, progress)
        if chosen is not None:
            alpha = np.repeat(chosen[:, :, None], n_bins, axis=2)
    # a prediction constant over a fold's images scores 0 where the data vary (prediction_r)
    fold_r = np.stack([prediction_r(prediction[test], Y[test]).T for _, test in folds])  # (K, N, T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        r = np.nanmean(fold_r, axis=0)
        r_std = np.nanstd(fold_r, axis=0)
    temporal_r = (pearson_columns(prediction, Y, axis=1)
                  if n_bins >= 3 else np.full((n_stimuli, n_targets), np.nan))
    ceiling_method = ceiling
    if given_ceiling is not None:
        ceiling, ceiling_method = _given_ceiling(given_ceiling, neural), given_ceiling.attrs.get("definition", "given")
    elif trials is None:
        ceiling = np.full_like(r, np.nan)
    elif ceiling_method == "split_half":
        ceiling = split_half_ceiling(trials, n_splits=ceiling_splits, seed=seed).values
    else:
        ceiling = variance_components_ceiling(trials).values
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = np.where(ceiling >= min_ceiling, np.sign(r) * r**2 / ceiling, np.nan)

    cell_coords = {
        name: coord for name, coord in neural.coords.items()
        if coord.dims and coord.dims[0] in ("neuroid", "time_bin")
    }
    cell = ("neuroid", "time_bin")
    full = ("presentation", "neuroid", "time_bin")
    variables = {
        "r": (cell, r),
        "r_fold": (("split",) + cell, fold_r),
        "r_fold_std": (cell, r_std),
        "ceiling": (cell, ceiling),
        "normalized": (cell, normalized),
        "prediction": (full, prediction.transpose(0, 2, 1)),
        "split_prediction": (full, split_prediction.transpose(0, 2, 1)),
        "target": (full, Y.transpose(0, 2, 1)),
        "temporal_r": (("presentation", "neuroid"), temporal_r),
    }
    if alpha is not None:
        variables["alpha"] = (("split",) + cell, alpha)
    presentation_coords = {"stimulus_id": ("presentation", neural.coords["stimulus_id"].values),
                           "fold": ("presentation", fold_labels(folds, n_stimuli))}
    if strata_name:
        presentation_coords[strata_name] = ("presentation", strata)
    return xr.Dataset(
        variables,
        coords={**cell_coords, **presentation_coords},
        attrs={
            "metric": f"{mode}_{type(estimator).__name__}",
            "mode": mode,
            "estimator": _describe(estimator),
            "normalization": NORMALIZATION,
            "ceiling_method": (ceiling_method if trials is not None or given_ceiling is not None
                               else "none (no repetitions)"),
            "ceiling_scale": "r^2: a perfect model's r**2 equals the ceiling; value is r",
            "r": "Pearson r across held-out stimuli per neuroid and time bin, mean over folds",
            "n_splits": n_splits,
            "stratified_by": strata_name or "",
            "min_ceiling": min_ceiling,
            "ceiling_splits": ceiling_splits,
            "seed": seed,
            "n_stimuli": n_stimuli,
            "n_features": X.shape[2],
            "simulated": int(bool(recording.attrs.get("simulated", False))),
        },
    )


def _given_ceiling(ceiling, neural):
    """A precomputed ``(neuroid, time_bin)`` ceiling (e.g. streamed from a lazily opened
    recording), aligned to ``neural`` by ``neuroid_id`` and ``time_bin_start``."""
    try:
        ceiling = ceiling.transpose("neuroid", "time_bin")
        rows = pd.Index(ceiling.coords["neuroid_id"].values).get_indexer(neural.coords["neuroid_id"].values)
        columns = pd.Index(ceiling.coords["time_bin_start"].values).get_indexer(neural.coords["time_bin_start"].values)
    except (KeyError, ValueError) as error:
        raise MetricError(f"the given ceiling must be a (neuroid, time_bin) DataArray with neuroid_id and "
                          f"time_bin_start coords ({error})") from error
    if (rows < 0).any() or (columns < 0).any():
        raise MetricError("the given ceiling does not cover every neuroid and time bin of the recording")
    return np.asarray(ceiling.values, dtype=np.float64)[np.ix_(rows, columns)]


def _describe(estimator):
    params = {key: value for key, value in vars(estimator).items() if not key.startswith("_") and not key.endswith("_")}
    return f"{type(estimator).__name__}({', '.join(f'{k}={_short(v)}' for k, v in sorted(params.items()))})"


def _short(value):
    if isinstance(value, np.ndarray):
        return f"[{value.min():g}..{value.max():g} x{value.size}]" if value.size else "[]"
    return repr(value)


def shared_time_encoding(features, trials, n_splits=10, alphas=DEFAULT_ALPHAS, inner_splits=3,
                         seed=0, ceiling_splits=10, min_ceiling=0.1, progress=None):
    """Shared-over-time ridge encoding (Nayebi et al.): :func:`encoding_score` with
    ``mode="shared"`` and ``RidgeCV(alphas, cv=inner_splits, seed=seed)``."""
    return encoding_score(features, trials, RidgeCV(alphas=alphas, cv=inner_splits, seed=seed),
                          mode="shared", n_splits=n_splits, seed=seed,
                          ceiling_splits=ceiling_splits, min_ceiling=min_ceiling, progress=progress)


def summarize(result, by="region"):
    """Tidy per-group records of an encoding result.

    For each group of neuroids (``by`` coord, or all), ``value`` is the median over
    neuroids of the mean ``r`` over usable time bins (ceiling >= min_ceiling, or all bins
    when there is no ceiling); ``ceiling`` likewise; ``normalized`` is the median over
    neuroids of ``sum sign(r) r**2 / sum ceiling`` over the usable bins (each site's share
    of its explainable variance, pooled over time:
    :meth:`workbench.stats.groups.GroupSummary.site_normalized`, which says why);
    ``value_fold_std`` is the spread of ``value`` over the outer folds.

    Returns
    -------
    workbench.scores.Scores
        One :class:`~workbench.scores.Score` per group: ``region`` (the group; also
        ``score["group"]``), ``value``, ``ceiling``, ``normalized``, ``n`` (neuroids),
        ``units="pearson_r"`` and extra ``value_fold_std``, ``n_time_bins``.
    """
    summary = GroupSummary(result, by)
    n_cells = summary.usable.size

    def rows(name):
        return result[name].values.reshape(-1, n_cells)

    per_group = {name: summary(rows(name)) for name in ("r", "ceiling")}
    per_group["normalized"] = summary.normalized(rows("r"), rows("ceiling"))
    per_fold = summary(rows("r_fold")) if "r_fold" in result else None
    records = []
    for group in per_group["r"]:
        mask = summary.groups == group
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a group with no usable fold value
            fold_std = float(np.nanstd(per_fold[group])) if per_fold is not None else float("nan")
        records.append(Score(
            region=str(group),
            value=float(per_group["r"][group][0]),
            ceiling=float(per_group["ceiling"][group][0]),
            normalized=float(per_group["normalized"][group][0]),
            n=int(mask.sum()),
            units="pearson_r",
            extra={"value_fold_std": fold_std, "n_time_bins": int(summary.usable[mask].any(axis=0).sum()),
                   "ceiling_method": result.attrs.get("ceiling_method", "split_half"),
                   "ceiling_scale": "r^2"},
        ))
    return Scores(records)
