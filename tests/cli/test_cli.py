import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main


def test_help_runs_from_the_console_script():
    script = Path(sys.executable).parent / "workbench"
    for command in ([str(script), "--help"], [str(script), "demo", "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        assert "demo" in done.stdout


def test_import_both_packages():
    subprocess.run([sys.executable, "-c", "import workbench, data_adapters"], check=True)


def test_demo_writes_scores_and_report(tmp_path, capsys):
    out = tmp_path / "demo <report>"
    argv = ["demo", "--out", str(out), "--n-stimuli", "60", "--permutations", "100", "--models", "b",
            "--no-replications", "--jobs", "1", "--no-progress"]
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["simulated"] is True and not scores["failures"]
    assert {record["model"] for record in scores["scores"]} == {"b", "generating network (gruCNN)"}
    assert {r["region"] for r in scores["scores"] if "macaque" in r["benchmark"]} == {"V4", "IT"}
    page = (out / "index.html").read_text()
    assert 'id="simulated-banner"' in page and "data:image/png;base64," in page
    assert "index.html" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n-stimuli", "5000", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("workbench demo: error:") and "\n" not in err


def _one_line_error(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"workbench {command}: error:") and "\n" not in err
    return err


def test_an_output_that_cannot_be_written_is_named_as_asked(tmp_path, capsys):
    """An --out under a file (or any place the folder cannot be made) is one line naming the
    path asked for; before, a store named the hidden temporary it tried to create."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for argv in (["extract", "b", "--out", str(blocker / "acts.zarr"), "--digits", "4", "--no-progress"],
                 ["simulate", "human", "--out", str(blocker / "ratings.csv")]):
        assert main(argv) == 1
        err = _one_line_error(capsys, argv[0])
        assert f"{blocker / argv[argv.index('--out') + 1].rsplit('/', 1)[-1]}: cannot write here" in err
        assert ".tmp" not in err


def test_simulate_writes_each_dataset_in_its_release_format(tmp_path, capsys):
    import data_adapters

    assert main(["simulate", "macaque", "--out", str(tmp_path / "rec.nc"), "--n", "30", "--no-progress"]) == 0
    recording = data_adapters.load(tmp_path / "rec.nc")
    assert recording.attrs["simulated"] and len(set(recording.stimulus_id.values)) == 30
    # the stimulus set is on disk as a release's is: PNGs as the simulated brain saw them
    # (32 px), each named by the CSV, so that --stimuli can show them to a model
    from PIL import Image

    table = data_adapters.load_stimulus_set(tmp_path / "rec_stimuli.csv")
    assert set(table["stimulus_id"]) == set(recording.stimulus_id.values)
    files = [tmp_path / name for name in table["filename"]]
    assert all(path.is_file() for path in files)
    assert Image.open(files[0]).size == (32, 32) and Image.open(files[0]).mode == "RGB"
    assert main(["simulate", "human", "--out", str(tmp_path / "ratings.csv"), "--n", "12"]) == 0
    shown = set(data_adapters.load(tmp_path / "ratings.csv").per_stimulus.stimulus_id)
    assert len({s for s in shown if not s.startswith("practice_")}) == 12
    assert main(["simulate", "blur-fmri", "--out", str(tmp_path / "fmri"), "--n", "1"]) == 0
    assert data_adapters.load(tmp_path / "fmri" / "sub-01.h5").attrs["simulated"]
    assert main(["simulate", "macaque", "--out", str(tmp_path / "rec.h5")]) == 2
    assert "*.nc" in _one_line_error(capsys, "simulate")
    assert not (tmp_path / "rec.h5").exists()


def test_extract_streams_the_same_activations_as_the_api(tmp_path, capsys):
    from workbench.models import extract, open_activations, zoo
    from workbench.models.reductions import SpatialPool
    from workbench.stimuli import digits

    store = tmp_path / "acts.zarr"
    assert main(["extract", "b", "--out", str(store), "--digits", "6", "--pool", "--no-progress"]) == 0
    written = open_activations(store)
    expected = extract(zoo.build("b", seed=0), digits(6, size=32, seed=0), reduction=SpatialPool(),
                       progress=False)
    assert written.sizes == expected.sizes
    np.testing.assert_array_equal(written.values, expected.values)
    assert str(store) in capsys.readouterr().out
    assert main(["extract", "nosuch", "--out", str(tmp_path / "x.zarr")]) == 2
    assert "MODEL: unknown model 'nosuch'; valid names: b, bl" in _one_line_error(capsys, "extract")
    assert main(["extract", "b", "--out", str(tmp_path / "x.zarr"), "--weights", str(tmp_path / "none.pt")]) == 2
    assert _one_line_error(capsys, "extract").startswith("workbench extract: error: --weights: file not found")
    assert not (tmp_path / "x.zarr").exists()


def test_a_simulated_recording_scores_from_its_files_as_the_readme_shows(tmp_path):
    """README: ``workbench simulate macaque --out rec.nc``, then ``workbench score MODEL
    --path rec.nc --stimuli rec_stimuli.csv``: the model is shown the PNGs the CSV names
    (the CSV used to name PNGs that were never written, and scoring failed on the first)."""
    rec = tmp_path / "rec.nc"
    assert main(["simulate", "macaque", "--out", str(rec), "--n", "40", "--no-progress"]) == 0
    assert main(["score", "b", "--no-train", "--benchmark", "macaque.IT.shared-time-ridge", "--path", str(rec),
                 "--stimuli", str(tmp_path / "rec_stimuli.csv"), "--permutations", "20",
                 "--out", str(tmp_path / "scores.json"), "--no-progress"]) == 0
    scored = json.loads((tmp_path / "scores.json").read_text())
    assert not scored["failures"] and len(scored["scores"]) == 1
    assert np.isfinite(scored["scores"][0]["value"])
    # the files show a model what the embedded route shows it (PNGs as the brain saw them,
    # 32 px): equal up to 8-bit rounding. Written at the digits' native 8 px, the anti-aliased
    # upsampling every image file gets cost the generating network 0.08 of its score
    import data_adapters

    from workbench.benchmarks.data import embedded_of, render_stimuli

    recording = data_adapters.load(rec)
    ids = list(dict.fromkeys(recording.stimulus_id.values))
    from_files = np.asarray(render_stimuli(ids, rec, tmp_path / "rec_stimuli.csv").images)
    embedded = np.asarray(render_stimuli(ids, rec, embedded=embedded_of(recording)).images)
    assert np.abs(from_files - embedded).max() < 0.02 * embedded.std()


def test_simulated_ratings_come_with_their_images_and_their_planted_truth(tmp_path):
    """``workbench simulate human`` writes ratings of images on disk (the noisy digits whose
    planted uncertainty grows with their noise) and the CSV naming them, so that the
    real-file benchmark scores a model on them; before, the ratings named images
    (img_0000...) that existed nowhere."""
    import data_adapters
    from scipy.stats import spearmanr

    from workbench.replications import human_uncertainty

    ratings = tmp_path / "ratings.sqlite"
    assert main(["simulate", "human", "--out", str(ratings), "--n", "40"]) == 0
    table = data_adapters.load_stimulus_set(tmp_path / "ratings_stimuli.csv")
    assert len(table) == 40 and all((tmp_path / name).is_file() for name in table["filename"])
    measured = human_uncertainty(data_adapters.load(ratings, practice_trials=3))  # what the benchmark reads
    assert set(measured.index) == set(table["stimulus_id"])
    # the planted truth is in the files: measured uncertainty grows with each image's noise
    noise = table.set_index("stimulus_id")["level_value"].astype(float)
    assert spearmanr(measured, noise.loc[measured.index]).statistic > 0.5  # 0.69: D is estimated from ~45 answers
    assert main(["simulate", "human", "--out", str(tmp_path / "many.csv"), "--n", "501"]) == 2
    assert main(["score", "b", "--no-train", "--benchmark", "human.rt-uncertainty", "--path", str(ratings),
                 "--stimuli", str(tmp_path / "ratings_stimuli.csv"), "--load-option", "practice_trials=3",
                 "--permutations", "20", "--out", str(tmp_path / "scores.json"), "--no-progress"]) == 0
    scored = json.loads((tmp_path / "scores.json").read_text())
    assert not scored["failures"] and not scored.get("warnings") and scored["scores"][0]["n"] == 40


BLNET = """import torch
from torch import nn


class BLNet(nn.Module):  # as published (Spoerer et al. 2020): one RGB image in, a readout per step out
    def __init__(self, times=4):
        super().__init__()
        self.times, self.bottom, self.lateral = times, nn.Conv2d(3, 8, 5, stride=4, padding=2), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        h, readouts = None, []
        for _ in range(self.times):
            h = torch.relu(self.bottom(x) + (self.lateral(h) if h is not None else 0))
            readouts.append(self.fc(h.mean((2, 3))))
        return readouts


def build():
    torch.manual_seed(0)
    return BLNet()
"""


def test_reaction_times_of_a_224_px_model_that_loops_over_one_image(tmp_path, monkeypatch):
    """A BLnet written as people write it (static 224 px RGB input, a list of per-step
    readouts) is scored on rated images on disk, shown at its declared input; the simulated
    variant, whose noisy digits exist only at 32 px, says which variant can show it."""
    (tmp_path / "user_blnet.py").write_text(BLNET)
    monkeypatch.syspath_prepend(str(tmp_path))
    ratings = tmp_path / "ratings.csv"
    assert main(["simulate", "human", "--out", str(ratings), "--n", "30"]) == 0
    common = ["--permutations", "20", "--no-progress"]
    assert main(["score", "user_blnet:build", "--benchmark", "human.rt-uncertainty", "--path", str(ratings),
                 "--stimuli", str(tmp_path / "ratings_stimuli.csv"), "--load-option", "practice_trials=3",
                 "--out", str(tmp_path / "real.json"), *common]) == 0
    real = json.loads((tmp_path / "real.json").read_text())
    assert not real["failures"] and real["scores"][0]["n"] == 30 and -1 <= real["scores"][0]["value"] <= 1
    assert main(["score", "user_blnet:build", "--benchmark", "sim-human.rt-uncertainty",
                 "--out", str(tmp_path / "sim.json"), *common]) == 1
    failure = json.loads((tmp_path / "sim.json").read_text())["failures"][0]["error"]
    assert "expects 224 px RGB" in failure and "human.rt-uncertainty with path= and stimuli=" in failure


def test_score_equals_the_report_for_the_same_task(tmp_path, capsys):
    from workbench.report.build import build_report
    from workbench.report.config import parse_config

    argv = ["score", "b", "--no-train", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--n-stimuli", "60",
            "--permutations", "50", "--out", str(tmp_path / "scores.json"), "--no-progress"]
    assert main(argv) == 0
    scored = json.loads((tmp_path / "scores.json").read_text())
    assert scored["simulated"] and not scored["failures"] and len(scored["scores"]) == 1
    config = parse_config({"models": [{"name": "b", "zoo": "b", "train": False}],
                           "benchmarks": ["sim-macaque.IT.shared-time-ridge"],
                           "settings": {"n_stimuli": 60, "n_permutations": 50}})
    reported = build_report(config, tmp_path / "report", progress=False)  # its own cache: recomputed
    for key in ("value", "normalized", "p_value", "ci_low", "ci_high"):
        assert scored["scores"][0][key] == reported["scores"][0][key]
    capsys.readouterr()  # the tasks' memory estimates (stderr) so far
    assert main(["score", "b", "--benchmark", "macaque.IT.shared-time-ridge", "--out", str(tmp_path / "s.json")]) == 2
    assert "--path: 'macaque.IT.shared-time-ridge' reads a real file" in _one_line_error(capsys, "score")


def test_score_records_the_layers_it_is_given(tmp_path, capsys):
    """``score --layers`` (as ``extract --layers``): the benchmark commits to one of them; a
    model's whole-sequence head is left out this way. An empty list is refused by name.
    ``--model-option`` passes a keyword to the model's builder (its config)."""
    out = tmp_path / "s.json"
    assert main(["score", "b", "--no-train", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--n-stimuli", "60",
                 "--permutations", "20", "--layers", "layers.1", "--out", str(out), "--no-progress"]) == 0
    scored = json.loads(out.read_text())
    assert not scored["failures"] and scored["scores"][0]["layer"] == "layers.1"
    capsys.readouterr()
    assert main(["score", "b", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--layers", " , ",
                 "--out", str(tmp_path / "t.json")]) == 2
    assert "--layers: no layer named in ' , '" in _one_line_error(capsys, "score")
    # --model-option: a keyword of the model's builder (its config), checked like the config's
    assert main(["score", "b", "--no-train", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--n-stimuli", "60",
                 "--permutations", "20", "--model-option", "channels=[4, 8]", "--out", str(tmp_path / "c.json"),
                 "--no-progress"]) == 0
    narrow = json.loads((tmp_path / "c.json").read_text())["scores"][0]["value"]
    assert narrow != scored["scores"][0]["value"]  # another model
    capsys.readouterr()
    assert main(["score", "b", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--model-option", "chanels=[4]",
                 "--out", str(tmp_path / "t.json")]) == 2
    assert "--model-option chanels: not an option of 'b'; it takes channels" in _one_line_error(capsys, "score")


def test_score_gives_forward_options_to_the_model(tmp_path, capsys):
    """``--forward-option NAME=VALUE`` reaches the model's forward (the spec's
    ``forward_options``): a name its forward does not take fails that model by name, listing
    the ones it takes; a name that is not a keyword is refused before any work."""
    out = tmp_path / "f.json"
    assert main(["score", "b", "--no-train", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--n-stimuli", "60",
                 "--permutations", "20", "--forward-option", "times=3", "--out", str(out), "--no-progress"]) == 1
    failure = json.loads(out.read_text())["failures"][0]["error"]
    assert "model 'b': forward_options: BLNet.forward takes no argument 'times' (it takes frames, return_states)" in failure
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["score", "b", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--forward-option", "n-steps=3",
              "--out", str(tmp_path / "g.json")])
    assert "argument --forward-option: expected NAME=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, words", [
    ("--batch-size", "0", "--batch-size: must be a positive integer"),  # named settings.batch_size before
    ("--permutations", "99999999999", "--permutations: must be at most 10,000,000"),
    ("--seed", "99999999999999999999", "--seed: must be at most 4,294,967,295"),
    ("--normalization", "cifar", "--normalization: must be one of set, imagenet, inception, unit, kinetics or MEAN/SD"),
    ("--normalization", "0.5/0", "--normalization: MEAN/SD '0.5/0': means must be finite and sds positive"),
])
def test_score_options_out_of_range_name_the_option(tmp_path, capsys, option, value, words):
    out = tmp_path / "s.json"
    assert main(["score", "b", "--benchmark", "sim-macaque.IT.shared-time-ridge", "--no-train", "--out", str(out),
                 option, value, "--no-progress"]) == 2
    assert words in _one_line_error(capsys, "score") and not out.exists()


