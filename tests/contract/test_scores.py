"""The Score record type: JSON round trip, tabular views, the dict view old code relies on."""

import json
import math

import numpy as np
import pytest

from workbench.scores import Score, Scores
from workbench.storage import write_json


def _scores():
    return Scores([
        Score(value=0.5, model="BL", benchmark="sim-macaque.IT.shared-time-ridge", benchmark_version="1",
              region="IT", ceiling=0.8, normalized=0.3125, p_value=0.001, ci_low=0.4, ci_high=0.6, n=12,
              null_n=999, seed=0, simulated=True, units="pearson_r", extra={"layer": "conv2", "data": "x.nc"}),
        Score(value=-0.1, model="B", benchmark="replication.x", extra={"claim": "a <claim>", "verdict": "no"}),
    ])


def test_to_dict_is_flat_json_and_from_dict_restores_every_field(tmp_path):
    scores = _scores()
    write_json(tmp_path / "s.json", scores.to_dicts())
    back = Scores.from_dicts(json.loads((tmp_path / "s.json").read_text()))
    first, second = back
    assert first == scores[0]
    assert first.extra == {"layer": "conv2", "data": "x.nc"} and first.region == "IT"
    # NaN is written as null and read back as NaN; unknown keys land in extra
    assert math.isnan(second.ceiling) and second.extra["claim"] == "a <claim>"
    assert set(scores[0].to_dict()) >= {"value", "ceiling", "normalized", "p_value", "p_fwe", "q_value", "ci_low",
                                        "ci_high", "n", "null_n", "seed", "simulated", "units", "benchmark_version",
                                        "layer"}


def test_extra_never_shadows_a_field():
    score = Score(value=1.0, extra={"value": 99.0, "layer": "a"})
    assert score.to_dict()["value"] == 1.0


def test_dict_view_and_legacy_group_key():
    score = Score.from_dict({"group": "V4", "value": 0.2, "layer": "x"})
    assert score.region == "V4" and score["group"] == "V4" and score["value"] == 0.2
    assert score["layer"] == "x" and score.get("nope", 3) == 3 and "layer" in score and "nope" not in score
    assert dict(score)["layer"] == "x"
    with pytest.raises(KeyError):
        score["nope"]
    changed = score.replace(value=0.3, layer="y", model="m")
    assert (changed.value, changed.extra["layer"], changed.model, score.value) == (0.3, "y", "m", 0.2)


def test_frame_and_dataset_views():
    scores = _scores()
    frame = scores.to_frame()
    assert list(frame.columns[:3]) == ["value", "model", "benchmark"] and len(frame) == 2
    assert frame.loc[0, "layer"] == "conv2" and frame.loc[1, "claim"] == "a <claim>"
    dataset = scores.to_dataset()
    assert dataset.sizes["score"] == 2
    np.testing.assert_array_equal(dataset["value"].values, [0.5, -0.1])
    assert list(dataset["region"].values) == ["IT", ""]
    assert len(scores.where(model="BL")) == 1 and scores.where(layer="conv2")[0].model == "BL"
    assert Scores().to_frame().empty


def test_summary_line():
    assert _scores()[0].summary() == "BL sim-macaque.IT.shared-time-ridge IT: 0.5 [0.4, 0.6], p = 0.001"
