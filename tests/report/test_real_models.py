"""Real models at their own resolution, end to end (issue 16's acceptance, reduced size):
CORnet-S (random init), torchvision's ResNet-18 (when the vision extra is installed) and a
user's CORnet-RT-style static model from the config's folder, scored on the simulated
recording of RGB objects and on the real-file variant with a stimulus CSV of RGB PNGs."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.report.config import load_config
from workbench.report.runner import plan
from workbench.simulators import simulate_macaque

FIXTURE = Path(__file__).parents[1] / "models" / "fixtures" / "user_static_rt.py"
N_STIMULI = 32


def _torchvision_works():
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - a mismatched build raises RuntimeError on import
        return False
    return importlib.util.find_spec("torchvision") is not None


CONFIG = """
[settings]
seed = 0
n_permutations = 100
n_stimuli = {n}
stimulus_set = "objects"
batch_size = 8  # several batches at 224 px; the preflight's probe then extracts 1 + 8 images, not all 32 again

[[models]]
name = "CORnet-S (random init)"
zoo = "cornet-s"
config = {{ times = [1, 2, 1] }}  # each area's block repeated as in the release, fewer times: test size

{resnet}
[[models]]
name = "my static RT"
entry_point = "user_static_rt:build"

[[benchmarks]]
name = "sim-macaque.IT.shared-time-ridge"

[[benchmarks]]
name = "macaque.IT.shared-time-ridge"
path = "data/rec.nc"
stimuli = "data/rec_stimuli.csv"
"""


RESNET = """[[models]]
name = "ResNet-18 (random init)"
zoo = "torchvision:resnet18"
"""


@pytest.fixture(scope="module")
def real_model_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("configs")
    shutil.copy(FIXTURE, folder / "user_static_rt.py")  # beside the config, not on sys.path
    simulate_macaque(folder / "data" / "rec.nc", n_stimuli=N_STIMULI, seed=1, stimuli="objects", image_size=224)
    (folder / "report.toml").write_text(CONFIG.format(n=N_STIMULI, resnet=RESNET if _torchvision_works() else ""))
    out = folder / "out"
    status = main(["report", "--config", str(folder / "report.toml"), "--out", str(out), "--jobs", "1",
                   "--no-progress"])
    return folder, out, status


@pytest.mark.slow
def test_every_model_is_scored_at_224_px_rgb_with_its_normalisation(real_model_report):
    folder, out, status = real_model_report
    scores = json.loads((out / "scores.json").read_text())
    provenance = json.loads((out / "provenance.json").read_text())
    scored = {(r["model"], r["benchmark"]) for r in scores["scores"]}
    expected_models = ["CORnet-S (random init)", "my static RT"]
    if _torchvision_works():
        expected_models.append("ResNet-18 (random init)")
    assert status == 0, scores["failures"]
    for model in expected_models:
        for benchmark in ("sim-macaque.IT.shared-time-ridge", "macaque.IT.shared-time-ridge"):
            assert (model, benchmark) in scored
            shown = provenance["model_inputs"][f"{model} x {benchmark}"]
            assert shown["input"] == "224 px RGB, ImageNet mean/sd"
    conventions = {r["model"]: r["convention"] for r in scores["scores"]}
    assert conventions["CORnet-S (random init)"] == "static_recurrent"
    assert conventions["my static RT"] == "static_recurrent"
    for record in scores["scores"]:
        assert -1 <= record["value"] <= 1
        if record["convention"] == "static_recurrent":
            assert "cannot see the stimulus offset" in record["note"]
    assert "cannot see the stimulus offset" in (out / "index.html").read_text()


@pytest.mark.slow
def test_editing_forward_or_replacing_an_image_is_a_new_task_key(real_model_report):
    folder, _, _ = real_model_report
    config = load_config(folder / "report.toml")
    before = {t.label: t.key for t in plan(config)}
    source = folder / "user_static_rt.py"
    source.write_text(source.read_text().replace("return self.fc(states", "return 2 * self.fc(states"))
    edited = {t.label: t.key for t in plan(load_config(folder / "report.toml"))}
    changed = {label for label in before if before[label] != edited[label]}
    assert changed == {label for label in before if label.startswith("my static RT")}
    image = sorted((folder / "data" / "rec_images").glob("*.png"))[0]
    image.write_bytes(sorted((folder / "data" / "rec_images").glob("*.png"))[1].read_bytes())
    replaced = {t.label: t.key for t in plan(load_config(folder / "report.toml"))}
    changed = {label for label in edited if edited[label] != replaced[label]}
    assert changed == {label for label in edited if label.endswith("x macaque.IT.shared-time-ridge")}


def test_a_torchvision_model_without_the_extra_is_refused_before_any_work(tmp_path, capsys):
    config = tmp_path / "r.toml"
    config.write_text(RESNET + '[[benchmarks]]\nname = "sim-macaque.IT.shared-time-ridge"\n')
    status = main(["report", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress"])
    if _torchvision_works():  # the extra is installed: the model's identity carries the library version
        from workbench.models.spec import ModelSpec

        spec = ModelSpec.from_dict({"name": "r", "zoo": "torchvision:resnet18"})
        assert spec.identity()["library_version"] and spec.convention_of(spec.build()) == "feedforward"
        return
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error
    assert "torchvision" in error and 'pip install -e ".[vision]"' in error
    assert not (tmp_path / "out" / "scores.json").exists()
