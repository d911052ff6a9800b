"""Statistics engine (issue 5 D): null calibration, FWE, FDR, chunked nulls, bootstrap."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from conftest import make_assembly
from workbench import MetricError
from workbench.metrics import RidgeCV, encoding_score
from workbench.stats import (bootstrap_encoding_ci, compare_encodings, fdr, heldout_permutation_test,
                             max_t_pvalues, permutation_chunks, pvalues_from_null)


def _recording(signal, n_reps, noise_sd, rng):
    n_stimuli, n_sites, n_bins = signal.shape
    trials = make_assembly(n_stimuli=n_stimuli, n_neuroids=n_sites, n_bins=n_bins, repetitions=n_reps)
    return trials.copy(data=np.tile(signal, (n_reps, 1, 1)) + noise_sd * rng.standard_normal(trials.shape))


def _null_encoding(seed, n_stimuli=40, n_features=4, n_sites=4, n_bins=2):
    rng = np.random.default_rng(seed)
    features = make_assembly(n_stimuli=n_stimuli, n_neuroids=n_features, n_bins=n_bins, seed=seed + 1000)
    trials = _recording(rng.standard_normal((n_stimuli, n_sites, n_bins)), 2, 0.5, rng)
    return encoding_score(features, trials, RidgeCV(alphas=[1.0, 100.0]), n_splits=4, seed=seed)


def test_null_p_values_are_uniform_and_max_t_controls_fwe():
    first_cell, any_rejected = [], []
    for seed in range(200):
        test = heldout_permutation_test(_null_encoding(seed), n_permutations=199, seed=seed)
        first_cell.append(test.cells.p_value.values[0, 0])
        any_rejected.append(bool((test.cells.p_fwe.values <= 0.05).any()))
    assert scipy_stats.kstest(first_cell, "uniform").pvalue > 0.01
    fwe = np.mean(any_rejected)
    assert fwe <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200), fwe


def _signal_encoding(n_stimuli=120, strength=1.0, seed=0, features=None):
    rng = np.random.default_rng(seed)
    if features is None:
        features = make_assembly(n_stimuli=n_stimuli, n_neuroids=5, n_bins=3, seed=seed + 1)
    weights = rng.standard_normal((5, 4)) * np.array([strength, strength, 0.0, 0.0])
    signal = np.einsum("spt,pn->snt", features.values, weights)
    trials = _recording(signal + 0.3 * rng.standard_normal(signal.shape), 3, 1.0, rng)
    return features, trials


def test_heldout_test_detects_planted_sites_only():
    features, trials = _signal_encoding()
    result = encoding_score(features, trials, n_splits=5)
    test = heldout_permutation_test(result, n_permutations=999, seed=1)
    p_fwe = test.cells.p_fwe.values
    assert (p_fwe[:2] <= 0.01).all() and (p_fwe[2:] > 0.05).all()
    # The statistic is Pearson r on the held-out half (second half of the folds).
    half = np.isfinite(result.split_prediction.values[:, 0, 0])
    assert half.sum() == 48 and set(result.fold.values[half]) == {3, 4}
    expected = np.corrcoef(result.split_prediction.values[half, 1, 2], result.target.values[half, 1, 2])[0, 1]
    assert test.cells.statistic.values[1, 2] == pytest.approx(expected, abs=1e-12)
    assert test.groups["V4"]["p_value"] <= 0.01
    within = heldout_permutation_test(result, n_permutations=999, seed=1, within="category_name")
    assert (within.cells.p_fwe.values[:2] <= 0.01).all()
    with pytest.raises(MetricError, match="within='animal' is not a presentation coord"):
        heldout_permutation_test(result, n_permutations=9, within="animal")


def test_chunked_null_equals_whole_null():
    result = _null_encoding(3)
    whole = heldout_permutation_test(result, n_permutations=250, seed=5, chunk_size=100)
    pieces = [heldout_permutation_test(result, n_permutations=250, seed=5, chunk_size=100, chunks=[i])
              for i in range(3)]
    counts = sum(np.round(p.cells.p_value.values * (p.n_permutations + 1) - 1) for p in pieces)
    np.testing.assert_allclose(whole.cells.p_value.values * 251 - 1, counts, atol=1e-9)
    assert [size for _, size, _ in permutation_chunks(5, 250, 100)] == [100, 100, 50]
    again = heldout_permutation_test(result, n_permutations=250, seed=5, chunk_size=100)
    np.testing.assert_array_equal(whole.cells.p_value.values, again.cells.p_value.values)


def test_compare_encodings_finds_the_better_model():
    features, trials = _signal_encoding(n_stimuli=150)
    good = encoding_score(features, trials, n_splits=5)
    noise = features.copy(data=np.random.default_rng(9).standard_normal(features.shape))
    bad = encoding_score(noise, trials, n_splits=5)
    better = compare_encodings(good, bad, n_permutations=999, seed=2, alternative="greater")
    assert (better.cells.p_fwe.values[:2] <= 0.01).all()
    assert better.groups["V4"]["p_value"] <= 0.01
    worse = compare_encodings(bad, good, n_permutations=999, seed=2, alternative="greater")
    assert (worse.cells.p_value.values[:2] > 0.5).all()
    with pytest.raises(MetricError, match="different stimuli"):
        compare_encodings(good, bad.isel(presentation=slice(0, 100)), n_permutations=9)


def test_max_t_and_fdr_closed_forms():
    observed = np.array([3.0, 1.0, 0.2])
    null = np.array([[0.5, 2.0, 0.1], [1.5, 0.0, 0.3], [0.1, 0.2, 0.4], [4.0, 0.0, 0.0]])
    np.testing.assert_allclose(pvalues_from_null(observed, null), [2 / 5, 2 / 5, 3 / 5])
    # Maxima per draw: 2.0, 1.5, 0.4, 4.0.
    np.testing.assert_allclose(max_t_pvalues(observed, null), [2 / 5, 4 / 5, 5 / 5])
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    q, reject = fdr(p, alpha=0.05)
    # BH over the 4 finite p: sorted 0.01, 0.03, 0.04, 0.5 -> p_(k) * 4 / k = 0.04, 0.06,
    # 0.0533, 0.5, then the running minimum from the top.
    np.testing.assert_allclose(q[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(q[4]) and reject.tolist() == [True, False, False, False, False]


def test_bootstrap_draw_equals_explicit_resample():
    features, trials = _signal_encoding(n_stimuli=60)
    result = encoding_score(features, trials, n_splits=3)
    records = bootstrap_encoding_ci(result, n_boot=1, seed=4, chunk_size=1)
    # Recompute the single draw by resampling rows explicitly.
    (_, _, sequence), = permutation_chunks(4, 1, 1)
    picks = np.random.default_rng(sequence).integers(0, 60, size=(1, 60))[0]
    fold = result.fold.values

    def fold_z(values):
        out = np.empty_like(values)
        for k in np.unique(fold):
            block = values[fold == k] - values[fold == k].mean(0)
            out[fold == k] = block / block.std(0)
        return out

    x = fold_z(result.prediction.values)[picks]
    y = fold_z(result.target.values)[picks]
    r = np.array([[np.corrcoef(x[:, n, t], y[:, n, t])[0, 1] for t in range(3)] for n in range(4)])
    expected = np.median(r[:2].mean(axis=1))
    assert records["V4"]["ci_low"] == pytest.approx(expected, abs=1e-9)
    wide = bootstrap_encoding_ci(result, n_boot=400, seed=4)["V4"]
    assert wide["ci_low"] < wide["value"] < wide["ci_high"]



def test_bootstrap_ci_covers_the_score_of_a_model_silent_in_some_bins():
    """A feedforward model goes silent after offset: its prediction is constant in those
    bins, which the score counts as r = 0. The bootstrap must count them alike: it dropped
    them (NaN), and in the demo the CIs of four feedforward models lay entirely above their
    scores (b on the simulated V4: 0.358, CI [0.832, 0.873])."""
    from workbench.metrics import summarize

    features, trials = _signal_encoding(n_stimuli=90)
    silent = features.copy(data=features.values.copy())
    silent.values[:, :, 2] = 0.0  # the last bin: no response to any stimulus
    result = encoding_score(silent, trials, n_splits=3)
    assert (result.r.values[:, 2] == 0).all()
    value = summarize(result)[0]["value"]
    ci = bootstrap_encoding_ci(result, n_boot=300, seed=4)["V4"]
    assert ci["value"] == pytest.approx(value, abs=1e-12)
    assert ci["ci_low"] < value < ci["ci_high"]

def test_a_constant_prediction_standardizes_to_zero_and_leaves_the_paired_null_alone():
    """The mean of equal floats need not equal them, so ``sd > 0`` made a constant column
    (a silent model) a column of +-1: the sign-flip null then drew +-Yz for the cell and
    widened. A comparison with a silent model has the null of a comparison with zeros."""
    from workbench.stats.permutation import fold_standardized

    value = next(v for v in np.linspace(0.1, 0.9, 97) if np.full(45, v).mean() != v)
    column = np.full((45, 1), value)
    assert not fold_standardized(column, np.zeros(45, int)).any()
    features, trials = _signal_encoding(n_stimuli=90)
    good = encoding_score(features, trials, n_splits=3)
    silent = good.copy(deep=True)
    silent["prediction"][:] = value
    zeros = good.copy(deep=True)
    zeros["prediction"][:] = 0.0
    a = compare_encodings(good, silent, n_permutations=499, seed=3)
    b = compare_encodings(good, zeros, n_permutations=499, seed=3)
    np.testing.assert_array_equal(a.cells.p_value.values, b.cells.p_value.values)
    np.testing.assert_allclose(a.cells.statistic.values, b.cells.statistic.values, atol=1e-12)


def test_cells_with_a_constant_prediction_skip_the_kernel_and_leave_the_others_alone():
    """A silent site's cells have statistic 0 and p = 1; the other sites get the p-values
    they get without it (the draws depend only on the stimuli and the seed)."""
    features, trials = _signal_encoding(n_stimuli=90)
    result = encoding_score(features, trials, n_splits=3)
    silent = result.copy(deep=True)
    site = silent["split_prediction"].values[:, 0]  # (presentation, time_bin), a view
    site[np.isfinite(site)] = 0.3  # one value for every held-out stimulus
    test = heldout_permutation_test(silent, n_permutations=499, seed=1)
    assert (test.cells.statistic.values[0] == 0).all() and (test.cells.p_value.values[0] == 1).all()
    others = heldout_permutation_test(result.isel(neuroid=slice(1, None)), n_permutations=499, seed=1)
    np.testing.assert_array_equal(test.cells.p_value.values[1:], others.cells.p_value.values)


def test_heldout_test_has_the_power_of_a_plain_permutation_loop_on_30_stimuli():
    """Uniform permutations: on 30 held-out stimuli the p-values match an ordinary loop over
    random permutations of the same statistic (the cyclic-shift version was 1.8-2.8x higher)."""
    ratios, ours_hits, loop_hits = [], 0, 0
    for seed in range(3):
        features, trials = _signal_encoding(n_stimuli=60, strength=0.35, seed=seed)
        result = encoding_score(features, trials, n_splits=2, seed=seed)
        test = heldout_permutation_test(result, n_permutations=9999, seed=seed)
        half = np.isfinite(result.split_prediction.values[:, 0, 0])
        assert half.sum() == 30
        P = result.split_prediction.values[half].reshape(30, -1)
        Y = result.target.values[half].reshape(30, -1)
        rng = np.random.default_rng(10_000 + seed)
        observed = np.array([np.corrcoef(P[:, c], Y[:, c])[0, 1] for c in range(P.shape[1])])
        # the plain reference: 9,999 independent uniform permutations of the 30 stimuli, r
        # recomputed from z-scores for each (one matrix product per block of permutations)
        zp = (P - P.mean(0)) / P.std(0)
        zy = (Y - Y.mean(0)) / Y.std(0)
        order = np.argsort(rng.random((9999, 30)), axis=1)
        exceed = np.zeros(P.shape[1])
        for block in np.array_split(order, 10):
            r = np.einsum("knc,nc->kc", zy[block], zp) / 30
            exceed += (r >= observed - 1e-12).sum(0)
        loop_p = (1 + exceed) / 10000
        ours = test.cells.p_value.values.reshape(-1)
        np.testing.assert_allclose(test.cells.statistic.values.reshape(-1), observed, atol=1e-12)
        signal = loop_p < 0.2
        ratios += list(ours[signal] / loop_p[signal])
        ours_hits += int((ours < 0.05).sum())
        loop_hits += int((loop_p < 0.05).sum())
    assert len(ratios) >= 6
    assert 0.9 <= np.median(ratios) <= 1.1, np.median(ratios)
    assert abs(ours_hits - loop_hits) <= 2, (ours_hits, loop_hits)


def test_p_value_floor_and_draws_for_a_family():
    from workbench.stats.permutation import draws_for_family, p_floor_text

    assert p_floor_text(1 / 1001, 1000) == "p < 0.001" and p_floor_text(0.0123, 1000) == "p = 0.0123"
    assert draws_for_family(256 * 30) == 100_000  # 153,600 needed, capped
    assert draws_for_family(12) == 1000 and draws_for_family(400) == 8000
    features, trials = _signal_encoding(n_stimuli=60)
    result = encoding_score(features, trials, n_splits=3)
    assert heldout_permutation_test(result, n_permutations="auto", seed=0).n_permutations == 1000


def test_permutations_within_categories_never_mix_levels():
    from workbench.stats.permutation import shuffled_indices

    codes = np.array([0, 0, 1, 1, 1, 2])
    draws = shuffled_indices(np.random.default_rng(0), 500, 6, within=codes)
    assert (codes[draws] == codes[None, :]).all()
    assert len({tuple(d) for d in draws}) == 2 * 6  # every within-level permutation appears


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, cells, draws", [(3, 1, 1), (30, 129, 7), (57, 300, 4), (320, 260, 13),
                                             (41, 1100, 6)])
def test_compiled_null_kernel_equals_the_numpy_one_and_a_plain_loop(dtype, n, cells, draws):
    """The compiled kernel (slabs of up to ~512 cells, four draws a pass) against numpy and a
    float64 loop, for shapes that leave partial slabs and partial groups of draws."""
    from workbench.stats.kernels import compiled, gathered_dot

    assert compiled(), "numba is a dependency: the compiled kernel must load"
    rng = np.random.default_rng(n + cells)
    Pz, Yz = (rng.standard_normal((n, cells)).astype(dtype) for _ in range(2))
    permutations = np.argsort(rng.random((draws, n)), axis=1)
    loop = np.stack([(Pz.astype(float) * Yz.astype(float)[order]).sum(0) / n for order in permutations])
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    for engine in ("numba", "numpy"):
        null = gathered_dot(Pz, Yz, permutations, engine)
        assert null.dtype == dtype and null.shape == (draws, cells)
        assert np.abs(null - loop).max() < tolerance, engine


def test_heldout_test_gives_the_same_p_values_with_either_kernel():
    from workbench.stats.kernels import gathered_dot

    features, trials = _signal_encoding(n_stimuli=60)
    result = encoding_score(features, trials, n_splits=3)
    fast = heldout_permutation_test(result, n_permutations=400, seed=3, engine="numba")
    plain = heldout_permutation_test(result, n_permutations=400, seed=3, engine="numpy")
    np.testing.assert_array_equal(fast.cells.p_value.values, plain.cells.p_value.values)
    np.testing.assert_allclose(fast.cells.p_fwe.values, plain.cells.p_fwe.values, atol=2 / 401)
    with pytest.raises(MetricError, match="engine must be"):
        gathered_dot(np.ones((3, 1)), np.ones((3, 1)), np.zeros((1, 3), int), "fortran")


def test_compiled_null_does_not_depend_on_the_thread_count():
    """Threads split the cells into slabs whose width depends on the thread count (1,100 cells:
    3 slabs of 368 on one thread, 4 of 288 on two); every cell's sum is the same."""
    import numba
    import torch

    from workbench.stats.kernels import gathered_dot, slab_width

    rng = np.random.default_rng(2)
    Pz, Yz = (rng.standard_normal((50, 1100)).astype(np.float32) for _ in range(2))
    permutations = np.argsort(rng.random((9, 50)), axis=1)
    threads = torch.get_num_threads()  # the kernels follow torch's setting, which a report task limits
    try:
        torch.set_num_threads(1)
        one = gathered_dot(Pz, Yz, permutations, "numba")
        assert numba.get_num_threads() == 1
        torch.set_num_threads(2)
        two = gathered_dot(Pz, Yz, permutations, "numba")
    finally:
        torch.set_num_threads(threads)
    assert slab_width(1100, 1) == 368 and slab_width(1100, 2) == 288
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("cells, threads, width", [(1, 2, 16), (2112, 2, 352), (4032, 2, 512), (6144, 16, 384),
                                                   (100, 16, 16)])
