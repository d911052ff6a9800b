import numpy as np
import pytest
import xarray as xr
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from conftest import make_assembly
from workbench import MetricError
from workbench.metrics import (RidgeCV, pearson_columns, shared_time_encoding, spearman_brown,
                               split_half_ceiling, stimulus_folds, summarize)


def test_pearson_columns_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 3, 2)), rng.standard_normal((50, 3, 2))
    r = pearson_columns(a, b)
    for i in range(3):
        for j in range(2):
            assert r[i, j] == pytest.approx(np.corrcoef(a[:, i, j], b[:, i, j])[0, 1], abs=1e-12)
    a[:, 0, 0] = 4.0
    assert np.isnan(pearson_columns(a, b)[0, 0])


def test_pearson_columns_along_an_inner_axis_equals_the_transposed_computation():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 40, 5)), rng.standard_normal((6, 40, 5))
    a[2, :, 3] = 1.5  # a constant column along axis 1
    r = pearson_columns(a, b, axis=1)
    assert r.shape == (6, 5)
    np.testing.assert_array_equal(r, pearson_columns(a.transpose(1, 0, 2), b.transpose(1, 0, 2)))
    assert r[0, 1] == pytest.approx(np.corrcoef(a[0, :, 1], b[0, :, 1])[0, 1], abs=1e-12)
    assert np.isnan(r[2, 3]) and np.isfinite(np.delete(r.ravel(), 2 * 5 + 3)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64])
def test_pearson_columns_of_narrow_or_integer_input_equal_those_of_its_float64_copy(dtype):
    """float32 predictions (or counts) are correlated in float64: float32 sums of products
    had lost about 1e-7 of r, visible against any float64 computation."""
    from workbench.metrics.correlation import nan_pearson_columns

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((400, 3)) * 30 + 100, rng.standard_normal((400, 3)) * 30 + 100
    a, b = a.astype(dtype), b.astype(dtype)
    expected = [np.corrcoef(a[:, j].astype(np.float64), b[:, j].astype(np.float64))[0, 1] for j in range(3)]
    np.testing.assert_allclose(pearson_columns(a, b), expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(nan_pearson_columns(a, b)[0], expected, rtol=0, atol=1e-13)


def test_spearman_brown_closed_form():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.25, factor=4) == pytest.approx(1.0 / 1.75)
    assert spearman_brown(1.0) == 1.0


def _gaussian_trials(n_stimuli, n_reps, noise_sd, seed=0, n_neuroids=3, n_bins=2):
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n_stimuli, n_neuroids, n_bins))
    da = make_assembly(n_stimuli=n_stimuli, n_neuroids=n_neuroids, n_bins=n_bins, repetitions=n_reps)
    noise = noise_sd * rng.standard_normal(da.shape)
    return da.copy(data=np.tile(signal, (n_reps, 1, 1)) + noise)


def test_ceiling_recovers_closed_form_reliability():
    n_reps, noise_sd = 8, 2.0
    trials = _gaussian_trials(4000, n_reps, noise_sd)
    expected = 1.0 / (1.0 + noise_sd**2 / n_reps)  # Var(signal)=1, noise var of the mean = sd^2/n
    ceiling = split_half_ceiling(trials, n_splits=5)
    assert ceiling.dims == ("neuroid", "time_bin")
    np.testing.assert_allclose(ceiling.values, expected, atol=0.02)


def test_ceiling_of_noise_free_data_is_one_and_of_pure_noise_is_near_zero():
    noise_free = _gaussian_trials(50, 4, 0.0)
    np.testing.assert_allclose(split_half_ceiling(noise_free).values, 1.0, atol=1e-12)
    noise = _gaussian_trials(3000, 4, 1.0)
    noise = noise.copy(data=np.random.default_rng(1).standard_normal(noise.shape))
    assert np.abs(split_half_ceiling(noise).values).max() < 0.1


def test_ceiling_needs_repetitions():
    with pytest.raises(MetricError, match="already averaged"):
        split_half_ceiling(make_assembly())


