"""Linear encoding scores: how well do model features predict each recorded site over time?

The shared-over-time fit (Nayebi et al.) learns ONE linear map from a model's features at
time t to the recording at time t, for all time bins at once: stimulus x time-bin samples
are stacked. Cross-validation splits by stimulus, so no image is in both train and test
in any time bin.

Conventions (also written into every result's attrs):

- ``r``: Pearson correlation across held-out stimuli, per neuroid and time bin, mean over
  outer folds (``r_fold_std`` is the spread);
- ``ceiling``: split-half Spearman-Brown reliability of the trial average
  (:func:`workbench.metrics.ceiling.split_half_ceiling`);
- ``normalized``: ceiling-normalised explained variance ``sign(r) * r**2 / ceiling``
  (1 = as good as the data's reliability allows; anti-correlated predictions count as
  negative), NaN where ``ceiling < min_ceiling``.
"""

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from ..assembly import align, align_time_bins, average_repetitions, has_repetitions, validate
from ..errors import AssemblyError, MetricError
from .ceiling import split_half_ceiling
from .correlation import pearson_columns

DEFAULT_ALPHAS = np.logspace(-2, 5, 15)
NORMALIZATION = "sign(r) * r**2 / ceiling"


def stimulus_folds(n_stimuli, n_splits, seed=0, strata=None):
    """Seeded K-fold split of stimuli, stratified by ``strata`` labels when given.

    Each stratum's members are shuffled and dealt round-robin into the folds, starting
    at a random fold, so fold sizes differ by at most one per stratum.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(train_index, test_index)`` over stimuli, one pair per fold.
    """
    if n_splits < 2:
        raise MetricError(f"cross-validation needs >= 2 splits, got {n_splits}")
    if n_stimuli < n_splits:
        raise MetricError(f"{n_stimuli} stimuli cannot be split into {n_splits} folds")
    rng = np.random.default_rng(seed)
    strata = np.zeros(n_stimuli, dtype=np.int64) if strata is None else pd.factorize(np.asarray(strata))[0]
    fold = np.empty(n_stimuli, dtype=np.int64)
    offset = 0
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        fold[members] = (offset + np.arange(len(members))) % n_splits
        offset = (offset + len(members)) % n_splits
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


