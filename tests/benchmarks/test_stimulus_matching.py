"""Real files as their tools write them reach the benchmarks: a data file's stimuli are found in a
stimulus set by id, then by file name (jsPsych saves the image path it showed, or the HTML of an
<img> tag; BIDS events a stim_file; BrainIO the id), and the reader's options (key labels,
participant column, events and masks files) come from the report config or --load-option."""

import csv
import warnings

import numpy as np
import pandas as pd
import pytest
from skimage import io

import data_adapters
from workbench import WorkbenchError
from workbench.benchmarks.data import human_ratings, image_index, render_stimuli
from workbench.errors import DataWarning

IDS = [f"photo_{i:02d}" for i in range(12)]
KEYS = {"labels": {"f": 0, "j": 1}}  # jsPsych saves the key pressed


@pytest.fixture
def stimulus_set(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i, name in enumerate(IDS):
        io.imsave(tmp_path / "images" / f"{name}.png", (rng.random((20, 20)) * 80 * (i % 3 + 1)).astype(np.uint8),
                  check_contrast=False)
    pd.DataFrame({"image_id": IDS, "filename": [f"images/{n}.png" for n in IDS],
                  "category_name": ["animal", "other"] * 6}).to_csv(tmp_path / "stimuli.csv", index=False)
    return tmp_path / "stimuli.csv"


def _jspsych_csv(path, stimuli, seed=0):
    """jsPsych's CSV (every value quoted, "null" for a timeout) of 4 participants rating ``stimuli``."""
    rng = np.random.default_rng(seed)
    fields = ["subject", "trial_type", "trial_index", "time_elapsed", "stimulus", "correct_response", "response",
              "rt", "trial_duration"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        writer.writerow(fields)
        index = 0
        for subject in range(4):
            writer.writerow([f"p{subject}", "html-keyboard-response", index, 10, "<p>Press F or J</p>", "", "", "", ""])
            for i, stimulus in enumerate(stimuli):
                index += 1
                truth = i % 2
                response = truth if rng.random() < 0.5 + 0.04 * i else 1 - truth
                writer.writerow([f"p{subject}", "image-keyboard-response", index, 1000 * index, stimulus,
                                 "fj"[truth], "fj"[response], int(rng.integers(300, 900)), 1000])
    return path


def _table(stimulus_csv):
    return data_adapters.load_stimulus_set(stimulus_csv)


def test_ids_paths_html_and_stems_each_find_their_image(stimulus_set):
    table = _table(stimulus_set)
    asked = ["photo_03", "images/photo_04.png", "img/photo_05.png", '<img src="stimuli/photo_06.png" width="300">',
             "photo_07.png", "C:\\exp\\photo_08.png", "https://host/exp/photo_09.png?v=2", "photo_99", "1.5"]
    assert image_index(asked, table, stimulus_set).tolist() == [3, 4, 5, 6, 7, 8, 9, -1, -1]


def test_a_file_name_two_images_share_is_an_error_not_a_guess(tmp_path):
    table = pd.DataFrame({"stimulus_id": ["cat_1", "dog_1"], "filename": ["cat/001.png", "dog/001.png"]})
    assert image_index(["cat/001.png", "dog_1"], table, "set.csv").tolist() == [0, 1]
    with pytest.raises(WorkbenchError, match=r"'001.png' matches several images .*'cat_1', 'dog_1'"):
        image_index(["001.png"], table, "set.csv")


def test_numeric_ids_are_not_cut_at_their_decimal_point():
    table = pd.DataFrame({"stimulus_id": ["1", "2"], "filename": ["1.png", "2.png"]})
    assert image_index(["1.5", "2.0", "2"], table, "set.csv").tolist() == [-1, -1, 1]


def test_rendered_images_carry_the_datas_names(stimulus_set):
    asked = ["img/photo_02.png", "photo_01"]
    shown = render_stimuli(asked, "ratings.csv", stimulus_set)
    assert list(shown.stimulus_ids) == asked
    assert shown.metadata["stimulus_set_id"].tolist() == ["photo_02", "photo_01"]
    direct = render_stimuli(["photo_02", "photo_01"], "ratings.csv", stimulus_set)
    np.testing.assert_array_equal(np.asarray(shown.images), np.asarray(direct.images))


@pytest.mark.parametrize("as_html", [False, True])
def test_jspsych_ratings_of_image_paths_are_scored_on_their_images(tmp_path, stimulus_set, as_html):
    shown_as = [f'<img src="img/{n}.png">' if as_html else f"img/{n}.png" for n in IDS]
    ratings = _jspsych_csv(tmp_path / "ratings.csv", shown_as)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # every rated image is found: no warning
        stimuli, uncertainty, source = human_ratings(ratings, stimulus_set, 0, tmp_path / "data", KEYS)
    assert sorted(stimuli.stimulus_ids) == sorted(shown_as) and len(uncertainty) == len(IDS)
    assert set(uncertainty.index) == set(stimuli.stimulus_ids)
    direct = render_stimuli(IDS, source, stimulus_set)
    order = [shown_as.index(i) for i in stimuli.stimulus_ids]
    np.testing.assert_array_equal(np.asarray(stimuli.images), np.asarray(direct.images)[order])


def test_rated_stimuli_without_an_image_are_left_out_with_a_warning(tmp_path, stimulus_set):
    ratings = _jspsych_csv(tmp_path / "ratings.csv", [f"img/{n}.png" for n in IDS[:10]] + ["img/extra_1.png"])
    with pytest.warns(DataWarning, match=r"1 of 11 rated stimuli have no image .*img/extra_1.png"):
        stimuli, uncertainty, _ = human_ratings(ratings, stimulus_set, 0, tmp_path / "data", KEYS)
    assert len(stimuli) == 10 and "img/extra_1.png" in uncertainty.index
    none = _jspsych_csv(tmp_path / "none.csv", ["img/other_1.png", "img/other_2.png"])
    with pytest.raises(WorkbenchError, match=r"no rated stimulus has an image in .*stimuli.csv"):
        human_ratings(none, stimulus_set, 0, tmp_path / "data", KEYS)


CONFIG = """
[[models]]
name = "b"
zoo = "b"
train = false

[[benchmarks]]
name = "human.rt-uncertainty"
path = "ratings.csv"
stimuli = "stimuli.csv"
{options}

[settings]
n_permutations = 200
"""


def _config(tmp_path, options=""):
    path = tmp_path / "report.toml"
    path.write_text(CONFIG.format(options=options))
    return path


def test_a_report_reads_a_jspsych_file_with_the_configs_loader_options(tmp_path, stimulus_set):
    from workbench.report.build import build_report
    from workbench.report.config import load_config

    # one rated stimulus has no image: scored without it, and the report says so
    _jspsych_csv(tmp_path / "ratings.csv", [f"img/{n}.png" for n in IDS] + ["img/<b>extra</b>.png"])
    config = load_config(_config(tmp_path, 'load_options = { labels = { f = 0, j = 1 } }'))
    with pytest.warns(DataWarning, match="1 of 13 rated stimuli have no image"):
        scores = build_report(config, tmp_path / "out", jobs=1, progress=False)
    assert not scores["failures"], scores["failures"]
    assert [record["n"] for record in scores["scores"]] == [len(IDS)]
    (warning,) = scores["warnings"]
    assert warning["benchmark"] == "human.rt-uncertainty" and "img/<b>extra</b>.png" in warning["warning"]
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'id="data-warnings"' in page and "img/&lt;b&gt;extra&lt;/b&gt;.png" in page and "<b>extra" not in page
    # a resumed run reads the task back from the cache, its warning with it
    assert build_report(config, tmp_path / "out", jobs=1, progress=False)["warnings"] == scores["warnings"]
    # without the key labels the task fails, and says what to pass
    scores = build_report(load_config(_config(tmp_path)), tmp_path / "out2", jobs=1, progress=False)
    assert len(scores["failures"]) == 1 and "labels=" in str(scores["failures"])


@pytest.mark.parametrize("options, key, words", [
    ('load_options = { tr_s = 2.0 }', "benchmarks[0].load_options", "option 'tr_s' does not apply to the jspsych"),
    ('load_options = { events = "runs/events.tsv" }', "benchmarks[0].load_options.events", "file not found"),
    ('load_options = { masks = { V1 = "masks/V1.nii.gz" } }', "benchmarks[0].load_options.masks.V1",
     "file not found"),
    ('load_options = "labels"', "benchmarks[0].load_options", "must be a table"),
])
def test_load_options_are_checked_with_the_config(tmp_path, stimulus_set, options, key, words):
    from workbench.errors import ConfigError
    from workbench.report.config import load_config

    _jspsych_csv(tmp_path / "ratings.csv", [f"img/{n}.png" for n in IDS])
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, options))
    assert info.value.key == key and words in str(info.value)


