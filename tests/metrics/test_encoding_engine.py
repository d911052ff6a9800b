"""Encoding engine (issue 5): estimators, modes, ceilings, layer mapping, named errors."""

import numpy as np
import pytest
import xarray as xr
from sklearn.cross_decomposition import PLSRegression as SklearnPLS

from conftest import make_assembly
from workbench import MetricError
from workbench.metrics.ceiling import random_half_masks
from workbench.metrics import (PLSRegression, RidgeCV, encoding_score, map_layers_to_regions,
                               split_half_ceiling, stimulus_folds, summarize)
from workbench.metrics.encoding import select_stimuli


def _planted(n_stimuli=1000, n_features=10, n_bins=2, n_sites=8, n_reps=4, share=0.6, noise_sd=1.0, seed=0):
    """Features explain ``share`` of each site's signal variance; a hidden source the rest."""
    rng = np.random.default_rng(seed)
    features = make_assembly(n_stimuli=n_stimuli, n_neuroids=n_features, n_bins=n_bins, seed=seed + 1)
    X = features.values.transpose(0, 2, 1)  # (S, T, P), unit variance
    W = rng.standard_normal((n_features, n_sites))
    explained = X @ W
    explained /= explained.std(axis=(0, 1))
    hidden = rng.standard_normal(explained.shape)
    signal = np.sqrt(share) * explained + np.sqrt(1 - share) * hidden  # unit variance
    trials = make_assembly(n_stimuli=n_stimuli, n_neuroids=n_sites, n_bins=n_bins, repetitions=n_reps)
    noisy = np.tile(signal.transpose(0, 2, 1), (n_reps, 1, 1)) + noise_sd * rng.standard_normal(trials.shape)
    return features, trials.copy(data=noisy)


def test_planted_map_normalized_score_matches_truth():
    share = 0.6
    features, trials = _planted(share=share)
    result = encoding_score(features, trials, n_splits=5)
    # r^2 of a perfect feature model with the trial average is share * reliability, so the
    # ceiling-normalised score is the planted share.
    assert np.nanmedian(result["normalized"].values) == pytest.approx(share, abs=0.05)
    expected_ceiling = 1.0 / (1.0 + 1.0 / 4)
    assert np.nanmedian(result["ceiling"].values) == pytest.approx(expected_ceiling, abs=0.03)


def test_ceiling_equals_independent_spearman_brown():
    # Same random halves (the shared mask generator), everything else recomputed by hand:
    # per-stimulus half means by loops, np.corrcoef, Spearman-Brown, mean over splits.
    trials = make_assembly(n_stimuli=30, n_neuroids=3, n_bins=2, repetitions=3, seed=3)
    ceiling = split_half_ceiling(trials, n_splits=4, seed=9).values
    codes = np.tile(np.arange(30), 3)
    expected = np.zeros((3, 2))
    for half_a in random_half_masks(codes, 4, seed=9):
        mean_a = np.array([trials.values[(codes == s) & half_a].mean(0) for s in range(30)])
        mean_b = np.array([trials.values[(codes == s) & ~half_a].mean(0) for s in range(30)])
        for n in range(3):
            for t in range(2):
                r = np.corrcoef(mean_a[:, n, t], mean_b[:, n, t])[0, 1]
                expected[n, t] += 2 * r / (1 + r) / 4
    np.testing.assert_allclose(ceiling, expected, atol=1e-6)


def test_pls_mode_equals_sklearn_predictions():
    features, trials = _planted(n_stimuli=120, n_features=12, n_bins=3, n_sites=4, n_reps=2)
    result = encoding_score(features, trials, PLSRegression(5, dtype="float64"), n_splits=4, seed=2)
    X = features.values.transpose(0, 2, 1)
    Y = result["target"].values.transpose(0, 2, 1)
    ids = list(features.stimulus_id.values)
    order = [ids.index(s) for s in result.stimulus_id.values]
    X = X[order]
    for k in range(4):
        train = np.flatnonzero(result.fold.values != k)
        test = np.flatnonzero(result.fold.values == k)
        reference = SklearnPLS(5, scale=False, tol=1e-14, max_iter=10000).fit(
            X[train].reshape(-1, 12), Y[train].reshape(-1, 4))
        expected = reference.predict(X[test].reshape(-1, 12)).reshape(len(test), 3, 4)
        ours = result["prediction"].values[test].transpose(0, 2, 1)
        np.testing.assert_allclose(ours, expected, atol=1e-6 * Y.std())


def test_numpy_and_torch_backends_agree():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((90, 15)), rng.standard_normal((90, 3))
    groups = np.repeat(np.arange(30), 3)
    fits = [RidgeCV(cv=3, backend=b, dtype="float64", alphas=np.logspace(-1, 4, 8)).fit(X, Y, groups)
            for b in ("numpy", "torch")]
    np.testing.assert_allclose(fits[0].coef_, fits[1].coef_, atol=1e-10)
    np.testing.assert_array_equal(fits[0].alpha_, fits[1].alpha_)
    single = RidgeCV(cv=3, backend="torch", alphas=np.logspace(-1, 4, 8)).fit(X, Y, groups)  # float32
    np.testing.assert_allclose(single.predict(X), fits[0].predict(X), atol=1e-4)


def test_gcv_selects_the_closed_form_minimum():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 8))
    Y = X @ rng.standard_normal((8, 2)) + rng.standard_normal((60, 2)) * [0.3, 6.0]
    alphas = np.logspace(-2, 4, 13)
    fit = RidgeCV(alphas=alphas, cv="gcv", dtype="float64").fit(X, Y)
    Xs = (X - X.mean(0)) / X.std(0)
    Yc = Y - Y.mean(0)
    criterion = []
    for alpha in alphas:
        H = Xs @ np.linalg.solve(Xs.T @ Xs + alpha * np.eye(8), Xs.T)
        residual = Yc - H @ Yc
        dof = np.trace(H) + 1
        criterion.append((residual**2).mean(0) / (1 - dof / 60) ** 2)
    np.testing.assert_array_equal(fit.alpha_, alphas[np.argmin(criterion, axis=0)])
    assert fit.alpha_[0] < fit.alpha_[1]


def test_per_bin_mode_equals_separate_fits_and_time_average_has_one_bin():
    features, trials = _planted(n_stimuli=150, n_bins=3, n_sites=3, n_reps=2)
    per_bin = encoding_score(features, trials, mode="per_bin", n_splits=3)
    for t in range(3):
        alone = encoding_score(features.isel(time_bin=[t]), trials.isel(time_bin=[t]), n_splits=3)
        np.testing.assert_allclose(per_bin["prediction"].values[:, :, t], alone["prediction"].values[:, :, 0], atol=1e-9)
    averaged = encoding_score(features, trials, mode="time_average", n_splits=3)
    assert averaged.sizes["time_bin"] == 1
    assert averaged.time_bin_start.values.tolist() == [0.0] and averaged.time_bin_end.values.tolist() == [30.0]
    with pytest.raises(MetricError, match="unknown encoding mode"):
        encoding_score(features, trials, mode="sideways")


