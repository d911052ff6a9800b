"""Ridge in kernel (dual) form: the same alphas and fits as the primal form and sklearn, and
no p x p Gram for wide problems."""

import tracemalloc

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from workbench import MetricError
from workbench.metrics.folds import stimulus_folds
from workbench.metrics.ridge import RidgeCV


def _problem(n, p, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.5, 3, p) + 2
    Y = X[:, :5] @ rng.standard_normal((5, 7)) + 3 * rng.standard_normal((n, 7)) + 10
    return X, Y


@pytest.mark.parametrize("n, p", [(80, 30), (60, 200)])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("cv, scoring", [(3, "mse"), (3, "r2"), ("gcv", "mse")])
def test_dual_equals_primal_and_sklearn(n, p, standardize, cv, scoring):
    X, Y = _problem(n, p)
    fits = {(solver, backend): RidgeCV(cv=cv, scoring=scoring, standardize=standardize, dtype="float64",
                                       solver=solver, backend=backend).fit(X, Y)
            for solver in ("primal", "dual") for backend in ("numpy", "torch")}
    primal = fits["primal", "numpy"]
    for (solver, backend), fit in fits.items():
        assert fit.solver_ == solver
        np.testing.assert_array_equal(fit.alpha_, primal.alpha_)
        np.testing.assert_allclose(fit.coef_, primal.coef_, rtol=0, atol=1e-9 * np.abs(primal.coef_).max())
        np.testing.assert_allclose(fit.intercept_, primal.intercept_, rtol=1e-9)
    scale = X.std(0) if standardize else np.ones(p)
    for target in range(Y.shape[1]):  # sklearn on the same (standardised) features and alpha
        reference = Ridge(alpha=primal.alpha_[target]).fit(X / scale, Y[:, target])
        np.testing.assert_allclose(fits["dual", "numpy"].coef_[:, target], reference.coef_ / scale, atol=1e-10)
        np.testing.assert_allclose(fits["dual", "numpy"].intercept_[target], reference.intercept_, atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_kernel_computed_in_blocks_below_the_diagonal_gives_the_same_fits(backend, monkeypatch):
    # kernels of thousands of samples are formed a block of rows at a time, the blocks above
    # the diagonal mirrored: here blocks of 16 rows of a 70-sample kernel (5 a side, uneven)
    from workbench.backend import get_backend
    from workbench.metrics import ridge

    X, Y = _problem(70, 200)
    whole = RidgeCV(dtype="float64", solver="dual", backend=backend).fit(X, Y)
    monkeypatch.setattr(ridge, "_KERNEL_BLOCK", 16)
    blocked = RidgeCV(dtype="float64", solver="dual", backend=backend).fit(X, Y)
    np.testing.assert_array_equal(blocked.alpha_, whole.alpha_)
    np.testing.assert_allclose(blocked.coef_, whole.coef_, rtol=0, atol=1e-10 * np.abs(whole.coef_).max())
    bk = get_backend(backend, "cpu", "float64")
    kernel = bk.to_numpy(ridge._outer_gram(bk, bk.asarray(X)))
    np.testing.assert_allclose(kernel, X @ X.T, rtol=1e-12)
    np.testing.assert_array_equal(kernel, kernel.T)


def test_auto_picks_the_form_from_the_shape_and_checks_the_name():
    X, Y = _problem(40, 100)
    assert RidgeCV(backend="numpy").fit(X, Y).solver_ == "dual"
    assert RidgeCV(backend="numpy").fit(X[:, :20], Y).solver_ == "primal"
    with pytest.raises(MetricError, match="solver must be"):
        RidgeCV(solver="kernel").fit(X, Y)


def test_nested_cross_validation_is_the_same_in_both_forms():
    """Stacked stimulus x time samples, outer folds, inner CV, the split-half fit."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 4, 300))
    Y = X[..., :3] @ rng.standard_normal((3, 6)) + rng.standard_normal((50, 4, 6))
    folds = stimulus_folds(50, 5, 0)
    results = {}
    for solver in ("primal", "dual"):
        ridge = RidgeCV(dtype="float64", solver=solver, backend="numpy")
        predictions, alphas = ridge.cross_val_predict(X, Y, folds, split_half=True)
        results[solver] = predictions, alphas, ridge.split_prediction_
    np.testing.assert_array_equal(results["primal"][1], results["dual"][1])
    np.testing.assert_allclose(results["dual"][0], results["primal"][0], atol=1e-9)
    np.testing.assert_allclose(results["dual"][2], results["primal"][2], atol=1e-9)


def test_a_wide_problem_never_allocates_a_feature_gram():
    """200 samples x 20,000 features: a p x p float32 Gram would be 1.6 GB (per atom); the
    kernel form stays within a few copies of the data (16 MB)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 20_000)).astype(np.float32)
    Y = X[:, :10] @ rng.standard_normal((10, 4)).astype(np.float32) + rng.standard_normal((200, 4)).astype(np.float32)
    tracemalloc.start()
    try:
        fit = RidgeCV(backend="numpy").fit(X, Y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fit.solver_ == "dual" and fit.coef_.shape == (20_000, 4)
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"
    scale = X.std(0, dtype=np.float64)
    for target in range(4):  # the fit itself: sklearn's at the chosen alpha (float32 data)
        reference = Ridge(alpha=fit.alpha_[target]).fit(X / scale, Y[:, target].astype(np.float64))
        expected = reference.coef_ / scale
        assert np.abs(fit.coef_[:, target] - expected).max() < 1e-3 * np.abs(expected).max()


@pytest.mark.parametrize("p", [30, 400])  # primal, dual
def test_a_feature_that_varies_only_in_held_out_images_does_not_blow_up_their_predictions(p):
    # a unit active for one image only (a rare ReLU unit): constant in the training set of the
    # fold that holds that image out. Its training deviation was rounding residue (~1e-17),
    # by which it was scaled up, and the held-out image's value with it: predictions off by
    # up to 1e8 target sd, and float32 and float64 fits of the same data far apart.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 4, p)) + 0.3
    X[:, :, 0] = 0.3
    X[7, :, 0] = 5.0  # only image 7
    Y = X[..., 1:4] @ rng.standard_normal((3, 5)) + rng.standard_normal((60, 4, 5))
    folds = stimulus_folds(60, 5, 0)
    fits = {}
    for dtype in ("float32", "float64"):
        ridge = RidgeCV(dtype=dtype, backend="torch")
        fits[dtype] = ridge.cross_val_predict(X, Y, folds)
        assert ridge.solver_ == ("dual" if p > 240 else "primal")
        assert np.abs(fits[dtype][0]).max() < 2 * np.abs(Y).max()
    np.testing.assert_array_equal(fits["float32"][1], fits["float64"][1])
    np.testing.assert_allclose(fits["float32"][0], fits["float64"][0], atol=1e-3 * Y.std())


@pytest.mark.parametrize("p", [6, 90])  # primal, dual (prepared in float64)
def test_other_bins_are_predicted_by_each_fold_in_either_form(p):
    # temporal generalisation: a map fitted on one bin predicts every bin's rows; for the bin
    # it was fitted on these are its own held-out predictions
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3, p))
    Y = X[..., :2] @ rng.standard_normal((2, 4)) + rng.standard_normal((40, 3, 4))
    folds = stimulus_folds(40, 4, 0)
    ridge = RidgeCV(alphas=[1.0, 10.0])
    predictions, _ = ridge.cross_val_predict(X[:, 1:2], Y[:, 1:2], folds, predict_also=X)
    assert ridge.solver_ == ("dual" if p > 30 else "primal")
    assert ridge.also_prediction_.shape == (40, 3, 4)
    np.testing.assert_allclose(ridge.also_prediction_[:, 1], predictions[:, 0], atol=1e-5 * Y.std())
