"""The seed papers' findings on the embedded default (workbench.replications).

Sizes and seeds are fixed in workbench.replications.REDUCED (seed 0, 4 epochs, 300
held-out digits, 2,000 permutations, one network per claim) and were fixed before any
result was seen (REDUCED uses 3x3 Lindsay lateral/feedback kernels; FULL the paper's 7x7/5x5). Claims that do not
hold at this scale are kept and marked xfail with the effect this run measured: an honest
non-replication (see the issue note for the discussion). Each test prints its finding.
"""

import functools

import numpy as np
import pytest

from workbench import replications

# (replication, claim index) -> what was measured when the claim did not hold
NOT_REPRODUCED = {
    # ("lindsay", 2), feedback, holds at this size with 3x3 kernels (logits d = 0.149, p = 0.0005;
    # layer 1 d = -0.001, p = 0.56) but not at --full size with the paper's 5x5 (layer 1 d = 0.081,
    # p = 0.026 over 4 networks)
    ("lindsay", 3): "with 3x3 kernels lateral recurrence de-noises the logits (d = 0.134 on 48 flipped images, "
                    "p = 0.0005) but also, weakly, layer 1 (d = 0.019, p = 0.0005); at --full size (the paper's "
                    "7x7, 4 networks) it holds: layer 1 d = 0.008, p = 0.45, logits d = 0.165, p = 0.0008",
    # a claim whose outcome follows the CPU's floating-point kernels: the 4-epoch BL's training
    # takes another path with other kernels (same seed, one thread), and the effect moves with it
    ("spoerer", 0): "depends on the machine: rho = 0.317, p = 0.0055 where first measured (--full: 0.299, "
                    "p = 0.0054); on an AMD EPYC with AVX2 kernels 0.155, p = 0.11; there with SSE4.1 kernels "
                    "(ONEDNN_MAX_CPU_ISA=SSE41, MKL_CBWR=COMPATIBLE) 0.097, p = 0.24. Needs p < 0.01",
    ("spoerer", 1): "with the binary face readout, trained minus random-init rho = 0.359, two-tailed paired "
                    "p = 0.057 on 100 test faces (needs p < 0.01); at --full size 0.183, p = 0.28 (the 10-way "
                    "digit readout, kept in the details: 0.154, p = 0.095 here, 0.239, p = 0.005 at --full)",
    ("crcn", 0): "with per-step norms and adjacent loops CRCN matches its feedforward twin (gap -0.010 clean, "
                 "0.000 at noise 0.5) but recurrence does not help more as noise grows: -0.030 at noise 2.0, "
                 "Spearman vs level -0.6, sign-flip p = 0.79; at --full size the gap shrinks further with noise "
                 "(-0.026 clean, -0.206 at noise 2.0, p = 1)",
    ("nayebi", 1): "by Nayebi's unit-wise majority both regions map to the ConvRNN's first layer (V4 votes "
                   "15 / 1 / 0 for layers 0 / 1 / 2, IT 11 / 1 / 4); the median-over-sites rule maps IT to layer 2 "
                   "here, but at --full size (8 epochs, 400 images) both rules map both regions to layer 0 (V4 "
                   "votes 16 / 0 / 0, IT 12 / 1 / 3)",
}
CLAIMS = {"lindsay": 4, "spoerer": 2, "hartmann": 2, "crcn": 1, "nayebi": 2}


@functools.lru_cache(maxsize=None)
def findings(name):
    return replications.run_replication(name)


def _cases():
    for name, n_claims in CLAIMS.items():
        for index in range(n_claims):
            reason = NOT_REPRODUCED.get((name, index))
            marks = [pytest.mark.slow]
            if reason:
                marks.append(pytest.mark.xfail(reason=f"not reproduced at this scale: {reason}", strict=False))
            yield pytest.param(name, index, marks=marks, id=f"{name}-{index}")


@pytest.mark.parametrize("name,index", list(_cases()))
def test_seed_paper_claim(name, index):
    found = findings(name)
    assert len(found) == CLAIMS[name]
    finding = found[index]
    print(finding, finding.details)
    assert finding.reproduced, str(finding)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLAIMS))
def test_every_finding_reports_a_95_ci_around_its_effect_or_says_why_it_has_none(name):
    for finding in findings(name):
        assert finding.ci_method, finding
        if finding.ci_method.startswith("none"):  # e.g. one tau per SNR level: nothing to resample
            assert np.isnan(finding.ci_low) and np.isnan(finding.ci_high)
        else:
            assert finding.ci_low <= finding.effect <= finding.ci_high, (finding, finding.ci_method)
            assert finding.ci_low < finding.ci_high, finding
        assert " CI [" in str(finding) or finding.ci_method.startswith("none")


def test_findings_are_records_for_reports():
    finding = replications.Finding("x", "a claim <b>", 0.5, 0.01, True, {"n": 3}, ci_low=0.2, ci_high=0.8,
                                   ci_method="bootstrap over 3 images")
    record = finding.record()
    assert record["benchmark"] == "replication.x" and record["verdict"] == "reproduced"
    assert record["simulated"] is True and record["detail_n"] == 3
    assert (record["ci_low"], record["ci_high"], record["ci_method"]) == (0.2, 0.8, "bootstrap over 3 images")
    assert "effect=0.5000 95% CI [0.2000, 0.8000] p=0.01" in str(finding)
    with pytest.raises(replications.WorkbenchError, match="available: lindsay"):
        replications.run_replication("nope")


def test_training_and_a_replication_give_the_same_numbers_with_one_and_two_threads():
    """The caller's thread count (a 1-core machine, a one-thread report task, this 2-core
    machine) changes neither a trained network (trained afresh at both, bit for bit) nor a
    replication's effects and p-values (CRCN's claim run at both)."""
    import threadpoolctl
    import torch

    from workbench.models.training import train

    previous = torch.get_num_threads()
    states, runs = [], []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with threadpoolctl.threadpool_limits(threads):
                model, card = train("b", seed=3, epochs=1, n_train=256, config={"channels": (4, 8, 8)},
                                    progress=False, memo=False)
                states.append(model.state_dict())
                runs.append([(f.effect, f.p_value, f.details) for f in replications.run_replication("crcn")])
            assert torch.get_num_threads() == threads  # restored after each
    finally:
        torch.set_num_threads(previous)
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert card["threads"] == 2
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_replicate_command_prints_each_claim_and_writes_its_records(tmp_path, capsys):
    import json

    from workbench.cli import main

    status = main(["replicate", "lindsay", "--out", str(tmp_path / "findings.json"), "--cache", str(tmp_path),
                   "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[0].startswith("replicate: lindsay at reduced size (300 images, 4 epochs")
    assert "[lindsay] predictive feedback de-noises out.layer1" in out
    saved = json.loads((tmp_path / "findings.json").read_text())
    assert saved["size"] == "reduced" and saved["settings"]["n_images"] == 300
    records = saved["replications"]["lindsay"]["findings"]
    assert [r["claim"] for r in records] == [str(f.claim) for f in findings("lindsay")]
    assert [r["value"] for r in records] == pytest.approx([f.effect for f in findings("lindsay")])
    assert all(r["source"].startswith("Lindsay") for r in records)
    assert records[0]["detail_ff_accuracy"] == pytest.approx(0.6, abs=0.01)  # the calibrated noise
    assert main(["replicate", "nope"]) == 2
    assert "unknown replication 'nope'" in capsys.readouterr().err
