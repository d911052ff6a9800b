"""Seed zoo: every family trains above chance on digits; recurrent ones gain over steps.

Sizes and seed were fixed before looking at the results: channels (8, 16, 32) (Lindsay: its
defaults), 4 epochs over the 1,297 training digits, seed 0, evaluation on the 500 held-out.
"""

import json

import numpy as np
import pytest
import torch

from workbench import ExtractionError, WorkbenchError, replications
from workbench.cli import main
from workbench.models import PresentationProtocol, extract, zoo
from workbench.models.training import RECIPES, load_trained, save_trained
from workbench.stimuli import digits

SMALL = replications.SMALL
SEED_FAMILIES = sorted(RECIPES)  # the seed papers' families (CORnet: tests/models/test_cornet.py)


def trained(name):
    # the replications train the same configurations: share one per-process cache
    return replications.trained(name, seed=0, epochs=4)


# the degraded condition on which recurrence should help, and the first step the readout sees input
HARD = {"bl": "noise_4", "grucnn": "snr_0.25", "crcn": "noise_4", "convrnn": "noise_4",
        "lindsay-feedback": "level-3 degradations", "lindsay-lateral": "level-3 degradations"}
FIRST_STEP = {"convrnn": 2}


def _accuracy(card, condition):
    if condition == "level-3 degradations":
        return np.mean([card["accuracy"][f"{kind}_3"] for kind in ("noise", "blur", "contrast", "occlusion")],
                       axis=0)
    return np.asarray(card["accuracy"][condition])


@pytest.mark.slow
@pytest.mark.parametrize("name", SEED_FAMILIES)
def test_every_zoo_model_trains_clearly_above_chance(name):
    _, card = trained(name)
    clean = "snr_2" if "snr_2" in card["accuracy"] else "noise_0"
    assert card["accuracy"][clean][-1] >= 0.35, card["accuracy"][clean]  # chance is 0.10


# measured when recurrence did not add accuracy over steps
NO_GAIN = {"crcn": "with per-step norms CRCN's step 0 is as good as its twin (.898 vs .914 clean); on noise_4 it "
                   "gains .04 at step 1 and keeps .016 by step 3 (.738 -> .754). The earlier gain came from a step 0 "
                   "broken by a norm shared across steps"}


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.xfail(reason=NO_GAIN[name], strict=False)]
                                               if name in NO_GAIN else []) for name in sorted(HARD)])
def test_recurrent_models_gain_accuracy_over_steps_on_degraded_inputs(name):
    _, card = trained(name)
    accuracy = _accuracy(card, HARD[name])
    gain = accuracy[-1] - accuracy[FIRST_STEP.get(name, 0)]
    assert gain >= 0.03, f"{name}: accuracy over steps {np.round(accuracy, 3)}"


@pytest.mark.parametrize("name", SEED_FAMILIES)
def test_zoo_call_convention_and_recorded_steps(name):
    model = zoo.build(name, seed=0, **({} if name.startswith("lindsay") else {"channels": (4, 8, 8)}))
    frames = torch.randn(3, 5, 1, 32, 32)
    logits, states = model.eval()(frames, return_states=True)
    assert logits.shape == (3, 5, 10)
    assert sorted(states) == sorted(model.default_layers)
    protocol = PresentationProtocol(3, 2, unrolling=model.unrolling)
    da = extract(model, digits(4, size=32), protocol=protocol, progress=False)
    assert da.sizes["time_bin"] == 5 and set(da.layer.values) == set(model.default_layers)
    with torch.no_grad():
        _, again = model(torch.from_numpy(digits(4, size=32).images)[:, None].expand(-1, 5, -1, -1, -1)
                         * torch.tensor([1.0] * 3 + [0.0] * 2)[None, :, None, None, None],
                         return_states=True)
    first = model.default_layers[0]
    np.testing.assert_allclose(da.sel(neuroid=da.layer == first).values,
                               again[first].flatten(2).permute(0, 2, 1).numpy(), atol=1e-5)


def test_bayesian_integration_is_the_normalised_product_of_frame_posteriors():
    logits = torch.randn(2, 3, 4, dtype=torch.float64)
    posterior = torch.softmax(zoo.bayesian_integration(logits), dim=-1)
    product = torch.softmax(logits, -1).prod(dim=1)
    torch.testing.assert_close(posterior[:, -1], product / product.sum(-1, keepdim=True))


