"""NIfTI + BIDS events as real pipelines write them, and the files and paths that must be
refused by name: truncated images, FIFOs, symbolic-link loops."""

import os
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import data_adapters
from workbench.errors import DataFormatError, DataWarning
from conftest import assert_named_error

TR = 2.0


@pytest.fixture
def bold(tmp_path):
    """A 4 x 4 x 3 x 20 series whose voxel (1, 1, 1) is NaN in volume 3, and a 2-ROI label image."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 4, 3, 20)).astype(np.float32) + 100
    data[..., 3] += np.arange(16 * 3).reshape(4, 4, 3)  # volume 3 identifies voxels
    data[1, 1, 1, 3] = np.nan
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_xyzt_units("mm", "sec")
    image.header["pixdim"][4] = TR
    nib.save(image, tmp_path / "sub-01_task-blur_bold.nii.gz")
    labels = np.zeros((4, 4, 3), np.int16)
    labels[:2], labels[2:] = 1, 2
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "labels.nii.gz")
    return tmp_path / "sub-01_task-blur_bold.nii.gz", tmp_path / "labels.nii.gz", data


def _events(path, text):
    path.write_text(text.replace("|", "\t"))
    return path


def test_bids_events_tsv_with_na_durations_trial_type_and_stim_file(bold, tmp_path):
    series, labels, data = bold
    events = _events(tmp_path / "sub-01_task-blur_events.tsv",
                     "onset|duration|trial_type|stim_file\n0.0|n/a|clean|img/a.png\n6.0|2|blur|img/b.png\n"
                     "12.0|2.0|clean|img/a.png\n")
    da = data_adapters.load(series, events=events, labels=labels, label_names={1: "V1", 2: "V2"}, n_time_bins=3)
    assert list(da.stimulus_id.values) == ["img/a.png", "img/b.png", "img/a.png"]
    assert list(da.trial_type.values) == ["clean", "blur", "clean"] and list(da.repetition.values) == [0, 0, 1]
    assert np.isnan(da.duration.values[0]) and da.attrs["tr_s"] == TR
    by_type = data_adapters.load(series, events=events, labels=labels, n_time_bins=3, stimulus_column="trial_type")
    assert list(by_type.stimulus_id.values) == ["clean", "blur", "clean"]


def test_onsets_between_volumes_start_on_the_next_volume_never_before(bold, tmp_path):
    series, labels, data = bold
    events = pd.DataFrame({"onset": [0.0, 4.1, 9.9, 14.0], "duration": [1.0] * 4, "stimulus_id": list("abcd")})
    da = data_adapters.load(series, events=events, labels=labels, n_time_bins=2)
    np.testing.assert_allclose(da.onset_lag_s.values, [0.0, 1.9, 0.1, 0.0], atol=1e-9)
    assert (da.onset_lag_s.values >= 0).all()
    # event "b" (4.1 s) starts on volume 3 (6 s): its first bin is that volume
    voxel = np.flatnonzero((da.i.values == 0) & (da.j.values == 0) & (da.k.values == 2))[0]
    assert da.values[1, voxel, 0] == pytest.approx(float(data[0, 0, 2, 3]))
    same = pd.DataFrame({"onset": [4.1, 5.0], "duration": [1.0, 1.0], "stimulus_id": ["a", "b"]})
    assert_named_error(series, "start on the same volume 3", events=same, labels=labels, n_time_bins=1)
    overlapping = pd.DataFrame({"onset": [0.0, 2.0], "duration": [1.0, 1.0], "stimulus_id": ["a", "b"]})
    with pytest.warns(DataWarning, match="their responses overlap"):
        data_adapters.load(series, events=overlapping, labels=labels, n_time_bins=2)


def test_onsets_and_durations_saved_in_ms_are_named(bold, tmp_path):
    series, labels, _ = bold  # 20 volumes of 2 s: a 40 s run
    in_ms = _events(tmp_path / "ms_events.tsv", "onset|duration|stimulus_id\n0|2000|a\n12000|2000|b\n24000|2000|c\n")
    with pytest.raises(DataFormatError, match="look like ms .*divide them by 1000") as info:
        data_adapters.load(series, events=in_ms, labels=labels, n_time_bins=2)
    assert str(in_ms) in str(info.value)
    # one late event in seconds is not taken for ms
    late = _events(tmp_path / "late_events.tsv", "onset|duration|stimulus_id\n0|2|a\n12|2|b\n50|2|c\n")
    with pytest.raises(DataFormatError, match="check onsets") as info:
        data_adapters.load(series, events=late, labels=labels, n_time_bins=2)
    assert "look like ms" not in str(info.value)
    # durations in ms do not move the trials (n_time_bins cuts them), but are said
    durations = _events(tmp_path / "d_events.tsv", "onset|duration|stimulus_id\n0|2000|a\n12|2000|b\n")
    with pytest.warns(DataWarning, match="durations up to 2000 s are longer than the run"):
        data_adapters.load(series, events=durations, labels=labels, n_time_bins=2)


def test_nan_voxels_stay_nan(bold, tmp_path):
    series, labels, _ = bold
    events = pd.DataFrame({"onset": [6.0], "duration": [2.0], "stimulus_id": ["a"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        da = data_adapters.load(series, events=events, labels=labels, n_time_bins=1, nan_policy="propagate")
    voxel = np.flatnonzero((da.i.values == 1) & (da.j.values == 1) & (da.k.values == 1))
    assert len(voxel) == 1 and np.isnan(da.values[0, voxel[0], 0]) and np.isfinite(da.values).sum() == da.size - 1
    error = assert_named_error(series, "NaN", events=events, labels=labels, n_time_bins=1, nan_policy="raise")
    assert "stimulus_id='a'" in str(error)


@pytest.mark.parametrize("events, words", [
    (pd.DataFrame({"onset": [], "duration": [], "stimulus_id": []}), "has no rows"),
    (pd.DataFrame({"onset": [1e308], "duration": [1.0], "stimulus_id": ["a"]}), "not a number of seconds"),
    (pd.DataFrame({"onset": [np.nan], "duration": [1.0], "stimulus_id": ["a"]}), "'onset' row 0"),
    (pd.DataFrame({"onset": [0.0], "duration": [1.0], "trial_type": ["a"]}), "stimulus_column="),
    (pd.DataFrame({"onset": [0.0], "duration": [1.0], "stimulus_id": ["a\x1b[2Jb"]}), "control character"),
])
def test_degenerate_events_are_named_errors(bold, events, words):
    series, labels, _ = bold
    assert_named_error(series, words, events=events, labels=labels, n_time_bins=1)


def test_bad_bin_counts_and_trs(bold):
    series, labels, _ = bold
    events = pd.DataFrame({"onset": [0.0], "duration": [1.0], "stimulus_id": ["a"]})
    assert_named_error(series, "n_time_bins=0", events=events, labels=labels, n_time_bins=0)
    assert_named_error(series, "tr_s=-2", events=events, labels=labels, tr_s=-2)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_images_are_named_errors(bold, tmp_path, suffix):
    series, labels, _ = bold
    image = nib.load(series)
    full = tmp_path / f"full{suffix}"
    nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine, image.header), full)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) * 2 // 3])
    events = pd.DataFrame({"onset": [0.0], "duration": [1.0], "stimulus_id": ["a"]})
    assert_named_error(cut, "truncated", events=events, labels=labels, n_time_bins=1)



@pytest.mark.parametrize("name", ["damaged.nii.gz", "damaged.gz"])
def test_a_damaged_gzip_stream_is_a_named_error_whatever_the_name(bold, tmp_path, name):
    """Zeroed bytes just after the gzip header make zlib fail on the first read, inside the
    format check itself (found by fuzzing): a .nii.gz is claimed as NIfTI and the reader
    names the damage; another name falls through to the unrecognised-file error, which says
    what the check could not read. Never zlib's own traceback."""
    series, labels, _ = bold
    damaged = bytearray(series.read_bytes())
    damaged[20:28] = bytes(8)
    path = tmp_path / name
    path.write_bytes(bytes(damaged))
    events = pd.DataFrame({"onset": [0.0], "duration": [1.0], "stimulus_id": ["a"]})
    words = "NIfTI" if name.endswith(".nii.gz") else "nifti check could not read it"
    assert_named_error(path, words, events=events, labels=labels, n_time_bins=1)

