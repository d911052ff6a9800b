"""De-noising, dimensionality, reaction-time and behaviour metrics against closed forms and
planted truths, and their named errors."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr

import data_adapters
from workbench import simulators
from workbench import MetricError
from workbench.assembly import average_repetitions
from workbench.metrics import behaviour, denoising, dimensionality
from workbench.metrics import reaction_time as rt
from workbench.stats import resampling


def _assembly(values, stimulus_ids, layers, extra=None):
    values = np.asarray(values, dtype=np.float64)
    coords = {"stimulus_id": ("presentation", list(stimulus_ids)),
              "neuroid_id": ("neuroid", [f"n{i}" for i in range(values.shape[1])]),
              "layer": ("neuroid", list(layers))}
    coords.update(extra or {})
    return xr.DataArray(values, dims=("presentation", "neuroid"), coords=coords)


# ------------------------------------------------------------------ de-noising


def _denoising_inputs(rng, n=40, units=30, pull=0.0):
    clean = rng.standard_normal((n, units))
    noise = 1.5 * rng.standard_normal((n, units))
    ff = clean + noise
    rec = clean + (1 - pull) * noise  # pull > 0: recurrence moves toward the clean response
    ids = [f"img{i}" for i in range(n)]
    layers = ["l1"] * (units // 2) + ["l2"] * (units - units // 2)
    noisy_extra = {"source_id": ("presentation", ids)}
    return (_assembly(clean, ids, layers), _assembly(rec, [f"{i}_noise" for i in ids], layers, noisy_extra),
            _assembly(ff, [f"{i}_noise" for i in ids], layers, noisy_extra))


def test_denoising_is_zero_when_recurrence_is_the_identity():
    clean, _, ff = _denoising_inputs(np.random.default_rng(0))
    d = denoising.denoising_index(clean, ff, ff)
    np.testing.assert_array_equal(d.values, 0.0)
    assert list(d.group.values) == ["l1", "l2"]


def test_denoising_index_equals_an_independent_computation_and_detects_a_planted_pull():
    clean, rec, ff = _denoising_inputs(np.random.default_rng(1), pull=0.6)
    d = denoising.denoising_index(clean, rec, ff)
    for g, group in enumerate(["l1", "l2"]):
        units = clean.layer.values == group
        expected = [scipy.stats.pearsonr(clean.values[i, units], rec.values[i, units])[0]
                    - scipy.stats.pearsonr(clean.values[i, units], ff.values[i, units])[0] for i in range(40)]
        np.testing.assert_allclose(d.values[:, g], expected, atol=1e-12)
    records = denoising.denoising_test(d, n_permutations=2000, seed=0)
    assert all(r["value"] > 0.1 and r["p_value"] < 0.01 and r["q_value"] < 0.01 for r in records)
    assert all(r["ci_low"] < r["value"] < r["ci_high"] for r in records)


def test_denoising_null_gives_uniform_p_values():
    rng = np.random.default_rng(2)
    p = []
    for _ in range(200):
        d = xr.DataArray(rng.standard_normal((30, 1)), dims=("pair", "group"), coords={"group": ["g"]})
        p.append(denoising.denoising_test(d, n_permutations=199, seed=int(rng.integers(1 << 30)))[0]["p_value"])
    assert scipy.stats.kstest(p, "uniform").pvalue > 0.01
    assert np.mean(np.asarray(p) <= 0.05) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 200)


def test_denoising_errors():
    clean, rec, ff = _denoising_inputs(np.random.default_rng(3))
    with pytest.raises(MetricError, match="no clean partner"):
        denoising.denoising_index(clean.isel(presentation=slice(1, None)), rec, ff)
    with pytest.raises(MetricError, match="same neuroids"):
        denoising.denoising_index(clean, rec, ff.isel(neuroid=slice(1, None)))
    with pytest.raises(MetricError, match="source"):
        denoising.denoising_index(clean, rec.drop_vars("source_id"), ff.drop_vars("source_id"))


@pytest.fixture(scope="module")
def blur_recording(tmp_path_factory):
    sim = simulators.simulate_blur_fmri(tmp_path_factory.mktemp("blur"), write_nifti=False, seed=0)
    return sim, {s: average_repetitions(data_adapters.load(p)) for s, p in sim.bdata.items()}


def test_fmri_denoising_recovers_the_planted_rois(blur_recording):
    sim, loaded = blur_recording
    planted = set(sim.params["denoising_rois"])
    for subject, da in loaded.items():
        d = denoising.fmri_denoising_index(da, level=25.0)
        records = {r["group"]: r for r in denoising.denoising_test(d, n_permutations=2000, seed=0)}
        for group, record in records.items():
            _, hemisphere, region = group.split("|")
            truth = sim.similarity.sel(subject=subject, hemisphere=hemisphere, region=region, blur_level=25.0).values
            planted_d = truth[-1] - truth[0]
            if subject in sim.params["denoising_subjects"] and region in planted:
                # the noisy clean first bin (the paper's reference) attenuates both
                # correlations, so the index is the planted change shrunk toward 0
                assert 0.4 * planted_d < record["value"] < planted_d + 0.15, (subject, group, record["value"])
                assert record["q_value"] < 0.05, (subject, group, record)
            else:
                assert planted_d == 0 and abs(record["value"]) < 0.15, (subject, group, record["value"])


def test_fmri_denoising_definitions_match_a_direct_computation():
    # 5 clean images and their blurred copies, 12 voxels, 3 bins; each definition against
    # np.corrcoef on centred patterns, computed here without the library's helpers
    rng = np.random.default_rng(3)
    n, voxels, bins = 5, 12, 3
    values = rng.standard_normal((2 * n, voxels, bins))
    ids = [f"img{i}" for i in range(n)] + [f"img{i}_blur" for i in range(n)]
    da = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", ids), "image_code": ("presentation", ids[:n] * 2),
        "blur_level": ("presentation", [0.0] * n + [25.0] * n),
        "neuroid_id": ("neuroid", [f"v{i}" for i in range(voxels)])})
    centred = values - values.mean(0)
    clean, blurred = centred[:n], centred[n:]

    def r(x, y):
        return np.corrcoef(x, y)[0, 1]

    paper = [r(clean[i, :, 0], blurred[i, :, -1]) - r(clean[i, :, 0], blurred[i, :, 0]) for i in range(n)]
    matched = [r(clean[i, :, -1], blurred[i, :, -1]) - r(clean[i, :, 0], blurred[i, :, 0]) for i in range(n)]
    got = denoising.fmri_denoising_index(da, level=25.0, by=None)
    np.testing.assert_allclose(got.values[:, 0], paper, atol=1e-12)
    assert "clean bin 0, degraded bin -1" in got.attrs["definition"]
    got = denoising.fmri_denoising_index(da, level=25.0, by=None, definition="matched_bins")
    np.testing.assert_allclose(got.values[:, 0], matched, atol=1e-12)
    with pytest.raises(MetricError, match="definition"):
        denoising.fmri_denoising_index(da, level=25.0, definition="late")


def test_fmri_denoising_needs_two_time_bins(blur_recording):
    _, loaded = blur_recording
    with pytest.raises(MetricError, match="at least 2"):
        denoising.fmri_denoising_index(loaded["sub-01"].isel(time_bin=[0]), level=25.0)


# ------------------------------------------------------------------ dimensionality


def _orthogonal(n, d, rng):
    x = rng.standard_normal((n, d))
    q, _ = np.linalg.qr(x - x.mean(0))
    return q


@pytest.mark.parametrize("d", [1, 3, 12])
def test_participation_ratio_of_isotropic_data_equals_its_dimension(d):
    rng = np.random.default_rng(d)
    q = _orthogonal(200, d, rng) * rng.uniform(0.5, 5, d)  # per-unit scale is normalised away
    assert dimensionality.participation_ratio(q) == pytest.approx(d, rel=1e-10)
    assert dimensionality.cross_layer_dimensionality(q, q) == pytest.approx(d, rel=1e-10)


def test_participation_ratio_equals_the_eigenvalue_formula():
    x = np.random.default_rng(4).standard_normal((50, 80)) @ np.random.default_rng(5).standard_normal((80, 80))
    z = x - x.mean(0)
    z /= np.linalg.norm(z, axis=0)
    eig = np.linalg.eigvalsh(z.T @ z)
    assert dimensionality.participation_ratio(x) == pytest.approx(eig.sum() ** 2 / (eig ** 2).sum(), rel=1e-9)


def test_gram_based_draws_equal_recomputing_each_draw():
    """A permutation draw's PR (rows mixed from A and B) and a bootstrap draw's PR (weighted,
    re-centred) from Gram quadratic forms equal the PR of the explicitly built matrices."""
    from workbench.metrics.dimensionality import _pr_of_mixtures, _weighted_pr

    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((40, 7)), rng.standard_normal((40, 7)) @ rng.standard_normal((7, 7))

    def direct(x, w=None):
        w = np.ones(len(x)) if w is None else w
        centred = x - (w @ x) / w.sum()
        c = (centred.T * w) @ centred / w.sum()
        return np.trace(c) ** 2 / (c * c).sum()

    s = (rng.random((5, 40)) < 0.5).astype(float)
    np.testing.assert_allclose(_pr_of_mixtures(s, a @ a.T, a @ b.T, b @ b.T),
                               [direct(np.where(row[:, None] > 0, a, b)) for row in s], rtol=1e-10)
    w = np.stack([np.bincount(rng.integers(0, 40, 40), minlength=40) for _ in range(5)]).astype(float)
    np.testing.assert_allclose(_weighted_pr(w, a @ a.T), [direct(a, row) for row in w], rtol=1e-10)


def test_participation_ratio_across_networks_against_scipy():
    # 4 "networks": recurrent activity of rank ~3, feedforward isotropic in 12 dimensions;
    # per-network PRs, their mean difference, s.e.m. and t-test recomputed here
    rng = np.random.default_rng(11)
    rec = [rng.standard_normal((60, 3)) @ rng.standard_normal((3, 12)) + 0.1 * rng.standard_normal((60, 12))
           for _ in range(4)]
    ff = [rng.standard_normal((60, 12)) for _ in range(4)]
    got = dimensionality.participation_ratio_across_networks(rec, ff)
    differences = np.array([dimensionality.participation_ratio(a) - dimensionality.participation_ratio(b)
                            for a, b in zip(rec, ff)])
    np.testing.assert_allclose(got["differences"], differences, rtol=1e-12)
    assert got["value"] == pytest.approx(differences.mean()) and got["value"] < -5
    assert got["sem"] == pytest.approx(scipy.stats.sem(differences))
    assert got["p_value"] == pytest.approx(scipy.stats.ttest_1samp(differences, 0).pvalue)
    assert got["p_exact"] == pytest.approx(2 / 16)  # all 4 negative: 2 of the 16 sign patterns as extreme
    for alternative, exact in (("less", 1 / 16), ("greater", 1.0)):  # one tail of the same 16 patterns
        one = dimensionality.participation_ratio_across_networks(rec, ff, alternative=alternative)
        assert one["p_value"] == pytest.approx(scipy.stats.ttest_1samp(differences, 0, alternative=alternative).pvalue)
        assert one["p_exact"] == pytest.approx(exact) and one["alternative"] == alternative
    with pytest.raises(MetricError, match="alternative"):
        dimensionality.participation_ratio_across_networks(rec, ff, alternative="lower")
    single = dimensionality.participation_ratio_across_networks(rec[:1], ff[:1])
    assert single["n_networks"] == 1 and np.isnan(single["sem"]) and np.isnan(single["p_value"])
    with pytest.raises(MetricError, match="one recurrent and one feedforward"):
        dimensionality.participation_ratio_across_networks(rec, ff[:2])


def test_participation_ratio_ci_and_difference_test():
    rng = np.random.default_rng(6)
    low = rng.standard_normal((120, 2)) @ rng.standard_normal((2, 20)) + 0.2 * rng.standard_normal((120, 20))
    high = rng.standard_normal((120, 20))
    ci = dimensionality.participation_ratio_ci(low, n_boot=500, seed=0)
    assert ci["ci_low"] < ci["value"] < ci["ci_high"] and ci["value"] < 4
    test = dimensionality.participation_ratio_difference_test(low, high, n_permutations=500, seed=0, alternative="less")
    assert test["value"] < -5 and test["p_value"] < 0.01
    same = dimensionality.participation_ratio_difference_test(high, rng.standard_normal((120, 20)),
                                                              n_permutations=500, seed=0)
    assert same["p_value"] > 0.01
    # the bootstrap CI of the difference (the same images resampled in A and B): it holds the
    # observed difference, excludes 0 where the test rejects, and is exactly 0 for B = A
    assert test["ci_low"] < test["value"] < test["ci_high"] < 0
    assert same["ci_low"] < 0 < same["ci_high"]
    identical = dimensionality.participation_ratio_difference_test(low, low.copy(), n_permutations=100, seed=0)
    assert identical["ci_low"] == identical["ci_high"] == 0.0


def test_subspace_alignment_and_difference_pcs():
    rng = np.random.default_rng(7)
    basis = _orthogonal(40, 6, rng).T[:, :40]  # 6 orthonormal directions in 40-d
    a = rng.standard_normal((100, 3)) @ basis[:3]
    b = rng.standard_normal((100, 3)) @ basis[3:]
    assert dimensionality.subspace_alignment(a, a @ np.eye(40), 3) == pytest.approx(1.0, abs=1e-9)
    assert dimensionality.subspace_alignment(a, b, 3) == pytest.approx(0.0, abs=1e-9)
    first = rng.standard_normal((100, 40))
    steps = xr.DataArray(np.stack([first, first + 3 * rng.standard_normal((100, 1)) * basis[0]], -1),
                         dims=("presentation", "neuroid", "time_bin"),
                         coords={"layer": ("neuroid", ["l"] * 40)})
    axes, ratio = dimensionality.difference_pcs(steps, 1)
    assert abs(axes[:, 0] @ basis[0]) == pytest.approx(1.0, abs=1e-9) and ratio[0] == pytest.approx(1.0)
    _, size = dimensionality.recurrent_influence(steps)
    assert size.values[0] > 0
    _, none = dimensionality.recurrent_influence(steps.isel(time_bin=[0, 0]))
    assert none.values[0] == 0


def test_dimensionality_errors():
    with pytest.raises(MetricError, match="constant"):
        dimensionality.participation_ratio(np.ones((10, 3)))
    with pytest.raises(MetricError, match="NaN"):
        dimensionality.participation_ratio(np.full((10, 3), np.nan))
    with pytest.raises(MetricError, match="same images"):
        dimensionality.participation_ratio_difference_test(np.eye(5), np.eye(4))


# ------------------------------------------------------------------ reaction times


def _planted_rt_inputs(n=240, steps=10, threshold=1.5, seed=0):
    """Entropy falls linearly at an image-specific rate; D is a monotone function of the RT
    at ``threshold`` plus nothing else, so the fit must recover RTs at that threshold."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.15, 0.6, n)
    entropy = np.clip(3.3 - rate[:, None] * np.arange(steps)[None] * 1.1, 0, None)
    true_rt, _ = rt.entropy_reaction_times(entropy, threshold)
    ids = [f"img{i}" for i in range(n)]
    d = pd.Series(true_rt / steps * 0.5, index=ids)
    da = xr.DataArray(entropy, dims=("presentation", "time_bin"),
                      coords={"stimulus_id": ("presentation", ids), "category": ("presentation", np.arange(n) % 4)})
    return da, d, true_rt


