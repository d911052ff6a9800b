import numpy as np
import pytest
import torch

from workbench.errors import ExtractionError
from workbench.models import BLNet, PresentationProtocol
from workbench.models.cache import cache_key, cached_extract
from workbench.models.weights import load_weights, save_weights
from workbench.stimuli import digits

PROTOCOL = PresentationProtocol(image_steps=2, blank_steps=1)


def test_identical_extraction_hits_and_a_changed_weight_misses(tmp_path):
    stimuli = digits(6, seed=0)
    model = BLNet(seed=0)
    first, hit = cached_extract(model, stimuli, tmp_path, protocol=PROTOCOL, progress=False)
    assert not hit
    again, hit = cached_extract(BLNet(seed=0), stimuli, tmp_path, protocol=PROTOCOL, progress=False)
    assert hit
    np.testing.assert_array_equal(first.values, again.values)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    changed, hit = cached_extract(model, stimuli, tmp_path, protocol=PROTOCOL, progress=False)
    assert not hit and not np.array_equal(changed.values, first.values)
    assert len(list(tmp_path.glob("*.zarr"))) == 2


def test_key_depends_on_every_input():
    stimuli = digits(6, seed=0)
    model = BLNet(seed=0)
    base = cache_key(model, stimuli, PROTOCOL, ["layers.0"])
    assert base == cache_key(BLNet(seed=0), digits(6, seed=0), PROTOCOL, ["layers.0"])
    assert base != cache_key(model, digits(6, seed=1), PROTOCOL, ["layers.0"])
    assert base != cache_key(model, stimuli, PresentationProtocol(image_steps=3, blank_steps=1), ["layers.0"])
    assert base != cache_key(model, stimuli, PROTOCOL, ["layers.1"])
    assert base != cache_key(model, stimuli, PROTOCOL, ["layers.0"], reduction="pool")


def test_weights_round_trip_and_wrong_architecture(tmp_path):
    model = BLNet(seed=3)
    save_weights(model, tmp_path / "bl.pt")
    other = load_weights(BLNet(seed=4), tmp_path / "bl.pt")
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ExtractionError, match="another architecture than BLNet: .*shape differs"):
        load_weights(BLNet(channels=(4, 8)), tmp_path / "bl.pt")
    torch.save({"not": "tensors", "x": [1, 2]}, tmp_path / "junk.pt")
    with pytest.raises(ExtractionError, match="junk.pt"):
        load_weights(model, tmp_path / "junk.pt")
    with pytest.raises(ExtractionError, match="not found"):
        load_weights(model, tmp_path / "missing.pt")


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_training_checkpoints_give_the_model_state_dict_they_hold(tmp_path):
    """Checkpoints as training code writes them: Lightning's ``{"state_dict": {"model.…"},
    "epoch", ...}``, ``{"model": …, "optimizer": …}``, a DataParallel or torch.compile
    model's prefixed names; the one state dict with the model's names is loaded."""
    model = BLNet(seed=3)
    own = model.state_dict()
    checkpoints = {
        "lightning": {"state_dict": {f"model.{k}": v for k, v in own.items()}, "epoch": 3, "global_step": 9,
                      "hyper_parameters": {"lr": 0.1}},
        "model_and_optimizer": {"model": own, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 2},
        "data_parallel": {f"module.{k}": v for k, v in own.items()},
        "compiled_in_data_parallel": {f"module._orig_mod.{k}": v for k, v in own.items()},
    }
    for name, checkpoint in checkpoints.items():
        torch.save(checkpoint, tmp_path / f"{name}.pt")
        assert _same_weights(load_weights(BLNet(seed=4), tmp_path / f"{name}.pt"), model), name


def test_checkpoints_without_one_clear_state_dict_are_named_errors(tmp_path):
    model, other = BLNet(seed=3), BLNet(seed=5)
    torch.save({"model": model.state_dict(), "ema": other.state_dict()}, tmp_path / "two.pt")
    with pytest.raises(ExtractionError, match=r"two.pt.*several state dicts of this model \('model', 'ema'\)"):
        load_weights(BLNet(seed=4), tmp_path / "two.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "none.pt")
    with pytest.raises(ExtractionError, match=r"none.pt.*keys 'epoch', 'lr'.*no state dict of tensors"):
        load_weights(model, tmp_path / "none.pt")
    # one nested state dict of another network: the architecture check says what differs
    torch.save({"model": BLNet(channels=(4, 8)).state_dict(), "epoch": 1}, tmp_path / "other.pt")
    with pytest.raises(ExtractionError, match="another architecture than BLNet"):
        load_weights(model, tmp_path / "other.pt")


def test_the_activation_key_covers_the_extraction_code(monkeypatch):
    """Cached activations depend on the code that runs the model and stores its states
    (conventions, protocol, reductions, the store), not only on the model's own code: each
    of those files is part of the key."""
    import torch

    from workbench import keys
    from workbench.models import PresentationProtocol
    from workbench.models.cache import cache_key
    from workbench.stimuli import digits

    hashed = []
    original = keys.ContentKey.file
    monkeypatch.setattr(keys.ContentKey, "file", lambda self, label, path: (hashed.append(label), original(self, label, path))[1])
    cache_key(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), digits(4, size=8), PresentationProtocol(2, 1), ["0"])
    for module in ("conventions", "extraction", "protocol", "reductions", "store"):
        assert f"extraction:workbench.models.{module}" in hashed