def test_difference_of_gaussians_sums_to_zero():
    kernel = zoo.difference_of_gaussians()
    assert abs(float(kernel.sum())) < 1e-6 and kernel[3, 3] > 0 > kernel[0, 3]


def test_unknown_zoo_name_lists_the_valid_ones():
    with pytest.raises(WorkbenchError, match="unknown model 'resnet'; available: b, bl, ccnn"):
        zoo.build("resnet")


def test_model_card_round_trip_and_cli(tmp_path, capsys):
    model, card = trained("b")
    _, card_path = save_trained(model, card, tmp_path)
    loaded, loaded_card = load_trained(card_path)
    frames = torch.from_numpy(digits(8, size=32).images)[:, None].expand(-1, 3, -1, -1, -1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames), model.eval()(frames))
    assert loaded_card["config"]["zoo_name"] == "b" and loaded_card["seed"] == 0
    assert set(json.loads(card_path.read_text())["accuracy"]) >= {"noise_0", "noise_4"}
    with pytest.raises(ExtractionError, match="another architecture"):
        from workbench.models import load_weights
        load_weights(zoo.build("b", channels=(4, 8, 8)), tmp_path / "b.pt")
    assert main(["train", "lindsay-surround", "--out", str(tmp_path / "cli"), "--epochs", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "model card" in out and (tmp_path / "cli" / "lindsay-surround.json").exists()
    assert main(["train", "resnet", "--out", str(tmp_path)]) == 2


def test_the_simulators_generating_network_is_expressible_as_a_zoo_spec(tmp_path):
    """zoo "bl" with norm "none" (TOML has no null) and the brain's channels and seed builds
    the very network the macaque simulator hides; a misspelt norm is an error."""
    import torch

    from workbench.models import BLNet
    from workbench.models.spec import ModelSpec

    spec = ModelSpec.from_dict({"name": "generating network", "zoo": "bl", "train": False, "seed": 0,
                                "config": {"channels": [8, 16], "norm": "none", "readout": "per_step"}})
    built, brain = spec.build(tmp_path), BLNet(channels=(8, 16), seed=0)
    assert built.config["norm"] is None
    for (name, a), (_, b) in zip(built.state_dict().items(), brain.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="norm must be"):
        BLNet(norm="bacth")


def test_crcn_norms_are_per_step_and_trained_and_its_feedforward_pass_matches_its_twin():
    """CRCN's feedback changes each stage's input from step 1 on, so each step has its own
    batch norm (a norm shared by all steps left its step-0 pass, the feedforward one, at .36
    accuracy against .94 for its twin). Every norm it uses in evaluation has seen training
    data, and step 0 is within 0.1 of the twin's accuracy on clean digits."""
    crcn, card = trained("crcn")
    _, twin_card = trained("crcn-ff")
    norms = [norm for stage in crcn.eval().stages for norm in (stage.norm1, stage.norm2)]
    assert all(int(norm[norm.index(step)].num_batches_tracked) > 0 for norm in norms for step in range(12))
    assert [norms[0].index(step) for step in range(6)] == [0, 1, 2, 3, 3, 3]  # trained for 4 steps
    assert crcn.config["loops"] == [[1, 0], [2, 1]]  # adjacent stages only
    step0, twin = card["accuracy"]["noise_0"][0], twin_card["accuracy"]["noise_0"][-1]
    assert step0 >= twin - 0.1, (step0, twin)


def test_bl_steps_beyond_its_training_use_trained_norms():
    """BL trained for 4 steps and run for 8: every per-step norm it uses has seen training
    data (steps 4-7 fall back to step 3's), so late steps keep their accuracy instead of
    running on a fresh norm's statistics (clean accuracy fell from .92 to .54 by step 7)."""
    import dataclasses

    from workbench.models.training import RECIPES, evaluate, heldout_split

    model, _ = trained("bl")
    cells = list(model.eval().layers)
    assert all([cell.norm_index(step) for step in range(8)] == [0, 1, 2, 3, 3, 3, 3, 3] for cell in cells)
    assert all(int(cell.norms[cell.norm_index(step)].num_batches_tracked) > 0 for cell in cells for step in range(8))
    clean = evaluate(model, dataclasses.replace(RECIPES["bl"], steps=8), heldout_split(0)[1])["noise_0"]
    assert min(clean[4:]) >= clean[3] - 0.15, clean
    model.train()
    assert cells[0].norm_index(6) == 6  # training uses (and so trains) each step's own norm