def test_reaction_times_recover_a_planted_threshold():
    entropy, d, true_rt = _planted_rt_inputs()
    record = rt.rt_uncertainty_score(entropy, d, thresholds=[0.5, 1.0, 1.5, 2.0, 2.5], n_permutations=500,
                                     seed=0, within="category")
    assert record["thresholds"] == [1.5] * 5
    assert record["value"] == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_array_equal(record["rt"].reindex(d.index).to_numpy(), true_rt)
    assert record["p_value"] < 0.01 and record["p_within"] < 0.01
    shuffled = pd.Series(np.random.default_rng(1).permutation(d.to_numpy()), index=d.index)
    assert rt.rt_uncertainty_score(entropy, shuffled, n_permutations=500, seed=0)["p_value"] > 0.01


def test_entropy_rt_censoring_and_readout():
    entropy = np.array([[3.0, 2.0, 0.5], [3.0, 3.0, 3.0]])
    times, censored = rt.entropy_reaction_times(entropy, 1.0)
    assert times.tolist() == [2, 2] and censored.tolist() == [False, True]
    logits = np.zeros((1, 2, 4))
    logits[0, :, 0] = [1.0, 1.0]
    p = rt.cumulative_probabilities(logits)
    np.testing.assert_allclose(p[0, 1, 0], np.exp(2) / (np.exp(2) + 3))
    np.testing.assert_allclose(rt.readout_entropy(np.full((1, 1, 4), 0.25)), 2.0)


