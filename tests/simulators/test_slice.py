"""Known-answer test of the vertical slice's data half: simulate -> load -> ceiling. The model
half (extract -> encode; the generating network beats its random-init twin on both regions)
is the positive control in test_positive_control.py, through the benchmark a user runs."""

import numpy as np
import pytest

import data_adapters
from workbench import simulators
from workbench.metrics import split_half_ceiling

# Sizes fixed before looking at results: at 300 stimuli and 20 repetitions the sampling SD
# of a site's window-averaged ceiling is about 0.01-0.02 for reliabilities of 0.4-0.95.
N_STIMULI, SEED = 300, 0


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "macaque.nc"
    return simulators.simulate_macaque(path, n_stimuli=N_STIMULI, seed=SEED)


def test_simulated_file_loads_into_the_contract(simulation):
    trials = data_adapters.load(simulation.path)
    assert trials.dims == ("presentation", "neuroid", "time_bin")
    assert trials.sizes["presentation"] == N_STIMULI * simulation.n_repetitions
    assert trials.attrs["simulated"] is True
    assert list(np.diff(trials.time_bin_start.values)) == [10.0] * 39  # 10 ms bins, -100..300
    assert set(trials.region.values) == {"V4", "IT"}


def test_ceiling_matches_planted_reliability(simulation):
    trials = data_adapters.load(simulation.path)
    ceiling = split_half_ceiling(trials, n_splits=10, seed=SEED)
    per_site = ceiling.where(simulation.response_window).mean("time_bin")
    error = np.abs(per_site - simulation.site_reliability)
    assert float(error.max()) < 0.05, error.values
    # Outside the response the recording carries no stimulus information.
    silent = simulation.reliability.values == 0
    assert abs(float(np.nanmean(ceiling.values[silent]))) < 0.05