def test_fifos_and_symlink_loops_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "pipe.nc"
    os.mkfifo(fifo)
    assert_named_error(fifo, "not a regular file")
    loop = tmp_path / "loop.nc"
    os.symlink(loop, loop)
    assert_named_error(loop, "cannot be opened")
    events = tmp_path / "events.tsv"
    os.mkfifo(events)
    with pytest.raises(DataFormatError, match="events.tsv: is not a regular file"):
        data_adapters.nifti.read_events(events, tmp_path / "x.nii")


@pytest.mark.parametrize("change, words", [
    ("affine", "on another grid"), ("fractional", r"non-integer values \(e.g. 1.5\)"),
    ("zero", "labels no voxel"), ("complex", "complex64 voxels"),
])
def test_label_images_that_cannot_label_the_series_are_named(bold, tmp_path, change, words):
    """A label image on another grid (same shape, other affine) loaded silently, assigning
    voxels to the wrong ROIs; fractional codes (an atlas resampled with interpolation) were
    rounded; an all-zero image raised numpy's ValueError. Each is now a named error naming
    the label file."""
    series, labels, _ = bold
    image = nib.load(labels)
    values = np.asarray(image.dataobj)
    affine = image.affine.copy()
    if change == "affine":
        affine[:3, :3] *= 2
    elif change == "fractional":
        values = values.astype(np.float32) + 0.5
    elif change == "zero":
        values = np.zeros_like(values)
    else:
        values = values.astype(np.complex64)
    damaged = nib.Nifti1Image(values, affine)
    damaged.set_data_dtype(values.dtype)
    path = tmp_path / "labels_changed.nii.gz"
    nib.save(damaged, path)
    events = pd.DataFrame({"onset": [0.0], "duration": [1.0], "stimulus_id": ["a"]})
    with pytest.raises(DataFormatError, match=words) as info:
        data_adapters.load(series, events=events, labels=path, n_time_bins=1)
    assert str(path) in str(info.value)