def test_spearman_permutation_null_is_one_gemm_and_matches_scipy():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal(50)
    result = resampling.spearman_permutation_test(x, y, n_permutations=300, seed=0)
    np.testing.assert_allclose(result["rho"], [scipy.stats.spearmanr(x[:, j], y)[0] for j in range(3)], atol=1e-12)
    index = resampling.shuffled_indices(np.random.default_rng(0), 5, 12, within=np.arange(12) % 3)
    assert all(sorted(row) == list(range(12)) for row in index.tolist())
    assert ((index % 3) == (np.arange(12) % 3)).all()


def test_paired_swap_test_prefers_the_informative_readout():
    rng = np.random.default_rng(9)
    d = rng.uniform(0, 0.5, 200)
    good, bad = d + 0.1 * rng.standard_normal(200), rng.standard_normal(200)
    assert resampling.paired_swap_test(good, bad, d, n_permutations=1000)["p_value"] < 0.01
    assert resampling.paired_swap_test(bad, good, d, n_permutations=1000)["p_value"] > 0.5
    # two-tailed (Spoerer et al.'s test): the worse readout first is as significant
    assert resampling.paired_swap_test(bad, good, d, n_permutations=1000, alternative="two-sided")["p_value"] < 0.01
    with pytest.raises(MetricError, match="alternative"):
        resampling.paired_swap_test(good, bad, d, alternative="one-sided")
    # a constant readout (every RT censored) has rho 0, and the test still runs
    censored = np.full(200, 7.0)
    against = resampling.paired_swap_test(good, censored, d, n_permutations=1000, alternative="two-sided")
    assert against["rho_b"] == 0.0 and against["difference"] == pytest.approx(against["rho_a"])
    assert against["p_value"] < 0.01
    with pytest.raises(MetricError, match="both readouts are constant"):
        resampling.paired_swap_test(censored, censored, d)


