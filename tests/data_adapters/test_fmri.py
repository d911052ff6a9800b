"""Blur fMRI adapters: BData .h5, BrainDecoderToolbox2 .mat (v5, v7.3), NIfTI/Analyze series."""

import warnings

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import data_adapters
from workbench import simulators
from conftest import assert_named_error
from data_adapters import bdata
from workbench.assembly import DIMS, align, average_repetitions
from workbench.errors import DataFormatError, DataWarning


@pytest.fixture(scope="module")
def blur_sim(tmp_path_factory):
    return simulators.simulate_blur_fmri(tmp_path_factory.mktemp("blur"), seed=3)


# --------------------------------------------------------------------------- real fixtures

def test_sample_bdata_loads_with_value_map(shared_data):
    path = shared_data / "bdata" / "sample_vmap.h5"
    # bdpy's sample has no ROI keys: loading it whole is an explicit choice
    assert_named_error(path, "no ROI keys", )
    da = data_adapters.load(path, require_roi=False)
    with h5py.File(path, "r") as raw:
        dataset = raw["dataset"][()]
        labels = {float(k): v[()].decode() for k, v in raw["vmap/Label"].items()}
    assert da.dims == DIMS and da.shape == (8, 10, 1)
    np.testing.assert_array_equal(da.values[:, :, 0], dataset[:, :10])
    assert list(da.stimulus_id.values) == [labels[c] for c in dataset[:, 10]]
    assert list(da.voxel_index.values) == list(range(10))
    assert da.attrs["simulated"] is False and da.attrs["identifier"] == "sample_vmap"


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_bdtb_mat_files_equal_the_bdata(shared_data, tmp_path, version):
    source = shared_data / "bdata" / "sample_vmap.h5"
    table = bdata.read_table(source)
    path = tmp_path / f"sample_v{version}.mat"
    bdata.write_mat(path, table.dataset, list(zip(table.keys, table.descriptions, table.values)), version)
    assert path.read_bytes().startswith(f"MATLAB {version}".encode())
    mat = data_adapters.load(path, subject="sample_vmap", require_roi=False)
    h5 = data_adapters.load(source, require_roi=False)
    np.testing.assert_array_equal(mat.values, h5.values)
    # no value map in a .mat: the label codes themselves name the stimuli
    assert list(mat.stimulus_id.values) == [f"{c:g}" for c in table.dataset[:, 10]]


def test_real_epi_volumes_load_as_a_five_volume_series(shared_data):
    folder = shared_data / "fmri_epi"
    events = pd.DataFrame({"onset": [0.0, 2.0], "duration": [8.0, 8.0],
                           "stimulus_id": ["a", "b"], "condition": ["clean", "blur_25"]})
    da = data_adapters.load(folder, events=events, masks="epi", tr_s=2.0)
    assert da.dims == DIMS and da.shape[0] == 2 and da.shape[2] == 4
    assert list(da.time_bin_start.values) == [0, 2000, 4000, 6000]
    volumes = np.stack([np.asarray(nib.load(folder / f"epi000{v}.hdr").get_fdata())
                        for v in range(1, 6)], axis=-1)
    rng = np.random.default_rng(0)
    for n in rng.choice(da.sizes["neuroid"], 50, replace=False):
        i, j, k = (int(da[c].values[n]) for c in "ijk")
        np.testing.assert_allclose(da.values[0, n], volumes[i, j, k, 0:4], rtol=1e-6)
        np.testing.assert_allclose(da.values[1, n], volumes[i, j, k, 1:5], rtol=1e-6)
    assert set(da.region.values) == {"brain"}
    assert list(da.condition.values) == ["clean", "blur_25"]


