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