def test_paired_swap_test_p_values_match_exact_enumeration():
    # 9 items: all 2^9 swap patterns enumerated with scipy's Spearman, against the sampled null
    rng = np.random.default_rng(12)
    d = rng.standard_normal(9)
    a, b = d + 0.8 * rng.standard_normal(9), rng.standard_normal(9)
    observed = scipy.stats.spearmanr(a, d)[0] - scipy.stats.spearmanr(b, d)[0]
    null = []
    for pattern in range(2 ** 9):
        swap = np.array([(pattern >> i) & 1 for i in range(9)], bool)
        null.append(scipy.stats.spearmanr(np.where(swap, b, a), d)[0] - scipy.stats.spearmanr(np.where(swap, a, b), d)[0])
    null = np.array(null)
    exact = {"greater": np.mean(null >= observed - 1e-12), "less": np.mean(null <= observed + 1e-12),
             "two-sided": np.mean(np.abs(null) >= abs(observed) - 1e-12)}
    for alternative, p_exact in exact.items():
        got = resampling.paired_swap_test(a, b, d, n_permutations=20000, seed=1, alternative=alternative)
        assert got["difference"] == pytest.approx(observed, abs=1e-12)
        assert abs(got["p_value"] - p_exact) < 0.015, (alternative, got["p_value"], p_exact)