def test_slabs_are_whole_vectors_about_512_wide_and_shared_evenly_by_the_threads(cells, threads, width):
    from workbench.stats.kernels import slab_width

    assert slab_width(cells, threads) == width
    n_slabs = -(-cells // width)
    assert width % 16 == 0 and (n_slabs % threads == 0 or width == 16)


def test_tallies_beside_the_next_kernel_give_the_serial_loops_p_values(monkeypatch):
    """The held-out test tallies a chunk of draws in a worker while the next chunk's kernel
    runs; where that overlap is unsafe (numba's workqueue layer) it tallies in line. Both give
    the same cell, FWE, group and cluster p-values."""
    from workbench.stats import permutation

    features, trials = _signal_encoding(n_stimuli=60)
    result = encoding_score(features, trials, n_splits=3)
    overlapped = heldout_permutation_test(result, n_permutations=2500, seed=4, chunk_size=500, clusters=True)
    monkeypatch.setattr(permutation, "overlapping_calls_are_safe", lambda: False)
    serial = heldout_permutation_test(result, n_permutations=2500, seed=4, chunk_size=500, clusters=True)
    import xarray as xr

    xr.testing.assert_identical(overlapped.cells, serial.cells)
    assert overlapped.groups == serial.groups
    assert overlapped.clusters.clusters and overlapped.clusters == serial.clusters


def test_percentile_and_t_intervals_have_their_nominal_coverage_and_known_values():
    from workbench.stats.bootstrap import mean_ci, percentile_ci, t_interval

    rng = np.random.default_rng(11)
    values = rng.standard_normal(12) + 1.0
    low, high = t_interval(values)
    expected = scipy_stats.t.interval(0.95, 11, loc=values.mean(), scale=scipy_stats.sem(values))
    np.testing.assert_allclose([low, high], expected, rtol=1e-12)
    assert all(np.isnan(t_interval([1.0])))
    # a mean's percentile bootstrap CI is close to the normal-theory interval on 400 values
    big = rng.standard_normal(400) + 0.3
    half = 1.96 * big.std() / np.sqrt(len(big))
    np.testing.assert_allclose(mean_ci(big), [big.mean() - half, big.mean() + half], atol=0.15 * half)
    # coverage over 300 samples of 40: near 95 %
    covered = [lo <= 0.0 <= hi for lo, hi in (mean_ci(rng.standard_normal(40), n_boot=400, seed=i)
                                               for i in range(300))]
    assert 0.89 <= np.mean(covered) <= 0.99
    # same seed, same interval; draws without a finite statistic are left out; one unit: NaN
    assert mean_ci(big, seed=4) == mean_ci(big, seed=4)
    assert all(np.isnan(percentile_ci(lambda index: np.full(len(index), np.nan), 10)))
    assert all(np.isnan(mean_ci([2.0])))
    with pytest.raises(MetricError, match="n_boot"):
        mean_ci(big, n_boot=0)


def test_jackknife_interval_of_a_mean_is_the_t_interval():
    """For the mean the delete-one jackknife standard error is exactly sd / sqrt(n)."""
    from workbench.stats.bootstrap import jackknife_t_interval, t_interval

    x = np.random.default_rng(12).standard_normal(30) * 2 + 1
    interval = jackknife_t_interval(lambda weights: weights @ x / len(x), len(x), x.mean())
    np.testing.assert_allclose(interval, t_interval(x), rtol=1e-10)
    assert all(np.isnan(jackknife_t_interval(lambda w: w @ x[:2] / 2, 2, 1.0)))
