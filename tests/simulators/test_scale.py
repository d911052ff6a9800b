"""The recording-scale options of the macaque simulator: per-region site counts, the
MajajHong2015 preset, and the CLI that writes them."""

import re

import pytest

import data_adapters
from workbench import WorkbenchError
from workbench.cli import main
from workbench.simulators import simulate_macaque
from workbench.simulators.macaque import MAJAJHONG2015


def test_site_counts_per_region_and_their_checks(tmp_path):
    simulation = simulate_macaque(tmp_path / "rec.nc", n_stimuli=30, sites_per_region=(3, 7), n_repetitions=2)
    recording = data_adapters.load(tmp_path / "rec.nc")
    assert list(recording.region.to_series().value_counts().sort_index().items()) == [("IT", 7), ("V4", 3)]
    assert simulation.rates.sizes["neuroid"] == 10 and recording.sizes["presentation"] == 60
    for bad in ((3, 7, 1), (0, 5), 2.5):
        with pytest.raises(WorkbenchError, match="sites_per_region must be"):
            simulate_macaque(tmp_path / "bad.nc", n_stimuli=30, sites_per_region=bad)


@pytest.mark.parametrize("stimuli", ["digits", "objects", "characters"])
@pytest.mark.parametrize("option, bad, words", [
    ("n_stimuli", -5, "an integer >= 1"), ("n_stimuli", 0, "an integer >= 1"), ("n_stimuli", 1.5, "an integer >= 1"),
    ("n_stimuli", True, "an integer >= 1"), ("n_stimuli", None, "an integer >= 1"),
    ("n_repetitions", 1, "an integer >= 2"), ("n_repetitions", 2.5, "an integer >= 2"),
    ("seed", -1, "an integer >= 0"), ("seed", 1.5, "an integer >= 0"), ("brain_seed", "0", "an integer >= 0"),
    ("time_window", (0,), "(start_ms, end_ms)"), ("time_window", ("a", 3), "(start_ms, end_ms)"),
    ("stimuli", "faces", "one of 'digits', 'objects', 'characters'")])
def test_bad_options_are_named_errors_before_the_brain_is_built(tmp_path, monkeypatch, stimuli, option, bad, words):
    """Negative, fractional or boolean counts and seeds, a malformed time window: raw numpy or
    unpacking errors, some only after the hidden network had been trained (about a minute)."""
    from workbench.simulators import macaque

    monkeypatch.setattr(macaque, "build_brain", lambda *a, **k: pytest.fail("the brain was built first"))
    with pytest.raises(WorkbenchError, match=re.escape(f"{option} must be {words}")):
        simulate_macaque(tmp_path / "bad.nc", **{"n_stimuli": 30, "stimuli": stimuli, option: bad})
    assert not (tmp_path / "bad.nc").exists()


def test_the_majajhong_preset_has_the_release_size():
    assert MAJAJHONG2015["n_stimuli"] == 3200 and tuple(MAJAJHONG2015["sites_per_region"]) == (88, 168)
    assert MAJAJHONG2015["n_repetitions"] == 50 and MAJAJHONG2015["stimuli"] == "objects"
    assert (MAJAJHONG2015["time_window"], MAJAJHONG2015["bin_ms"]) == ((-100, 300), 10)


def test_cli_writes_the_counts_it_is_given(tmp_path, capsys):
    out = tmp_path / "rec.nc"
    assert main(["simulate", "macaque", "--out", str(out), "--n", "24", "--sites", "2,5", "--repetitions", "3",
                 "--no-progress"]) == 0
    assert "2 V4, 5 IT sites" in capsys.readouterr().out
    recording = data_adapters.load(out)
    assert recording.sizes["presentation"] == 72 and recording.sizes["neuroid"] == 7


def test_stimulus_images_are_rendered_a_batch_at_a_time(tmp_path, monkeypatch):
    """The PNGs of a recording-scale set are rendered 128 at a time (3,200 objects at 224 px
    rendered at once took gigabytes), and every image is written."""
    from workbench.simulators import macaque

    calls = []
    render = macaque.embedded_stimuli

    def counting(*args, ids=None, **kwargs):
        calls.append(len(ids) if ids is not None else None)
        return render(*args, ids=ids, **kwargs)

    monkeypatch.setattr(macaque, "embedded_stimuli", counting)
    macaque._write_images(tmp_path, {"name": "digits", "n_stimuli": 300, "seed": 0}, 16,
                          render("digits", 300, 0).stimulus_ids, batch=128)
    assert calls == [128, 128, 44]
    assert len(list(tmp_path.glob("*.png"))) == 300


def test_a_simulated_recording_can_show_characters(tmp_path):
    """The simulator shows rendered letters (workbench.character_stimuli) when asked, and
    writes their table beside the recording (here, not in tests/stimuli: this module's
    worker has the simulated brain trained already)."""
    from workbench.character_stimuli import LETTERS

    simulate_macaque(tmp_path / "rec.nc", n_stimuli=40, sites_per_region=3, n_repetitions=2, stimuli="characters")
    recording = data_adapters.load(tmp_path / "rec.nc")
    ids = recording.stimulus_id.values
    assert len(set(ids)) == 40 and all(i.startswith("char_") for i in ids)
    assert set(recording.category_name.values) <= set(LETTERS)
    table = data_adapters.load_stimulus_set(tmp_path / "rec_stimuli.csv")
    assert set(table["stimulus_id"] if "stimulus_id" in table else table["id"]) == set(ids)