def test_temporal_correlation_and_fold_layout():
    features, trials = _planted(n_stimuli=100, n_bins=4, n_sites=3, n_reps=2)
    result = encoding_score(features, trials, n_splits=5)
    prediction, target = result["prediction"].values, result["target"].values
    assert result["temporal_r"].values[7, 2] == pytest.approx(np.corrcoef(prediction[7, 2], target[7, 2])[0, 1])
    assert sorted(np.bincount(result.fold.values)) == [20] * 5
    assert result.attrs["stratified_by"] == "category_name"
    for k in range(5):  # stratified: both categories in every test fold
        assert set(result.category_name.values[result.fold.values == k]) == {"c0", "c1"}
    records = summarize(result)
    assert all(np.isfinite(r["value_fold_std"]) for r in records)


def test_a_layer_constant_across_stimuli_is_left_out_of_the_mapping_with_a_warning():
    """A candidate layer whose every unit is constant (a spiking layer that never fires) is
    left out with a DataWarning naming it, and the others are mapped as without it (the same
    choice and scores, its own scores NaN); when every candidate is constant, a named error."""
    from workbench.errors import DataWarning

    rng = np.random.default_rng(7)
    n_stimuli, n_bins, reps = 200, 2, 2
    early, late = rng.standard_normal((2, n_stimuli, 6, n_bins))
    layers = np.array(["conv1"] * 6 + ["silent"] * 6 + ["conv2"] * 6)
    values = np.concatenate([early, np.full_like(early, 0.25), late], axis=1)
    features = make_assembly(n_stimuli=n_stimuli, n_neuroids=18, n_bins=n_bins).copy(data=values).assign_coords(
        layer=("neuroid", layers))
    trials = make_assembly(n_stimuli=n_stimuli, n_neuroids=4, n_bins=n_bins, repetitions=reps)
    signal = np.concatenate([np.einsum("spt,pn->snt", part, rng.standard_normal((6, 2))) for part in (early, late)], 1)
    trials = trials.copy(data=np.tile(signal, (reps, 1, 1)) + rng.standard_normal(trials.shape))
    with pytest.warns(DataWarning, match=r"layer\(s\) \['silent'\] do not vary across the mapping stimuli"):
        mapping = map_layers_to_regions(features, trials, n_splits=3, seed=1)
    without = map_layers_to_regions(features.isel(neuroid=layers != "silent"), trials, n_splits=3, seed=1)
    assert mapping.layer_for_region == without.layer_for_region == {"V4": "conv1", "IT": "conv2"}
    assert np.isnan(mapping.selection.sel(layer="silent")).all()
    np.testing.assert_array_equal(mapping.selection.sel(layer=["conv1", "conv2"]).values, without.selection.values)
    with pytest.raises(MetricError, match=r"every candidate layer \['silent'\] has zero variance"):
        map_layers_to_regions(features, trials, layers=["silent"])


def test_ridge_cross_val_inner_folds_never_split_a_stimulus():
    # A stimulus-specific offset shared by all its time bins is unpredictable from other
    # stimuli: with grouped inner folds the held-out error sees that, so alpha goes large.
    rng = np.random.default_rng(6)
    n_stimuli, n_bins = 80, 10
    X = np.repeat(rng.standard_normal((n_stimuli, 1, 30)), n_bins, axis=1) + 0.01 * rng.standard_normal((n_stimuli, n_bins, 30))
    Y = rng.standard_normal((n_stimuli, 1, 2)).repeat(n_bins, axis=1)  # pure stimulus noise
    folds = stimulus_folds(n_stimuli, 4, 0)
    _, alphas = RidgeCV(alphas=np.logspace(-3, 5, 9), dtype="float64").cross_val_predict(X, Y, folds)
    assert np.all(alphas >= 1e3)


def test_layer_to_region_map_on_held_out_stimuli():
    rng = np.random.default_rng(7)
    n_stimuli, n_bins, reps = 300, 2, 2
    early = rng.standard_normal((n_stimuli, 6, n_bins))
    late = rng.standard_normal((n_stimuli, 6, n_bins))
    features = make_assembly(n_stimuli=n_stimuli, n_neuroids=12, n_bins=n_bins)
    features = features.copy(data=np.concatenate([early, late], axis=1)).assign_coords(
        layer=("neuroid", np.array(["conv1"] * 6 + ["conv2"] * 6)))
    v4 = np.einsum("spt,pn->snt", early, rng.standard_normal((6, 2)))
    it = np.einsum("spt,pn->snt", late, rng.standard_normal((6, 2)))
    trials = make_assembly(n_stimuli=n_stimuli, n_neuroids=4, n_bins=n_bins, repetitions=reps)
    signal = np.concatenate([v4, it], axis=1)
    trials = trials.copy(data=np.tile(signal, (reps, 1, 1)) + rng.standard_normal(trials.shape))
    mapping = map_layers_to_regions(features, trials, n_splits=3, seed=1)
    assert mapping.layer_for_region == {"V4": "conv1", "IT": "conv2"}
    assert not set(mapping.mapping_stimuli) & set(mapping.evaluation_stimuli)
    assert set(mapping.evaluation["IT"].stimulus_id.values) == set(mapping.evaluation_stimuli)
    records = mapping.records()
    assert [r["layer"] for r in records] == ["conv1", "conv2"] and all(r["normalized"] > 0.5 for r in records)
    assert mapping.selection.sel(layer="conv2", region="V4") < 0.2
    with pytest.raises(MetricError, match="unknown layer"):
        map_layers_to_regions(features, trials, layers=["fc9"])
    # Nayebi's unit-wise majority: every site votes for its best layer on the mapping set;
    # the tally against a direct per-layer computation of each site's pooled normalized score
    majority = map_layers_to_regions(features, trials, n_splits=3, seed=1, rule="unit_majority")
    assert majority.layer_for_region == {"V4": "conv1", "IT": "conv2"} and majority.rule == "unit_majority"
    per_layer = []
    for layer in ("conv1", "conv2"):
        result = encoding_score(select_stimuli(features.isel(neuroid=features.layer.values == layer),
                                               majority.mapping_stimuli),
                                select_stimuli(trials, majority.mapping_stimuli), n_splits=3, seed=1)
        usable = result["ceiling"].values >= result.attrs["min_ceiling"]
        r, ceiling = result["r"].values, result["ceiling"].values
        per_layer.append(np.where(usable, np.sign(r) * r**2, 0).sum(1) / np.where(usable, ceiling, 0).sum(1))
    best = np.argmax(per_layer, axis=0)
    regions = trials.region.values
    for j, region in enumerate(["V4", "IT"]):
        expected = np.bincount(best[regions == region], minlength=2)
        assert majority.votes.sel(region=region).values.tolist() == expected.tolist()
    assert majority.votes.sel(region="V4", layer="conv1") == 2
    with pytest.raises(MetricError, match="rule"):
        map_layers_to_regions(features, trials, rule="best")
    # chosen on a sketch (3 of each layer's 6 units), scored from the full assembly
    sketch = features.isel(neuroid=[0, 1, 2, 6, 7, 8])
    sketched = map_layers_to_regions(sketch, trials, n_splits=3, seed=1, evaluation_features=features)
    assert sketched.layer_for_region == {"V4": "conv1", "IT": "conv2"}
    it_sites = trials.isel(neuroid=np.flatnonzero(trials.region.values == "IT"))
    direct = encoding_score(select_stimuli(features.isel(neuroid=slice(6, 12)), sketched.evaluation_stimuli),
                            select_stimuli(it_sites, sketched.evaluation_stimuli), n_splits=3, seed=1)
    np.testing.assert_allclose(sketched.evaluation["IT"]["r"].values, direct["r"].values, atol=1e-12)
    assert sketched.evaluation["IT"].sizes == direct.sizes
    with pytest.raises(MetricError, match="lacks layer"):
        map_layers_to_regions(features, trials, evaluation_features=sketch.isel(neuroid=[0, 1, 2]))
    # an averaged recording with a streamed ceiling: the same choice, on the normalised score
    from workbench.assembly import average_repetitions
    from workbench.metrics.ceiling import variance_components_ceiling

    averaged = map_layers_to_regions(features, average_repetitions(trials), n_splits=3, seed=1,
                                     ceiling=variance_components_ceiling(trials))
    assert averaged.layer_for_region == mapping.layer_for_region and averaged.selection.attrs["score"] == "normalized"
    assert np.isfinite(averaged.evaluation["IT"]["normalized"].values).any()


