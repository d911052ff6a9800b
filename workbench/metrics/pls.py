"""Partial least squares regression (PLS2), for comparability with Brain-Score.

Brain-Score's default neural mapping is scikit-learn's ``PLSRegression(25, scale=False)``.
This is the same estimator (NIPALS, regression-mode deflation) computed from the
cross-covariance instead of by iterating over the samples: each component's x-weights
are the dominant left singular vector of the deflated cross-covariance ``X_k' Y``, found
from the small ``t x t`` matrix ``S' S``; deflation updates ``S`` directly
(``S <- S - p (t' Y)``), so the data are read once per component for the scores only.
Predictions equal scikit-learn's up to its power-iteration tolerance.
"""

import numpy as np

from ..backend import get_backend
from ..errors import MetricError, check_count, check_finite_columns


class PLSRegression:
    """PLS2 regression with ``n_components`` latent components.

    Parameters
    ----------
    n_components : int
    scale : bool
        Divide features and targets by their standard deviation (ddof=1) first, as
        scikit-learn's ``scale=True``; Brain-Score uses ``False``.
    backend, device, dtype :
        Array backend (:class:`workbench.backend.ArrayBackend`); float32 by default.

    Attributes (after ``fit``)
    ----------
    coef_ : numpy.ndarray, shape (n_features, n_targets)
    intercept_ : numpy.ndarray, shape (n_targets,)
    """

    def __init__(self, n_components=25, scale=False, backend="numpy", device="auto", dtype="float32"):
        self.n_components = n_components
        self.scale = scale
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def fit(self, X, Y, groups=None):
        """Fit on ``X`` ``(n_samples, n_features)`` and ``Y`` ``(n_samples, n_targets)``.

        ``groups`` is accepted for interface compatibility with :class:`RidgeCV` and
        ignored (PLS has no inner cross-validation).
        """
        check_count("n_components", self.n_components, 1, error=MetricError)
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
            raise MetricError(f"X and Y must be 2-D with the same rows, got {X.shape} and {Y.shape}")
        n_samples, n_features = X.shape
        if not 1 <= self.n_components <= min(n_samples - 1, n_features):
            raise MetricError(
                f"PLS with {self.n_components} components needs at least that many features "
                f"and more samples (got {n_samples} samples x {n_features} features)"
            )
        bk = get_backend(self.backend, self.device, self.dtype)
        x_mean, y_mean = X.mean(0), Y.mean(0)
        check_finite_columns("features", x_mean, error=MetricError)
        check_finite_columns("targets", y_mean, error=MetricError)
        x_std = X.std(0, ddof=1) if self.scale else np.ones(n_features)
        y_std = Y.std(0, ddof=1) if self.scale else np.ones(Y.shape[1])
        x_std = np.where(x_std > 0, x_std, 1.0)
        y_std = np.where(y_std > 0, y_std, 1.0)
        Xc = bk.asarray((X - x_mean) / x_std)
        Yc = bk.asarray((Y - y_mean) / y_std)
        S = Xc.T @ Yc  # cross-covariance of the deflated X with Y, (p, t)
        weights, loadings, y_loadings, scores = [], [], [], []
        for _ in range(self.n_components):
            _, vectors = bk.eigh(S.T @ S)
            w = S @ vectors[:, -1]
            w = w / bk.sqrt((w * w).sum())
            # Scores of the deflated X without forming it: X_k w = X w - sum_j t_j (p_j' w).
            t = Xc @ w
            for t_j, p_j in zip(scores, loadings):
                t = t - t_j * (p_j * w).sum()
            tt = (t * t).sum()
            if float(tt) <= 0:
                raise MetricError("PLS found a component with zero variance: use fewer n_components")
            p = (Xc.T @ t) / tt
            for t_j, p_j in zip(scores, loadings):  # deflated X' t = X' t - sum_j p_j (t_j' t)
                p = p - p_j * ((t_j * t).sum() / tt)
            q = (Yc.T @ t) / tt  # scores are orthogonal, so Y needs no deflation
            S = S - p[:, None] * (q * tt)[None, :]
            weights.append(w)
            loadings.append(p)
            y_loadings.append(q)
            scores.append(t)
        W = bk.to_numpy(bk.stack(weights).T).astype(np.float64)
        P = bk.to_numpy(bk.stack(loadings).T).astype(np.float64)
        Q = bk.to_numpy(bk.stack(y_loadings).T).astype(np.float64)
        rotations = W @ np.linalg.pinv(P.T @ W)
        self.coef_ = (rotations @ Q.T) / x_std[:, None] * y_std[None, :]
        self.intercept_ = y_mean - x_mean @ self.coef_
        return self

    def predict(self, X):
        """Predictions ``(n_samples, n_targets)`` for ``X`` ``(n_samples, n_features)``."""
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_
