import shutil

import netCDF4
import numpy as np
import pytest
import xarray as xr

import data_adapters
from workbench import DataWarning
from conftest import assert_named_error as _assert_named_error, make_assembly
from workbench.assembly import DIMS, to_netcdf


def test_load_flat_multiindex_fixture(shared_data):
    path = shared_data / "brainio" / "assy_test_TestMe.nc"
    da = data_adapters.load(path)
    raw = xr.open_dataset(path)
    assert da.dims == DIMS and da.shape == (6, 3, 1)
    assert da.dtype == np.float64
    assert list(da.stimulus_id.values) == list(raw.stimulus_id.values)
    assert list(da.repetition.values) == list(raw.repetition.values)
    assert list(da.foo.values) == list(raw.foo.values)
    np.testing.assert_array_equal(da.values[:, :, 0], raw["data"].values)
    assert np.isnan(da.time_bin_start.values).all()  # static: window unknown
    assert da.attrs["simulated"] is False and da.attrs["source"] == str(path)


def test_load_packaged_time_binned_fixture(shared_data):
    path = shared_data / "brainio" / "assy_test_package_assembly.nc"
    da = data_adapters.load(path)
    raw = xr.open_dataset(path)
    assert da.dims == DIMS and da.shape == (6, 3, 1)
    assert list(da.stimulus_id.values) == list(raw.image_id.values)  # image_id -> stimulus_id
    assert (da.time_bin_start.values, da.time_bin_end.values) == ([0], [10])
    np.testing.assert_array_equal(da.values, raw["__xarray_dataarray_variable__"].values)


def test_write_then_load_round_trip(tmp_path):
    da = make_assembly(repetitions=3)
    data_adapters.brainio.write(da, tmp_path / "x.nc")
    back = data_adapters.load(tmp_path / "x.nc")
    xr.testing.assert_equal(back, da)
    with netCDF4.Dataset(tmp_path / "x.nc") as raw:  # BrainIO layout: one variable 'data'
        assert [v for v in raw.variables if raw.variables[v].dimensions == DIMS] == ["data"]


def test_missing_path(tmp_path):
    _assert_named_error(tmp_path / "nope.nc", "file not found")


def test_directory(tmp_path):
    _assert_named_error(tmp_path, "is a directory")


def test_not_a_data_file_lists_formats(tmp_path):
    path = tmp_path / "notes.nc"
    path.write_text("hello, not netCDF\n")
    _assert_named_error(path, "brainio")


