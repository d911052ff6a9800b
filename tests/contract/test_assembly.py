import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import make_assembly
from workbench import AssemblyError, WorkbenchError
from workbench import assembly as A


def test_valid_assembly_passes_and_is_returned():
    da = make_assembly()
    assert A.validate(da) is da


def test_assembly_error_is_a_workbench_error():
    assert issubclass(AssemblyError, WorkbenchError)


BAD_CASES = {
    "not a DataArray": (lambda da: da.values, "xarray.DataArray"),
    "missing dim": (lambda da: da.isel(time_bin=0, drop=True), "missing ['time_bin']"),
    "wrong dim order": (lambda da: da.transpose("neuroid", "presentation", "time_bin"), "transpose"),
    "integer values": (lambda da: da.astype(np.int64), "float32 or float64"),
    "missing stimulus_id": (lambda da: da.drop_vars("stimulus_id"), "'stimulus_id'"),
    "missing neuroid_id": (lambda da: da.drop_vars("neuroid_id"), "'neuroid_id'"),
    "missing time_bin_start": (lambda da: da.drop_vars("time_bin_start"), "'time_bin_start'"),
    "numeric stimulus ids": (
        lambda da: da.assign_coords(stimulus_id=("presentation", np.arange(da.sizes["presentation"]))),
        "must hold strings",
    ),
    "duplicate neuroid ids": (
        lambda da: da.assign_coords(neuroid_id=("neuroid", np.array(["n0"] * da.sizes["neuroid"], dtype=object))),
        "must be unique",
    ),
    "non-finite bins": (
        lambda da: da.assign_coords(time_bin_start=("time_bin", [0.0, np.nan, 20.0])),
        "finite",
    ),
    "end before start": (
        lambda da: da.assign_coords(time_bin_end=("time_bin", [5.0, 5.0, 5.0])),
        "time_bin_end >= time_bin_start",
    ),
    "unsorted bins": (
        lambda da: da.assign_coords(time_bin_start=("time_bin", [10.0, 0.0, 20.0]),
                                    time_bin_end=("time_bin", [20.0, 10.0, 30.0])),
        "increase strictly",
    ),
    "string times": (
        lambda da: da.assign_coords(time_bin_start=("time_bin", ["a", "b", "c"])),
        "numeric milliseconds",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_each_contract_violation_is_named(case):
    breaker, expected = BAD_CASES[case]
    with pytest.raises(AssemblyError) as info:
        A.validate(breaker(make_assembly()))
    assert expected in str(info.value)


def test_multiindex_is_rejected_with_fix():
    da = make_assembly().set_index(presentation=["stimulus_id", "category_name"])
    with pytest.raises(AssemblyError, match="reset_index"):
        A.validate(da)


def test_coord_on_wrong_dim_is_rejected():
    da = make_assembly().drop_vars("time_bin_end")
    da = da.assign_coords(time_bin_end=("neuroid", np.arange(da.sizes["neuroid"], dtype=float)))
    with pytest.raises(AssemblyError, match="'time_bin_end' must lie along dim 'time_bin'"):
        A.validate(da)


def test_static_assembly_may_have_unknown_window():
    da = make_assembly(n_bins=1).assign_coords(time_bin_start=("time_bin", [np.nan]),
                                               time_bin_end=("time_bin", [np.nan]))
    A.validate(da)


def test_average_repetitions_matches_pandas_groupby():
    trials = make_assembly(n_stimuli=5, repetitions=4, seed=1)
    trials = trials.isel(presentation=np.random.default_rng(0).permutation(trials.sizes["presentation"]))
    trials.values[3, 1, 2] = np.nan
    averaged = A.average_repetitions(trials)
    assert averaged.sizes["presentation"] == 5
    assert "repetition" not in averaged.coords
    assert "category_name" in averaged.coords  # constant within stimulus: kept
    first_seen = pd.unique(trials.stimulus_id.values)
    assert list(averaged.stimulus_id.values) == list(first_seen)
    frame = pd.DataFrame(trials.values.reshape(len(trials.presentation), -1))
    expected = frame.groupby(trials.stimulus_id.values).mean().loc[first_seen].to_numpy()
    np.testing.assert_allclose(averaged.values.reshape(5, -1), expected)


def test_average_repetitions_drops_coords_that_vary_within_stimulus():
    trials = make_assembly(n_stimuli=3, repetitions=2)
    trials = trials.assign_coords(session=("presentation", np.arange(6)))
    assert "session" not in A.average_repetitions(trials).coords


def test_align_pairs_by_stimulus_id_not_position():
    a = make_assembly(n_stimuli=6, seed=1)
    b = make_assembly(n_stimuli=6, seed=2).isel(presentation=[5, 3, 1, 0])
    a2, b2 = A.align(a, b)
    assert list(a2.stimulus_id.values) == ["s0", "s1", "s3", "s5"]
    assert list(b2.stimulus_id.values) == list(a2.stimulus_id.values)
    np.testing.assert_array_equal(b2.values, b.sel(presentation=[3, 2, 1, 0]).values)


def test_align_of_assemblies_already_in_step_does_not_copy_them():
    """The common case (features extracted for the recording's stimuli, on its bins) keeps
    the arrays: a fancy-index copy of a 1,600-image layer cost 0.3 s and its memory."""
    a, b = make_assembly(n_stimuli=6, seed=1), make_assembly(n_stimuli=6, seed=2)
    a2, b2 = A.align(a, b)
    assert np.shares_memory(a2.values, a.values) and np.shares_memory(b2.values, b.values)
    a3, b3 = A.align_time_bins(a2, b2)
    assert np.shares_memory(a3.values, a.values) and np.shares_memory(b3.values, b.values)
    reordered, _ = A.align(a.isel(presentation=[1, 0, 2, 3, 4, 5]), b)
    assert list(reordered.stimulus_id.values) == ["s1", "s0", "s2", "s3", "s4", "s5"]
    _, b4 = A.align(a.isel(presentation=[1, 0, 2, 3, 4, 5]), b)
    np.testing.assert_array_equal(b4.values, b.values[[1, 0, 2, 3, 4, 5]])
    # a model's bins as a run inside the recording's (features 25 bins, recording 40): views too
    long = make_assembly(n_stimuli=6, n_bins=8, seed=3)
    short = long.isel(time_bin=slice(2, 5)).copy(deep=True)
    short_aligned, long_aligned = A.align_time_bins(short, long)
    assert np.shares_memory(long_aligned.values, long.values)
    xr.testing.assert_identical(long_aligned, long.isel(time_bin=[2, 3, 4]))
    xr.testing.assert_identical(short_aligned, short)
    gappy = long.isel(time_bin=[1, 3, 4]).copy(deep=True)  # not a run: selected (copied) as before
    _, selected = A.align_time_bins(gappy, long)
    xr.testing.assert_identical(selected, long.isel(time_bin=[1, 3, 4]))


def test_align_without_shared_stimuli_is_an_error():
    b = make_assembly().assign_coords(stimulus_id=("presentation", np.array([f"x{i}" for i in range(6)], dtype=object)))
    with pytest.raises(AssemblyError, match="share no stimulus_id"):
        A.align(make_assembly(), b)


def test_align_with_repeated_ids_asks_for_averaging():
    with pytest.raises(AssemblyError, match="average_repetitions"):
        A.align(make_assembly(repetitions=2), make_assembly())


def test_align_time_bins_inner_join_and_error():
    a = make_assembly(n_bins=3)
    b = make_assembly(n_bins=5).isel(time_bin=[1, 2, 3, 4])
    a2, b2 = A.align_time_bins(a, b)
    assert list(a2.time_bin_start.values) == [10.0, 20.0] == list(b2.time_bin_start.values)
    shifted = b.assign_coords(time_bin_start=b.time_bin_start + 5, time_bin_end=b.time_bin_end + 5)
    with pytest.raises(AssemblyError, match="share no time bin"):
        A.align_time_bins(a, shifted)


def test_select_time_bins():
    da = make_assembly(n_bins=5)
    assert list(A.select_time_bins(da, 10, 40).time_bin_start.values) == [10.0, 20.0, 30.0]
    assert A.select_time_bins(da, start=30).sizes["time_bin"] == 2
    with pytest.raises(AssemblyError, match="no time bin"):
        A.select_time_bins(da, 100, 200)


def test_netcdf_round_trip_preserves_dims_coords_attrs(tmp_path):
    da = make_assembly(repetitions=2, dtype=np.float32)
    da.attrs.update({"simulated": True, "parameters": {"seed": 3, "regions": ["V4", "IT"]},
                     "units": "spikes", "gain": 1.5, "nothing": None})
    path = tmp_path / "a.nc"
    A.to_netcdf(da, path)
    back = A.from_netcdf(path)
    assert back.dims == da.dims and back.dtype == np.float32
    xr.testing.assert_equal(back, da)  # values, dims and every coord
    for name, coord in da.coords.items():
        assert back.coords[name].dims == coord.dims
    assert back.attrs == da.attrs
    assert [p.name for p in tmp_path.iterdir()] == ["a.nc"]  # no temp file left behind


def test_failed_write_keeps_previous_file(tmp_path):
    from workbench.storage import atomic_path

    target = tmp_path / "scores.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


@pytest.mark.parametrize("values, wanted", [
    (np.array(["s1", "s2", "s3", "s2"], dtype=object), ["s2", "zz", "s2"]),  # object ids, repeated wanted
    (np.array(["V4", "IT", "V4"]), np.array(["IT"])),                          # numpy str
    (np.array([1, 2, 3]), [1.0, 3]),                                          # numbers of mixed types
    (np.array(["1", "2"]), [1]),                                              # text never equals a number
    (np.array([], dtype=object), ["a"]),
])
def test_is_member_agrees_with_numpy_isin(values, wanted):
    mask = A.is_member(values, wanted)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, np.isin(values, wanted))


@pytest.mark.parametrize("coord, values", [
    ("neuroid_id", lambda da: np.array(da.neuroid_id.values.astype(str), dtype=np.dtypes.StringDType())),  # zarr
    ("neuroid_id", lambda da: np.arange(da.sizes["neuroid"])),
    ("stimulus_id", lambda da: np.arange(da.sizes["presentation"]) % 4),
])
def test_the_fix_printed_for_non_string_ids_works_when_run(coord, values):
    da = make_assembly()
    da = da.assign_coords({coord: (A.REQUIRED_COORDS[coord], values(da))})
    with pytest.raises(AssemblyError, match="must hold strings") as info:
        A.validate(da)
    fix = str(info.value).split("(fix: ", 1)[1][:-1]
    fixed = eval(fix, {"da": da})
    assert A.validate(fixed) is fixed
