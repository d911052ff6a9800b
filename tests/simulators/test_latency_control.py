"""Positive control for the temporal statistics: on the simulated recording, the planted
region latencies (V4 50 ms, IT 70 ms) come back from the encoding time course within one
10 ms bin, with V4 before IT."""

import pytest

import data_adapters
from workbench import simulators
from workbench.metrics import encoding_score
from workbench.metrics.latency import model_vs_brain, response_latencies
from workbench.models import SparseRandomProjection, extract
from workbench.stats import heldout_permutation_test


@pytest.fixture(scope="module")
def simulated_result(tmp_path_factory):
    sim = simulators.simulate_macaque(tmp_path_factory.mktemp("lat") / "m.nc", n_stimuli=160, seed=0)
    trials = data_adapters.load(sim.path)
    features = extract(sim.generating_network(), sim.stimuli, protocol=sim.protocol, progress=False,
                       reduction=SparseRandomProjection(128, seed=0, keep_small=True))
    return sim, encoding_score(features, trials, n_splits=5, seed=0)


def test_planted_latencies_are_recovered_within_one_bin(simulated_result):
    sim, result = simulated_result
    test = heldout_permutation_test(result, n_permutations=500, seed=0, clusters=True)
    scores = response_latencies(result, test, n_boot=200, seed=0)
    onset = {s.region: s for s in scores if s["latency"] == "onset"}
    planted = {region: latency for region, _, latency in sim.regions}
    for region in ("V4", "IT"):
        assert abs(onset[region].value - planted[region]) <= 10, (region, onset[region].value)
        assert onset[region].ci_low <= onset[region].value <= onset[region].ci_high
    difference = next(s for s in scores if s.region == "IT-V4" and s["latency"] == "onset")
    assert 10 <= difference.value <= 30 and difference.ci_low > 0 and difference.p_value <= 0.05
    rise = {s.region: s.value for s in scores if s["latency"] == "rise50"}
    assert rise["V4"] < rise["IT"]
    comparison = model_vs_brain(result, n_boot=100, seed=0)
    assert {s.region for s in comparison} == {"V4", "IT"} and all(s.units == "ms" for s in comparison)


def test_the_region_onset_read_off_the_data_is_the_planted_latency(simulated_result):
    """The macaque benchmark puts a model's first step at this onset (same for every model)."""
    from workbench.assembly import average_repetitions, select_neuroids
    from workbench.errors import MetricError
    from workbench.metrics.latency import data_onset_ms

    sim, _ = simulated_result
    trials = data_adapters.load(sim.path)
    onsets = {}
    for region, _, latency in sim.regions:
        # The generating network's gated units build up over their first steps, so the half-rise
        # of the information can fall one 10 ms bin after the planted start.
        sites = select_neuroids(trials, region=region)
        onset, measure = data_onset_ms(sites)
        assert measure == "split_half_ceiling" and 0 <= onset - latency <= 10, (region, onset)
        onset_sd, measure = data_onset_ms(average_repetitions(sites))  # no repetitions
        assert measure == "stimulus_sd" and 0 <= onset_sd - latency <= 20, (region, onset_sd)
        onsets[region] = onset
    assert onsets["V4"] < onsets["IT"]
    with pytest.raises(MetricError, match="onset is undefined"):
        data_onset_ms(trials.isel(time_bin=slice(0, 10)) * 0)
    with pytest.raises(MetricError, match="fraction"):
        data_onset_ms(trials, fraction=0)