def test_reaction_time_errors():
    entropy, d, _ = _planted_rt_inputs(n=40)
    with pytest.raises(MetricError, match="do not overlap"):
        rt.rt_uncertainty_score(entropy, pd.Series(d.to_numpy(), index=[f"x{i}" for i in range(40)]))
    with pytest.raises(MetricError, match="NaN"):
        rt.readout_entropy(np.full((2, 3, 4), np.nan))
    with pytest.raises(MetricError, match="at least 2 steps"):
        rt.entropy_reaction_times(np.ones((3, 1)), 0.5)
    with pytest.raises(MetricError, match="constant"):
        resampling.spearman_permutation_test(np.ones(10), np.arange(10.0), n_permutations=10)


def test_flops_per_step_and_accuracy_flops_curve():
    from workbench.models import zoo

    model = zoo.build("bl", seed=0, channels=(4, 8))
    flops = rt.flops_per_step(model, (1, 16, 16), 3)
    assert len(flops) == 3 and (flops > 0).all()
    # step 0 has no lateral input; later steps add the lateral convolutions
    assert flops[1] > flops[0] and flops[2] == flops[1]
    p = np.full((4, 3, 2), 0.5)
    p[:2, 1:] = [0.99, 0.01]
    curve = rt.accuracy_flops_curve(p, np.zeros(4, int), flops, thresholds=[0.5, 2.0])
    assert curve["mean_flops"].iloc[1] == flops[0] and curve["mean_flops"].iloc[0] > flops[0]


# ------------------------------------------------------------------ behaviour


def test_integration_fit_recovers_planted_parameters():
    frames = np.arange(1, 11)
    y = behaviour.integration_curve(frames, 0.3, 0.8, 2.5)
    fit = behaviour.fit_integration_curve(frames, y)
    assert fit["tau"] == pytest.approx(2.5, rel=1e-4) and fit["c"] == pytest.approx(0.8, rel=1e-4)


