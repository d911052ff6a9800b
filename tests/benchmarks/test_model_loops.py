"""Models that loop over one image inside forward, for longer than a benchmark's time axis:
scored on their own loop where the steps are model steps (blur fMRI's early vs late), refused
with a fix their author can apply where the steps are a recording's time bins (macaque)."""

from pathlib import Path

import numpy as np
import pytest

from conftest import make_assembly
from workbench import WorkbenchError
from workbench.assembly import to_netcdf
from workbench.benchmarks import get

FIXTURES = str(Path(__file__).resolve().parents[1] / "models" / "fixtures")


def test_a_model_looping_over_one_image_longer_than_the_protocol_is_scored_on_its_own_loop(tmp_path, monkeypatch):
    """A static-recurrent model whose loop runs 6 times (the benchmark shows 4 steps) is
    scored on its own loop, exactly as with a protocol long enough from the start (its final
    state is held); before, extraction refused it with a fix the user could not apply."""
    from workbench.benchmarks import fmri

    monkeypatch.syspath_prepend(FIXTURES)
    model = {"name": "looper", "entry_point": "user_static_rt:build", "config": {"times": 6, "width": 8},
             "input_size": 32}
    (retried,) = get("sim-blur-fmri.V1.denoising", n_permutations=50, cache_dir=tmp_path).score(model)
    monkeypatch.setattr(fmri, "STEPS", 8)
    (long_enough,) = get("sim-blur-fmri.V1.denoising", n_permutations=50, cache_dir=tmp_path).score(model)
    assert np.isfinite(retried.value) and retried.value == long_enough.value
    assert retried.extra["pr_early"] == long_enough.extra["pr_early"]
    assert retried.extra["pr_late"] == long_enough.extra["pr_late"]


def test_a_loop_longer_than_the_recordings_window_is_refused_with_a_fix_its_author_can_apply(tmp_path, monkeypatch):
    """On the macaque benchmark the steps are the recording's 10 ms bins, so a model looping
    past the window is refused, naming its loop, the window and the fix (not the protocol,
    which a benchmark user cannot change)."""
    monkeypatch.syspath_prepend(FIXTURES)
    recording = make_assembly(n_stimuli=30, n_neuroids=6, n_bins=8, repetitions=2, seed=1)
    ids = {f"s{i}": f"digit_{i:04d}" for i in range(30)}  # embedded digits: no stimulus set needed
    recording = recording.assign_coords(stimulus_id=("presentation", [ids[s] for s in recording.stimulus_id.values]))
    to_netcdf(recording, tmp_path / "rec.nc")
    model = {"name": "looper", "entry_point": "user_static_rt:build", "config": {"times": 30, "width": 4},
             "input_size": 32}
    benchmark = get("macaque.IT.shared-time-ridge", path=str(tmp_path / "rec.nc"), n_permutations=20,
                    cache_dir=tmp_path / "cache")
    with pytest.raises(WorkbenchError, match=r"'looper' loops over one image for 30 steps; this benchmark's time "
                                             r"axis is 25 steps of 10 ms.*at most 25 iterations"):
        benchmark.score(model)