def test_stimulus_folds_partition_and_stratify():
    strata = np.repeat(["a", "b", "c"], [30, 20, 10])
    folds = stimulus_folds(60, 5, seed=3, strata=strata)
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests) == list(range(60))  # each stimulus tested exactly once
    for train, test in folds:
        assert not set(train) & set(test)
        assert [np.sum(strata[test] == s) for s in "abc"] == [6, 4, 2]
    again = stimulus_folds(60, 5, seed=3, strata=strata)
    assert all((t1 == t2).all() for (_, t1), (_, t2) in zip(folds, again))
    with pytest.raises(MetricError, match="cannot be split"):
        stimulus_folds(3, 5)


def test_ridge_single_alpha_equals_sklearn():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((80, 12)) * np.arange(1, 13), rng.standard_normal((80, 3))
    ours = RidgeCV(alphas=[7.0], dtype="float64").fit(X, Y, groups=np.arange(80))
    scaler = StandardScaler().fit(X)
    reference = Ridge(alpha=7.0).fit(scaler.transform(X), Y)
    X_new = rng.standard_normal((10, 12))
    np.testing.assert_allclose(ours.predict(X_new), reference.predict(scaler.transform(X_new)), atol=1e-9)


def test_ridge_per_target_alpha_equals_independent_grouped_cv():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 4)
    X = rng.standard_normal((120, 10))
    Y = np.stack([X @ rng.standard_normal(10) + s * rng.standard_normal(120) for s in (0.1, 3.0, 30.0)], 1)
    alphas = [0.1, 1.0, 10.0, 100.0, 1000.0]
    ours = RidgeCV(alphas=alphas, cv=3, seed=5, dtype="float64").fit(X, Y, groups)
    errors = np.zeros((len(alphas), 3))
    for train, test in stimulus_folds(30, 3, seed=5):
        rows_train, rows_test = np.isin(groups, train), np.isin(groups, test)
        scaler = StandardScaler().fit(X[rows_train])
        for i, alpha in enumerate(alphas):
            fit = Ridge(alpha=alpha).fit(scaler.transform(X[rows_train]), Y[rows_train])
            errors[i] += ((fit.predict(scaler.transform(X[rows_test])) - Y[rows_test]) ** 2).sum(0)
    np.testing.assert_array_equal(ours.alpha_, np.asarray(alphas)[errors.argmin(0)])
    assert ours.alpha_[0] < ours.alpha_[2]  # the noisiest target is shrunk hardest


def _planted(noise_sd, n_stimuli=120, n_features=6, n_bins=4, n_reps=6, seed=0):
    rng = np.random.default_rng(seed)
    features = make_assembly(n_stimuli=n_stimuli, n_neuroids=n_features, n_bins=n_bins, seed=seed)
    weights = rng.standard_normal((n_features, 3))
    signal = np.einsum("spt,pn->snt", features.values, weights)
    trials = make_assembly(n_stimuli=n_stimuli, n_neuroids=3, n_bins=n_bins, repetitions=n_reps)
    noisy = np.tile(signal, (n_reps, 1, 1)) + noise_sd * rng.standard_normal(trials.shape)
    return features, trials.copy(data=noisy)


def test_shared_time_encoding_recovers_planted_map():
    features, trials = _planted(noise_sd=0.0)
    result = shared_time_encoding(features, trials, alphas=[1e-6])
    assert np.all(result["r"].values > 0.999)
    features, trials = _planted(noise_sd=3.0)
    result = shared_time_encoding(features, trials)
    # The model IS the signal, so r^2 reaches the ceiling: normalised score near 1.
    assert np.nanmedian(result["normalized"].values) == pytest.approx(1.0, abs=0.1)
    record = summarize(result, by="region")
    assert [r["group"] for r in record] == ["V4", "IT"] and all(r["n"] for r in record)


def test_a_sites_normalized_score_pools_its_usable_bins():
    """Hand example: site 0 has bins (r, ceiling) = (0.5, 0.5), (-0.2, 0.2), (0.9, 0.05 < min
    0.1, unusable); site 1 has no usable bin. Pooled: (0.25 - 0.04) / (0.5 + 0.2) = 0.3 (the
    mean of the per-bin ratios would be (0.5 - 0.2) / 2 = 0.15)."""
    from workbench.stats.groups import GroupSummary

    result = xr.Dataset({"ceiling": (("neuroid", "time_bin"), [[0.5, 0.2, 0.05], [0.01, 0.02, 0.0]])},
                        coords={"region": ("neuroid", ["IT", "IT"])}, attrs={"min_ceiling": 0.1})
    summary = GroupSummary(result)
    r = np.array([[0.5, -0.2, 0.9, 0.3, 0.3, 0.3]])
    np.testing.assert_allclose(summary.site_normalized(r, result["ceiling"].values), [[0.3, np.nan]])
    assert summary.normalized(r, result["ceiling"].values)["IT"] == pytest.approx([0.3])


