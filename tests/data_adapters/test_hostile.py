"""Hostile input: every malformed file is a named error (the project's, naming the file),
never a raw library traceback, a silent wrong result or a hang."""

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
import xarray as xr
from PIL import Image

import data_adapters
from workbench.errors import DataFormatError, DataWarning, ExtractionError
from workbench.models import extract, load_weights, open_activations, zoo
from workbench.storage import remove_stale_temporaries
from workbench.stimuli import digits, from_image_files
from conftest import assert_named_error


def test_text_in_numeric_fields_is_named(tmp_path):
    da = xr.DataArray(np.array([["a", "b"], ["c", "d"]]), dims=("presentation", "neuroid"), name="data",
                      coords={"stimulus_id": ("presentation", ["x", "y"]), "neuroid_id": ("neuroid", ["n1", "n2"])})
    da.to_netcdf(tmp_path / "text.nc")
    assert_named_error(tmp_path / "text.nc", "holds <U1 values, not numbers")
    scipy.io.savemat(tmp_path / "text.mat", {"dataSet": np.array(["abc", "def"]), "metaData": {
        "key": np.array(["VoxelData"], dtype=object), "description": np.array([""], dtype=object),
        "value": np.ones((1, 3))}})
    assert_named_error(tmp_path / "text.mat", "dataSet holds non-numeric values")


def _image_set(folder, files):
    folder.mkdir(exist_ok=True)
    pd.DataFrame({"stimulus_id": [f"s{i}" for i in range(len(files))], "filename": files}).to_csv(
        folder / "set.csv", index=False)
    return data_adapters.load_stimulus_set(folder / "set.csv")


@pytest.mark.parametrize("content, words", [(b"", "cannot be read"), (b"GIF89a not really", "cannot be read"),
                                            (b"hello, I am text", "cannot be read")])
def test_bad_image_files_are_named(tmp_path, content, words):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "im.png").write_bytes(content)
    with pytest.raises(DataFormatError, match=words) as info:
        from_image_files(_image_set(tmp_path / "set", ["im.png"]))
    assert "im.png" in str(info.value) and "set.csv" in str(info.value)