def test_real_epi_with_hemisphere_masks(shared_data, tmp_path):
    folder = shared_data / "fmri_epi"
    first = nib.load(folder / "epi0001.hdr")
    data = np.asarray(first.dataobj)
    brain = data > np.percentile(data, 60)
    left, right = brain.copy(), brain.copy()
    left[32:] = False
    right[:32] = False
    masks = {}
    for name, mask in (("LH_V1", left), ("RH_V1", right)):
        masks[name] = tmp_path / f"{name}.nii"
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), first.affine), masks[name])
    events = pd.DataFrame({"onset": [0.0], "duration": [8.0], "stimulus_id": ["x"]})
    da = data_adapters.load(folder, events=events, masks=masks, tr_s=2.0, n_time_bins=5)
    assert (da.hemisphere.values == "left").sum() == left.sum()
    assert (da.hemisphere.values == "right").sum() == right.sum()
    assert set(da.region.values) == {"V1"}
    assert (da.i.values[da.hemisphere.values == "left"] < 32).all()


# ----------------------------------------------------------------------- simulator round trip

def test_simulator_shape_and_design(blur_sim):
    assert len(blur_sim.bdata) == 3 and blur_sim.denoising.sizes == {
        "subject": 3, "hemisphere": 2, "region": 4, "time_bin": 4}
    da = data_adapters.load(blur_sim.bdata["sub-01"])
    params = blur_sim.params
    n_trials = params["n_images"] * len(params["blur_levels"]) * params["n_repetitions"]
    assert da.shape == (n_trials, 2 * 4 * params["voxels_per_roi"], 4)
    assert da.attrs["simulated"] is True and da.attrs["seed"] == 3
    assert set(da.condition.values) == {"clean", "blur_6", "blur_12", "blur_25"}
    assert set(zip(da.region.values, da.hemisphere.values)) == {
        (r, h) for r in ("V1", "V2", "V4", "LOC") for h in ("left", "right")}
    assert list(da.time_bin_end.values) == [2000, 4000, 6000, 8000]
    # the model sees these ids: workbench.stimuli.blur names the blurred copies the same way
    from workbench.stimuli import blur
    assert set(blur(blur_sim.stimuli, 25).stimulus_ids) <= set(da.stimulus_id.values)
    assert set(blur_sim.stimuli.stimulus_ids) <= set(da.stimulus_id.values)


def test_simulator_bdata_equals_truth_within_noise(blur_sim):
    for subject, path in blur_sim.bdata.items():
        loaded = average_repetitions(data_adapters.load(path))
        truth = blur_sim.signal[subject]
        a, b = align(loaded, truth)
        assert a.sizes == b.sizes
        np.testing.assert_array_equal(a.neuroid_id.values, b.neuroid_id.values)
        residual = (a - b).values
        expected_sd = blur_sim.params["noise_sd"] / np.sqrt(blur_sim.params["n_repetitions"])
        assert abs(residual.mean()) < 4 * expected_sd / np.sqrt(residual.size)
        assert residual.std() == pytest.approx(expected_sd, rel=0.05)


def test_simulator_nifti_equals_bdata(blur_sim):
    subject = "sub-02"
    files = blur_sim.nifti[subject]
    series = data_adapters.load(files["series"], events=files["events"], labels=files["labels"],
                                label_names=files["label_names"], subject=subject)
    assert series.attrs["simulated"] is True and series.attrs["tr_s"] == 2.0
    table = data_adapters.load(blur_sim.bdata[subject])
    key = lambda da, x, y, z: [f"{r}|{h}|{i}|{j}|{k}" for r, h, i, j, k in zip(  # noqa: E731
        da.region.values, da.hemisphere.values, da[x].values, da[y].values, da[z].values)]
    order = pd.Index(key(series, "i", "j", "k")).get_indexer(key(table, "voxel_x", "voxel_y", "voxel_z"))
    assert (order >= 0).all()
    np.testing.assert_array_equal(series.stimulus_id.values, table.stimulus_id.values)
    np.testing.assert_allclose(series.values[:, order], table.values, rtol=1e-6)


