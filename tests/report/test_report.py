"""Batch reports: config errors, escaping, kill-and-resume, dask equality, Chromium render."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workbench import DataFormatError, simulators
from workbench.errors import DataWarning
from workbench.cli import main
from workbench.report.build import build_report
from workbench.report.config import ConfigError, load_config, parse_config

SCRIPT = str(Path(sys.executable).parent / "workbench")
SMALL_TOML = """
[settings]
seed = 0
n_permutations = 200
n_stimuli = 60
title = "tiny <report> & co"

[[models]]
name = "BL <script>alert(1)</script>"
zoo = "bl"
train = false
config = { channels = [4, 8] }

[[models]]
name = "B random"
zoo = "b"
train = false
config = { channels = [4, 8] }

[[benchmarks]]
name = "sim-macaque.IT.shared-time-ridge"
[[benchmarks]]
name = "sim-human.rt-uncertainty"
[[benchmarks]]
name = "sim-macaque.V4.shared-time-ridge"
"""


def _write_config(tmp_path, text=SMALL_TOML, name="report.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ configuration errors


@pytest.mark.parametrize("edit, key, words", [
    (lambda t: t.replace('zoo = "bl"', 'zoo = "resnet"'), "models[0].zoo", "valid names: b, bl"),
    (lambda t: t.replace("sim-human.rt-uncertainty", "sim-human.nope"), "benchmarks[1].name",
     "valid names: sim-macaque.V4"),
    (lambda t: t + '[[benchmarks]]\nname = "human.rt-uncertainty"\npath = "missing.sqlite"\n', "benchmarks[3].path",
     "not found"),
    (lambda t: t.replace("n_permutations = 200", "n_permutations = -1"), "settings.n_permutations", "positive"),
    (lambda t: t + "[[models]]\nzoo = 'bl'\n", "models[2].name", "non-empty"),
    (lambda t: t.replace("[settings]", "[settings\n"), "--config", "not valid TOML"),
    (lambda t: t.replace("seed = 0", "seed = true"), "settings.seed", "non-negative integer"),
    (lambda t: t.replace('zoo = "b"\n', 'zoo = "b"\nepochs = -5\n'), "models[1].epochs", ">= 1"),
    (lambda t: t.replace('title = "tiny <report> & co"', "title = 3"), "settings.title", "must be a string"),
    # a typo that would have run for days, a seed torch cannot take, a name that breaks every
    # output, an option the family does not take (raw TypeError at build), arrays nested
    # 5,000 deep (raw RecursionError from tomllib)
    (lambda t: t.replace("n_permutations = 200", "n_permutations = 20000000000"), "settings.n_permutations",
     "at most 10,000,000"),
    (lambda t: t.replace("seed = 0", "seed = 99999999999999999999"[:19]), "settings.seed", "at most 4,294,967,295"),
    (lambda t: t.replace('name = "B random"', 'name = "B \\u001b[31mrandom"'), "models[1].name",
     "holds a control character"),
    (lambda t: t.replace('zoo = "b"\ntrain = false\nconfig = { channels', 'zoo = "b"\ntrain = false\nconfig = { chanels'),
     "models[1].config.chanels", "not an option of 'b'; it takes channels"),
    (lambda t: t.replace('config = { channels = [', 'config = { channels = [0, '), "models[0].config.channels",
     "each count must be an integer >= 1, got 0"),
    (lambda t: "x = " + "[" * 5000 + "]" * 5000 + "\n" + t, "--config", "nests arrays or tables too deeply"),
    # TOML dates and times, which no option takes and JSON cannot hold (a raw TypeError when
    # the provenance was written)
    (lambda t: t.replace('zoo = "bl"\ntrain = false\nconfig = { channels = [4, 8] }',
                         'zoo = "bl"\ntrain = false\nconfig = { channels = [4, 8], start = 1979-05-27 }'),
     "models[0].config.start", "(date) is not an option value"),
    (lambda t: t.replace('zoo = "b"\ntrain = false\n', 'zoo = "b"\ntrain = false\nforward_options = { at = [07:32:00] }\n'),
     "models[1].forward_options.at[0]", "(time) is not an option value"),
    # one benchmark listed twice (one recording with and without its stimuli, two animals'
    # files): records that no reader could tell apart
    (lambda t: t + '[[benchmarks]]\nname = "sim-human.rt-uncertainty"\n', "benchmarks[3]",
     "'sim-human.rt-uncertainty' is listed already (benchmarks[1])"),
])
def test_bad_config_is_a_one_line_error_with_exit_code_2_and_writes_nothing(tmp_path, capsys, edit, key, words):
    config = _write_config(tmp_path, edit(SMALL_TOML))
    out = tmp_path / "out"
    assert main(["report", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"config key {key!r}" in err and words in err, err
    assert not out.exists()


def test_load_options_that_are_not_plain_data_are_named(tmp_path):
    """A loader option holding a TOML date (no reader takes one; the provenance's JSON cannot
    hold it) is refused where the config is read, naming its place."""
    import datetime

    (tmp_path / "ratings.csv").write_text("worker,stimulus_id,truth,response,rt_ms,max_rt_ms\n")
    benchmark = {"name": "human.rt-uncertainty", "path": "ratings.csv",
                 "load_options": {"practice_trials": 1, "labels": {"f": datetime.date(2026, 1, 1)}}}
    with pytest.raises(ConfigError, match=r"benchmarks\[0\].load_options.labels.f.*\(date\) is not an option value"):
        parse_config({"models": [{"name": "b", "zoo": "b", "train": False}], "benchmarks": [benchmark]}, base=tmp_path)


def test_config_accepts_strings_entry_points_and_weights(tmp_path):
    import torch

    from workbench.models import zoo

    weights = tmp_path / "w.pt"
    torch.save(zoo.build("bl", seed=3, channels=(4, 8)).state_dict(), weights)
    config = parse_config({"models": [{"name": "m", "zoo": "bl", "weights": "w.pt", "config": {"channels": [4, 8]}},
                                      {"name": "e", "entry_point": "workbench.models.zoo:build",
                                       "config": {"name": "b", "channels": [4, 8]}}],
                           "benchmarks": ["sim-human.rt-uncertainty"]}, base=tmp_path)
    assert config.models[0]["train"] is False and config.models[0]["weights"] == str(weights.resolve())
    with pytest.raises(ConfigError, match="models\\[0\\].entry_point"):
        parse_config({"models": [{"name": "x", "entry_point": "nocolon"}], "benchmarks": ["sim-human.rt-uncertainty"]})


# ------------------------------------------------------------------ a report end to end


@pytest.fixture(scope="module")
def serial_report(tmp_path_factory):
    base = tmp_path_factory.mktemp("serial")
    config = load_config(_write_config(base))
    scores = build_report(config, base / "out", jobs=1, progress=False)
    return config, base / "out", scores


def test_report_writes_every_output_with_escaped_strings(serial_report):
    config, out, scores = serial_report
    for name in ("scores.json", "scores.csv", "index.html", "provenance.json",
                 "figures/time_course_sim_macaque_IT_shared_time_ridge.png",
                 "figures/time_course_sim_macaque_V4_shared_time_ridge.png",
                 "figures/layer_time_sim_macaque_IT_shared_time_ridge.png", "figures/rt_vs_uncertainty.png"):
        assert (out / name).is_file(), name  # one time-course panel per dataset, never averaged across them
    macaque = [r for r in scores["scores"] if r["benchmark"].startswith("sim-macaque")]
    assert all(r["onset_ms"] is None or r["onset_ms_ci"][0] <= r["onset_ms"] + 1e-9 for r in macaque)
    assert all("clusters_ms" in r and r["ceiling_method"] == "split_half" for r in macaque)
    # each model's first step sits at the region's onset read off the data: the planted latency, or one bin
    # later where the generating network's gated units build up over their first step (IT)
    onsets = {r["benchmark"]: r["model_onset_ms"] for r in macaque}
    assert onsets["sim-macaque.V4.shared-time-ridge"] == 50.0
    assert onsets["sim-macaque.IT.shared-time-ridge"] in (70.0, 80.0)
    assert not scores["failures"] and scores["simulated"] is True
    assert {(r["model"], r["benchmark"]) for r in scores["scores"]} == {
        (m["name"], b["name"]) for m in config.models for b in config.benchmarks}
    page = (out / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "tiny &lt;report&gt; &amp; co" in page and 'id="simulated-banner"' in page
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["inputs"] and all(len(v) == 64 for v in provenance["inputs"].values())
    assert provenance["config"]["settings"]["seed"] == 0


def test_failing_task_is_reported_and_the_others_finish(tmp_path, capsys):
    text = SMALL_TOML + """
