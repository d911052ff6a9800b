"""The fMRI and human simulators refuse bad counts and seeds with a named error before any
work (negative, fractional or boolean values were raw numpy errors, or wrote a file with no
complete worker)."""

import re

import pytest

from workbench import WorkbenchError
from workbench.simulators import simulate_blur_fmri, simulate_human_ratings

COUNT_VALUES = [-1, 1.5, True]


@pytest.mark.parametrize("option, minimum", [("n_subjects", 1), ("n_images", 1), ("voxels_per_roi", 1),
                                             ("n_repetitions", 1), ("n_time_bins", 2), ("image_size", 1),
                                             ("seed", 0)])
@pytest.mark.parametrize("bad", COUNT_VALUES)
def test_fmri_simulator_names_a_bad_count(tmp_path, option, minimum, bad):
    with pytest.raises(WorkbenchError, match=re.escape(f"{option} must be an integer >= {minimum}")):
        simulate_blur_fmri(tmp_path / "fmri", **{option: bad})
    assert not (tmp_path / "fmri").exists() or not any((tmp_path / "fmri").iterdir())


@pytest.mark.parametrize("option, minimum", [("n_images", 2), ("n_workers", 1), ("practice_trials", 0),
                                             ("n_incomplete", 0), ("seed", 0)])
@pytest.mark.parametrize("bad", COUNT_VALUES)
def test_human_simulator_names_a_bad_count(tmp_path, option, minimum, bad):
    with pytest.raises(WorkbenchError, match=re.escape(f"{option} must be an integer >= {minimum}")):
        simulate_human_ratings(tmp_path / "h.sqlite", **{option: bad})
    assert not (tmp_path / "h.sqlite").exists()


def test_the_smallest_valid_counts_still_simulate(tmp_path):
    simulate_human_ratings(tmp_path / "h.csv", format="csv", n_images=2, n_workers=1, practice_trials=0,
                           n_incomplete=0, seed=0)
    assert (tmp_path / "h.csv").stat().st_size > 0