class RidgeCV:
    """Ridge regression with one alpha per target chosen by grouped inner cross-validation.

    One eigendecomposition of the training features' Gram matrix serves every alpha and
    target, so the alpha grid costs one matrix product per alpha.

    Parameters
    ----------
    alphas : array-like
        Candidate penalties (applied to standardised features).
    inner_splits : int
        Inner folds over groups (stimuli) for choosing alpha by mean squared error.
    standardize : bool
        z-score features with the training statistics (different layers share a scale).
    seed : int

    Attributes (after ``fit``)
    ----------
    alpha_ : numpy.ndarray, shape (n_targets,)
    coef_ : numpy.ndarray, shape (n_features, n_targets)
    intercept_ : numpy.ndarray, shape (n_targets,)
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, inner_splits=3, standardize=True, seed=0):
        self.alphas = alphas
        self.inner_splits = inner_splits
        self.standardize = standardize
        self.seed = seed

    def _center(self, X):
        mean = X.mean(axis=0)
        scale = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        scale = np.where(scale > 0, scale, 1.0)
        return mean, scale

    @staticmethod
    def _eigh_gram(Xs):
        """Eigendecomposition of ``Xs.T @ Xs``: one GEMM plus a small symmetric solve,
        cheaper than an SVD when samples outnumber features."""
        eigenvalues, V = np.linalg.eigh(Xs.T @ Xs)
        return np.clip(eigenvalues, 0.0, None), V

    def _path_predictions(self, X_train, Y_train, X_eval):
        """Yield ``(alpha_index, predictions on X_eval)`` for every alpha."""
        x_mean, x_scale = self._center(X_train)
        y_mean = Y_train.mean(axis=0)
        Xs = (X_train - x_mean) / x_scale
        eigenvalues, V = self._eigh_gram(Xs)
        VtXtY = V.T @ (Xs.T @ (Y_train - y_mean))
        XV = ((X_eval - x_mean) / x_scale) @ V
        for i, alpha in enumerate(np.asarray(self.alphas, dtype=np.float64)):
            yield i, (XV / (eigenvalues + alpha)) @ VtXtY + y_mean

    def fit(self, X, Y, groups):
        """Fit on ``X`` ``(n_samples, n_features)``, ``Y`` ``(n_samples, n_targets)``.

        ``groups`` ``(n_samples,)`` labels samples that must stay together in inner
        folds (the stimulus of each stacked stimulus x time sample).
        """
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        alphas = np.asarray(self.alphas, dtype=np.float64)
        codes, unique_groups = pd.factorize(np.asarray(groups))
        errors = np.zeros((len(alphas), Y.shape[1]))
        if len(alphas) > 1:
            for train, test in stimulus_folds(len(unique_groups), self.inner_splits, self.seed):
                rows_train = np.isin(codes, train)
                rows_test = ~rows_train
                for i, prediction in self._path_predictions(X[rows_train], Y[rows_train], X[rows_test]):
                    errors[i] += ((prediction - Y[rows_test]) ** 2).sum(axis=0)
        self.alpha_ = alphas[np.argmin(errors, axis=0)]
        x_mean, x_scale = self._center(X)
        y_mean = Y.mean(axis=0)
        Xs = (X - x_mean) / x_scale
        eigenvalues, V = self._eigh_gram(Xs)
        # Per-target alpha: coef = V diag(1 / (eig + alpha_t)) V' X' y_t, all targets at once.
        coef_std = V @ ((V.T @ (Xs.T @ (Y - y_mean))) / (eigenvalues[:, None] + self.alpha_[None, :]))
        self.coef_ = coef_std / x_scale[:, None]
        self.intercept_ = y_mean - x_mean @ self.coef_
        return self

    def predict(self, X):
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_


def shared_time_encoding(features, trials, n_splits=5, alphas=DEFAULT_ALPHAS, inner_splits=3,
                         seed=0, ceiling_splits=10, min_ceiling=0.1, progress=False):
    """Score model features against a recording with one linear map shared over time.

    Parameters
    ----------
    features : xarray.DataArray
        Model assembly ``(stimuli, units, time_bins)``.
    trials : xarray.DataArray
        Neural assembly, trial-level ``(trials, sites, time_bins)`` (needed for the
        ceiling) or already averaged (then ``ceiling`` and ``normalized`` are NaN).
    n_splits : int
        Outer folds over stimuli, stratified by ``category_name`` when the recording has it.
    alphas, inner_splits : see :class:`RidgeCV`.
    seed : int
        Seeds folds and ceiling splits.
    ceiling_splits : int
    min_ceiling : float
        Cells with a lower ceiling get ``normalized = NaN`` (too unreliable to normalise).
    progress : bool

    Returns
    -------
    xarray.Dataset
        Variables ``r``, ``r_fold_std``, ``ceiling``, ``normalized`` over
        ``(neuroid, time_bin)`` with the recording's neuroid and time coords, plus
        ``prediction`` ``(presentation, neuroid, time_bin)``: each stimulus predicted by
        the fold that held it out.

    Raises
    ------
    MetricError
        Non-finite values, no shared stimuli or time bins, fewer stimuli than folds.
    """
    validate(features)
    validate(trials)
    for name, da in (("features", features), ("recording", trials)):
        n_bad = int(np.size(da.values) - np.isfinite(da.values).sum())
        if n_bad:
            raise MetricError(f"the {name} contain {n_bad} NaN/inf values; drop or impute them first")
    ceiling_trials = trials if has_repetitions(trials) else None
    neural = average_repetitions(trials) if ceiling_trials is not None else trials
    try:
        features, neural = align(features, neural)
        features, neural = align_time_bins(features, neural)
    except AssemblyError as error:  # same message, as the metric's own error
        raise MetricError(str(error)) from error
    X = np.asarray(features.values, dtype=np.float64).transpose(0, 2, 1)  # (S, T, P)
    Y = np.asarray(neural.values, dtype=np.float64).transpose(0, 2, 1)  # (S, T, N)
    n_stimuli, n_bins = Y.shape[:2]
    strata = neural.coords["category_name"].values if "category_name" in neural.coords else None
    folds = stimulus_folds(n_stimuli, n_splits, seed, strata)
    estimator = RidgeCV(alphas=alphas, inner_splits=inner_splits, seed=seed)
    prediction = np.empty_like(Y)
    fold_r = []
    for train, test in tqdm(folds, desc="encoding folds", disable=not progress):
        groups = np.repeat(train, n_bins)
        estimator.fit(X[train].reshape(-1, X.shape[2]), Y[train].reshape(-1, Y.shape[2]), groups)
        prediction[test] = estimator.predict(X[test].reshape(-1, X.shape[2])).reshape(len(test), n_bins, -1)
        fold_r.append(pearson_columns(prediction[test], Y[test]))  # (T, N)
    fold_r = np.stack(fold_r)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        r = np.nanmean(fold_r, axis=0).T
        r_std = np.nanstd(fold_r, axis=0).T
    if ceiling_trials is not None:
        kept = np.isin(ceiling_trials.coords["stimulus_id"].values, neural.coords["stimulus_id"].values)
        ceiling_trials = ceiling_trials.isel(presentation=np.flatnonzero(kept))
        ceiling_trials = ceiling_trials.sel(time_bin=np.isin(
            ceiling_trials.coords["time_bin_start"].values, neural.coords["time_bin_start"].values))
        ceiling = split_half_ceiling(ceiling_trials, n_splits=ceiling_splits, seed=seed).values
    else:
        ceiling = np.full_like(r, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = np.where(ceiling >= min_ceiling, np.sign(r) * r**2 / ceiling, np.nan)

    cell_coords = {
        name: coord for name, coord in neural.coords.items()
        if coord.dims and coord.dims[0] in ("neuroid", "time_bin")
    }
    cell = ("neuroid", "time_bin")
    return xr.Dataset(
        {
            "r": (cell, r),
            "r_fold_std": (cell, r_std),
            "ceiling": (cell, ceiling),
            "normalized": (cell, normalized),
            "prediction": (("presentation", "neuroid", "time_bin"), prediction.transpose(0, 2, 1)),
        },
        coords={**cell_coords, "stimulus_id": ("presentation", neural.coords["stimulus_id"].values)},
        attrs={
            "metric": "shared_time_ridge",
            "normalization": NORMALIZATION,
            "r": "Pearson r across held-out stimuli per neuroid and time bin, mean over folds",
            "n_splits": n_splits,
            "inner_splits": inner_splits,
            "alphas": list(map(float, np.asarray(alphas))),
            "min_ceiling": min_ceiling,
            "seed": seed,
            "n_stimuli": n_stimuli,
            "n_features": X.shape[2],
        },
    )


def summarize(result, by="region"):
    """Tidy per-group records of an encoding result.

    For each group of neuroids (``by`` coord, or all), ``value`` is the median over
    neuroids of the mean ``r`` over usable time bins (ceiling >= min_ceiling, or all bins
    when there is no ceiling); ``ceiling`` and ``normalized`` likewise.

    Returns
    -------
    list of dict
        One record per group with ``group``, ``value``, ``ceiling``, ``normalized``,
        ``n`` (neuroids) and ``n_time_bins``.
    """
    ceiling = result["ceiling"]
    usable = ceiling >= result.attrs["min_ceiling"] if np.isfinite(ceiling).any() else xr.ones_like(ceiling, bool)
    groups = result.coords[by].values if by in result.coords else np.array(["all"] * result.sizes["neuroid"])
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for group in pd.unique(groups):
            mask = groups == group
            per_site = {
                name: np.nanmean(np.where(usable.values[mask], result[name].values[mask], np.nan), axis=1)
                for name in ("r", "ceiling", "normalized")
            }
            records.append({
                "group": str(group),
                "value": float(np.nanmedian(per_site["r"])),
                "ceiling": float(np.nanmedian(per_site["ceiling"])),
                "normalized": float(np.nanmedian(per_site["normalized"])),
                "n": int(mask.sum()),
                "n_time_bins": int(usable.values[mask].any(axis=0).sum()),
            })
    return records
