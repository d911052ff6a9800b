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


def test_safetensors_weights_written_by_the_formats_own_library_load_and_damaged_ones_are_named(tmp_path):
    """A state dict written by ``safetensors.torch.save_file`` (as the Hugging Face hub and
    timm ship weights) loads into the model bit for bit, every dtype the format has read as
    written (bfloat16 and integers included), a wrapper prefix removed as for torch.save
    files; the spec accepts the file. Damaged files (truncated, a header that lies) are a
    WeightsFileError naming the file, never a raw error."""
    from safetensors.torch import save_file

    from workbench.errors import DataFormatError
    from workbench.models.spec import ModelSpec
    from workbench.models.weights import read_safetensors, torch_save_format

    model = BLNet(seed=3)
    save_file({f"module.{k}": v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "bl.safetensors",
              metadata={"format": "pt"})
    assert torch_save_format(tmp_path / "bl.safetensors") == "safetensors"
    assert _same_weights(load_weights(BLNet(seed=4), tmp_path / "bl.safetensors"), model)
    zoo_model = ModelSpec.from_dict({"name": "bl", "zoo": "bl", "train": False, "seed": 5}).build()
    save_file({k: v.contiguous() for k, v in zoo_model.state_dict().items()}, tmp_path / "zoo.safetensors")
    spec = ModelSpec.from_dict({"name": "bl", "zoo": "bl", "weights": str(tmp_path / "zoo.safetensors")})
    assert _same_weights(spec.build(), zoo_model)
    values = {"f64": torch.randn(3, 2, dtype=torch.float64), "f16": torch.randn(4).half(),
              "bf16": torch.randn(2, 2).bfloat16(), "i64": torch.arange(5), "i8": torch.arange(-3, 3, dtype=torch.int8),
              "u8": torch.arange(4, dtype=torch.uint8), "b": torch.tensor([True, False]),
              "empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5)}
    save_file(values, tmp_path / "all.safetensors")
    read = read_safetensors(tmp_path / "all.safetensors")
    assert set(read) == set(values)
    for name, value in values.items():
        assert read[name].dtype == value.dtype and torch.equal(read[name], value), name
    data = (tmp_path / "bl.safetensors").read_bytes()
    size = int.from_bytes(data[:8], "little")
    damaged = {
        "truncated.safetensors": data[:-100],
        "short.safetensors": data[:5],
        "header_cut.safetensors": data[:8 + size // 2],
        "not_json.safetensors": data[:8] + b"{" + b"\xff" * (size - 1) + data[8 + size:],
        "huge_length.safetensors": (2**40).to_bytes(8, "little") + data[8:],
        "list_header.safetensors": (2).to_bytes(8, "little") + b"[]",
        "bad_dtype.safetensors": _with_header(data, size, lambda h: {**h, next(iter(_tensors(h))): {
            **h[next(iter(_tensors(h)))], "dtype": "Q7"}}),
        "bad_shape.safetensors": _with_header(data, size, lambda h: {**h, next(iter(_tensors(h))): {
            **h[next(iter(_tensors(h)))], "shape": [10**9, 10**9]}}),
        "beyond.safetensors": _with_header(data, size, lambda h: {**h, next(iter(_tensors(h))): {
            **h[next(iter(_tensors(h)))], "data_offsets": [0, 10**12]}}),
        "nested.safetensors": _raw_header(b"[" * 100_000 + b"]" * 100_000),
    }
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataFormatError) as error:
            load_weights(BLNet(seed=4), tmp_path / name)
        assert name in str(error.value) and "safetensors" in str(error.value), (name, str(error.value))


def _tensors(header):
    return {k: v for k, v in header.items() if k != "__metadata__"}


def _raw_header(text):
    return len(text).to_bytes(8, "little") + text


def _with_header(data, size, change):
    import json

    header = json.dumps(change(json.loads(data[8:8 + size]))).encode()
    return _raw_header(header) + data[8 + size:]