def _clean_blur_similarity(da, level):
    """Mean over images of the voxel-pattern correlation between the blurred and clean
    response, per (hemisphere, region, time bin); patterns centred per voxel and bin."""
    centred = da - da.mean("presentation")
    blurred = centred.isel(presentation=np.flatnonzero(da.blur_level.values == level))
    clean = centred.isel(presentation=np.flatnonzero(da.blur_level.values == 0))
    clean = clean.isel(presentation=pd.Index(clean.stimulus_id.values).get_indexer(
        [s.rsplit("_blur_", 1)[0] for s in blurred.stimulus_id.values]))
    out = {}
    for (region, hemisphere), _ in pd.DataFrame({"r": da.region.values, "h": da.hemisphere.values}).groupby(["r", "h"]):
        voxels = np.flatnonzero((da.region.values == region) & (da.hemisphere.values == hemisphere))
        b = blurred.values[:, voxels] - blurred.values[:, voxels].mean(1, keepdims=True)
        c = clean.values[:, voxels] - clean.values[:, voxels].mean(1, keepdims=True)
        r = (b * c).sum(1) / np.sqrt((b ** 2).sum(1) * (c ** 2).sum(1))
        out[(hemisphere, region)] = r.mean(0)  # (time_bin,)
    return out


def test_planted_denoising_is_recovered_where_planted_only(blur_sim):
    planted_subjects = blur_sim.params["denoising_subjects"]
    planted_rois = blur_sim.params["denoising_rois"]
    for subject, path in blur_sim.bdata.items():
        measured = _clean_blur_similarity(average_repetitions(data_adapters.load(path)), 25.0)
        noiseless = _clean_blur_similarity(blur_sim.signal[subject], 25.0)
        for (hemisphere, region), curve in measured.items():
            rise = curve[-1] - curve[0]
            true_rise = noiseless[(hemisphere, region)][-1] - noiseless[(hemisphere, region)][0]
            planted = subject in planted_subjects and region in planted_rois
            assert (blur_sim.denoising.sel(subject=subject, hemisphere=hemisphere, region=region)
                    .values[-1] > 0) == planted
            if planted:
                assert true_rise > 0.2 and rise > 0.15, (subject, region, rise)
            else:
                # no planted drift: only the haemodynamic amplitude changes the noisy estimate
                assert abs(true_rise) < 0.1 and abs(rise - true_rise) < 0.2, (subject, region, rise)


def test_truth_similarity_is_flat_without_denoising(blur_sim):
    sim = blur_sim.similarity
    unplanted = sim.sel(subject="sub-03")
    np.testing.assert_allclose(unplanted.diff("time_bin").values, 0, atol=1e-12)
    planted = sim.sel(subject="sub-01", region="LOC", blur_level=25.0)
    assert (planted.diff("time_bin") > 0).all()
    np.testing.assert_allclose(sim.sel(blur_level=0.0).values, 1.0)


@pytest.mark.parametrize("method", ["zscore", "unit_norm"])
def test_voxel_normalization(blur_sim, method):
    da = data_adapters.load(blur_sim.bdata["sub-01"], voxel_normalization=method)
    flat = da.values.transpose(1, 0, 2).reshape(da.sizes["neuroid"], -1)
    np.testing.assert_allclose(flat.mean(1), 0, atol=1e-9)
    spread = flat.std(1) if method == "zscore" else np.linalg.norm(flat, axis=1)
    np.testing.assert_allclose(spread, 1, rtol=1e-9)
    assert da.attrs["voxel_normalization"] == method


def test_roi_and_hemisphere_selection(blur_sim):
    da = data_adapters.load(blur_sim.bdata["sub-01"], rois=["V1", "LOC"], hemisphere="left")
    assert set(da.region.values) == {"V1", "LOC"} and set(da.hemisphere.values) == {"left"}
    assert da.sizes["neuroid"] == 2 * blur_sim.params["voxels_per_roi"]