def test_named_errors_for_bad_inputs():
    features, trials = _planted(n_stimuli=60, n_bins=2, n_sites=3, n_reps=2)
    constant = trials.copy(data=trials.values.copy())
    constant.values[:, 1, 0] = 5.0
    with pytest.raises(MetricError, match=r"constant across stimuli \(e.g. n1@0ms\)"):
        encoding_score(features, constant, n_splits=3)
    constant.values[:, 1, 0] = 0.1  # its float sd is ~1e-17, not 0: constant all the same
    assert trials.copy(data=constant.values).groupby("stimulus_id").mean().values[:, 1, 0].std() > 0
    with pytest.raises(MetricError, match=r"constant across stimuli \(e.g. n1@0ms\)"):
        encoding_score(features, constant, n_splits=3)
    flat = features.assign_coords(layer=("neuroid", np.array(["conv1"] * 5 + ["dead"] * 5)))
    flat = flat.copy(data=flat.values.copy())
    flat.values[:, 5:, :] = 0.0
    with pytest.raises(MetricError, match="layer 'dead' has zero variance"):
        encoding_score(flat, trials, n_splits=3)
    with pytest.raises(MetricError, match="cannot be split"):
        encoding_score(features.isel(presentation=slice(0, 4)), trials, n_splits=5)
    with pytest.raises(MetricError, match="alphas must be positive"):
        encoding_score(features, trials, RidgeCV(alphas=[0.0, 1.0]), n_splits=3)
    with pytest.raises(MetricError, match="PLS with 30 components"):
        encoding_score(features, trials, PLSRegression(30), n_splits=3)


def test_encoding_is_deterministic():
    features, trials = _planted(n_stimuli=80, n_bins=2, n_sites=3, n_reps=2)
    first = encoding_score(features, trials, n_splits=4, seed=3)
    xr.testing.assert_identical(first, encoding_score(features, trials, n_splits=4, seed=3))


@pytest.mark.parametrize("kind", ["full_rank", "rank_deficient", "duplicated_features", "huge_alphas"])
def test_held_out_errors_for_all_alphas_equal_refitting_each(kind, monkeypatch):
    """The moment algebra (partial fractions over the eigenvalues, clusters of equal ones
    summed directly) gives the same held-out squared errors as refitting ridge per alpha."""
    from sklearn.linear_model import Ridge

    from workbench.backend import get_backend
    from workbench.metrics import ridge

    rng = np.random.default_rng(11)
    n_train, n_val, p, t = 200, 80, 40, 3
    X = rng.standard_normal((n_train + n_val, p))
    if kind == "rank_deficient":  # 15 zero eigenvalues: one cluster
        X = rng.standard_normal((n_train + n_val, 25)) @ rng.standard_normal((25, p))
    if kind == "duplicated_features":
        X[:, :6] = X[:, 6:12]
    Y = X @ rng.standard_normal((p, t)) + rng.standard_normal((n_train + n_val, t))
    alphas = np.logspace(-2, 12 if kind == "huge_alphas" else 4, 9)
    expected = np.array([((Ridge(alpha=a).fit(X[:n_train], Y[:n_train]).predict(X[n_train:]) - Y[n_train:]) ** 2).sum(0)
                         for a in alphas])
    if kind != "huge_alphas":  # the partial-fraction path must be the one answering

        def direct_sum_not_expected(*args):
            raise AssertionError("fell back to the direct sum")

        monkeypatch.setattr(ridge, "_squared_errors_direct", direct_sum_not_expected)
    bk = get_backend("torch", "cpu", "float64")
    atoms = np.r_[np.zeros(n_train, int), np.ones(n_val, int)]
    moments = ridge.Moments.from_data(bk, bk.asarray(X[:, None]), bk.asarray(Y[:, None]), atoms, 2)
    system = ridge._TrainingSystem(bk, moments.total([True, False]), standardize=False)
    errors = bk.to_numpy(system.validation_errors(moments.total([False, True]), bk.asarray(alphas)))
    np.testing.assert_allclose(errors, expected, rtol=1e-8)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_held_out_errors_see_only_the_symmetric_part_of_the_rotated_gram(library):
    """The rotated validation Gram M is symmetric in exact arithmetic, but a float32 GEMM
    leaves it asymmetric by ~1e-7 of its scale. The errors are a quadratic form in M, blind
    to its antisymmetric part; the partial fractions must be too (they divide by eigenvalue
    gaps: here, taken as it was, an asymmetry of 1e-7 shifted the errors by 1.5e-6 of their
    range over alphas; on bench_encoding's float32 problem by 5e-5, against 1e-8 without)."""
    from workbench.backend import get_backend
    from workbench.metrics import ridge

    rng = np.random.default_rng(5)
    p, t = 60, 4
    e = np.sort(np.concatenate([rng.uniform(1, 100, p - 10), 50 + np.arange(10) * 5e-5]))  # gaps of 1e-6 x 50
    R = rng.standard_normal((p, 2 * p))
    M = R @ R.T / p
    antisymmetric = rng.standard_normal((p, p))
    antisymmetric = (antisymmetric - antisymmetric.T) * 1e-7 * np.abs(M).max()
    P, Q = rng.standard_normal((p, t)), rng.standard_normal((p, t)) * 10
    yy, alphas = rng.uniform(100, 200, t), np.logspace(-2, 4, 12)
    bk = get_backend(library, "cpu", "float64")
    args = [bk.asarray(v) for v in (P, Q, e, yy, alphas)]
    expected = bk.to_numpy(ridge._squared_errors_direct(bk, bk.asarray(M), *args))
    got = bk.to_numpy(ridge._squared_errors(bk, bk.asarray(M + antisymmetric), *args))
    spread = expected.max(0) - expected.min(0)
    assert (np.abs(got - expected) / spread).max() < 1e-10


