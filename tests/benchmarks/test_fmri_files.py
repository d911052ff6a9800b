"""The blur-fMRI benchmark reads the experiment from either of its file formats alike: BData
(named image codes) and NIfTI + a BIDS events table (numeric image codes, shared by an image's
clean and blurred presentations), each with its reader's options."""

import numpy as np
import pytest
import xarray as xr

from workbench.benchmarks import get
from workbench.errors import MetricError
from workbench.metrics.denoising import fmri_denoising_index
from workbench.simulators import simulate_blur_fmri


def _pairs_assembly(codes, clean_ids, degraded_codes, seed=0):
    """Clean presentations (ids ``clean_ids``, codes ``codes``) and blurred ones (``degraded_codes``)."""
    rng = np.random.default_rng(seed)
    n = len(codes) + len(degraded_codes)
    return xr.DataArray(rng.standard_normal((n, 6, 2)), dims=("presentation", "neuroid", "time_bin"), coords={
        "stimulus_id": ("presentation", list(clean_ids) + [f"blurred_{c}" for c in degraded_codes]),
        "image_code": ("presentation", list(codes) + list(degraded_codes)),
        "blur_level": ("presentation", [0.0] * len(codes) + [25.0] * len(degraded_codes)),
        "region": ("neuroid", ["V1"] * 6), "time_bin_start": ("time_bin", [0.0, 2000.0])})


def test_degraded_images_pair_with_the_clean_image_of_the_same_code():
    # BIDS events: numeric codes on every row; the clean images are named otherwise
    named = _pairs_assembly([547, 1158, 72], ["img_a", "img_b", "img_c"], [1158, 72, 547])
    index = fmri_denoising_index(named, level=25.0, by="region")
    assert index["source_id"].values.tolist() == ["img_b", "img_c", "img_a"]
    # the workbench's renders: a degraded image's code is its clean image's stimulus_id
    renders = _pairs_assembly(["d_547", "d_1158"], ["d_547", "d_1158"], ["d_1158", "d_547"])
    assert fmri_denoising_index(renders, level=25.0, by="region")["source_id"].values.tolist() == ["d_1158", "d_547"]
    # a code no clean image has is still an error, naming where it was looked up
    with pytest.raises(MetricError, match=r"1 degraded image\(s\) have no clean partner \(e\.g\. '999'.*image_code "
                                          r"and stimulus_id"):
        fmri_denoising_index(_pairs_assembly([547, 72], ["a", "b"], [72, 999]), level=25.0, by="region")


def test_nifti_with_events_and_bdata_score_the_same_experiment_alike(tmp_path):
    simulation = simulate_blur_fmri(tmp_path / "fmri", n_subjects=1, seed=0)
    (subject, files), = simulation.nifti.items()
    options = {"labels": str(files["labels"]), "label_names": {str(k): v for k, v in files["label_names"].items()}}
    scores = {}
    for name, path, load_options in (("nifti", files["series"], options),
                                     ("bdata", simulation.bdata[subject], None)):
        benchmark = get("blur-fmri.LOC.denoising", path=path, load_options=load_options, n_permutations=200,
                        cache_dir=tmp_path / name)
        scores[name], = benchmark.score({"name": "b", "zoo": "b", "train": False, "config": {"channels": [4, 8, 8]}})
    nifti, bdata = scores["nifti"], scores["bdata"]
    assert nifti.n == bdata.n == 24
    # the same responses, stored as float32 in the NIfTI file
    assert nifti.extra["brain_value"] == pytest.approx(bdata.extra["brain_value"], abs=1e-5)
    assert nifti.extra["brain_pr_late"] == pytest.approx(bdata.extra["brain_pr_late"], rel=1e-5)
    assert nifti.value == pytest.approx(bdata.value, abs=1e-12)  # the model saw the same clean images


def test_the_real_file_variant_given_every_subjects_file_equals_the_simulated_benchmark(tmp_path):
    """One file per subject: the simulator's three BData files, given as a list, are the data of
    the simulated benchmark, so the brain's planted LOC de-noising comes back identically."""
    from workbench.benchmarks.data import blur_fmri

    model = {"name": "b", "zoo": "b", "train": False, "config": {"channels": [4, 8, 8]}}
    simulated = get("sim-blur-fmri.LOC.denoising", n_permutations=500, cache_dir=tmp_path / "sim")
    (reference,) = simulated.score(model)
    _, files = blur_fmri(None, 0, tmp_path / "sim" / "data")
    assert len(files) == 3
    real = get("blur-fmri.LOC.denoising", path=files, n_permutations=500, cache_dir=tmp_path / "real")
    (score,) = real.score(model)
    for name in ("brain_value", "brain_p_value", "brain_pr_early", "brain_pr_late"):
        assert score.extra[name] == reference.extra[name], name
    assert score.extra["brain_value"] > 0.1 and score.extra["brain_p_value"] < 0.01  # the planted effect
    assert get("blur-fmri.LOC.denoising", path=files[:1]).identity() != real.identity()


def test_several_files_only_where_the_data_come_one_file_per_subject(tmp_path):
    from workbench.errors import ConfigError
    from workbench.report.config import parse_config

    files = [tmp_path / f"sub-0{i}.h5" for i in (1, 2)]
    for file in files:
        file.write_bytes(b"\x89HDF\r\n\x1a\n")
    model = {"name": "b", "zoo": "b", "train": False}

    def benchmark(name, path):
        return parse_config({"models": [model], "benchmarks": [{"name": name, "path": path}]}, base=tmp_path)

    config = benchmark("blur-fmri.V1.denoising", [f.name for f in files])
    assert config.benchmarks[0]["path"] == [str(f.resolve()) for f in files]
    with pytest.raises(ConfigError, match="reads one data file, got 2") as info:
        benchmark("human.rt-uncertainty", [f.name for f in files])
    assert info.value.key == "benchmarks[0].path"
    with pytest.raises(ConfigError, match="data path not found") as info:
        benchmark("blur-fmri.V1.denoising", [files[0].name, "sub-09.h5"])
    assert info.value.key == "benchmarks[0].path[1]"
    with pytest.raises(ConfigError, match="non-empty list"):
        benchmark("blur-fmri.V1.denoising", [])


def test_score_takes_one_path_per_subject(tmp_path, capsys):
    from workbench.cli import main

    files = [str(tmp_path / f"sub-0{i}.h5") for i in (1, 2)]
    for file in files:
        open(file, "wb").write(b"\x89HDF\r\n\x1a\n")
    argv = ["score", "b", "--no-train", "--out", str(tmp_path / "s.json"), "--no-progress", "--path", *files]
    assert main(argv + ["--benchmark", "human.rt-uncertainty"]) == 2
    assert "--path: 'human.rt-uncertainty' reads one data file, got 2" in capsys.readouterr().err
    assert main(argv[:-2] + [files[0], str(tmp_path / "none.h5"), "--benchmark", "blur-fmri.V1.denoising"]) == 2
    assert "--path: data path not found" in capsys.readouterr().err
