"""The speed scripts run (they assert no time: perf/README.md). bench_load's child process
raised NameError for a whole stop unnoticed, because nothing ran it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

PERF = Path(__file__).resolve().parents[2] / "perf"


def test_bench_load_children_open_and_average_a_recording_alike(tmp_path):
    from conftest import make_assembly
    from workbench.assembly import to_netcdf

    path = tmp_path / "rec.nc"
    to_netcdf(make_assembly(repetitions=3), path)
    results = {}
    for mode in ("lazy", "eager"):
        done = subprocess.run([sys.executable, str(PERF / "bench_load.py"), "--child", mode, str(path),
                               str(tmp_path / f"{mode}.npy")], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["lazy"]["average_s"] >= 0 and results["eager"]["peak_rss_gb"] > 0
    np.testing.assert_array_equal(np.load(tmp_path / "lazy.npy"), np.load(tmp_path / "eager.npy"))


def test_every_speed_script_parses_its_options():
    running = {script.name: subprocess.Popen([sys.executable, str(script), "--help"], stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True)
               for script in sorted(PERF.glob("bench_*.py"))}
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0 and "--json" in out, (name, err[-1000:])


def test_bench_encoding_times_the_engine_and_its_kernels_side_by_side(tmp_path):
    """A tiny run of the whole script: every figure is written, from 5 rounds each."""
    out = tmp_path / "encoding.json"
    done = subprocess.run([sys.executable, str(PERF / "bench_encoding.py"), "--stimuli", "60", "--bins", "2",
                           "--features", "16", "--sites", "8", "--skip-himalaya", "--skip-pls",
                           "--permutations", "20", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert len(results["engine_s_runs"]) == 5 and results["engine_best_s"] == min(results["engine_s_runs"])
    assert results["eigh_count"] == 5 * 4  # an outer fit and 3 inner folds per outer fold
    assert 0 < results["eigh_s_sum_of_minima"] <= results["eigh_s"] < results["kernels_s"]
    assert results["engine_vs_kernels"] == results["engine_best_s"] / results["kernels_s"]
