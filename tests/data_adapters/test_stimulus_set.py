"""BrainIO extras: stimulus-set CSV merge (real HvM metadata), splits, selections, overlap."""

import numpy as np
import pandas as pd
import pytest

import data_adapters
from conftest import make_assembly
from workbench import DataFormatError, DataWarning
from workbench.assembly import to_netcdf


@pytest.fixture(scope="module")
def hvm_csv(shared_data):
    return shared_data / "hvm" / "hvm_stimulus_metadata.csv"


def test_hvm_metadata_loads_with_contract_names(hvm_csv):
    frame = data_adapters.load_stimulus_set(hvm_csv)
    assert len(frame) == 5760 and frame["stimulus_id"].is_unique
    assert {"stimulus_id", "object_name", "category_name", "variation", "filename"} <= set(frame.columns)
    assert frame["category_name"].nunique() == 8 and frame["object_name"].nunique() == 64
    raw = pd.read_csv(hvm_csv)
    assert list(frame["stimulus_id"]) == list(raw["id"]) and list(frame["variation"]) == list(raw["var"])


def test_hvm_public_and_private_splits(hvm_csv):
    public = data_adapters.load_stimulus_set(hvm_csv, split="public")
    private = data_adapters.load_stimulus_set(hvm_csv, split="private")
    assert (len(public), len(private)) == (3200, 2560)
    assert set(public["variation"]) == {"V0", "V3"} and set(private["variation"]) == {"V6"}
    assert not set(public["stimulus_id"]) & set(private["stimulus_id"])


def _hvm_assembly(hvm_csv, tmp_path, n_public=4, n_private=2):
    frame = data_adapters.load_stimulus_set(hvm_csv)
    ids = np.concatenate([frame.loc[frame.variation == "V3", "stimulus_id"].to_numpy()[:n_public],
                          frame.loc[frame.variation == "V6", "stimulus_id"].to_numpy()[:n_private]])
    ids = ids[::-1]  # not in the CSV's order: the merge must go by id
    n = len(ids)
    da = make_assembly(n_stimuli=n, repetitions=2).drop_vars("category_name")
    da = da.assign_coords(stimulus_id=("presentation", np.tile(ids, 2).astype(object)))
    path = tmp_path / "hvm_like.nc"
    to_netcdf(da, path)
    return path, frame


def test_merge_by_stimulus_id_and_split(hvm_csv, tmp_path):
    path, frame = _hvm_assembly(hvm_csv, tmp_path)
    da = data_adapters.load(path, stimulus_set=hvm_csv)
    by_id = frame.set_index("stimulus_id")
    expected = by_id.loc[da.stimulus_id.values, "category_name"].to_numpy()
    assert list(da.category_name.values) == list(expected)
    assert list(da.s.values) == list(by_id.loc[da.stimulus_id.values, "s"])
    public = data_adapters.load(path, stimulus_set=hvm_csv, stimulus_split="public")
    assert public.sizes["presentation"] == 8 and set(public.variation.values) == {"V3"}


def test_stimulus_ids_missing_from_the_set(hvm_csv, tmp_path):
    path = tmp_path / "other.nc"
    to_netcdf(make_assembly(), path)
    with pytest.raises(DataFormatError, match="6 stimulus ids of the assembly are not in the stimulus set") as info:
        data_adapters.load(path, stimulus_set=hvm_csv)
    assert "hvm_stimulus_metadata.csv" in str(info.value)


@pytest.mark.parametrize("content, match", [
    ("filename,obj\na.png,dog\n", "no stimulus id column"),
    ("stimulus_id,obj\na,dog\na,cat\n", "stimulus_id repeats"),
    ("", "cannot be read as CSV"),
])
def test_bad_stimulus_set_files(tmp_path, content, match):
    path = tmp_path / "stimuli.csv"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=match) as info:
        data_adapters.load_stimulus_set(path)
    assert str(path) in str(info.value)


def test_bad_split_requests(hvm_csv, tmp_path):
    with pytest.raises(DataFormatError, match="unknown split 'secret'"):
        data_adapters.load_stimulus_set(hvm_csv, split="secret")
    path = tmp_path / "ids.csv"
    path.write_text("stimulus_id\na\n")
    with pytest.raises(DataFormatError, match="no 'variation'"):
        data_adapters.load_stimulus_set(path, split="public")
    assembly, _ = _hvm_assembly(hvm_csv, tmp_path)
    with pytest.raises(DataFormatError, match="needs a stimulus_set"):
        data_adapters.load(assembly, stimulus_split="public")


def test_region_animal_and_time_selection(tmp_path):
    da = make_assembly(n_neuroids=6, n_bins=5).assign_coords(
        animal=("neuroid", np.array(["a", "b"] * 3, dtype=object)))
    path = tmp_path / "x.nc"
    to_netcdf(da, path)
    it = data_adapters.load(path, region="IT", animal="a", time_window=(10, 40))
    assert set(it.region.values) == {"IT"} and set(it.animal.values) == {"a"}
    assert list(it.time_bin_start.values) == [10.0, 20.0, 30.0]
    with pytest.raises(DataFormatError, match=r"no neuroid has region in \['MT'\]; available: \['IT', 'V4'\]"):
        data_adapters.load(path, region="MT")


def test_overlapping_windows_are_reported(tmp_path):
    da = make_assembly(n_bins=4)
    da = da.assign_coords(time_bin_end=da.time_bin_start + 20)  # 20 ms windows every 10 ms
    path = tmp_path / "overlap.nc"
    to_netcdf(da, path)
    with pytest.warns(DataWarning, match="20 ms windows every 10 ms"):
        loaded = data_adapters.load(path)
    assert loaded.attrs["time_bin_overlap"] == {"window_ms": 20.0, "step_ms": 10.0}
    plain = tmp_path / "plain.nc"
    to_netcdf(make_assembly(n_bins=4), plain)
    assert "time_bin_overlap" not in data_adapters.load(plain).attrs