def test_decompression_bombs_links_fifos_and_escapes_are_refused(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    Image.new("L", (12000, 12000)).save(folder / "bomb.png", optimize=True)
    with pytest.raises(DataFormatError, match="over the limit|decompression bomb|DecompressionBomb"):
        from_image_files(_image_set(folder, ["bomb.png"]))
    os.symlink(folder / "loop.png", folder / "loop.png")
    with pytest.raises(DataFormatError, match="loop.png"):
        from_image_files(_image_set(folder, ["loop.png"]))
    os.mkfifo(folder / "pipe.png")
    with pytest.raises(DataFormatError, match="not a regular file"):
        from_image_files(_image_set(folder, ["pipe.png"]))
    Image.new("L", (8, 8), 128).save(tmp_path / "outside.png")
    with pytest.raises(DataFormatError, match="outside the stimulus set's folder.*allow_outside=True"):
        from_image_files(_image_set(folder, ["../outside.png"]))
    shown = from_image_files(_image_set(folder, ["../outside.png"]), allow_outside=True, size=4)
    assert shown.images.shape == (1, 1, 4, 4)


def test_weights_that_are_text_or_pickles_are_refused_without_suggesting_unsafe_loading(tmp_path):
    model = zoo.build("b", channels=(4, 8))

    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    (tmp_path / "w.txt").write_text("not weights")
    with open(tmp_path / "w.pkl", "wb") as handle:
        pickle.dump({"conv": np.zeros(3)}, handle)
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    for name in ("w.txt", "w.pkl", "evil.pt"):
        with pytest.raises(DataFormatError) as info:
            load_weights(model, tmp_path / name)
        message = str(info.value)
        assert name in message and "weights_only=False" not in message and "weights_only" not in message
    with pytest.raises(DataFormatError, match="weights file not found"):
        load_weights(model, tmp_path / "none.pt")


@pytest.fixture
def store(tmp_path):
    model = zoo.build("b", channels=(4, 8))
    path = tmp_path / "acts.zarr"
    extract(model, digits(12, size=16), store=path, progress=False, batch_size=4)
    return path


def test_truncated_store_files_are_named_errors(store):
    chunk = next(p for p in (store / "activations").iterdir() if p.name[0].isdigit())
    chunk.write_bytes(chunk.read_bytes()[:10])
    with pytest.raises(DataFormatError, match="10 bytes, expected"):
        open_activations(store)
    (store / ".zmetadata").write_text("{")
    with pytest.raises(DataFormatError, match=".zmetadata"):
        open_activations(store)
    (store / "COMPLETE").unlink()
    with pytest.raises(ExtractionError, match="not a complete activation store"):
        open_activations(store)


def test_stale_temporaries_of_dead_runs_are_removed(store, tmp_path):
    dead = tmp_path / f".acts.zarr.{os.uname().nodename}-999999999.abc.tmp"
    mine = tmp_path / f".acts.zarr.{os.uname().nodename}-{os.getpid()}.def.tmp"
    for folder in (dead, mine):
        folder.mkdir()
        (folder / "x").write_text("partial")
    stale_file = tmp_path / f".scores.json.{os.uname().nodename}-999999999.x1.tmp"
    stale_file.write_text("{")
    remove_stale_temporaries(tmp_path)
    assert not dead.exists() and not stale_file.exists() and mine.exists() and store.exists()


def test_empty_and_implausible_assemblies_are_named(tmp_path):
    from conftest import make_assembly

    da = make_assembly()
    da.attrs = {}
    da.isel(neuroid=[]).to_dataset(name="data").to_netcdf(tmp_path / "empty.nc")
    assert_named_error(tmp_path / "empty.nc", "has no neuroids")
    da.assign_coords(time_bin_start=("time_bin", [0.0, 1e308, 1.5e308]),
                     time_bin_end=("time_bin", [10.0, 1.2e308, 1.6e308])).to_dataset(name="data").to_netcdf(
        tmp_path / "huge.nc")
    assert_named_error(tmp_path / "huge.nc", "within +-1e+09")


def test_a_recording_with_one_repetition_says_it_has_no_ceiling(tmp_path):
    from workbench import simulators
    from workbench.assembly import average_repetitions, to_netcdf
    from workbench.benchmarks import get

    sim = simulators.simulate_macaque(tmp_path / "rec.nc", n_stimuli=40, sites_per_region=4, n_repetitions=2, seed=1)
    single = average_repetitions(data_adapters.load(sim.path))
    to_netcdf(single, tmp_path / "single.nc")
    bench = get("macaque.IT.shared-time-ridge", path=tmp_path / "single.nc", n_permutations=20, cache_dir=tmp_path)
    score = bench.score({"name": "b", "zoo": "b", "train": False, "config": {"channels": [4, 8]}})[0]
    assert np.isnan(score.ceiling) and np.isnan(score.normalized) and "no split-half ceiling" in score["note"]


@pytest.mark.parametrize("character", ["\x00", "\x1b[31m", "\n", "\x85"])
def test_ids_with_control_characters_are_named_errors(tmp_path, character):
    """An id holding NUL, an escape sequence, a newline or a C1 control is damage or an
    injection, never a stimulus name (netCDF cannot store NUL in text; ESC rewrites
    terminals): every loader refuses it by name, through the contract's one check."""
    from workbench import simulators

    bad = f"digit_08{character}39"
    table = tmp_path / "set.csv"
    pd.DataFrame({"stimulus_id": ["a", bad], "filename": ["a.png", "b.png"]}).to_csv(table, index=False)
    with pytest.raises(DataFormatError, match="control character") as info:
        data_adapters.load_stimulus_set(table)
    assert str(table) in str(info.value)
    ratings = simulators.simulate_human_ratings(tmp_path / "ratings.csv", format="csv", n_workers=3, n_images=4).path
    frame = pd.read_csv(ratings)
    frame.loc[2, "stimulus_id"] = bad
    frame.to_csv(ratings, index=False)
    assert_named_error(ratings, "control character")
    if character == "\x00":  # netCDF itself cannot hold NUL in text
        return
    from conftest import make_assembly
    from workbench.assembly import to_netcdf

    to_netcdf(make_assembly(), tmp_path / "good.nc")
    with xr.open_dataset(tmp_path / "good.nc") as dataset:
        dataset = dataset.load()
    ids = dataset["stimulus_id"].values.astype(object)
    ids[1] = bad
    dataset = dataset.assign_coords(stimulus_id=(dataset["stimulus_id"].dims, ids))
    dataset.to_netcdf(tmp_path / "rec.nc", engine="netcdf4")
    assert_named_error(tmp_path / "rec.nc", "control character")


@pytest.mark.parametrize("packed, words", [
    ("[" * 100_000, "RecursionError"), ('{"a": ' + "9" * 5000 + "}", "ValueError"),
    ("{not json", "JSONDecodeError"), ("[1, 2]", "holds a list"),
])
def test_damaged_json_inside_files_is_a_named_error(tmp_path, packed, words):
    """JSON that a file carries (a netCDF's packed attributes, a psiTurk datastring, a
    simulated recording's embedded_stimuli) can be nested 100,000 deep (RecursionError) or
    hold a 5,000-digit number (ValueError): named errors, not raw ones."""
    import sqlite3

    from conftest import make_assembly
    from workbench import WorkbenchError, simulators
    from workbench.assembly import _JSON_ATTRS_KEY, to_netcdf
    from workbench.benchmarks.data import embedded_of

    to_netcdf(make_assembly(), tmp_path / "good.nc")
    with xr.open_dataset(tmp_path / "good.nc") as dataset:
        dataset = dataset.load()
    for name in dataset.data_vars:
        dataset[name].attrs[_JSON_ATTRS_KEY] = packed
    dataset.to_netcdf(tmp_path / "packed.nc")
    assert_named_error(tmp_path / "packed.nc", words)
    if words != "holds a list":
        database = simulators.simulate_human_ratings(tmp_path / "r.db", n_workers=2, n_images=3).path
        with sqlite3.connect(database) as connection:
            connection.execute("update turkdemo set datastring = ? where rowid = 1", (packed,))
        connection.close()
        assert_named_error(database, "is not JSON")
    with pytest.raises(WorkbenchError, match="embedded_stimuli"):
        embedded_of(xr.DataArray([0.0], attrs={"embedded_stimuli": packed}))


def test_empty_ids_and_overflowing_values_are_named(tmp_path):
    """An empty stimulus id (a missing cell read as "") and responses of magnitude 1e300
    (whose squares overflow, so every correlation is garbage) both loaded silently."""
    from conftest import make_assembly
    from workbench.assembly import to_netcdf

    da = make_assembly()
    ids = da.stimulus_id.values.astype(object)
    ids[2] = " "
    blank = da.assign_coords(stimulus_id=("presentation", ids))
    blank.attrs = {}
    blank.to_dataset(name="data").to_netcdf(tmp_path / "blank.nc")  # to_netcdf would refuse it
    assert_named_error(tmp_path / "blank.nc", "'stimulus_id' is empty at position 2")
    to_netcdf(da.copy(data=np.full(da.shape, 1e300)), tmp_path / "huge.nc")
    assert_named_error(tmp_path / "huge.nc", "magnitude 1e+300")


def test_a_path_with_a_nul_is_a_named_error():
    """os.stat raises ValueError ("embedded null byte") for such a path, before any OSError."""
    with pytest.raises(DataFormatError, match="is not a valid path"):
        data_adapters.load("/tmp/recording\x00.nc")


def _bdata_with_dataset(tmp_path, shared_data, name, **create):
    """The shared BData sample with its /dataset replaced by ``h5py.create_dataset(**create)``."""
    import h5py

    path = tmp_path / name
    path.write_bytes((shared_data / "bdata" / "sample_vmap.h5").read_bytes())
    with h5py.File(path, "a") as handle:
        n_columns = handle["dataset"].shape[1]
        del handle["dataset"]
        handle.create_dataset("dataset", **{key: value(n_columns) if callable(value) else value
                                            for key, value in create.items()})
    return path


def test_declared_sizes_beyond_memory_are_refused_before_reading(tmp_path, shared_data, monkeypatch):
    """Dimensions cost nothing to declare: a few-kB HDF5, netCDF, NIfTI or compressed MATLAB
    file can claim gigabytes. Reading them raised numpy's MemoryError, or got the process
    killed part-way when the size fitted what the kernel lets a process reserve."""
    import netCDF4
    import nibabel

    monkeypatch.setenv("WORKBENCH_MEMORY_LIMIT_GB", "0.05")
    h5 = _bdata_with_dataset(tmp_path, shared_data, "big.h5", shape=lambda n: (10 ** 6, n), dtype="f8",
                             chunks=lambda n: (1000, n))
    assert_named_error(h5, "/dataset declares shape (1000000, 11), 0.088 GB to read, more than the 0.05 GB",
                       require_roi=False)
    with netCDF4.Dataset(tmp_path / "big.nc", "w") as handle:
        handle.createDimension("presentation", 10 ** 5)
        handle.createDimension("neuroid", 100)
        handle.createVariable("data", "f4", ("presentation", "neuroid"))
    assert_named_error(tmp_path / "big.nc", "variable 'data' declares shape (100000, 100), 0.12 GB")
    header = nibabel.Nifti1Header()
    header.set_data_shape((200, 200, 200, 4))
    header.set_data_dtype(np.int16)
    with open(tmp_path / "big.nii", "wb") as handle:  # the header alone: the voxels are never read
        handle.write(header.binaryblock + b"\0" * 4)
    (tmp_path / "events.tsv").write_text("onset\tduration\tstimulus_id\n0\t1\ta\n")
    assert_named_error(tmp_path / "big.nii", "declares shape (200, 200, 200, 4), 0.32 GB",
                       events=tmp_path / "events.tsv", tr_s=2.0)
    table = data_adapters.bdata.read_table(shared_data / "bdata" / "sample_vmap.h5")
    values = np.zeros((table.values.shape[0], 10 ** 6))  # 80 MB of zeros: about 80 kB deflated
    values[:, :table.values.shape[1]] = table.values
    scipy.io.savemat(tmp_path / "bomb.mat", {"dataSet": np.zeros((10, 10 ** 6)), "metaData": {
        "key": np.array(table.keys, dtype=object).reshape(1, -1), "value": values}}, do_compression=True)
    assert (tmp_path / "bomb.mat").stat().st_size < 2e6
    assert_named_error(tmp_path / "bomb.mat", "inflates to more than the 0.05 GB", require_roi=False)


def test_unwritten_values_are_never_read_as_responses(tmp_path, shared_data):
    """A writer that stopped before writing its data leaves declared but unstored cells. HDF5
    reads them as the fill value (0) and netCDF as its default fill (9.97e36 for floats, which
    xarray does not mask): both loaded as responses."""
    import netCDF4

    h5 = _bdata_with_dataset(tmp_path, shared_data, "unwritten.h5", shape=lambda n: (8, n), dtype="f8")
    assert_named_error(h5, "/dataset declares shape (8, 11) but stores no values", require_roi=False)

    def recording(name, written):
        with netCDF4.Dataset(tmp_path / name, "w") as handle:
            handle.createDimension("presentation", 4)
            handle.createDimension("neuroid", 3)
            ids = {"stimulus_id": ("presentation", ["a", "b", "c", "d"]), "neuroid_id": ("neuroid", ["x", "y", "z"])}
            for key, (dim, items) in ids.items():
                handle.createVariable(key, str, (dim,))[:] = np.array(items, dtype=object)
            data = handle.createVariable("data", "f8", ("presentation", "neuroid"))
            data.coordinates = "stimulus_id neuroid_id"
            if written:
                data[:written] = np.arange(written * 3, dtype=float).reshape(written, 3)
        return tmp_path / name

    assert_named_error(recording("none.nc", 0), "holds no finite response: all 12 values are NaN")
    with pytest.warns(DataWarning, match="6 NaN and 0 inf values of 12"):
        part = data_adapters.load(recording("half.nc", 2))
    assert np.isnan(part.values[2:]).all() and np.nanmax(part.values) == 5.0
    kept = data_adapters.load(recording("none.nc", 0), nan_policy="propagate")
    assert np.isnan(kept.values).all()


def test_memory_errors_of_any_reader_are_named(tmp_path, monkeypatch):
    from data_adapters import registry

    def reader(path, **options):
        raise MemoryError("Unable to allocate 37.3 GiB")

    sniff, _, description = registry.FORMATS["human_csv"]
    monkeypatch.setitem(registry.FORMATS, "human_csv", (sniff, reader, description))
    (tmp_path / "ratings.csv").write_text("worker_id,stimulus_id,response,truth,rt\nw,s,1,1,500\n")
    assert_named_error(tmp_path / "ratings.csv", "needs more memory than is available to read as human_csv")


@pytest.mark.parametrize("offset, fmt, value, words", [
    (42, "<h", -4, "declares dimensions (-4, 4, 4, 6); every one must be positive"),  # dim[1]: numpy OverflowError
    (70, "<h", 777, "data code 777 not recognized"),  # datatype: nibabel HeaderDataError
    (116, "<f", float("inf"), "invalid intercept inf"),  # scl_inter: HeaderDataError
])
def test_damaged_nifti_header_fields_are_named_errors(tmp_path, offset, fmt, value, words):
    import struct

    import nibabel

    image = nibabel.Nifti1Image(np.ones((4, 4, 4, 6), np.int16), np.eye(4))
    image.header["pixdim"][4] = 2.0
    nibabel.save(image, tmp_path / "bold.nii")
    raw = bytearray((tmp_path / "bold.nii").read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    (tmp_path / "bold.nii").write_bytes(bytes(raw))
    (tmp_path / "events.tsv").write_text("onset\tduration\tstimulus_id\n0\t2\ta\n")
    nibabel.save(nibabel.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "mask.nii")
    assert_named_error(tmp_path / "bold.nii", words, events=tmp_path / "events.tsv",
                       masks={"V1": tmp_path / "mask.nii"})


def test_a_semicolon_or_tab_separated_table_says_how_to_save_it(tmp_path):
    """Spreadsheets in comma-decimal locales export ';'-separated "CSV" files."""
    (tmp_path / "trials.csv").write_text("worker;stimulus_id;truth;response;rt_ms;max_rt_ms\nw;s;1;1;400,5;1000\n")
    assert_named_error(tmp_path / "trials.csv", "separated by ';' (save it as a comma-separated CSV)")
    (tmp_path / "tabs.csv").write_text("worker\tstimulus_id\ttruth\tresponse\trt_ms\tmax_rt_ms\nw\ts\t1\t1\t400\t1000\n")
    assert_named_error(tmp_path / "tabs.csv", "separated by tabs")


def test_an_assembly_saved_inside_a_netcdf_group_names_the_group(tmp_path):
    from conftest import make_assembly
    from workbench.assembly import to_netcdf

    to_netcdf(make_assembly(), tmp_path / "root.nc")
    with xr.open_dataset(tmp_path / "root.nc") as dataset:
        dataset.load().to_netcdf(tmp_path / "grouped.nc", group="assembly")
    error = assert_named_error(tmp_path / "grouped.nc", "groups ['assembly']")
    assert "without group=" in str(error)


def test_a_netcdf_file_that_hangs_the_netcdf_library_is_a_named_error_in_bounded_time(tmp_path):
    """Found by fuzzing: 26 zero bytes in one object header of a netCDF-4 assembly made
    libnetcdf loop forever in ``netCDF4.Dataset`` (no signal interrupts it). The structure is
    opened in a time-limited child first. Run in a child here too, so a regression is a
    failed test, not a hung run; another library version may read the file, or name
    another problem: either is fine, a hang is not."""
    import subprocess
    import sys
    import time

    from workbench.assembly import to_netcdf

    from conftest import make_assembly

    to_netcdf(make_assembly(repetitions=2), tmp_path / "valid.nc")
    damaged = bytearray((tmp_path / "valid.nc").read_bytes())
    damaged[3632:3658] = bytes(26)
    path = tmp_path / "damaged.nc"
    path.write_bytes(bytes(damaged))
    code = ("import sys, data_adapters\n"
            "from data_adapters import brainio\n"
            "from workbench.errors import DataFormatError\n"
            "brainio.OPEN_TIMEOUT_S = 5\n"
            "try:\n"
            "    data_adapters.load(sys.argv[1])\n"
            "    print('loaded')\n"
            "except DataFormatError as error:\n"
            "    print('named' if sys.argv[1] in str(error) else 'unnamed', error)\n")
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.startswith(("loaded", "named")), child.stdout
    assert time.perf_counter() - start < 60


def test_the_netcdf_open_check_names_a_hang_and_a_crash_and_leaves_other_errors_to_the_reader(tmp_path,
                                                                                               monkeypatch):
    from data_adapters import brainio
    from workbench.assembly import to_netcdf

    from conftest import make_assembly

    path = tmp_path / "a.nc"
    to_netcdf(make_assembly(repetitions=2), path)
    monkeypatch.setattr(brainio, "_OPENED", {})
    monkeypatch.setattr(brainio, "OPEN_TIMEOUT_S", 1)
    monkeypatch.setattr(brainio, "_OPEN_CHECK", "import time\ntime.sleep(30)\n")
    assert_named_error(path, "did not finish reading the file's structure in 1 s")
    monkeypatch.setattr(brainio, "_OPEN_CHECK", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert_named_error(path, "crashed reading the file's structure")
    monkeypatch.setattr(brainio, "_OPEN_CHECK", "raise OSError('not this child')\n")
    assert data_adapters.load(path).sizes["presentation"] == 12  # the reader itself decides
    assert not brainio._OPENED  # a failed check is not remembered
    monkeypatch.undo()
    monkeypatch.setattr(brainio, "_OPENED", {})
    data_adapters.load(path)
    assert len(brainio._OPENED) == 1  # checked once per file and version of it