def test_summarize_reports_the_median_of_the_sites_pooled_normalized_scores():
    features, trials = _planted(noise_sd=3.0)
    result = shared_time_encoding(features, trials)
    r, ceiling = result["r"].values, result["ceiling"].values
    usable = ceiling >= result.attrs["min_ceiling"]
    pooled = np.where(usable, np.sign(r) * r**2, 0).sum(1) / np.where(usable, ceiling, 0).sum(1)
    regions = result["region"].values
    for record in summarize(result, by="region"):
        assert record["normalized"] == pytest.approx(np.median(pooled[regions == record["group"]]), abs=1e-12)


def test_shared_time_encoding_is_deterministic():
    features, trials = _planted(noise_sd=1.0)
    first = shared_time_encoding(features, trials, seed=4)
    xr.testing.assert_identical(first, shared_time_encoding(features, trials, seed=4))


def test_encoding_input_errors():
    features, trials = _planted(noise_sd=1.0)
    bad = trials.copy(data=trials.values.copy())
    bad.values[0, 0, 0] = np.nan
    with pytest.raises(MetricError, match="1 NaN/inf"):
        shared_time_encoding(features, bad)
    renamed = features.assign_coords(stimulus_id=("presentation", np.array([f"z{i}" for i in range(120)], dtype=object)))
    with pytest.raises(MetricError, match="share no stimulus_id"):
        shared_time_encoding(renamed, trials)
    shifted = features.assign_coords(time_bin_start=features.time_bin_start + 1000,
                                     time_bin_end=features.time_bin_end + 1000)
    with pytest.raises(MetricError, match="share no time bin"):
        shared_time_encoding(shifted, trials)
    with pytest.raises(MetricError, match="cannot be split"):
        shared_time_encoding(features.isel(presentation=slice(0, 3)), trials)


def test_ceiling_drops_a_stimulus_without_finite_trials_in_a_half_instead_of_failing_the_site():
    from workbench.metrics import split_half_ceiling

    trials = make_assembly(n_stimuli=30, n_neuroids=3, n_bins=2, repetitions=4, seed=2)
    signal = np.random.default_rng(3).standard_normal((30, 3, 2))
    trials = trials.copy(data=trials.values + 2 * np.tile(signal, (4, 1, 1)))
    full = split_half_ceiling(trials, n_splits=4, seed=0)
    damaged = trials.copy(data=trials.values.copy())
    rows = np.flatnonzero(damaged.stimulus_id.values == "s5")
    damaged.values[rows[:3], 0, 0] = np.nan  # 3 of 4 trials missing: one half is all NaN
    ceiling = split_half_ceiling(damaged, n_splits=4, seed=0)
    assert np.isfinite(ceiling.values).all()
    assert ceiling.attrs["dropped_stimuli"] == 1 and ceiling.attrs["dropped_pairs"] >= 1
    np.testing.assert_allclose(ceiling.values[1:], full.values[1:])  # other sites untouched
    assert abs(float(ceiling.values[0, 0]) - float(full.values[0, 0])) < 0.1


@pytest.mark.parametrize("var_s, var_n, n_reps", [(1.0, 1.0, 4), (0.05, 1.0, 5), (0.5, 2.0, 10)])
def test_variance_components_ceiling_matches_the_closed_form(var_s, var_n, n_reps):
    """Unbiased at low reliability: the mean over 400 simulated cells is within 3 standard errors
    of var_s / (var_s + var_n / n_reps); the split-half estimate is shown beside it."""
    import xarray as xr

    from workbench.metrics import split_half_ceiling, variance_components_ceiling

    rng = np.random.default_rng(int(var_s * 100 + n_reps))
    n_stimuli, n_cells = 60, 400
    signal = rng.standard_normal((n_stimuli, n_cells, 1)) * np.sqrt(var_s)
    values = np.repeat(signal, n_reps, axis=0) + rng.standard_normal((n_stimuli * n_reps, n_cells, 1)) * np.sqrt(var_n)
    trials = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", np.repeat([f"s{i}" for i in range(n_stimuli)], n_reps).astype(object)),
        "neuroid_id": ("neuroid", np.array([f"n{i}" for i in range(n_cells)], dtype=object)),
        "time_bin_start": ("time_bin", [0.0]), "time_bin_end": ("time_bin", [10.0])})
    truth = var_s / (var_s + var_n / n_reps)
    estimate = variance_components_ceiling(trials).values.ravel()
    assert abs(estimate.mean() - truth) < 3 * estimate.std() / np.sqrt(n_cells), (estimate.mean(), truth)
    assert variance_components_ceiling(trials).attrs["scale"] == "r^2"
    # one NaN trial changes only its own cell
    trials.values[0, 0, 0] = np.nan
    damaged = variance_components_ceiling(trials).values.ravel()
    assert np.isfinite(damaged).all() and np.array_equal(damaged[1:], estimate[1:])
    split = split_half_ceiling(trials, n_splits=4).values.ravel()
    assert np.isfinite(split).sum() >= n_cells - 1