# ------------------------------------------------------------------------------ bad input

def _write_table(path, dataset, metadata):
    bdata.write(path, dataset, metadata)
    return path


def _small_metadata(n_vox=3):
    ones = lambda cols, n: np.array([1.0 if c in cols else np.nan for c in range(n)])  # noqa: E731
    n = n_vox + 2
    return [("VoxelData", "", ones(range(n_vox), n)), ("ROI_V1", "", ones([0, 1], n)),
            ("ImageCode", "", ones([n_vox], n)), ("TimeBin", "", ones([n_vox + 1], n))]


def test_bdata_errors(tmp_path):
    rng = np.random.default_rng(0)
    good = np.column_stack([rng.standard_normal((4, 3)), [1, 1, 2, 2], [0, 1, 0, 1]])
    assert data_adapters.load(_write_table(tmp_path / "ok.h5", good, _small_metadata())).shape == (2, 2, 2)
    assert_named_error(_write_table(tmp_path / "a.h5", good, _small_metadata()), "not in the file", rois=["V9"])
    mixed = good.copy()
    mixed[1, 3] = 2  # the image changes between the two bins of trial 0
    assert_named_error(_write_table(tmp_path / "m.h5", mixed, _small_metadata()),
                       "'ImageCode' changes within a trial")
    uneven = good.copy()
    uneven[3, 4] = 0  # time bin 0 twice, bin 1 once
    assert_named_error(_write_table(tmp_path / "b.h5", uneven, _small_metadata()), "occur [3, 1] times")
    no_voxel = [m for m in _small_metadata() if m[0] not in ("VoxelData", "ROI_V1")]
    assert_named_error(_write_table(tmp_path / "c.h5", good, no_voxel), "no voxel columns")
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle["dataset"] = good
        handle.create_group("metadata")["key"] = np.array([b"VoxelData"])
    assert_named_error(tmp_path / "d.h5", "/metadata has no 'description'")
    with h5py.File(tmp_path / "e.h5", "w") as handle:
        handle["dataset"] = good
        meta = handle.create_group("metadata")
        meta["key"], meta["description"] = np.array([b"VoxelData"]), np.array([b""])
        meta["value"] = np.ones((1, 3))
    assert_named_error(tmp_path / "e.h5", "metadata value has shape (1, 3)")