[[models]]
name = "broken"
entry_point = "torch.nn:Identity"
"""
    config = _write_config(tmp_path, text.replace('[[benchmarks]]\nname = "sim-macaque.V4.shared-time-ridge"\n', ""))
    out = tmp_path / "out"
    assert main(["report", "--config", str(config), "--out", str(out), "--no-progress", "--jobs", "1"]) == 1
    scores = json.loads((out / "scores.json").read_text())
    failed = {(f["model"], f["benchmark"]) for f in scores["failures"]}
    assert failed == {("broken", "sim-macaque.IT.shared-time-ridge"), ("broken", "sim-human.rt-uncertainty")}
    assert len(scores["scores"]) == 4
    assert "FAILED broken" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path, serial_report):
    _, reference, _ = serial_report
    config = _write_config(tmp_path)
    out = tmp_path / "out"
    _seed_data(reference, out / "cache")
    command = [SCRIPT, "report", "--config", str(config), "--out", str(out), "--no-progress", "--jobs", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tasks = out / "cache" / "tasks"
    deadline = time.time() + 120
    while time.time() < deadline and not (tasks.exists() and any(tasks.glob("*.json"))):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in tasks.glob("*.json")}
    assert 1 <= len(finished) < 6, "the kill must land mid-run"
    assert not (out / "scores.json").exists()
    assert not [p for p in tasks.iterdir() if p.name.startswith(".")], "no temporary file left visible as a result"
    subprocess.run(command, check=True, capture_output=True)
    assert {p.name: p.stat().st_mtime_ns for p in tasks.glob("*.json") if p.name in finished} == finished
    assert (out / "scores.json").read_text() == (reference / "scores.json").read_text()


def _seed_data(reference, cache):
    """Start ``cache`` with the serial report's simulated recordings (the tasks, the models and
    the activations are still computed): the runs below test scheduling and resuming, and the
    simulations are the same files (test_report_writes_every_output checks them)."""
    shutil.copytree(reference / "cache" / "data", cache / "data")
    return cache


def _one_benchmark(tmp_path, reference, name="sim-macaque.V4.shared-time-ridge"):
    """The report's config cut to one benchmark, and the serial report's records for it."""
    text = SMALL_TOML
    for other in ("sim-macaque.IT.shared-time-ridge", "sim-human.rt-uncertainty", "sim-macaque.V4.shared-time-ridge"):
        if other != name:
            text = text.replace(f'[[benchmarks]]\nname = "{other}"\n', "")
    config = load_config(_write_config(tmp_path, text))
    assert [b["name"] for b in config.benchmarks] == [name]
    expected = [r for r in json.loads((reference / "scores.json").read_text())["scores"] if r["benchmark"] == name]
    assert len(expected) == 2
    return config, expected


@pytest.mark.slow
def test_two_worker_local_cluster_gives_exactly_the_serial_results(tmp_path, serial_report):
    # a worker trains the hidden network, then the two tasks run side by side
    config, expected = _one_benchmark(tmp_path, serial_report[1], "sim-macaque.IT.shared-time-ridge")
    build_report(config, tmp_path / "out", jobs=2, cache_dir=_seed_data(serial_report[1], tmp_path / "cache"),
                 progress=False)
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["scores"] == expected


@pytest.mark.slow
def test_an_existing_cluster_is_used_through_its_scheduler_address(tmp_path, serial_report):
    from dask.distributed import LocalCluster

    # the hidden network is prepared on the cluster, then its tasks run there
    config, expected = _one_benchmark(tmp_path, serial_report[1])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        build_report(config, tmp_path / "out", scheduler=cluster.scheduler_address,
                     cache_dir=_seed_data(serial_report[1], tmp_path / "cache"), progress=False)
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["scores"] == expected


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("Chromium is not installed: `make test` installs Debian's chromium package "
                         "(apt-get install chromium); install it to run this test")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, serial_report):
    from PIL import Image

    config, out, _ = serial_report
    browser = _chromium()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (out / "index.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    done = subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,1600", url],
                          capture_output=True, text=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10, "screenshot is blank"
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    console = [line for line in (done.stderr + dom.stderr).splitlines() if ":CONSOLE" in line]
    assert not console, console
    board = re.search(r'<table class="sortable" id="leaderboard">.*?<tbody>(.*?)</tbody>', dom.stdout, re.S)
    assert board and board.group(1).count("<tr>") == len(config.models)


def test_a_damaged_cache_entry_is_recomputed_not_trusted(tmp_path, serial_report):
    _, reference, scores = serial_report
    cache = tmp_path / "cache"
    shutil.copytree(reference / "cache", cache)
    victim = next((cache / "tasks").glob("*.json"))
    victim.write_text(victim.read_text()[:40])
    build_report(load_config(_write_config(tmp_path)), tmp_path / "out", cache_dir=cache, progress=False)
    assert (tmp_path / "out" / "scores.json").read_text() == (reference / "scores.json").read_text()
    assert json.loads(victim.read_text())["records"]


def test_real_file_variant_fed_a_simulated_file_is_labelled_simulated(tmp_path, serial_report):
    _, reference, _ = serial_report
    recording = next((reference / "cache" / "data").glob("sim_macaque_*.nc"))
    config = _write_config(tmp_path, SMALL_TOML.split("[[benchmarks]]")[0] + f"""