@pytest.mark.parametrize("column", ["stimulus_id", "filename"])
def test_a_row_without_an_id_or_a_file_is_a_named_error(tmp_path, column):
    """pandas 3 keeps a missing cell as NaN through astype(str): a stimulus set with an empty
    id loaded a NaN id, and an empty file name raised TypeError from pathlib."""
    from PIL import Image

    from workbench.stimuli import from_image_files

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    table = pd.DataFrame({"stimulus_id": ["a", "b"], "filename": ["a.png", "a.png"]}).astype(object)
    table.loc[1, column] = np.nan
    table.to_csv(tmp_path / "set.csv", index=False)
    with pytest.raises(DataFormatError, match="is empty in 1 row|name no image file") as info:
        from_image_files(data_adapters.load_stimulus_set(tmp_path / "set.csv"), size=8)
    assert str(tmp_path / "set.csv") in str(info.value)



def test_a_file_name_with_a_nul_is_a_named_error(tmp_path):
    """A NUL inside a file name made every pathlib call raise ValueError ("embedded null
    byte"), in the loader and in the report's cache key of the image files."""
    from workbench.benchmarks.base import _stimulus_files_digest

    path = tmp_path / "set.csv"
    path.write_bytes(b"stimulus_id,filename\na,a.png\nb,b\x00.png\n")
    assert len(_stimulus_files_digest(path)) == 64
    with pytest.raises(DataFormatError, match="holds a control character") as info:
        data_adapters.load_stimulus_set(path)
    assert str(path) in str(info.value)


def test_the_cache_key_of_a_zipped_stimulus_set_sees_its_images(tmp_path):
    """A BrainIO set's images live in the ZIP beside its CSV: replacing one must change the
    key of every cached result that used the set (it hashed 'missing' files before)."""
    import zipfile

    from PIL import Image

    from workbench.benchmarks.base import _stimulus_files_digest

    pd.DataFrame({"stimulus_id": ["a"], "filename": ["a.png"]}).to_csv(tmp_path / "set.csv", index=False)
    digests = []
    for value in (0, 255):
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(tmp_path / "a_source.png")
        with zipfile.ZipFile(tmp_path / "set.zip", "w") as archive:
            archive.write(tmp_path / "a_source.png", "a.png")
        digests.append(_stimulus_files_digest(tmp_path / "set.csv"))
    assert digests[0] != digests[1]


def test_the_data_key_sees_every_file_the_loader_reads(tmp_path):
    """A folder's key was its path (edits to its volumes kept stale results); an Analyze
    header's key missed its .img (and SPM's .mat, its orientation); a BIDS run's key missed its
    sidecar and events."""
    from workbench.benchmarks.base import data_digest
    from workbench.keys import file_sha256

    single = tmp_path / "ratings.csv"
    single.write_text("a\n1\n")
    assert data_digest(single) == file_sha256(single)  # single files keep their keys
    folder = tmp_path / "volumes"
    folder.mkdir()
    (folder / "v1.nii").write_bytes(b"1")
    (tmp_path / "run.hdr").write_bytes(b"h")
    (tmp_path / "run.img").write_bytes(b"1")
    (tmp_path / "run.mat").write_bytes(b"m")  # SPM's orientation of an Analyze pair
    (tmp_path / "sub-01_task-a_bold.nii.gz").write_bytes(b"b")
    (tmp_path / "sub-01_task-a_bold.json").write_text('{"RepetitionTime": 2}')
    (tmp_path / "sub-01_task-a_events.tsv").write_text("onset\n0\n")
    edits = [folder / "v1.nii", tmp_path / "run.img", tmp_path / "run.mat", tmp_path / "sub-01_task-a_bold.json",
             tmp_path / "sub-01_task-a_events.tsv"]
    for path, edited in zip([folder, tmp_path / "run.hdr", tmp_path / "run.img", tmp_path / "sub-01_task-a_bold.nii.gz",
                             tmp_path / "sub-01_task-a_bold.nii.gz"], edits):
        before = data_digest(path)
        edited.write_bytes(edited.read_bytes() + b"2")
        assert data_digest(path) != before, edited


def test_ids_keep_their_text_in_every_table(tmp_path):
    """Read as numbers, the id "0001" became "1.0" and "1e3" "1000.0" (pandas parses the
    column as float once it holds a blank), so a stimulus set no longer matched a recording,
    an events table or a ratings file that keeps the text."""
    ids = ["0001", "1e3", "1.10"]
    pd.DataFrame({"stimulus_id": ids, "filename": ["a.png", "b.png", "c.png"]}).to_csv(tmp_path / "set.csv", index=False)
    assert data_adapters.load_stimulus_set(tmp_path / "set.csv")["stimulus_id"].tolist() == ids
    rows = [f"w{k},{i},1,1,{400 + k},1000" for k in range(2) for i in ids]
    (tmp_path / "trials.csv").write_text("worker,stimulus_id,truth,response,rt_ms,max_rt_ms\n" + "\n".join(rows) + "\n")
    assert sorted(data_adapters.load(tmp_path / "trials.csv").per_stimulus["stimulus_id"]) == sorted(ids)
    from data_adapters.nifti import read_events

    (tmp_path / "events.tsv").write_text("onset\tduration\tstimulus_id\n0\t2\t0001\n4\t2\t1e3\n8\tn/a\t1.10\n")
    events, _ = read_events(tmp_path / "events.tsv", tmp_path / "bold.nii")
    assert events["stimulus_id"].tolist() == ids