def test_truncated_bdata_and_mat(tmp_path, shared_data):
    source = (shared_data / "bdata" / "sample_vmap.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(source[: len(source) // 2])
    assert_named_error(tmp_path / "cut.h5", "truncated or corrupt", format="bdata")
    table = bdata.read_table(shared_data / "bdata" / "sample_vmap.h5")
    bdata.write_mat(tmp_path / "full.mat", table.dataset, list(zip(table.keys, table.descriptions, table.values)))
    (tmp_path / "cut.mat").write_bytes((tmp_path / "full.mat").read_bytes()[:300])
    assert_named_error(tmp_path / "cut.mat", "MATLAB v5")


def test_nan_policy(tmp_path):
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.standard_normal((4, 3)), [1, 1, 2, 2], [0, 1, 0, 1]])
    data[1, 0], data[2, 1] = np.nan, np.inf
    path = _write_table(tmp_path / "nan.h5", data, _small_metadata())
    error = assert_named_error(path, "1 NaN and 1 inf", nan_policy="raise")
    assert "stimulus_id='1'" in str(error)
    with pytest.warns(DataWarning, match="1 NaN and 1 inf"):
        da = data_adapters.load(path)
    assert np.isnan(da.values).sum() == 2 and da.attrs["nonfinite"] == {"nan": 1, "inf": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = data_adapters.load(path, nan_policy="propagate")
    assert np.isinf(kept.values).sum() == 1
    assert_named_error(path, "unknown nan_policy", nan_policy="drop")


def test_nifti_errors(tmp_path, shared_data, blur_sim):
    folder = shared_data / "fmri_epi"
    events = pd.DataFrame({"onset": [0.0], "duration": [8.0], "stimulus_id": ["a"]})
    assert_named_error(folder, "events table is needed", masks="epi", tr_s=2.0)
    assert_named_error(folder, "gives no repetition time", events=events, masks="epi")
    assert_named_error(folder, "no ROI given", events=events, tr_s=2.0)
    assert_named_error(folder, "needs volumes 2..5, the series has 5",
                       events=events.assign(onset=4.0), masks="epi", tr_s=2.0)
    (tmp_path / "events.csv").write_text("onset,stimulus_id\n0,a\n")
    with pytest.raises(DataFormatError, match=r"events.csv: events table lacks column\(s\) \['duration'\]"):
        data_adapters.load(folder, events=tmp_path / "events.csv", masks="epi", tr_s=2.0)
    small = tmp_path / "small_mask.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), small)
    with pytest.raises(DataFormatError, match=r"small_mask.nii: mask 'V1' has shape \(4, 4, 4\)"):
        data_adapters.load(folder, events=events, masks={"V1": small}, tr_s=2.0)
    affine = nib.load(folder / "epi0001.hdr").affine
    empty = tmp_path / "empty.nii"
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 50), np.uint8), affine), empty)
    assert_named_error(folder, "ROI 'V1' is empty", events=events, masks={"V1": empty}, tr_s=2.0)
    (tmp_path / "bad_events.csv").write_text("onset,duration,stimulus_id\nsoon,8,a\n")
    with pytest.raises(DataFormatError, match="bad_events.csv: events column 'onset' row 0 is 'soon'"):
        data_adapters.load(folder, events=tmp_path / "bad_events.csv", masks="epi", tr_s=2.0)


def test_kamitani_image_codes_survive_exactly(tmp_path):
    """synset.imagenumber codes: 6 significant digits would merge these into one stimulus."""
    codes = [1443537.022563, 1443537.022564, 2084071.016242, 3.0]
    rng = np.random.default_rng(1)
    data = np.column_stack([rng.standard_normal((4, 3)), codes, [0, 0, 0, 0]])
    da = data_adapters.load(_write_table(tmp_path / "codes.h5", data, _small_metadata()))
    assert list(da.stimulus_id.values) == ["1443537.022563", "1443537.022564", "2084071.016242", "3"]
    assert (da.repetition.values == 0).all()
    assert bdata.code_text(1443537.022563) == "1443537.022563" and bdata.code_text(1e-7) == "0.0000001"


def test_bdata_without_roi_keys_is_an_error_naming_the_fix(tmp_path):
    rng = np.random.default_rng(1)
    data = np.column_stack([rng.standard_normal((4, 3)), [1, 1, 2, 2], [0, 1, 0, 1]])
    metadata = [m for m in _small_metadata() if m[0] != "ROI_V1"]
    path = _write_table(tmp_path / "noroi.h5", data, metadata)
    assert_named_error(path, "require_roi=False")
    assert "region" not in data_adapters.load(path, require_roi=False).coords


def test_an_option_of_another_format_is_a_named_error(tmp_path, shared_data):
    assert_named_error(shared_data / "brainio" / "assy_test_TestMe.nc", "option 'require_roi' does not apply",
                       require_roi=False)