def test_encoding_scores_name_their_ceiling():
    from workbench.metrics import RidgeCV, encoding_score, summarize

    features = make_assembly(n_stimuli=30, n_neuroids=4, n_bins=2, seed=1)
    trials = make_assembly(n_stimuli=30, n_neuroids=2, n_bins=2, repetitions=3, seed=2)
    result = encoding_score(features, trials, RidgeCV(alphas=[1.0]), n_splits=3, ceiling="variance_components")
    assert result.attrs["ceiling_method"] == "variance_components" and result.attrs["ceiling_scale"].startswith("r^2")
    assert summarize(result)[0]["ceiling_method"] == "variance_components"
    with pytest.raises(Exception, match="unknown ceiling"):
        encoding_score(features, trials, ceiling="nope")


def test_temporal_generalization_diagonal_is_the_per_bin_fit_and_a_stable_map_generalises():
    from workbench.metrics import RidgeCV, encoding_score
    from workbench.metrics.temporal import temporal_generalization

    rng = np.random.default_rng(4)
    features = make_assembly(n_stimuli=80, n_neuroids=6, n_bins=4, seed=5)
    weights = rng.standard_normal((6, 3))
    signal = np.einsum("spt,pn->snt", features.values, weights)
    signal[:, :, 3] = np.einsum("sp,pn->sn", features.values[:, :, 3], rng.standard_normal((6, 3)))  # new map
    trials = make_assembly(n_stimuli=80, n_neuroids=3, n_bins=4, repetitions=2, seed=6)
    trials = trials.copy(data=np.tile(signal, (2, 1, 1)) + 0.5 * trials.values)
    tg = temporal_generalization(features, trials, alphas=[0.1, 10.0], n_splits=4, seed=0)
    per_bin = encoding_score(features, trials, RidgeCV(alphas=[0.1, 10.0], cv=3, seed=0), mode="per_bin",
                             n_splits=4, seed=0)
    np.testing.assert_allclose(np.diagonal(tg.r.values, axis1=0, axis2=1), per_bin.r.values, atol=1e-5)
    summary = tg.summary.sel(group="IT").values if "IT" in tg.group.values else tg.summary.values[0]
    assert summary[0, 1] > 0.8 and summary[0, 2] > 0.8  # bins 0-2 share a map: it generalises
    assert summary[0, 3] < 0.5 and summary[3, 0] < 0.5  # bin 3's map is another


def test_step_bin_correspondence_finds_the_planted_lag_and_the_data_generalises_from_its_halves():
    import xarray as xr

    from workbench.metrics.temporal import split_half_features, step_bin_correspondence, temporal_generalization

    rng = np.random.default_rng(7)
    n_stimuli, n_steps = 90, 6
    drive = rng.standard_normal((n_stimuli, 5, n_steps))
    features = make_assembly(n_stimuli=n_stimuli, n_neuroids=5, n_bins=n_steps, seed=8).copy(data=drive)
    lagged = np.zeros((n_stimuli, 3, n_steps))
    weights = rng.standard_normal((5, 3))
    lagged[:, :, 2:] = np.einsum("spt,pn->snt", drive[:, :, :-2], weights)  # bin t reads step t - 2
    trials = make_assembly(n_stimuli=n_stimuli, n_neuroids=3, n_bins=n_steps, repetitions=2, seed=9)
    trials = trials.copy(data=np.tile(lagged, (2, 1, 1)) + 0.3 * trials.values)
    found = step_bin_correspondence(features, trials, alphas=[0.1, 10.0], n_splits=3)
    best = found.best_step.values  # (group, brain bin)
    assert (best[:, 2:] == np.arange(n_steps - 2)).all(), best
    data_features, halves = split_half_features(trials, seed=0)
    tg = temporal_generalization(data_features, halves, alphas=[1.0], n_splits=3)
    assert isinstance(tg, xr.Dataset) and np.nanmean(np.diagonal(tg.summary.values, axis1=1, axis2=2)[:, 2:]) > 0.5