def test_float32_engine_keeps_precision_under_a_large_offset():
    """Raw signals (BOLD ~1000, small fluctuations) are centred in float64 before the
    float32 moments, so a large offset costs no precision."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((200, 3, 20)) * 0.01 + 1000.0
    Y = X[..., :2].sum(-1, keepdims=True) * 100 + rng.standard_normal((200, 3, 1)) * 0.1
    folds = stimulus_folds(200, 5, 0)
    single, _ = RidgeCV(alphas=[1e-3], standardize=False).cross_val_predict(X, Y, folds)
    double, _ = RidgeCV(alphas=[1e-3], standardize=False, dtype="float64").cross_val_predict(X, Y, folds)
    assert np.abs(single - double).max() / Y.std() < 1e-4


def test_float32_features_score_as_their_float64_copy_and_the_column_scale_is_numpys():
    """encoding_score hands float32 features to RidgeCV as they are (no float64 copy of the
    layer). Centred about their means rounded to float32, a float32 layer (gathered by torch,
    in float32 arithmetic) and its float64 copy (float64 arithmetic, one rounding) give the
    same array, so the same scores; the column scale is numpy's standard deviation."""
    from workbench.metrics.ridge import _centred_copy, _column_std

    features, trials = _planted(n_stimuli=120, n_features=12, n_bins=3, seed=3)
    as32 = features.astype(np.float32)
    as64 = as32.astype(np.float64)
    a, b = encoding_score(as32, trials, n_splits=4), encoding_score(as64, trials, n_splits=4)
    np.testing.assert_array_equal(a.r.values, b.r.values)
    np.testing.assert_array_equal(a.alpha.values, b.alpha.values)
    view = as32.values.transpose(0, 2, 1)  # (S, T, P), not contiguous
    order = np.random.default_rng(0).permutation(len(view))
    copy32, mean32, offset32 = _centred_copy(view, order, np.float32)
    copy64, mean64, offset64 = _centred_copy(view.astype(np.float64), order, np.float32)
    assert copy32.flags.c_contiguous and copy32.dtype == np.float32
    np.testing.assert_array_equal(copy32, copy64)
    np.testing.assert_array_equal(offset32, offset64)
    mean = view.mean((0, 1), dtype=np.float64)
    np.testing.assert_allclose(mean32, mean, rtol=1e-12)
    np.testing.assert_array_equal(offset32, mean.astype(np.float32))
    exact = view[order].astype(np.float64) - offset32
    np.testing.assert_allclose(copy32, exact, rtol=6e-8, atol=0)  # one float32 rounding
    expected = view.reshape(-1, view.shape[-1]).astype(np.float64).std(0)
    np.testing.assert_allclose(_column_std(copy32, mean - offset32, block_bytes=1000), expected, rtol=1e-6)
    wide, wide_mean, wide_offset = _centred_copy(view.astype(np.float64), order, np.float64)
    np.testing.assert_allclose(_column_std(wide, wide_mean - wide_offset, block_bytes=1000), expected, rtol=1e-12)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_remembered_eigendecomposition_is_the_same_answer_and_cannot_be_altered(library):
    from workbench import backend

    bk = backend.get_backend(library, "cpu", "float64")
    rng = np.random.default_rng(5)
    A = rng.standard_normal((30, 12))
    gram = bk.asarray(A.T @ A)
    backend._EIGH_MEMO.clear()
    with backend.remembering_eigh():
        first_values, first_vectors = (bk.to_numpy(v).copy() for v in bk.eigh(gram))
        values, vectors = bk.eigh(bk.asarray(A.T @ A))  # equal bytes, another array: remembered
        assert backend._EIGH_MEMO.hits == 1
        np.testing.assert_array_equal(bk.to_numpy(values), first_values)
        np.testing.assert_array_equal(bk.to_numpy(vectors), first_vectors)
        vectors[:] = 0  # a caller writing into its result leaves the next caller's answer alone
        np.testing.assert_array_equal(bk.to_numpy(bk.eigh(gram)[1]), first_vectors)
        changed = A.T @ A
        changed[0, 0] += 1e-12  # one bit of one element: another matrix, decomposed afresh
        values, _ = bk.eigh(bk.asarray(changed))
        assert backend._EIGH_MEMO.hits == 2
        np.testing.assert_allclose(bk.to_numpy(values), np.linalg.eigvalsh(changed), rtol=1e-10)
    bk.eigh(gram)  # outside the block nothing is looked up
    assert backend._EIGH_MEMO.hits == 2


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_matrix_that_shares_the_memos_fingerprint_but_not_its_bytes_is_decomposed_afresh(library):
    """The memo finds candidates by diagonal and first row; only equal bytes are a hit."""
    from workbench import backend

    bk = backend.get_backend(library, "cpu", "float64")
    rng = np.random.default_rng(7)
    A = rng.standard_normal((40, 10))
    gram = A.T @ A
    other = gram.copy()
    other[3, 5] = other[5, 3] = other[3, 5] + 0.5  # same diagonal and first row
    negative_zero = gram.copy()
    negative_zero[4, 6] = negative_zero[6, 4] = 0.0
    backend._EIGH_MEMO.clear()
    with backend.remembering_eigh():
        bk.eigh(bk.asarray(gram))
        values, _ = bk.eigh(bk.asarray(other))
        assert backend._EIGH_MEMO.hits == 0
        np.testing.assert_allclose(bk.to_numpy(values), np.linalg.eigvalsh(other), rtol=1e-10)
        bk.eigh(bk.asarray(negative_zero))
        flipped = negative_zero.copy()
        flipped[4, 6] = flipped[6, 4] = -0.0  # equal values, other bytes: not the same matrix
        bk.eigh(bk.asarray(flipped))
        assert backend._EIGH_MEMO.hits == 0
        bk.eigh(bk.asarray(other.copy()))
        assert backend._EIGH_MEMO.hits == 1
        bk.eigh(bk.asarray(other), remember=False)  # a timing of eigh itself: never served from the memo
        assert backend._EIGH_MEMO.hits == 1


def test_the_eigendecomposition_memo_keeps_its_memory_bound():
    from workbench import backend

    memo = backend._EighMemo()
    memo.max_bytes = 3 * (2 * 200 * 200 + 200) * 8  # the matrix kept for comparison, its eigenvectors and values
    bk = backend.get_backend("numpy", dtype="float64")
    rng = np.random.default_rng(6)
    for _ in range(5):
        matrix = np.cov(rng.standard_normal((200, 300)))
        memo.put(memo.entry(bk, matrix), *np.linalg.eigh(matrix))
    assert len(memo._entries) == 3 and memo._bytes <= memo.max_bytes
    memo.max_entry_bytes = 100
    assert memo.entry(bk, matrix) is None  # too large to keep: decomposed every time