@pytest.mark.parametrize("arguments, words", [
    # an option the dataset or the input does not have is refused, not silently ignored
    (["simulate", "human", "--out", "{tmp}/h.csv", "--repetitions", "3"], "--repetitions applies to macaque and blur-fmri"),
    (["simulate", "blur-fmri", "--out", "{tmp}/f", "--image-size", "64"], "--image-size applies to macaque, not"),
    (["simulate", "human", "--out", "{tmp}/h.csv", "--stimulus-set", "objects"], "--stimulus-set applies to macaque"),
    (["extract", "b", "--out", "{tmp}/e.zarr", "--digits", "3", "--background", "1"], "--background applies to image"),
    # a count of 0 was read as 'the default' (--n 0 simulated 3 subjects) or trained nothing (--epochs -1)
    (["simulate", "blur-fmri", "--out", "{tmp}/f", "--n", "0"], "n_subjects must be an integer >= 1, got 0"),
    (["simulate", "macaque", "--out", "{tmp}/m.nc", "--image-size", "0"], "image_size must be an integer >= 1"),
    (["train", "b", "--out", "{tmp}/models", "--epochs", "-1"], "epochs must be an integer >= 1, got -1"),
    (["train", "b", "--out", "{tmp}/models", "--channels", "0,8"], "each count must be an integer >= 1, got 0"),
    (["extract", "b", "--out", "{tmp}/e.zarr", "--digits", "3", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_options_that_cannot_apply_are_one_line_errors_and_write_nothing(tmp_path, capsys, arguments, words):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in arguments] + ["--no-progress"]) == 2
    assert words in _one_line_error(capsys, arguments[0])
    assert not any(tmp_path.iterdir())


def test_a_replication_claim_prints_its_effect_ci_and_p(capsys):
    from workbench.cli import _print_scores

    status = _print_scores({"scores": [
        {"claim": "gru beats ccnn", "benchmark": "replication.hartmann", "verdict": "reproduced", "value": 0.196,
         "ci_low": 0.12, "ci_high": 0.27, "p_value": 1.2e-7},
        {"claim": "tau grows", "benchmark": "replication.hartmann", "verdict": "reproduced", "value": 1.0,
         "ci_low": None, "ci_high": None, "p_value": None}], "failures": []})
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].endswith("gru beats ccnn (effect 0.196, 95% CI [0.12, 0.27], p=1.2e-07)")
    assert lines[1].endswith("tau grows (effect 1)")  # no CI, no p: nothing invented
