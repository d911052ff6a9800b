"""Benchmarks as objects: the registry, identities that see every input, Scores out."""

import numpy as np
import pandas as pd
import pytest

import workbench.benchmarks as b
from workbench.errors import ConfigError, WorkbenchError
from workbench.scores import Score, Scores


def test_available_lists_every_builtin_benchmark_and_the_real_file_templates():
    names = b.available()
    for name in ("sim-macaque.V4.shared-time-ridge", "sim-macaque.IT.shared-time-ridge",
                 "sim-blur-fmri.V1.denoising", "sim-blur-fmri.LOC.denoising", "sim-human.rt-uncertainty",
                 "replication.lindsay", "replication.nayebi", "macaque.REGION.shared-time-ridge (path=)",
                 "blur-fmri.ROI.denoising (path=)", "human.rt-uncertainty (path=)"):
        assert name in names
    assert b.demo_names()[:2] == ["sim-macaque.V4.shared-time-ridge", "sim-macaque.IT.shared-time-ridge"]


def test_every_benchmark_class_has_identity_version_citation_and_panel():
    for cls in b.classes():
        assert cls.version and cls.panel is not None and issubclass(cls.panel, b.Panel)
        if not cls.model_free:
            assert "@" in cls.citation and cls.units


def test_get_configures_an_instance_and_names_what_is_wrong(tmp_path):
    bench = b.get("macaque.MT.shared-time-ridge", path=tmp_path / "rec.nc", seed=3)
    assert (bench.region, bench.simulated, bench.needs_path, bench.seed) == ("MT", False, True, 3)
    assert b.get("sim-macaque.IT.shared-time-ridge").simulated
    with pytest.raises(WorkbenchError, match="valid names: sim-macaque.V4"):
        b.get("sim-macaque.IT.nope")
    with pytest.raises(WorkbenchError, match="simulated regions: V4, IT"):
        b.get("sim-macaque.MT.shared-time-ridge")
    with pytest.raises(ConfigError, match="reads a real file"):
        b.get("human.rt-uncertainty")
    with pytest.raises(ConfigError, match="takes no path"):
        b.get("sim-human.rt-uncertainty", path="x.db")


def test_identity_sees_the_data_file_and_every_listed_image(tmp_path):
    from skimage import io

    rng = np.random.default_rng(0)
    for i in range(3):
        io.imsave(tmp_path / f"im{i}.png", (rng.random((8, 8)) * 255).astype(np.uint8), check_contrast=False)
    pd.DataFrame({"stimulus_id": ["a", "b", "c"], "filename": [f"im{i}.png" for i in range(3)]}).to_csv(
        tmp_path / "set.csv", index=False)
    (tmp_path / "ratings.csv").write_text("worker\n")

    def key():
        return b.get("human.rt-uncertainty", path=tmp_path / "ratings.csv", stimuli=tmp_path / "set.csv").identity()

    before = key()
    assert key() == before
    io.imsave(tmp_path / "im1.png", (rng.random((8, 8)) * 255).astype(np.uint8), check_contrast=False)
    replaced = key()
    assert replaced["stimuli"] != before["stimuli"] and replaced["data"] == before["data"]
    (tmp_path / "ratings.csv").write_text("worker,other\n")
    assert key()["data"] != replaced["data"]
    assert b.get("sim-human.rt-uncertainty", seed=1).identity() != b.get("sim-human.rt-uncertainty").identity()


def test_a_benchmark_scores_a_model_spec_into_score_records(tmp_path):
    bench = b.get("sim-human.rt-uncertainty", n_permutations=50, cache_dir=tmp_path)
    scores, panel = bench.run({"name": "b", "zoo": "b", "train": False, "config": {"channels": [4, 8]}})
    assert isinstance(scores, Scores) and len(scores) == 1 and isinstance(scores[0], Score)
    score = scores[0]
    assert score.units == "spearman_rho" and -1 <= score.value <= 1 and 0 < score.p_value <= 1
    assert score.null_n == 50 and score.n == len(panel["rt"]) and score.simulated
    again = bench.score({"name": "other name", "zoo": "b", "train": False, "config": {"channels": [4, 8]}})
    assert again[0].value == score.value and again[0].p_value == score.p_value
    section = bench.panel().section([{"model": "b", "benchmark": bench.identifier,
                                      "records": [score.to_dict()], "panel": panel}])
    assert section.title and section.explanation and section.figures[0][0] == "rt_vs_uncertainty.png"