def test_two_regions_on_one_layer_decompose_each_gram_once_with_the_same_scores():
    """V4 and IT scored one after the other on the same features, stimuli and folds share
    every training Gram; inside ``remembering_eigh`` each is decomposed once, and the second
    region's scores equal those computed with nothing remembered."""
    from workbench import backend

    features, trials = _planted(n_stimuli=120, n_features=12, n_bins=3, n_sites=6, n_reps=2)
    first, second = trials.isel(neuroid=slice(0, 3)), trials.isel(neuroid=slice(3, 6))
    backend._EIGH_MEMO.clear()
    encoding_score(features, first, n_splits=4, seed=1)
    encoding_score(features, second, n_splits=4, seed=1)
    assert backend._EIGH_MEMO.hits == 0 and not backend._EIGH_MEMO._entries  # off by default: nothing kept
    with backend.remembering_eigh():
        encoding_score(features, first, n_splits=4, seed=1)
        remembered = encoding_score(features, second, n_splits=4, seed=1)
    assert backend._EIGH_MEMO.hits >= 4 * 2  # every outer fold's systems at least
    backend._EIGH_MEMO.clear()
    xr.testing.assert_identical(remembered, encoding_score(features, second, n_splits=4, seed=1))
    assert backend._EIGH_MEMO.hits == 0


