"""The recording-scale options of the macaque simulator: per-region site counts, the
MajajHong2015 preset, and the CLI that writes them."""

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


def test_the_trial_array_is_written_one_repetition_at_a_time(tmp_path):
    """A 370 MB recording (600 digits x 96 sites x 40 bins x 40 repetitions) may add at most
    130 MB to the writer's peak memory: blocks are drawn and written in order, never all
    held (the threaded scheduler once held the whole array and more)."""
    import subprocess
    import sys

    script = f"""
import numpy as np
from workbench.simulators import simulate_macaque

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

simulate_macaque({str(tmp_path / 'warm.nc')!r}, n_stimuli=20, sites_per_region=2, n_repetitions=2)
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS:")
simulate_macaque({str(tmp_path / 'big.nc')!r}, n_stimuli=600, sites_per_region=48, n_repetitions=40)
print((status("VmHWM:") - before) / 1e6)
"""
    added_mb = float(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                    text=True).stdout.split()[-1])
    assert (tmp_path / "big.nc").stat().st_size > 300e6
    assert added_mb < 130, f"writing added {added_mb:.0f} MB"  # 97 MB measured; 171 MB with the threaded scheduler