def test_bids_sidecars_give_the_repetition_time_and_the_events_by_inheritance(tmp_path):
    """BIDS keeps RepetitionTime in JSON sidecars (inherited from the dataset root) and the
    events beside the run. nibabel leaves pixdim[4] at 1.0 unless told: the header's TR was
    used, so every trial was cut at the wrong volumes without a word."""
    import json

    root = tmp_path / "ds"
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "blur", "BIDSVersion": "1.9.0"}))
    (root / "task-blur_bold.json").write_text(json.dumps({"RepetitionTime": 2.0, "TaskName": "blur"}))
    data = np.random.default_rng(0).standard_normal((4, 4, 3, 12)).astype(np.float32)
    data[..., 6] += 50.0  # volume 6 = 12 s at TR 2, or 6 s at the header's 1
    bold = func / "sub-01_task-blur_run-1_bold.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), bold)
    assert nib.load(bold).header.get_zooms()[3] == 1.0
    _events(func / "sub-01_task-blur_run-1_events.tsv", "onset|duration|stim_file\n0|2|a.png\n12|2|b.png\n")
    masks = {"V1": nib.Nifti1Image(np.ones((4, 4, 3), np.uint8), np.eye(4))}
    with pytest.warns(DataWarning, match="header's repetition time 1 s differs from RepetitionTime 2 s in .*task-blur_bold.json"):
        da = data_adapters.load(bold, masks=masks, n_time_bins=1)
    assert da.attrs["tr_s"] == 2.0 and da.attrs["tr_source"].endswith("task-blur_bold.json")
    assert list(da.stimulus_id.values) == ["a.png", "b.png"] and da.values[1].mean() > 40  # b's volume is 6
    (func / "sub-01_task-blur_run-1_bold.json").write_text(json.dumps({"RepetitionTime": 3.0}))
    with pytest.warns(DataWarning, match="3 s in .*run-1_bold.json"):  # the nearer sidecar wins
        assert data_adapters.load(bold, masks=masks, n_time_bins=1).attrs["tr_s"] == 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit tr_s needs no sidecar and no warning
        assert data_adapters.load(bold, masks=masks, n_time_bins=1, tr_s=2.0).attrs["tr_source"] == "tr_s"
    (func / "sub-01_task-blur_run-1_bold.json").write_text(json.dumps({"RepetitionTime": "2"}))
    with pytest.raises(DataFormatError, match="run-1_bold.json: RepetitionTime '2' is not a time > 0"):
        data_adapters.load(bold, masks=masks, n_time_bins=1)
    (func / "sub-01_task-blur_run-1_bold.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="run-1_bold.json: BIDS sidecar cannot be read as JSON"):
        data_adapters.load(bold, masks=masks, n_time_bins=1)


@pytest.mark.parametrize("unit, zoom", [("sec", 2.0), ("msec", 2000.0), ("usec", 2e6)])
def test_the_header_tr_is_read_in_its_own_time_unit(unit, zoom):
    from data_adapters.nifti import header_tr

    image = nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4))
    image.header.set_xyzt_units("mm", unit)
    image.header["pixdim"][4] = zoom
    assert header_tr(image) == pytest.approx(2.0)


def test_an_analyze_series_needs_tr_s_and_is_labelled_by_voxel_grid(bold, tmp_path):
    """An Analyze header stores no time unit (its 4th voxel size is a placeholder) and no
    orientation (nibabel makes its affine up from the voxel sizes, x flipped): the series
    asks for tr_s instead of cutting trials at 1 s volumes, and a NIfTI label image of its
    shape and voxel sizes labels it (the made-up affine was refused as 'another grid');
    labels of other voxel sizes are still refused."""
    _, labels, data = bold
    analyze = tmp_path / "series.img"
    nib.save(nib.AnalyzeImage(np.nan_to_num(data, nan=0.0), np.eye(4)), analyze)
    events = _events(tmp_path / "events.tsv", "onset|duration|stimulus_id\n0|2|a\n20|2|b\n")
    with pytest.raises(DataFormatError, match=r"series.img: the header gives no repetition time \(pass tr_s="):
        data_adapters.load(analyze, events=events, labels=labels)
    loaded = data_adapters.load(analyze, events=events, labels=labels, tr_s=TR, n_time_bins=2)
    nifti = data_adapters.load(bold[0], events=events, labels=labels, n_time_bins=2, nan_policy="propagate")
    assert loaded.sizes == nifti.sizes
    np.testing.assert_allclose(loaded.values, np.nan_to_num(nifti.values, nan=0.0), rtol=1e-6)
    coarse = tmp_path / "coarse_labels.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(nib.load(labels).dataobj), np.diag([2.0, 2.0, 2.0, 1.0])), coarse)
    with pytest.raises(DataFormatError, match="coarse_labels.nii.gz: the label image is on another grid"):
        data_adapters.load(analyze, events=events, labels=coarse, tr_s=TR, n_time_bins=2)