[[benchmarks]]
name = "macaque.IT.shared-time-ridge"
path = "{recording}"
""")
    scores = build_report(load_config(config), tmp_path / "out", jobs=1, progress=False)
    assert not scores["failures"] and scores["simulated"] is True
    assert all(r["simulated"] for r in scores["scores"])
    assert 'id="simulated-banner"' in (tmp_path / "out" / "index.html").read_text()


def test_real_file_variant_shows_the_images_of_a_stimulus_set(tmp_path):
    """human.rt-uncertainty on a tidy CSV of trials whose stimuli are image files on disk."""
    import pandas as pd
    from skimage import io

    import data_adapters
    from workbench.stimuli import from_image_files

    rng = np.random.default_rng(0)
    ids = [f"photo_{i:02d}" for i in range(30)]
    for i, name in enumerate(ids):
        io.imsave(tmp_path / f"{name}.png", (rng.random((40, 48)) * 255 * (i % 3 + 1) / 3).astype(np.uint8),
                  check_contrast=False)
    pd.DataFrame({"image_id": ids, "filename": [f"{n}.png" for n in ids],
                  "category_name": ["a", "b", "c"] * 10}).to_csv(tmp_path / "stimuli.csv", index=False)
    shown = from_image_files(data_adapters.load_stimulus_set(tmp_path / "stimuli.csv"), size=32)
    assert shown.images.shape == (30, 1, 32, 32) and list(shown.stimulus_ids) == ids
    simulators.simulate_human_ratings(tmp_path / "trials.csv", format="csv", n_workers=10, seed=0,
                                         uncertainty=pd.Series(rng.uniform(0, 0.5, 30), index=ids))
    config = _write_config(tmp_path, SMALL_TOML.split("[[benchmarks]]")[0] + """