def test_hartmann_false_rejection_and_calibration_by_hand():
    # 5 images x 4 classes: the pooled 20 % quantile lies between the 4th and 5th smallest
    # of the 20 probabilities, so exactly the 4 smallest are rejected; two images have
    # their correct class among them
    p = np.array([[0.70, 0.20, 0.06, 0.04],
                  [0.05, 0.55, 0.25, 0.15],
                  [0.30, 0.30, 0.30, 0.10],
                  [0.01, 0.02, 0.27, 0.70],
                  [0.25, 0.25, 0.25, 0.25]])
    labels = np.array([0, 0, 2, 1, 3])  # image 1's 0.05 and image 3's 0.02 are rejected
    assert behaviour.false_rejection_rate(p, labels) == pytest.approx(2 / 5)
    with pytest.raises(MetricError, match="quantile"):
        behaviour.false_rejection_rate(p, labels, quantile=1.0)
    table = behaviour.calibration_curve([[0.9, 0.1], [0.9, 0.1]], [0, 1], n_bins=10)
    assert table["n"].tolist() == [2, 2] and table["accuracy"].tolist() == [0.5, 0.5]
    assert table["confidence"].tolist() == pytest.approx([0.1, 0.9])
    assert (table["bin_low"] <= table["confidence"]).all() and (table["confidence"] < table["bin_high"]).all()
    # a calibrated network (the label drawn from its own probabilities) lies on the
    # diagonal in every well-filled log bin, small probabilities included
    rng = np.random.default_rng(4)
    q = rng.dirichlet(np.full(10, 0.3), 20000)
    drawn = (q.cumsum(1) < rng.random((20000, 1))).sum(1).clip(0, 9)
    table = behaviour.calibration_curve(q, drawn)
    full = table[table["n"] > 2000]
    assert len(full) >= 8 and full["confidence"].min() < 0.01
    assert np.abs(full["accuracy"] - full["confidence"]).max() < 0.03
    # flattened probabilities: the small ones are too large (accuracy << confidence below
    # 0.05), the large ones too small; a top-class diagram would not see the first
    flat = behaviour.calibration_curve(q ** 0.5 / (q ** 0.5).sum(1, keepdims=True), drawn)
    flat = flat[flat["n"] > 2000]
    low, high = flat[flat["bin_high"] <= 0.05], flat[flat["bin_low"] >= 0.25]
    assert len(low) >= 5 and (low["accuracy"] < 0.5 * low["confidence"]).all()
    assert len(high) >= 1 and (high["accuracy"] > high["confidence"] + 0.1).all()


def test_calibration_rejection_mcnemar_and_agreement():
    rng = np.random.default_rng(10)
    n = 2000
    confidence = rng.uniform(0.5, 1.0, n)
    labels = np.zeros(n, int)
    predicted = np.where(rng.random(n) < confidence, 0, 1)  # perfectly calibrated
    p = np.empty((n, 2))
    p[np.arange(n), predicted] = confidence
    p[np.arange(n), 1 - predicted] = 1 - confidence
    table = behaviour.reliability_diagram(p, labels)
    assert np.abs(table["accuracy"] - table["confidence"]).max() < 0.1
    grid = np.linspace(0.3, 0.95, 8)
    fit = behaviour.fit_log_calibration(grid, np.exp(-2.0 * (1 - grid ** 0.7)))
    assert fit["a"] == pytest.approx(-2.0, rel=1e-4) and fit["c"] == pytest.approx(0.7, rel=1e-4)
    assert 0 <= behaviour.top_confidence_rejection_rate(p, labels) <= 1
    a = rng.random(300) < 0.9
    b = rng.random(300) < 0.6
    assert behaviour.mcnemar_test(a, b)["p_value"] < 1e-6
    assert behaviour.mcnemar_test(a, a)["p_value"] == 1.0
    logits = rng.standard_normal((300, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    lab = rng.integers(0, 5, 300)
    assert behaviour.incorrect_label_agreement(probs, probs, lab)["agreement"] == 1.0
    assert behaviour.logit_difference_correlation(logits, logits, lab) == pytest.approx(1.0)
    with pytest.raises(MetricError, match="NaN"):
        behaviour.accuracy_over_steps({"x": np.full((3, 2, 2), np.nan)}, np.zeros(3, int))