def test_a_precomputed_ceiling_is_used_and_aligned_by_id():
    from workbench.assembly import average_repetitions
    from workbench.metrics import encoding_score
    from workbench.metrics.ceiling import variance_components_ceiling

    features, trials = _planted(noise_sd=2.0)
    ceiling = variance_components_ceiling(trials)
    reference = encoding_score(features, trials, n_splits=3, ceiling="variance_components")
    given = encoding_score(features, average_repetitions(trials), n_splits=3, ceiling=ceiling.isel(neuroid=slice(None, None, -1)))
    np.testing.assert_array_equal(given["ceiling"].values, reference["ceiling"].values)
    np.testing.assert_array_equal(given["normalized"].values, reference["normalized"].values)
    assert given.attrs["ceiling_method"].startswith("1 - var_noise")
    with pytest.raises(MetricError, match="does not cover"):
        encoding_score(features, average_repetitions(trials), n_splits=3, ceiling=ceiling.isel(neuroid=[0]))


def test_a_constant_prediction_scores_zero_where_the_data_vary():
    from workbench.metrics.correlation import pearson_columns, prediction_r

    rng = np.random.default_rng(0)
    target = rng.standard_normal((20, 3))
    target[:, 2] = 1.5  # nothing to explain
    prediction = rng.standard_normal((20, 3))
    prediction[:, 1] = 0.25  # a silent model
    r = prediction_r(prediction, target)
    assert r[0] == pytest.approx(np.corrcoef(prediction[:, 0], target[:, 0])[0, 1], abs=1e-12)
    assert r[1] == 0.0 and np.isnan(r[2])
    assert np.isnan(pearson_columns(prediction, target)[1])  # the plain correlation stays undefined


def test_a_prediction_that_varies_only_by_round_off_scores_zero():
    """After image offset a network's features differ only in their last bits, and so do its
    predictions; their correlation with the data is noise of size 1/sqrt(n) and must not
    count (the macaque positive control's feedforward network scored |r| up to 0.065 on it,
    depending on a GEMM's summation order). Round-off is judged against the same target's
    spread in its other time bins, so a large offset does not hide a small real spread."""
    from workbench.metrics.correlation import prediction_r

    rng = np.random.default_rng(1)
    n, bins = 200, 4
    target = rng.standard_normal((n, bins, 2))
    prediction = np.empty((n, bins, 2))
    for site, offset in enumerate([0.0, 1000.0]):
        signal = target[:, :2, site] + rng.standard_normal((n, 2))  # bins 0-1: the image is on
        prediction[:, :2, site] = offset + signal
        # bins 2-3: round-off (1e-7 of the spread), correlated with the data or not
        prediction[:, 2, site] = offset + 3.0 + 1e-7 * target[:, 2, site]
        prediction[:, 3, site] = offset + 3.0 + 1e-7 * rng.standard_normal(n)
    assert abs(np.corrcoef(prediction[:, 2, 0], target[:, 2, 0])[0, 1]) > 0.9  # noise, not undefined
    r = prediction_r(prediction, target)
    assert np.all(r[2:] == 0.0)
    for site in (0, 1):
        for b in (0, 1):
            assert r[b, site] == pytest.approx(np.corrcoef(prediction[:, b, site], target[:, b, site])[0, 1], abs=1e-9)
    small = prediction.copy()
    small[:, 2, 1] = 1000.0 + 1e-3 * target[:, 2, 1]  # a small real spread on a large offset counts
    assert prediction_r(small, target)[2, 1] == pytest.approx(1.0, abs=1e-6)
    flat = prediction[:, 0, :]  # 2-D: no other columns to judge round-off by; only exact constants
    assert np.all(prediction_r(flat, target[:, 0, :]) == pytest.approx(r[0], abs=1e-12))