def test_truncated_netcdf(tmp_path, shared_data):
    source = (shared_data / "brainio" / "assy_test_TestMe.nc").read_bytes()
    path = tmp_path / "truncated.nc"
    path.write_bytes(source[: len(source) // 3])
    _assert_named_error(path, "truncated or corrupt")


def test_wrong_dims(tmp_path):
    path = tmp_path / "wrong.nc"
    xr.DataArray(np.zeros((2, 3)), dims=("trial", "unit"), name="data").to_netcdf(path)
    _assert_named_error(path, "missing ['presentation', 'neuroid']")


def test_several_variables_need_a_choice(tmp_path):
    path = tmp_path / "two.nc"
    xr.Dataset({"a": (("presentation", "neuroid"), np.zeros((2, 2))),
                "b": (("presentation", "neuroid"), np.zeros((2, 2)))}).to_netcdf(path)
    _assert_named_error(path, "variable=NAME")
    _assert_named_error(path, "no data variable 'c'", variable="c")


def test_missing_stimulus_id(tmp_path, shared_data):
    path = tmp_path / "nostim.nc"
    shutil.copy(shared_data / "brainio" / "assy_test_TestMe.nc", path)
    xr.open_dataset(path).load().drop_vars("stimulus_id").to_netcdf(path)
    _assert_named_error(path, "neither 'stimulus_id' nor 'image_id'")


def test_duplicate_neuroid_ids(tmp_path):
    da = make_assembly()
    da = da.assign_coords(neuroid_id=("neuroid", np.array(["a", "a", "b", "c"], dtype=object)))
    path = tmp_path / "dupes.nc"
    da.drop_attrs().to_netcdf(path)  # written by another tool: no contract check on write
    _assert_named_error(path, "must be unique")


def test_time_bins_stored_out_of_order_are_read_in_time_order(tmp_path):
    # a netCDF dimension has no order: a file merged from parts may hold its bins in any
    # order, and the analyses read the time axis as a time course
    da = make_assembly(n_bins=4)
    shuffled = da.isel(time_bin=[2, 0, 3, 1])
    shuffled.drop_attrs().to_netcdf(tmp_path / "shuffled.nc")
    for lazy in (False, True):
        with pytest.warns(DataWarning, match="out of time order"):
            back = data_adapters.load(tmp_path / "shuffled.nc", lazy=lazy)
        np.testing.assert_array_equal(back.time_bin_start.values, [0, 10, 20, 30])
        np.testing.assert_array_equal(np.asarray(back.values), da.values)
    # a repeated start cannot be put in order: still the contract's named error
    repeated = da.assign_coords(time_bin_start=("time_bin", [10.0, 0.0, 10.0, 30.0]))
    repeated.drop_attrs().to_netcdf(tmp_path / "repeated.nc")
    _assert_named_error(tmp_path / "repeated.nc", "increase strictly")


def _with_edges(da, start, end, units=None):
    da = da.drop_attrs().assign_coords(time_bin_start=("time_bin", start), time_bin_end=("time_bin", end))
    if units is not None:
        da.time_bin_start.attrs["units"] = da.time_bin_end.attrs["units"] = units
    return da


def test_time_bins_in_seconds_are_read_in_ms_or_refused_when_their_unit_is_unknown(tmp_path):
    da = make_assembly(n_bins=4)
    start, end = da.time_bin_start.values, da.time_bin_end.values
    ms = [0.0, 10.0, 20.0, 30.0]
    # the file says its unit: converted
    for units, scale in (("s", 1e3), ("seconds", 1e3), ("ms", 1.0), ("milliseconds since onset", 1.0),
                         ("us", 1e-3)):
        _with_edges(da, start / scale, end / scale, units).to_netcdf(tmp_path / "u.nc")
        back = data_adapters.load(tmp_path / "u.nc")
        np.testing.assert_allclose(back.time_bin_start.values, ms)
        np.testing.assert_allclose(back.time_bin_end.values, np.add(ms, 10))
    # seconds without units: 10 ms bins would read as 0.01 ms; refused with the option that reads them
    _with_edges(da, start / 1e3, end / 1e3).to_netcdf(tmp_path / "s.nc")
    assert "time_unit='s'" in str(_assert_named_error(tmp_path / "s.nc", "look like seconds"))
    for lazy in (False, True):
        back = data_adapters.load(tmp_path / "s.nc", time_unit="s", lazy=lazy)
        np.testing.assert_allclose(back.time_bin_start.values, ms)
        assert back.attrs["time_unit_read"] == "s"
    _assert_named_error(tmp_path / "s.nc", "not a unit of time", time_unit="furlong")
    # an unknown unit: read as ms, as before, with a warning that names the option
    _with_edges(da, start, end, "ticks").to_netcdf(tmp_path / "t.nc")
    with pytest.warns(DataWarning, match="time_unit="):
        back = data_adapters.load(tmp_path / "t.nc")
    np.testing.assert_allclose(back.time_bin_start.values, ms)
    # timedelta edges (xarray writes and reads them back as timedelta64)
    import pandas as pd

    _with_edges(da, pd.to_timedelta(start, unit="ms"), pd.to_timedelta(end, unit="ms")).to_netcdf(tmp_path / "d.nc")
    np.testing.assert_allclose(data_adapters.load(tmp_path / "d.nc").time_bin_start.values, ms)


def test_numeric_ids_stored_as_floats_match_the_stimulus_set_as_written(tmp_path):
    # a writer that stores image 3 as the float 3.0: the stimulus set's CSV names it "3"
    da = make_assembly().drop_attrs()
    n = da.sizes["presentation"]
    floats = da.drop_vars("stimulus_id").assign_coords(image_id=("presentation", np.arange(1.0, n + 1)),
                                                       neuroid_id=("neuroid", [7.0, 8.0, 9.5, 10.0]))
    floats.to_netcdf(tmp_path / "f.nc")
    (tmp_path / "set.csv").write_text("image_id,filename,obj\n" + "".join(f"{i},im{i}.png,o{i % 2}\n"
                                                                          for i in range(1, n + 1)))
    back = data_adapters.load(tmp_path / "f.nc", stimulus_set=tmp_path / "set.csv")
    assert list(back.stimulus_id.values) == [str(i) for i in range(1, n + 1)]
    assert list(back.neuroid_id.values) == ["7", "8", "9.5", "10"]
    assert list(back.object_name.values) == [f"o{i % 2}" for i in range(1, n + 1)]


def test_unknown_format_option(tmp_path):
    path = tmp_path / "x.nc"
    to_netcdf(make_assembly(), path)
    _assert_named_error(path, "unknown format 'matlab'", format="matlab")
    # a known format forced on the wrong file explains what it expected
    _assert_named_error(path, "HDF5 file without /dataset + /metadata", format="bdata")


def test_supported_formats_are_listed():
    assert "brainio" in data_adapters.supported_formats()