[[benchmarks]]
name = "human.rt-uncertainty"
path = "trials.csv"
stimuli = "stimuli.csv"
""")
    # the simulated file's 3 practice images have no image file: left out, and said so
    with pytest.warns(DataWarning, match=r"3 of 33 rated stimuli have no image .*practice_0"):
        scores = build_report(load_config(config), tmp_path / "out", jobs=1, progress=False)
    assert not scores["failures"], scores["failures"]
    assert {r["n"] for r in scores["scores"]} == {30} and scores["simulated"] is False
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'id="simulated-banner"' not in page
    (tmp_path / "photo_03.png").unlink()
    with pytest.raises(DataFormatError, match="photo_03.png"):
        from_image_files(data_adapters.load_stimulus_set(tmp_path / "stimuli.csv"))


def test_read_only_out_is_a_one_line_error_before_any_work(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        # root ignores write permissions: a file where the folder should be is the fault then
        (tmp_path / "out").write_text("a file, not a folder")
        out = tmp_path / "out" / "report"
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        out = tmp_path / "ro" / "report"
    config = _write_config(tmp_path)
    started = time.perf_counter()
    assert main(["report", "--config", str(config), "--out", str(out), "--no-progress", "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot write there" in err and str(out) in err
    assert time.perf_counter() - started < 30, "refused before computing"
    argv = ["score", "b", "--no-train", "--benchmark", "sim-human.rt-uncertainty", "--out", str(out / "s.json")]
    assert main(argv + ["--no-progress"]) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_a_full_disk_while_publishing_leaves_the_previous_report(tmp_path, monkeypatch, serial_report):
    from workbench.report import build

    _, reference, _ = serial_report
    out = tmp_path / "out"
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns("cache"))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    real_write = Path.write_bytes

    def full_disk(self, data):
        if self.name == "index.html":
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(build.WorkbenchError, match="No space left on device.*previous report.*unchanged"):
        build.publish(out, {"scores.csv": b"new", "index.html": b"new", "scores.json": None},
                      {"scores.json": {"new": True}})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".report-")]


def test_scores_csv_neutralises_spreadsheet_formulas(tmp_path):
    import pandas as pd

    from workbench.report.build import spreadsheet_safe

    frame = pd.DataFrame({"model": ["=HYPERLINK(\"x\")", "+1", "-cmd", "@SUM(A1)", "plain", None],
                          "value": [-0.5, 0.1, 0.2, 0.3, 0.4, 0.5]})
    safe = spreadsheet_safe(frame)
    assert safe["model"].tolist()[:5] == ["'=HYPERLINK(\"x\")", "'+1", "'-cmd", "'@SUM(A1)", "plain"]
    assert safe["value"].tolist() == frame["value"].tolist()


def test_p_values_at_the_floor_read_as_a_bound(serial_report):
    _, out, scores = serial_report
    page = (out / "index.html").read_text()
    floors = [r for r in scores["scores"] if r.get("null_n") and r["p_value"] <= 1 / (r["null_n"] + 1) + 1e-12]
    assert floors, "the tiny report has p-values at the floor of its 200 draws"
    assert "p &lt; 0.005" in page and "p = 0.00498" not in page


def test_auto_permutations_size_each_test_from_its_family(tmp_path):
    config = parse_config({"models": [{"name": "b", "zoo": "b", "train": False, "config": {"channels": [4, 8]}}],
                           "benchmarks": ["sim-macaque.IT.shared-time-ridge", "sim-human.rt-uncertainty"],
                           "settings": {"n_permutations": "auto", "n_stimuli": 60}})
    scores = build_report(config, tmp_path / "out", progress=False)
    draws = {r["benchmark"]: r["null_n"] for r in scores["scores"]}
    # IT: the model starts at the data's onset (70 or 80 ms), so (300 - onset) / 10 of its 25 steps fall in the
    # recording: at 80 ms, 16 sites x 22 bins = 352 cells -> 0.05 / 352 needs 7,040 draws; one RT test -> 1,000
    onset = next(r["model_onset_ms"] for r in scores["scores"] if r["benchmark"].startswith("sim-macaque"))
    assert onset in (70.0, 80.0)
    assert draws == {"sim-macaque.IT.shared-time-ridge": 20 * 16 * int((300 - onset) / 10),
                     "sim-human.rt-uncertainty": 1000}
    with pytest.raises(ConfigError, match='positive integer or "auto"'):
        parse_config({"models": [{"name": "b", "zoo": "b"}], "benchmarks": ["sim-human.rt-uncertainty"],
                      "settings": {"n_permutations": "many"}})


def test_a_change_to_the_workbench_code_is_a_new_key_for_every_task(tmp_path, monkeypatch):
    """A report task runs loaders, extraction, metrics and statistics: its key hashes all of
    that code. With only a version string in it, a fix (such as the bootstrap CI's) kept
    serving the results computed before it."""
    from workbench import keys
    from workbench.report.runner import plan

    config = load_config(_write_config(tmp_path))
    before = {task.label: task.key for task in plan(config)}
    assert before == {task.label: task.key for task in plan(config)}
    real = keys._package_code_digest

    def edited(folders):
        return "edited " + real(folders)

    monkeypatch.setattr(keys, "_package_code_digest", edited)
    after = {task.label: task.key for task in plan(config)}
    assert after.keys() == before.keys() and all(after[label] != before[label] for label in before)


def test_a_builder_that_loads_its_own_weights_file_gets_no_stale_score(tmp_path):
    """An entry point's builder that calls torch.load itself: the task key (made without
    running user code) cannot see that file, so each cached result records the state the
    model built to and is reused only while it builds to the same; an unseeded builder gets
    the spec's seed, so the same spec is the same model in every run."""
    import torch

    (tmp_path / "own_weights_net.py").write_text(
        "from pathlib import Path\nimport torch\n\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)\n"
        "        self.fc = torch.nn.Linear(4, 10)\n\n    def forward(self, frames):\n"
        "        return self.fc(torch.relu(self.conv(frames.flatten(0, 1))).mean((2, 3))).view(*frames.shape[:2], -1)\n\n\n"
        "def build():\n    net = Net()  # unseeded\n"
        "    net.load_state_dict(torch.load(Path(__file__).with_name('w.pt'), weights_only=True))\n"
        "    return net\n\n\ndef unseeded():\n    return Net()\n")
    torch.manual_seed(1)
    from importlib import util

    spec = util.spec_from_file_location("own_weights_net", tmp_path / "own_weights_net.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.save(module.Net().state_dict(), tmp_path / "w.pt")
    config = _write_config(tmp_path, """
[settings]
n_permutations = 20
n_stimuli = 40

[[models]]
name = "mine"
entry_point = "own_weights_net:build"
input_size = 32
channels = "grey"
normalization = "set"

[[models]]
name = "unseeded"
entry_point = "own_weights_net:unseeded"
input_size = 32
channels = "grey"
normalization = "set"

[[benchmarks]]
name = "sim-macaque.IT.shared-time-ridge"
""")
    cache = tmp_path / "cache"

    def written():
        return {path.name: path.stat().st_mtime_ns for path in (cache / "tasks").glob("*.json")}

    first = build_report(load_config(config), tmp_path / "one", cache_dir=cache, progress=False)
    entries = written()
    again = build_report(load_config(config), tmp_path / "two", cache_dir=cache, progress=False)
    assert [r["value"] for r in again["scores"]] == [r["value"] for r in first["scores"]]
    assert len(entries) == 2 and written() == entries  # both reused (the unseeded model built alike)
    torch.manual_seed(2)
    torch.save(module.Net().state_dict(), tmp_path / "w.pt")  # new weights, same code and config
    changed = build_report(load_config(config), tmp_path / "three", cache_dir=cache, progress=False)
    values = {r["model"]: r["value"] for r in changed["scores"]}
    before = {r["model"]: r["value"] for r in first["scores"]}
    assert values["mine"] != before["mine"] and values["unseeded"] == before["unseeded"]
    assert len({name for name, stamp in written().items() if entries[name] != stamp}) == 1  # only "mine" rerun
