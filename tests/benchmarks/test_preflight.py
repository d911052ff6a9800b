"""Memory preflight: a measured extraction probe, the estimate said before the work, and a
refusal that names what lowers it."""

import json
import subprocess
import sys

import pytest

from workbench.benchmarks.preflight import MemoryEstimate, PreflightError, encoding_bytes
from workbench.cli import main
from workbench.resources import reset_high_water, rss_bytes

PROBE = """
import json
import numpy as np, pandas as pd, torch
from workbench.models import extract
from workbench.models.memory import probe_extraction
from workbench.resources import high_water_bytes, reset_high_water, rss_bytes
from workbench.models.reductions import SparseRandomProjection
from workbench.stimuli import StimulusSet

class Wide(torch.nn.Module):  # two 64-channel convolutions at 224 px: ~13 MB per image per output
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 64, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(64, 64, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv(x)))

torch.manual_seed(0)
model = Wide().eval()
images = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
stimuli = StimulusSet(images, pd.DataFrame({"stimulus_id": [f"s{i}" for i in range(16)]}), "wide", {})
reduction = SparseRandomProjection(256, seed=0, keep_small=True)
# memory freed before the probe (as a load stage leaves it): the allocator keeps it and would
# serve the probe's batch from it without raising the high-water mark, unless it is released
held = [np.ones((2000, 2000)) for _ in range(40)]
del held
fixed, per_image = probe_extraction(model, stimuli, ["conv", "conv2"], None, reduction, "feedforward", batch_size=16)
before = rss_bytes()
reset_high_water()
extract(model, stimuli, layers=["conv", "conv2"], batch_size=16, progress=False, reduction=reduction,
        convention="feedforward")
print(json.dumps({"fixed": fixed, "per_image": per_image, "measured": high_water_bytes() - before}))
"""


@pytest.mark.skipif(rss_bytes() is None or not reset_high_water(), reason="needs Linux /proc (clear_refs)")
def test_the_probe_predicts_a_larger_batch_within_a_quarter():
    # the measured batch runs in a fresh process, as `workbench score` does, so that what it is
    # compared with is its true peak
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["per_image"] > 20e6  # at least the two recorded 12.8 MB outputs
    predicted = figures["fixed"] + 16 * figures["per_image"]
    assert abs(predicted - figures["measured"]) <= 0.25 * figures["measured"], figures


def test_an_estimate_that_cannot_fit_is_refused_with_the_fix():
    estimate = MemoryEstimate(1e9, {"extraction": 3e9, "encoding": 1e9})
    assert estimate.peak == 4e9 and "estimated peak memory 4.00 GB" in estimate.describe()
    assert estimate.check(5e9, {}) is estimate
    with pytest.raises(PreflightError, match=r"exceeds the 2.00 GB available; the largest stage is extraction "
                                             r"\(fix: --batch-size\)"):
        estimate.check(2e9, {"extraction": "--batch-size", "encoding": "fewer layers"})
    # the kernel form's memory grows with samples, not features squared
    assert encoding_bytes(100, 1, 50_000, 10) < encoding_bytes(100, 1, 5_000, 10) * 10


def test_score_refuses_before_the_work_and_names_the_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_MEMORY_LIMIT_GB", "0.05")
    status = main(["score", "b", "--no-train", "--benchmark", "sim-macaque.V4.shared-time-ridge", "--out",
                   str(tmp_path / "scores.json"), "--n-stimuli", "40", "--permutations", "50", "--no-progress",
                   "--batch-size", "16"])
    captured = capsys.readouterr()
    assert status == 1
    assert "sim-macaque.V4.shared-time-ridge x b: estimated peak memory" in captured.err  # said before the work
    failure = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert len(failure) == 1 and "PreflightError" in failure[0] and "exceeds the 0.05 GB available" in failure[0]
    assert "(fix: " in failure[0] and ("--batch-size, now 16" in failure[0] or "fewer layers" in failure[0])
    assert not list((tmp_path / "workbench-cache").glob("activations/*.zarr"))  # nothing extracted