def test_a_simulated_benchmark_takes_no_load_options():
    from workbench.benchmarks import get
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="simulated and takes no load_options"):
        get("sim-human.rt-uncertainty", load_options={"labels": {"f": 0}})


def test_load_options_and_the_files_they_name_enter_the_identity(tmp_path):
    from workbench.benchmarks import get

    data = tmp_path / "ratings.csv"
    data.write_text("x")
    events = tmp_path / "events.tsv"
    events.write_text("onset\tduration\tstimulus_id\n0\t1\ta\n")

    def identity(**options):
        return get("human.rt-uncertainty", path=data, load_options=options or None).identity()

    plain, labelled = identity(), identity(labels={"f": 0, "j": 1})
    assert "load_options" not in plain and labelled != plain
    assert identity(labels={"f": 1, "j": 0}) != labelled
    before = identity(events=str(events))
    events.write_text("onset\tduration\tstimulus_id\n0\t1\tb\n")
    assert identity(events=str(events)) != before


def test_score_takes_load_options_on_the_command_line(tmp_path, stimulus_set, capsys, monkeypatch):
    from workbench.cli import main

    monkeypatch.chdir(tmp_path)
    _jspsych_csv(tmp_path / "ratings.csv", [f"<img src='stimuli/{n}.png'>" for n in IDS])
    argv = ["score", "b", "--no-train", "--benchmark", "human.rt-uncertainty", "--path", "ratings.csv",
            "--stimuli", "stimuli.csv", "--permutations", "200", "--out", "s.json", "--no-progress"]
    assert main(argv + ["--load-option", 'labels={"f": 0, "j": 1}']) == 0
    assert main(argv + ["--load-option", "tr_s=2"]) == 2
    assert "--load-option: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(argv + ["--load-option", "labels"])


