"""Lazy (dask-backed) BrainIO open, streaming repetition averages, simulator round trip."""

import dask.array
import numpy as np
import pandas as pd
import pytest

import data_adapters
from workbench import simulators
from conftest import make_assembly
from workbench.assembly import average_repetitions, grouped_nanmean


@pytest.fixture(scope="module")
def small_simulation(tmp_path_factory):
    path = tmp_path_factory.mktemp("lazy") / "macaque.nc"
    return simulators.simulate_macaque(path, n_stimuli=40, sites_per_region=4, n_repetitions=6, seed=5)


def test_lazy_open_keeps_values_on_disk_and_averages_the_same(small_simulation):
    lazy = data_adapters.load(small_simulation.path, lazy=True, chunk_mb=0.05)
    assert isinstance(lazy.data, dask.array.Array) and len(lazy.chunks[0]) > 1
    eager = data_adapters.load(small_simulation.path)
    np.testing.assert_array_equal(lazy.values, eager.values)
    streamed = average_repetitions(lazy, block_mb=0.01)  # many blocks
    assert isinstance(streamed.data, np.ndarray)
    np.testing.assert_allclose(streamed.values, average_repetitions(eager).values, rtol=1e-6)
    assert lazy.attrs["nonfinite"] == "not counted (lazy)"


def test_streaming_average_equals_one_pass_with_nans():
    da = make_assembly(n_stimuli=7, repetitions=5, seed=2)
    values = da.values.copy()
    values[::3, 1, 0] = np.nan
    values[values > 1.5] = np.nan
    da = da.copy(data=values)
    codes = np.tile(np.arange(7), 5)
    expected = grouped_nanmean(values.reshape(35, -1), codes, 7).reshape(7, *values.shape[1:])
    for block_mb in (1e-4, 64):
        np.testing.assert_allclose(average_repetitions(da, block_mb=block_mb).values, expected)
    # an independent computation, stimulus by stimulus
    for s in range(7):
        np.testing.assert_allclose(expected[s], np.nanmean(values[codes == s], axis=0))


def test_simulated_counts_do_not_depend_on_how_they_are_computed(small_simulation, tmp_path):
    again = simulators.simulate_macaque(tmp_path / "again.nc", n_stimuli=40, sites_per_region=4,
                                           n_repetitions=6, seed=5)
    a = data_adapters.load(small_simulation.path)
    b = data_adapters.load(again.path)
    np.testing.assert_array_equal(a.values, b.values)
    # trial means approach the planted rates (Poisson: SE = sqrt(rate / n))
    averaged = average_repetitions(a)
    z = (averaged - small_simulation.rates) / np.sqrt(small_simulation.rates / 6)
    assert abs(float(z.mean())) < 0.05 and 0.9 < float(z.std()) < 1.1


def test_simulator_writes_hvm_columns_and_a_stimulus_set(small_simulation):
    trials = data_adapters.load(small_simulation.path)
    for name in ("image_id", "object_name", "category_name", "variation", "repetition"):
        assert name in trials.coords
    assert set(trials.variation.values) == {"V0", "V3", "V6"}
    csv = small_simulation.path.with_name("macaque_stimuli.csv")
    public = data_adapters.load(small_simulation.path, stimulus_set=csv, stimulus_split="public")
    private = data_adapters.load(small_simulation.path, stimulus_set=csv, stimulus_split="private")
    assert set(public.variation.values) == {"V0", "V3"} and set(private.variation.values) == {"V6"}
    assert public.sizes["presentation"] + private.sizes["presentation"] == trials.sizes["presentation"]
    # written without images, the table names no files (its ids name the embedded digits)
    assert "filename" not in public.coords and "filename" not in pd.read_csv(csv).columns


def test_lazy_selection_stays_lazy(small_simulation):
    da = data_adapters.load(small_simulation.path, lazy=True, region="IT", time_window=(50, 150))
    assert isinstance(da.data, dask.array.Array)
    assert set(da.region.values) == {"IT"} and da.time_bin_start.values.min() >= 50


def test_variance_components_ceiling_streams_a_lazy_file(small_simulation):
    from workbench.metrics.ceiling import variance_components_ceiling

    lazy = data_adapters.load(small_simulation.path, lazy=True, chunk_mb=0.05)
    eager = data_adapters.load(small_simulation.path)
    streamed = variance_components_ceiling(lazy, block_mb=0.01)
    assert isinstance(lazy.data, dask.array.Array)
    np.testing.assert_allclose(streamed.values, variance_components_ceiling(eager).values, atol=1e-12)
    # and it tracks the planted reliability of the trial average (40 stimuli x 6 repetitions: measured
    # mean |error| 0.093 and r = 0.71 over cells whose planted reliability spans an SD of only 0.14)
    keep = small_simulation.reliability.values > 0.3
    planted = small_simulation.reliability.values[keep]
    assert np.abs(streamed.values[keep] - planted).mean() < 0.12
    assert np.corrcoef(streamed.values[keep], planted)[0, 1] > 0.6


def test_average_and_ceiling_read_a_lazy_file_once_and_equal_the_two_passes(small_simulation, monkeypatch):
    from workbench import assembly
    from workbench.metrics import ceiling as ceiling_module
    from workbench.metrics.ceiling import average_and_ceiling, variance_components_ceiling

    lazy = data_adapters.load(small_simulation.path, lazy=True, chunk_mb=0.05)
    # a few missing trials: per-cell counts, and a stimulus-cell with no finite trial stays NaN
    eager = data_adapters.load(small_simulation.path, nan_policy="propagate").load()
    values = eager.values.copy()
    values[0, 0, :] = np.nan
    first = np.flatnonzero(eager.stimulus_id.values == eager.stimulus_id.values[1])
    values[first, 1, 2] = np.nan
    damaged = eager.copy(data=values)
    for trials, block_mb in ((lazy, 0.01), (damaged, 64)):
        reads = []
        original = ceiling_module.stimulus_moments
        monkeypatch.setattr(ceiling_module, "stimulus_moments", lambda *a, **k: reads.append(1) or original(*a, **k))
        averaged, ceiling = average_and_ceiling(trials, block_mb=block_mb)
        monkeypatch.undo()
        assert len(reads) == 1
        expected = assembly.average_repetitions(trials, block_mb=block_mb)
        np.testing.assert_allclose(averaged.values, expected.values, rtol=1e-6, atol=1e-6)
        assert np.array_equal(np.isnan(averaged.values), np.isnan(expected.values))
        assert averaged.dtype == expected.dtype and averaged.dims == expected.dims
        assert set(averaged.coords) == set(expected.coords)
        np.testing.assert_array_equal(averaged.stimulus_id.values, expected.stimulus_id.values)
        np.testing.assert_allclose(ceiling.values, variance_components_ceiling(trials, block_mb=block_mb).values,
                                   atol=1e-12)
    assert np.isnan(averaged.values[np.flatnonzero(averaged.stimulus_id.values == eager.stimulus_id.values[1])[0],
                                    1, 2])
