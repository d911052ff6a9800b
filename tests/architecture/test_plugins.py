"""The extension recipes of docs/architecture.md, each done exactly as written: a third-party
package (tests/plugins/workbench_example, found through its dist-info entry points, as if
pip-installed) adds a benchmark, a model family, a metric and a data format, and
`workbench report` renders the plugin's benchmark with its panel. Subprocesses, so the
entry points are read afresh."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data_adapters
from workbench import DataFormatError
from workbench.models import zoo

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
SCRIPT = str(Path(sys.executable).parent / "workbench")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), env.get("PYTHONPATH")]))
    return env


def _python(code):
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_entry_points_add_a_benchmark_a_model_family_and_a_format(tmp_path):
    (tmp_path / "rec.txt").write_text("TINYREC\nimg_a 1.0 2.0 3.0\nimg_b 4.0 5.0 6.5\n")
    out = _python(f"""
import json, data_adapters
import workbench.benchmarks as b
from workbench.models import zoo
rec = data_adapters.load({str(tmp_path / 'rec.txt')!r})
print(json.dumps({{"benchmarks": b.available(), "zoo": zoo.available(),
                  "formats": list(data_adapters.supported_formats()),
                  "shape": list(rec.shape), "ids": rec.stimulus_id.values.tolist(),
                  "model": type(zoo.build("example-tiny", seed=1)).__name__}}))
""")
    found = json.loads(out.strip().splitlines()[-1])
    assert "example.step-stability" in found["benchmarks"] and "sim-macaque.IT.shared-time-ridge" in found["benchmarks"]
    assert "example-tiny" in found["zoo"] and found["model"] == "TinyRecurrent"
    assert "tinyrec" in found["formats"] and found["shape"] == [2, 3, 1] and found["ids"] == ["img_a", "img_b"]
    # without the plugin on the path, none of it exists
    clean = subprocess.run([sys.executable, "-c", "import workbench.benchmarks as b; print(b.available())"],
                           capture_output=True, text=True, timeout=300)
    assert "example.step-stability" not in clean.stdout


@pytest.mark.slow
def test_report_renders_a_benchmark_registered_by_an_outside_package(tmp_path):
    (tmp_path / "report.toml").write_text(
        'settings = { n_permutations = 50, title = "plugin report" }\n'
        'benchmarks = ["example.step-stability"]\n'
        'models = [{ name = "tiny plugin model", zoo = "example-tiny", config = { channels = 3 } },\n'
        '          { name = "B random", zoo = "b", train = false, config = { channels = [4, 8] } }]\n')
    done = subprocess.run([SCRIPT, "report", "--config", str(tmp_path / "report.toml"), "--out", str(tmp_path / "out"),
                           "--jobs", "1", "--no-progress"], env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    records = [r for r in scores["scores"] if r["benchmark"] == "example.step-stability"]
    assert {r["model"] for r in records} == {"tiny plugin model", "B random"}
    assert all(-1 <= r["value"] <= 1 and r["benchmark_version"] == "1" and r["layer"] for r in records)
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Example plugin: step stability" in page and "An example plugin benchmark" in page
    assert 'id="leaderboard"' in page and "example.step-stability" in page


def test_register_a_format_in_process(tmp_path):
    """The in-process form of the data-format recipe, and its errors are the project's."""
    sys.path.insert(0, str(PLUGINS))
    try:
        from workbench_example import TINYREC
    finally:
        sys.path.remove(str(PLUGINS))
    name = "tinyrec-test"
    data_adapters.register_format(name, TINYREC.sniff, TINYREC.read, TINYREC.description)
    try:
        (tmp_path / "bad.txt").write_text("TINYREC\nimg_a 1.0 nan? 3\n")
        with pytest.raises(DataFormatError, match="bad.txt: a value is not a number"):
            data_adapters.load(tmp_path / "bad.txt", format=name)
        with pytest.raises(ValueError, match="already registered"):
            data_adapters.register_format(name, TINYREC.sniff, TINYREC.read, TINYREC.description)
    finally:
        data_adapters.registry.FORMATS.pop(name)


def test_register_a_model_family_in_process():
    import torch

    def build(seed=0, width=2):
        torch.manual_seed(seed)
        return torch.nn.Conv2d(1, width, 1)

    zoo.register("test-conv", build)
    try:
        assert "test-conv" in zoo.available() and zoo.build("test-conv", width=3).out_channels == 3
        with pytest.raises(Exception, match="built in"):
            zoo.register("bl", build)
    finally:
        zoo._REGISTERED.pop("test-conv")


def test_a_plugin_metric_is_checked_against_a_known_answer():
    """The metric recipe: the plugin's step_stability on activations with a known answer."""
    import xarray as xr

    sys.path.insert(0, str(PLUGINS))
    try:
        from workbench_example import step_stability
    finally:
        sys.path.remove(str(PLUGINS))
    rng = np.random.default_rng(0)
    first = rng.standard_normal((30, 4))
    values = np.stack([first, 2 * first + 1], axis=2)  # the last step is a linear copy: r = 1
    values[:, 2:, 1] = -first[:, 2:]                    # ... or its negative: r = -1
    features = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"),
                            coords={"layer": ("neuroid", ["a", "a", "b", "b"])})
    scores = step_stability(features)
    assert [s["layer"] for s in scores] == ["a", "b"]
    np.testing.assert_allclose([s.value for s in scores], [1.0, -1.0])