def test_hostile_references_are_matched_without_a_hang():
    """A 100 kB stimulus field of repeated '<img ' tags took 38 s (a quadratic tag search):
    a participant's browser writes these fields, so a hostile file could hang a report."""
    import time

    from workbench.benchmarks.data import _file_keys

    table = pd.DataFrame({"stimulus_id": ["a"], "filename": ["img/a.png"]})
    hostile = ["<img " * 20000, "<img src=" + "x" * 100000, "a/" * 50000, "<IMG " * 20000 + 'src="img/a.png">']
    start = time.perf_counter()
    assert image_index(hostile, table, "set.csv").tolist() == [-1, -1, -1, -1]
    assert time.perf_counter() - start < 10  # a hang guard, not a speed figure: about 0.1 s
    assert _file_keys('<img alt="a cat" src="img/a.png?x=1">') == ["img/a.png", "a.png", "a"]


def test_a_data_file_of_another_kind_is_a_named_error(tmp_path, stimulus_set, shared_data):
    """A benchmark given its stimulus CSV as the data, or one dataset's file for another's
    benchmark, says what the file holds and where it goes (before: a raw AttributeError)."""
    from conftest import make_assembly

    from workbench import simulators
    from workbench.assembly import to_netcdf
    from workbench.benchmarks.data import load_data_file
    from workbench.errors import DataFormatError

    to_netcdf(make_assembly(repetitions=2), tmp_path / "rec.nc")
    ratings = simulators.simulate_human_ratings(tmp_path / "ratings.csv", format="csv", n_workers=3, n_images=4).path
    csv_file = shared_data / "hvm" / "hvm_stimulus_metadata.csv"
    cases = [(csv_file, "recording", "holds a stimulus set .* not a neural recording .*pass it as stimuli="),
             (stimulus_set, "ratings", "holds a stimulus set .* not human ratings"),
             (tmp_path / "rec.nc", "ratings", "holds a neural recording .* not human ratings .*macaque"),
             (ratings, "recording", "holds human ratings .* not a neural recording .*human.rt-uncertainty")]
    for path, wanted, words in cases:
        with pytest.raises(DataFormatError, match=words) as caught:
            load_data_file(path, wanted)
        assert str(path) in str(caught.value)
    assert load_data_file(tmp_path / "rec.nc", "recording").dims[0] == "presentation"
    assert hasattr(load_data_file(ratings, "ratings"), "per_stimulus")