def test_inner_cv_with_a_label_no_training_stimulus_holds_uses_the_other_labels():
    """Five stimuli in five outer folds, three inner labels: some training sets hold no
    stimulus of one label. That label has no held-out error (it was 0/0 for every alpha,
    and the NaN chose the largest alpha silently); the choice follows the other labels, as
    an independent sklearn computation over them does."""
    import warnings

    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from workbench.metrics.folds import fold_labels

    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 4, 3))
    Y = X @ rng.standard_normal((3, 2)) + 0.3 * rng.standard_normal((5, 4, 2))
    alphas = np.logspace(-2, 3, 6)
    folds = stimulus_folds(5, 5, seed=0)
    ridge = RidgeCV(alphas=alphas, cv=3, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, chosen = ridge.cross_val_predict(X, Y, folds)
    outer, inner = fold_labels(folds, 5), ridge.inner_labels_
    empty = 0
    for k in range(5):
        train = np.flatnonzero(outer != k)
        criterion = np.zeros((len(alphas), 2))
        for j in range(3):
            val, fit_on = train[inner[train] == j], train[inner[train] != j]
            if len(val) == 0:
                empty += 1
                continue
            scaler = StandardScaler().fit(X[fit_on].reshape(-1, 3))
            for a, alpha in enumerate(alphas):
                model = Ridge(alpha=alpha).fit(scaler.transform(X[fit_on].reshape(-1, 3)), Y[fit_on].reshape(-1, 2))
                error = model.predict(scaler.transform(X[val].reshape(-1, 3))) - Y[val].reshape(-1, 2)
                criterion[a] += (error ** 2).sum(0) / error.shape[0]
        expected = alphas[len(alphas) - 1 - np.argmin(criterion[::-1], axis=0)]
        np.testing.assert_array_equal(chosen[k], expected)
    assert empty > 0  # the case under test occurs


def test_a_mapping_split_of_single_image_strata_is_even():
    """Stratified by object, 32 images of 27 objects: half of them map (each stratum rounded
    alone sent every single-image object to the evaluation set: 5 / 27)."""
    from workbench.metrics.mapping import split_stimuli

    ids = np.array([f"im{i}" for i in range(32)])
    strata = np.r_[np.arange(27), np.arange(5)].astype(str)
    first, second = split_stimuli(ids, 0.5, seed=0, strata=strata)
    assert (len(first), len(second)) == (16, 16)
    assert set(first).isdisjoint(second) and set(first) | set(second) == set(ids)
    np.testing.assert_array_equal(first, split_stimuli(ids, 0.5, seed=0, strata=strata)[0])
    for stratum in np.unique(strata):  # within one image of the stratum's exact share
        members = ids[strata == stratum]
        assert abs(np.isin(members, first).sum() - 0.5 * len(members)) < 1
    for n, k, fraction in [(200, 10, 0.5), (101, 7, 0.3), (9, 9, 0.5)]:
        ids = np.arange(n).astype(str)
        first, _ = split_stimuli(ids, fraction, seed=1, strata=(np.arange(n) % k).astype(str))
        assert len(first) == int(np.floor(fraction * n + 0.5))


@pytest.mark.parametrize("estimator", ["ridge", "pls"])
def test_regions_on_one_layer_are_fitted_together_with_each_regions_own_scores(estimator, monkeypatch):
    """score_regions fits V4 and IT (one layer) in one call and V1 (another layer) in its own;
    each region's result equals encoding_score on that region alone. PLS mixes its targets,
    so it is fitted region by region and gives exactly the per-region results."""
    from workbench.metrics import mapping, score_regions

    features, trials = _planted(n_stimuli=90, n_features=12, n_bins=3, n_sites=9, n_reps=2)
    features = features.assign_coords(layer=("neuroid", np.array(["conv1"] * 6 + ["conv2"] * 6)))
    # interleaved V4 / IT sites (a region's part of the shared fit is then a copy) and a
    # contiguous V1 block
    trials = trials.assign_coords(region=("neuroid", np.array(["V4", "IT"] * 3 + ["V1"] * 3)))
    layers = {"V4": "conv1", "V1": "conv2", "IT": "conv1"}
    make = (lambda: RidgeCV(seed=2)) if estimator == "ridge" else (lambda: PLSRegression(n_components=2))
    calls = []
    original = mapping.encoding_score
    monkeypatch.setattr(mapping, "encoding_score", lambda *a, **k: calls.append(1) or original(*a, **k))
    scored = score_regions(features, trials, layers, estimator=make(), n_splits=3, seed=1)
    assert list(scored) == ["V4", "V1", "IT"]
    assert len(calls) == (2 if estimator == "ridge" else 3)
    for region, layer in layers.items():
        alone = original(features.sel(neuroid=features.layer == layer),
                         trials.isel(neuroid=np.flatnonzero(trials.region.values == region)),
                         make(), n_splits=3, seed=1)
        got = scored[region]
        assert list(got.neuroid_id.values) == list(alone.neuroid_id.values)
        if estimator == "pls":
            xr.testing.assert_identical(got, alone)
            continue
        for name in ("r", "ceiling", "normalized", "alpha", "prediction", "split_prediction", "temporal_r"):
            np.testing.assert_allclose(got[name].values, alone[name].values, rtol=1e-5, atol=1e-6, err_msg=name)
    subset = trials.stimulus_id.values[:60]
    on_subset = score_regions(features, trials, {"V1": "conv2"}, estimator=make(), stimuli=subset, n_splits=3, seed=1)
    alone = original(features.sel(neuroid=features.layer == "conv2").isel(presentation=slice(0, 60)),
                     trials.isel(neuroid=slice(6, 9)).sel(presentation=np.isin(trials.stimulus_id.values, subset)),
                     make(), n_splits=3, seed=1)
    xr.testing.assert_identical(on_subset["V1"], alone)
    with pytest.raises(MetricError, match="no sites with region in \\['PIT'\\]"):
        score_regions(features, trials, {"PIT": "conv1"})
    with pytest.raises(MetricError, match="unknown layer\\(s\\) \\['fc9'\\]"):
        score_regions(features, trials, {"V4": "fc9"})
    with pytest.raises(MetricError, match="no 'area' neuroid coord"):
        score_regions(features, trials, {"V4": "conv1"}, region_coord="area")


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("standardize", [False, True])
def test_reused_scratch_arrays_change_no_number_of_a_nested_fit(library, standardize, monkeypatch):
    """The engine writes its per-fold p x p temporaries into a few reused arrays (Workspace).
    A buffer overwritten while still in use would change the fit: with every request given a
    fresh array instead, predictions, split-half predictions and alphas are bit-identical."""
    from workbench import backend

    features, trials = _planted(n_stimuli=90, n_features=14, n_bins=3, n_sites=5, n_reps=2, seed=4)
    X = features.values.transpose(0, 2, 1)
    Y = trials.values.reshape(2, 90, 5, 3).mean(0).transpose(0, 2, 1)
    folds = stimulus_folds(90, 5, 0)

    def fit():
        model = RidgeCV(alphas=np.logspace(-2, 4, 7), standardize=standardize, backend=library, device="cpu")
        predictions, alphas = model.cross_val_predict(X, Y, folds, split_half=True)
        return predictions, alphas, model.split_prediction_

    reused = fit()
    original_get = backend.Workspace.get
    monkeypatch.setattr(backend.Workspace, "get", lambda self, role, *args, **kwargs: original_get(
        backend.Workspace(self.backend), role, *args, **kwargs))
    fresh = fit()
    for a, b in zip(reused, fresh):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_workspace_returns_one_array_per_role_and_eigh_writes_into_it(library):
    from workbench.backend import Workspace, get_backend

    bk = get_backend(library, "cpu", "float64")
    workspace = Workspace(bk)
    first = workspace.get("M", (4, 4))
    assert workspace.get("M", (4, 4)) is first
    assert workspace.get("M", (5, 4)) is not first and workspace.get("M", (5, 4)).shape == (5, 4)
    wide = workspace.get("gap", (3, 3), bk.float64)
    assert wide.dtype == bk.float64
    rng = np.random.default_rng(8)
    A = rng.standard_normal((20, 6))
    gram = A.T @ A
    out = workspace.eigh_out("inner", 6)
    values, vectors = bk.eigh(bk.asarray(gram), out=out)
    expected_values, expected_vectors = np.linalg.eigh(gram)
    np.testing.assert_allclose(bk.to_numpy(values), expected_values, rtol=1e-10)
    np.testing.assert_allclose(np.abs(bk.to_numpy(vectors)), np.abs(expected_vectors), atol=1e-8)
    if library == "torch":  # LAPACK's layout: written in place, no copy after
        assert vectors.data_ptr() == out[1].data_ptr() and vectors.stride() == (1, 6)
        assert values.data_ptr() == out[0].data_ptr()
    else:
        assert out is None


@pytest.mark.parametrize("block_bytes", [1, 400, 2**20])
def test_stimuli_sorted_by_atom_give_the_moments_of_gathered_rows(monkeypatch, block_bytes):
    """Moments read each atom's rows as one block when the stimuli are sorted by atom, and
    gather them when not: each atom's sums either way, however the atoms' Grams are split
    into blocks of memory (one atom per block, a few, or all in one), and their grand total."""
    from workbench.backend import get_backend
    from workbench.metrics import ridge

    monkeypatch.setattr(ridge, "_ATOM_BLOCK_BYTES", block_bytes)
    bk = get_backend("numpy", dtype="float64")
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((30, 2, 5)), rng.standard_normal((30, 2, 3))
    atoms = rng.integers(0, 4, 30)
    order = np.argsort(atoms, kind="stable")
    gathered = ridge.Moments.from_data(bk, X, Y, atoms, 4)
    blocks = ridge.Moments.from_data(bk, X[order], Y[order], atoms[order], 4)
    assert len(blocks.G.blocks) == {1: 4, 400: 2, 2**20: 1}[block_bytes]  # 5 x 5 float64: 200 bytes
    for atom in range(4):
        Xa, Ya = X[atoms == atom].reshape(-1, 5), Y[atoms == atom].reshape(-1, 3)
        expected = dict(n=len(Xa), sx=Xa.sum(0), sy=Ya.sum(0), G=Xa.T @ Xa, C=Xa.T @ Ya, yy=(Ya * Ya).sum(0))
        for name in ridge.Moments.fields:
            np.testing.assert_allclose(getattr(blocks, name)[atom], expected[name], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(getattr(gathered, name)[atom], expected[name], rtol=1e-12, atol=1e-12)
    grand = blocks.total(np.ones(4, bool))
    np.testing.assert_allclose(grand.G, X.reshape(-1, 5).T @ X.reshape(-1, 5), rtol=1e-12)
    np.testing.assert_allclose(grand.C, X.reshape(-1, 5).T @ Y.reshape(-1, 3), rtol=1e-12)


def test_freed_memory_reuse_is_on_by_default_and_yields_to_the_users_settings():
    import subprocess
    import sys

    code = "from workbench.backend import get_backend, reuse_freed_memory; get_backend(); print(reuse_freed_memory())"

    def run(**env):
        import os
        environ = {key: value for key, value in os.environ.items()
                   if key not in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "WORKBENCH_REUSE_FREED_MEMORY")}
        done = subprocess.run([sys.executable, "-c", code], env={**environ, **env}, capture_output=True, text=True,
                              check=True)
        return done.stdout.strip()

    import platform
    assert run() == str(platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert run(WORKBENCH_REUSE_FREED_MEMORY="0") == "False"
    assert run(MALLOC_TRIM_THRESHOLD_="65536") == "False"


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_totals_started_from_kept_sums_are_the_sums_of_their_atoms(library):
    """Moments.total starts from whichever known sum is fewest atoms away (nothing, the grand
    total, or a kept total); every mask gets the sum of its atoms, and the kept totals are not
    changed by the totals and systems built from them."""
    from workbench.backend import get_backend
    from workbench.metrics import ridge

    bk = get_backend(library, "cpu", "float64")
    rng = np.random.default_rng(21)
    n_atoms = 12
    X, Y = rng.standard_normal((60, 2, 6)), rng.standard_normal((60, 2, 3))
    atoms = np.sort(rng.integers(0, n_atoms, 60))
    moments = ridge.Moments.from_data(bk, bk.asarray(X), bk.asarray(Y), atoms, n_atoms)
    labels = np.arange(n_atoms) % 3
    moments.keep_totals([labels == j for j in range(3)])
    kept_before = [bk.to_numpy(kept.G).copy() for _, kept in moments._kept]

    def expected(mask):
        rows = np.isin(atoms, np.flatnonzero(mask))
        Xm, Ym = X[rows].reshape(-1, 6), Y[rows].reshape(-1, 3)
        return dict(n=len(Xm), sx=Xm.sum(0), G=Xm.T @ Xm, C=Xm.T @ Ym, yy=(Ym * Ym).sum(0))

    masks = [labels == 0, (labels == 1) & (np.arange(n_atoms) != 4), np.arange(n_atoms) != 7,
             np.arange(n_atoms) < 3, rng.random(n_atoms) < 0.5, np.arange(n_atoms) == 5]
    for mask in masks:
        for into in ("val", "inner", None):
            total = moments.total(mask, into=into)
            for name, value in expected(mask).items():
                np.testing.assert_allclose(bk.to_numpy(getattr(total, name)) if name != "n" else total.n, value,
                                           rtol=1e-10, atol=1e-10, err_msg=f"{name} of {mask}")
    outer_mask = np.arange(n_atoms) // 3 != 1
    system = moments.system(outer_mask, standardize=True)
    for j in range(3):
        val_mask = outer_mask & (labels == j)
        val = moments.total(val_mask)
        moments.inner_system(system.train, val, outer_mask, val_mask, standardize=True).validation_errors(
            val, bk.asarray([0.1, 1.0]))
    for before, (_, kept) in zip(kept_before, moments._kept):
        np.testing.assert_array_equal(bk.to_numpy(kept.G), before)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_subtract_product_is_the_matrix_minus_a_low_rank_product(library):
    from workbench.backend import get_backend

    bk = get_backend(library, "cpu", "float64")
    rng = np.random.default_rng(4)
    matrix, u, w = rng.standard_normal((5, 4)), rng.standard_normal((5, 2)), rng.standard_normal((2, 4))
    np.testing.assert_allclose(bk.to_numpy(bk.subtract_product(bk.asarray(matrix), bk.asarray(u), bk.asarray(w))),
                               matrix - u @ w, rtol=1e-14)
    target = bk.asarray(matrix.copy())
    result = bk.subtract_product(target, bk.asarray(u), bk.asarray(w), inplace=True)
    np.testing.assert_allclose(bk.to_numpy(target), matrix - u @ w, rtol=1e-14)
    assert result is target


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("n_features", [9, 7])
def test_rotating_the_validation_and_training_moments_in_one_block_changes_no_error(library, standardize,
                                                                                    n_features):
    """With thin cross-products (2 t + 2 <= p: 9 features for 3 targets) an inner system
    rotates its validation set's Gram and cross-products and its own cross-products with one
    GEMM (Moments._pair); the held-out errors equal those of the separate products (as with 7
    features), whether the validation total was summed into its place or copied there (one
    atom, or a total made elsewhere)."""
    from workbench.backend import get_backend
    from workbench.metrics import ridge

    bk = get_backend(library, "cpu", "float64")
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((80, 2, n_features)), rng.standard_normal((80, 2, 3))
    atoms = np.sort(rng.integers(0, 8, 80))
    moments = ridge.Moments.from_data(bk, bk.asarray(X), bk.asarray(Y), atoms, 8)
    assert moments._rotated_together == (n_features == 9)
    alphas = bk.asarray(np.logspace(-2, 3, 6))
    train_mask = np.arange(8) < 6
    outer = moments.system(train_mask, standardize)
    for val_mask, elsewhere in ((np.isin(np.arange(8), [0, 2, 4]), False), (np.arange(8) == 3, False),
                                (np.isin(np.arange(8), [1, 5]), True)):
        val = moments.total(val_mask, into=None if elsewhere else "val")
        inner = moments.inner_system(outer.train, val, train_mask, val_mask, standardize)
        assert (inner._rotated is not None) == moments._rotated_together
        errors = bk.to_numpy(inner.validation_errors(val, alphas)).copy()
        separate_val = moments.total(val_mask, into=None)
        separate = ridge._TrainingSystem(bk, moments.total(train_mask & ~val_mask, into=None), standardize)
        expected = bk.to_numpy(separate.validation_errors(separate_val, alphas))
        np.testing.assert_allclose(errors, expected, rtol=1e-10)


@pytest.mark.parametrize("where", ["features", "targets"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_ridge_refuses_non_finite_input_with_a_clear_error(where, value):
    """RidgeCV used directly (encoding_score checks its inputs itself) names the bad input
    instead of failing inside the eigensolver."""
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((40, 5)), rng.standard_normal((40, 2))
    (X if where == "features" else Y)[7, 1] = value
    with pytest.raises(MetricError, match=f"the {where} hold NaN or infinite values in 1 column.*column 1"):
        RidgeCV(alphas=[1.0, 10.0]).fit(X, Y)
    with pytest.raises(MetricError, match=f"the {where} hold NaN"):
        RidgeCV(alphas=[1.0, 10.0]).cross_val_predict(X[:, None], Y[:, None], stimulus_folds(40, 4, 0))


def test_ridge_refuses_empty_input_and_values_beyond_its_dtype_with_a_clear_error():
    with pytest.raises(MetricError, match=r"beyond float32's range in 1 column.*RidgeCV\(dtype='float64'\)"):
        RidgeCV().fit(np.c_[np.ones(30), np.full(30, 1e39)], np.ones((30, 2)))
    # in float64 the same column fits (a ridge prediction at the features' mean is the targets' mean)
    np.testing.assert_allclose(RidgeCV(alphas=[1.0], dtype="float64").fit(
        np.c_[np.arange(30.0), np.full(30, 1e39)], np.arange(30.0)[:, None]).predict(np.c_[[14.5], [1e39]]), 14.5,
        rtol=1e-9)
    with pytest.raises(MetricError, match="nothing to fit"):
        RidgeCV().fit(np.zeros((30, 0)), np.ones((30, 2)))
    with pytest.raises(MetricError, match="nothing to fit"):
        RidgeCV().fit(np.zeros((30, 3)), np.ones((30, 0)))


def test_cross_val_predict_refuses_mismatched_shapes_and_folds_with_a_clear_error():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 3, 5)), rng.standard_normal((40, 3, 2))
    folds = stimulus_folds(40, 4, 0)
    for a, b in ((X, Y[:30]), (X, Y[:, :2]), (X[:, 0], Y)):
        with pytest.raises(MetricError, match="must be 3-D with the same stimuli and bins"):
            RidgeCV(alphas=[1.0, 10.0]).cross_val_predict(a, b, folds)
    with pytest.raises(MetricError, match="at least 2 outer folds"):
        RidgeCV(alphas=[1.0, 10.0]).cross_val_predict(X, Y, [(np.arange(0), np.arange(40))])
    with pytest.raises(MetricError, match=r"fold 1's test stimuli must be integer positions in \[0, 40\)"):
        RidgeCV(alphas=[1.0, 10.0]).cross_val_predict(X, Y, [folds[0], (folds[1][0], folds[1][1] + 40)] + folds[2:])
    with pytest.raises(MetricError, match="predict_also must be"):
        RidgeCV(alphas=[1.0, 10.0]).cross_val_predict(X, Y, folds, predict_also=X[:, :, :4])


def test_pls_refuses_non_finite_and_mismatched_input_with_a_clear_error():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((30, 6)), rng.standard_normal((30, 2))
    bad = X.copy()
    bad[4, 2] = np.nan
    with pytest.raises(MetricError, match="the features hold NaN or infinite values in 1 column.*column 2"):
        PLSRegression(2).fit(bad, Y)
    with pytest.raises(MetricError, match="must be 2-D with the same rows"):
        PLSRegression(2).fit(X, Y[:20])
    with pytest.raises(MetricError, match="must be 2-D with the same rows"):
        PLSRegression(2).fit(X[:, 0], Y)


def test_long_fits_show_their_progress_by_default_and_short_ones_stay_quiet(capsys, monkeypatch):
    from workbench.metrics import encoding

    # the README's quick look on raw units: 300 images x 25 bins x 12,288 units, minutes of
    # kernel eigendecompositions; a 1,000-image x 2-bin x 10-feature fit: milliseconds
    assert encoding.long_fits(RidgeCV(), 300 * 25, 12288, 10)
    assert not encoding.long_fits(RidgeCV(), 1000 * 2, 10, 10)
    assert encoding.long_fits(RidgeCV(), 2000, 12288, 10, n_fits=25)  # per bin: 25 fits of 2,000 rows
    assert not encoding.long_fits(RidgeCV(), 2000, 12288, 10, n_fits=1)
    assert not encoding.long_fits(PLSRegression(5), 300 * 25, 12288, 10)
    features, trials = _planted(n_stimuli=60)
    encoding_score(features, trials, n_splits=3)
    assert "encoding folds" not in capsys.readouterr().err
    monkeypatch.setattr(encoding, "LONG_FIT_FLOPS", 0)  # the same fit, taken for a long one
    encoding_score(features, trials, n_splits=3)
    assert "encoding folds" in capsys.readouterr().err
    encoding_score(features, trials, n_splits=3, progress=False)
    assert "encoding folds" not in capsys.readouterr().err


def test_side_by_side_pieces_run_in_order_with_their_own_slots_and_the_callers_context():
    """map_concurrently: results in the items' order; items that overlap in time never share a
    slot; each worker has half the caller's torch threads while the caller keeps its own;
    the caller's context variables hold inside; the first error is raised to the caller."""
    import threading
    import time

    import torch

    from workbench import backend
    from workbench.backend import fixed_threads, map_concurrently

    with fixed_threads(2):
        bk = backend.get_backend("torch", "cpu")
        assert bk.concurrent_slots() == 2 and bk.concurrent_slots(1) == 1 and bk.concurrent_slots(8) == 2
        assert backend.get_backend("numpy").concurrent_slots() == 1
        spans, caller = [], threading.get_ident()

        def piece(item, slot):
            start = time.perf_counter()
            time.sleep(0.02)
            spans.append((slot, start, time.perf_counter(), threading.get_ident(), torch.get_num_threads()))
            return item * 10

        with backend.remembering_eigh():
            remembered = map_concurrently(lambda item, slot: backend._REMEMBER_EIGH.get(), range(4), 2)
        assert remembered == [True] * 4
        assert map_concurrently(piece, range(6), 2) == [0, 10, 20, 30, 40, 50]
        assert torch.get_num_threads() == 2  # the caller's threads are its own
        assert {span[0] for span in spans} == {0, 1} and {span[4] for span in spans} == {1}
        assert caller not in {span[3] for span in spans}
        overlapping = [(a, b) for a in spans for b in spans if a is not b and a[1] < b[2] and b[1] < a[2]]
        assert overlapping and all(a[0] != b[0] for a, b in overlapping)
        spans.clear()
        assert map_concurrently(piece, range(3), 1) == [0, 10, 20]  # in turn, here
        assert [span[0] for span in spans] == [0, 0, 0] and {span[3] for span in spans} == {caller}

        def failing(item, slot):
            if item == 2:
                raise ValueError("piece 2 failed")
            return item

        with pytest.raises(ValueError, match="piece 2 failed"):
            map_concurrently(failing, range(5), 2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_side_by_side_inner_fits_give_the_answers_of_fits_in_turn(dtype, monkeypatch):
    """With 2 CPU threads a fit runs its training system and inner folds two at a time, each
    on one thread (n_jobs=None); the predictions, split-half predictions and alphas are those
    of the fits one after the other (n_jobs=1), up to float rounding of one thread's sums
    against two."""
    from workbench.backend import fixed_threads
    from workbench.metrics import ridge

    features, trials = _planted(n_stimuli=150, n_features=40, n_bins=3, n_sites=6, n_reps=2, seed=6)
    X = features.values.transpose(0, 2, 1)
    Y = trials.values.reshape(2, 150, 6, 3).mean(0).transpose(0, 2, 1)
    folds = stimulus_folds(150, 5, 0)
    used = []
    original = ridge.SideBySide
    monkeypatch.setattr(ridge, "SideBySide", lambda slots: used.append(slots) or original(slots))

    def fit(n_jobs):
        model = RidgeCV(alphas=np.logspace(-2, 4, 9), dtype=dtype, device="cpu", n_jobs=n_jobs)
        predictions, alphas = model.cross_val_predict(X, Y, folds, split_half=True)
        return predictions, alphas, model.split_prediction_

    with fixed_threads(2):
        side_by_side = fit(None)
        assert used and set(used) == {2}
        used.clear()
        in_turn = fit(1)
        assert set(used) == {1}
    tolerance = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(side_by_side[0], in_turn[0], rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(side_by_side[1], in_turn[1])
    np.testing.assert_allclose(side_by_side[2], in_turn[2], rtol=tolerance, atol=tolerance)
    with fixed_threads(1):  # one thread: nothing to share out
        used.clear()
        fit(None)
        assert set(used) == {1}


@pytest.mark.parametrize("n_jobs", [0, -1, 1.5, True, "2"])
def test_ridge_refuses_a_bad_n_jobs_with_a_clear_error(n_jobs):
    with pytest.raises(MetricError, match="n_jobs must be None or an int >= 1"):
        RidgeCV(n_jobs=n_jobs).fit(np.ones((10, 2)) * np.arange(10)[:, None], np.arange(10.0)[:, None])


def test_a_piece_that_fails_side_by_side_stops_the_fit_and_leaves_the_next_fit_as_it_was(monkeypatch):
    """An error in one inner fit (run on a worker thread) is raised by cross_val_predict once
    the pieces already running have finished, nothing of that fit runs on afterwards, and the
    next fit's numbers are those of a fit that never saw the failure."""
    import threading
    import time

    from workbench.backend import fixed_threads
    from workbench.metrics import ridge

    features, trials = _planted(n_stimuli=150, n_features=40, n_bins=3, n_sites=6, n_reps=2, seed=7)
    X = features.values.transpose(0, 2, 1)
    Y = trials.values.reshape(2, 150, 6, 3).mean(0).transpose(0, 2, 1)
    folds = stimulus_folds(150, 5, 0)
    with fixed_threads(2):
        reference = RidgeCV(alphas=np.logspace(-2, 4, 9), device="cpu").cross_val_predict(X, Y, folds)[0]
        original, calls, running = ridge._TrainingSystem.validation_errors, [], []

        def failing(self, val, alphas):
            calls.append(threading.current_thread().name)
            if len(calls) == 5:
                raise FloatingPointError("inner fit 5 failed")
            running.append(1)
            try:
                time.sleep(0.1)  # the other worker is still in its piece when this one fails
                return original(self, val, alphas)
            finally:
                running.pop()

        monkeypatch.setattr(ridge._TrainingSystem, "validation_errors", failing)
        with pytest.raises(FloatingPointError, match="inner fit 5 failed"):
            RidgeCV(alphas=np.logspace(-2, 4, 9), device="cpu").cross_val_predict(X, Y, folds)
        assert not running  # nothing of the failed fit still runs
        assert any(name.startswith("workbench-side") for name in calls)
        monkeypatch.setattr(ridge._TrainingSystem, "validation_errors", original)
        again = RidgeCV(alphas=np.logspace(-2, 4, 9), device="cpu").cross_val_predict(X, Y, folds)[0]
    np.testing.assert_array_equal(again, reference)