@pytest.mark.parametrize("compressed", [False, True])
def test_the_mat5_check_passes_every_array_class_scipy_writes(tmp_path, compressed):
    """The pre-read check of MATLAB v5 files (data_adapters.mat5) accepts what scipy writes,
    compressed (MATLAB's -v7) or not, for every class it reads; and it rejects a file whose
    numeric element holds fewer values than its dimensions say."""
    import scipy.io
    import scipy.sparse

    from data_adapters import mat5

    content = {"double": np.arange(6.0).reshape(2, 3), "text": "grey wörld", "empty": np.zeros((0, 3)),
               "cells": np.array([[1, "x", np.arange(3)]], dtype=object), "struct": {"f": 1, "g": [1, 2, 3]},
               "logical": np.array([True, False]), "complex": np.array([1 + 2j, 3]), "int16": np.int16([1, -2]),
               "sparse": scipy.sparse.csc_matrix(np.eye(3)), "nested": {"inner": {"deep": np.ones((2, 2))}}}
    path = tmp_path / "all.mat"
    scipy.io.savemat(path, content, do_compression=compressed)
    mat5.check(path)
    if not compressed:
        raw = bytearray(path.read_bytes())
        tag = raw.index(np.arange(6.0).reshape(2, 3).tobytes(order="F")) - 8  # "double"'s data tag
        assert int.from_bytes(raw[tag + 4:tag + 8], "little") == 48
        raw[tag + 4:tag + 8] = (40).to_bytes(4, "little")
        path.write_bytes(bytes(raw))
        with pytest.raises(DataFormatError, match="in variable 'double'"):
            mat5.check(path)


def test_trials_without_an_image_code_are_left_out_with_a_warning(tmp_path):
    """Rest and fixation blocks carry NaN image codes: they became the stimulus "nan";
    now they are left out with a DataWarning, and a file with no image at all is an error."""
    from workbench.errors import DataWarning

    rng = np.random.default_rng(0)
    table = np.column_stack([rng.standard_normal((6, 3)), [1, 1, np.nan, np.nan, 2, 2], [0, 1] * 3])
    with pytest.warns(DataWarning, match="1 of 3 trials have no 'ImageCode'"):
        loaded = data_adapters.load(_write_table(tmp_path / "rest.h5", table, _small_metadata()))
    assert sorted(loaded.stimulus_id.values) == ["1", "2"]
    np.testing.assert_array_equal(loaded.sel(presentation=loaded.stimulus_id == "2").values[0, :, 1], table[5, :2])
    table[:, 3] = np.nan
    assert_named_error(_write_table(tmp_path / "none.h5", table, _small_metadata()), "no image to score")


def test_either_variable_naming_in_either_container_reads_like_bdpy(shared_data, tmp_path):
    """bdpy reads ``dataset``/``metadata`` and ``dataSet``/``metaData`` from .mat and .h5
    files alike; a lower-case MATLAB file or a camel-case HDF5 file was 'not a BData file'."""
    import h5py
    import scipy.io

    source = shared_data / "bdata" / "sample_vmap.h5"
    table = bdata.read_table(source)
    expected = data_adapters.load(source, require_roi=False).values
    metadata = list(zip(table.keys, table.descriptions, table.values))
    lower = tmp_path / "lower_v5.mat"
    scipy.io.savemat(lower, {"dataset": table.dataset, "metadata": {
        "key": np.array(table.keys, dtype=object).reshape(1, -1),
        "description": np.array(table.descriptions, dtype=object).reshape(1, -1), "value": table.values}})
    bdata.write_mat(tmp_path / "lower_v73.mat", table.dataset, metadata, "7.3")
    with h5py.File(tmp_path / "lower_v73.mat", "a") as handle:
        handle.move("dataSet", "dataset")
        handle.move("metaData", "metadata")
    with h5py.File(tmp_path / "camel.h5", "w") as handle:  # bdpy's layout under MATLAB's names
        handle["dataSet"] = table.dataset
        handle["metaData/key"] = [k.encode() for k in table.keys]
        handle["metaData/description"] = [d.encode() for d in table.descriptions]
        handle["metaData/value"] = table.values
    for path in (lower, tmp_path / "lower_v73.mat", tmp_path / "camel.h5"):
        loaded = data_adapters.load(path, require_roi=False, subject="sample_vmap")
        np.testing.assert_array_equal(loaded.values, expected)
