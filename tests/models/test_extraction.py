import numpy as np
import pytest
import torch

from workbench import ExtractionError
from workbench.models import BLNet, LayerRecorder, PresentationProtocol, extract
from workbench.stimuli import digits


@pytest.fixture(scope="module")
def stimuli():
    return digits(12, seed=0)


def _manual_states(model, images, protocol):
    """Independent re-computation of BLNet's per-step states, without hooks."""
    frames = protocol.frames(torch.from_numpy(images))
    states, history = [None] * len(model.layers), []
    with torch.no_grad():
        for t in range(protocol.n_steps):
            x = frames[:, t]
            for i, layer in enumerate(model.layers):
                if i:
                    x = torch.nn.functional.max_pool2d(x, 2)
                drive = layer.bottom_up(x)
                if states[i] is not None:
                    drive = drive + layer.lateral(states[i])
                states[i] = x = torch.relu(drive)
            history.append([s.clone() for s in states])
    return history


def test_reused_module_yields_every_step(stimuli):
    model = BLNet(seed=3)
    protocol = PresentationProtocol(image_steps=4, blank_steps=3, onset_ms=50)
    da = extract(model, stimuli, protocol=protocol, batch_size=5, progress=False)
    assert da.sizes["time_bin"] == 7
    assert list(da.time_bin_start.values) == [50, 60, 70, 80, 90, 100, 110]
    assert list(da.time_step.values) == list(range(7))
    # Steps differ (a last-call-only hook would give 7 copies of one step) ...
    layer0 = da.sel(neuroid=da.layer == "layers.0").values
    assert all(not np.allclose(layer0[..., t], layer0[..., t + 1]) for t in range(6))
    # ... and each equals an independent recomputation of that step.
    history = _manual_states(model, stimuli.images, protocol)
    for t in range(7):
        for i, name in enumerate(["layers.0", "layers.1"]):
            got = da.sel(neuroid=da.layer == name).values[..., t]
            np.testing.assert_allclose(got, history[t][i].reshape(len(stimuli), -1).numpy(), atol=1e-5)


def test_neuroid_coords_and_ids(stimuli):
    da = extract(BLNet(seed=0), stimuli, protocol=PresentationProtocol(2, 0), progress=False)
    first = da.isel(neuroid=0)
    assert (str(first.layer.values), int(first.channel), int(first.y), int(first.x)) == ("layers.0", 0, 0, 0)
    assert da.sizes["neuroid"] == 8 * 8 * 8 + 16 * 4 * 4
    assert list(da.stimulus_id.values) == list(stimuli.stimulus_ids)


def test_unknown_layer_lists_available(stimuli):
    with pytest.raises(ExtractionError, match=r"unknown layer\(s\) \['layers.7'\]; available: .*layers.0"):
        extract(BLNet(seed=0), stimuli, layers=["layers.7"], progress=False)


def test_module_called_once_per_forward_is_reported(stimuli):
    class OncePerForward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(64, 4)

        def forward(self, frames):
            return self.head(frames[:, 0].flatten(1))

    with pytest.raises(ExtractionError, match=r"'head' ran once for the whole sequence, but its output \(2, 4\) "
                                              "holds no time axis that follows the steps"):
        extract(OncePerForward(), stimuli, layers=["head"], protocol=PresentationProtocol(2, 1),
                progress=False, convention="frames")


def test_wrong_stimulus_dtype(stimuli):
    bad = type(stimuli)(stimuli.images.astype(np.int64), stimuli.metadata)
    with pytest.raises(ExtractionError, match="must be float"):
        extract(BLNet(seed=0), bad, progress=False)


def test_recorder_removes_hooks():
    model = BLNet(seed=0)
    with LayerRecorder(model, ["layers.0"]):
        assert model.layers[0]._forward_hooks
    assert not model.layers[0]._forward_hooks


def test_seeded_models_are_deterministic_and_distinct():
    a, b, c = BLNet(seed=1), BLNet(seed=1), BLNet(seed=2)
    assert torch.equal(a.layers[0].bottom_up.weight, b.layers[0].bottom_up.weight)
    assert not torch.equal(a.layers[0].bottom_up.weight, c.layers[0].bottom_up.weight)


def test_an_output_overwritten_after_its_module_returned_is_recorded_as_the_module_gave_it():
    """Model code overwrites tensors in place: the ReLU(inplace=True) after a norm (VGG,
    ResNet's stem, CORnet's blocks), ``x += skip`` in the next block. The recorder kept a
    view of the output, so a norm's recorded activations were the ReLU's (its negative half
    was 0) and an Identity's were the next block's sum. Now each recorded output is the
    module's own, as with a reduction that copies anyway."""
    from workbench.models.reductions import SpatialPool

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.norm = torch.nn.BatchNorm2d(4)
            self.relu = torch.nn.ReLU(inplace=True)
            self.block_out = torch.nn.Identity()
            self.next_conv = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            x = self.block_out(self.relu(self.norm(self.conv(x))))
            x += self.next_conv(x)  # the next block adds into its input in place
            return x

    model = Net().eval()
    model.norm.running_mean.fill_(0.3)  # a norm whose output has both signs
    stimuli = digits(4, size=16)
    images = torch.from_numpy(np.asarray(stimuli.images, dtype=np.float32))
    with torch.no_grad():
        norm = model.norm(model.conv(images))
        block = torch.relu(norm)
    for reduction, expected in ((None, {"norm": norm, "block_out": block}),
                                (SpatialPool(2), {"norm": torch.nn.functional.avg_pool2d(norm, 8),
                                                  "block_out": torch.nn.functional.avg_pool2d(block, 8)})):
        found = extract(model, stimuli, layers=["norm", "block_out"], protocol=PresentationProtocol(1, 0),
                        progress=False, reduction=reduction, convention="feedforward")
        for layer, values in expected.items():
            recorded = found.sel(neuroid=found.layer == layer).values[..., 0]
            np.testing.assert_allclose(recorded, values.flatten(1).numpy(), rtol=1e-5, atol=1e-6)
    assert float(norm.min()) < 0  # the ReLU would have zeroed these


def test_a_state_updated_in_place_is_recorded_step_by_step():
    """A recurrent loop that updates one state tensor in place (``h.mul_(0.5).add_(drive)``)
    and returns it from the recorded module at every step: the steps share one tensor, and
    a kept view showed its final value at every step."""

    class Integrate(torch.nn.Module):
        def forward(self, h, drive):
            return h.mul_(0.5).add_(drive)  # the same tensor, updated in place

    class Loop(torch.nn.Module):
        convention = "static_recurrent"

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
            self.integrate = Integrate()

        def forward(self, x):
            drive = self.conv(x)
            h = torch.zeros_like(drive)
            for _ in range(3):
                h = self.integrate(h, drive)
            return h

    stimuli = digits(3, size=16)
    found = extract(Loop().eval(), stimuli, layers=["integrate"], protocol=PresentationProtocol(3, 0), progress=False)
    with torch.no_grad():
        drive = Loop().conv(torch.from_numpy(np.asarray(stimuli.images, dtype=np.float32))).flatten(1).numpy()
    for step, factor in enumerate((1.0, 1.5, 1.75)):
        np.testing.assert_allclose(found.values[..., step], factor * drive, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("container", ["tuple", "dict", "dataclass"])
def test_a_block_that_returns_a_container_is_recorded_by_its_first_item(container):
    """Blocks written to return more than their output (an LSTM's ``(output, (h, c))``, a
    block's ``{"out": ..., "state": ...}`` or a dataclass of both) are recorded by their first
    item, undeclared (found among the candidate layers) and declared, with the values of the
    same block returning its output alone."""
    import dataclasses

    from workbench.models.extraction import responding_layers
    from workbench.models.hub import candidate_layers
    from workbench.stimuli import Preprocessing

    @dataclasses.dataclass
    class Output:
        out: torch.Tensor
        norm: torch.Tensor

    class Block(torch.nn.Module):
        def __init__(self, cin, cout, wrap):
            super().__init__()
            self.conv, self.wrap = torch.nn.Conv2d(cin, cout, 3, padding=1), wrap

        def forward(self, x):
            out = torch.relu(self.conv(x))
            norm = out.pow(2).mean()
            if self.wrap == "tuple":
                return out, norm
            if self.wrap == "dict":
                return {"out": out, "norm": norm}
            return Output(out, norm) if self.wrap == "dataclass" else out

    class Net(torch.nn.Module):
        def __init__(self, wrap):
            super().__init__()
            torch.manual_seed(0)
            self.block1, self.block2 = Block(1, 4, wrap), Block(4, 4, wrap)

        def forward(self, x):
            first = self.block1(x)
            first = first if torch.is_tensor(first) else (first[0] if isinstance(first, tuple) else
                                                          first["out"] if isinstance(first, dict) else first.out)
            second = self.block2(first)
            return second if torch.is_tensor(second) else (second[0] if isinstance(second, tuple) else
                                                           second["out"] if isinstance(second, dict) else second.out)

    stimuli = digits(4, size=16)
    wrapped, plain = Net(container).eval(), Net("none").eval()
    grey16 = Preprocessing(size=16, channels="grey", normalization="set")
    assert {"block1", "block2"} <= set(responding_layers(wrapped, candidate_layers(wrapped), grey16))
    expected = extract(plain, stimuli, layers=["block1", "block2"], progress=False, convention="feedforward")
    for convention in (None, "feedforward"):
        found = extract(wrapped, stimuli, layers=["block1", "block2"], progress=False, convention=convention)
        np.testing.assert_array_equal(found.values, expected.values)


def test_a_transformer_as_libraries_write_it_is_recorded_block_by_block():
    """A vision transformer written as the libraries write one: its blocks in a ModuleList
    inside a backbone (``vit.layers.0``...), each returning tokens ``(batch, tokens,
    features)``, and a config object (not a dict) as ``model.config``. Its blocks are
    candidate layers (the never-called ModuleList is no level of its own), each token's
    features are units (``y`` the token, ``channel`` the feature, in the order the output
    flattens), and the config is stored as plain data in the activations' attributes and
    hashed into the cache key."""
    from workbench.models.cache import cache_key
    from workbench.models.extraction import model_config, responding_layers
    from workbench.models.hub import candidate_layers
    from workbench.stimuli import Preprocessing

    class Config:  # a library's config object: to_dict(), and not JSON itself
        def __init__(self, width):
            self.width = width

        def to_dict(self):
            return {"width": self.width, "dtype": torch.float32}

    class Block(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.mix = torch.nn.Linear(width, width)

        def forward(self, tokens):
            return tokens + torch.tanh(self.mix(tokens))

    class Backbone(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.embeddings = torch.nn.Conv2d(3, width, 8, stride=8)
            self.layers = torch.nn.ModuleList([Block(width) for _ in range(2)])

        def forward(self, x):
            tokens = self.embeddings(x).flatten(2).transpose(1, 2)  # (batch, 16 patches, width)
            for block in self.layers:
                tokens = block(tokens)
            return tokens

    class ViT(torch.nn.Module):
        def __init__(self, width=6):
            super().__init__()
            self.config = Config(width)
            self.vit = Backbone(width)
            self.classifier = torch.nn.Linear(width, 10)

        def forward(self, x):
            return self.classifier(self.vit(x)[:, 0])

    torch.manual_seed(0)
    model = ViT().eval()
    assert candidate_layers(model) == ["vit", "vit.embeddings", "vit.layers.0", "vit.layers.1", "classifier"]
    shown = Preprocessing(size=32, channels="rgb", normalization="imagenet")
    assert responding_layers(model, candidate_layers(model), shown) == candidate_layers(model)
    stimuli = digits(3, seed=0, preprocessing=shown)
    recorded = extract(model, stimuli, layers=["vit.layers.1"], protocol=PresentationProtocol(1, 0), progress=False)
    with torch.no_grad():
        tokens = model.vit(torch.as_tensor(stimuli.images))  # (3, 16, 6)
    assert recorded.sizes["neuroid"] == 16 * 6
    np.testing.assert_allclose(recorded.values[..., 0], tokens.reshape(3, -1).numpy(), rtol=1e-5, atol=1e-6)
    unit = 4 * 6 + 5  # token 4, feature 5
    assert (int(recorded.y[unit]), int(recorded.channel[unit])) == (4, 5)
    assert recorded.attrs["model"] == model_config(model) == {"width": 6, "dtype": "torch.float32"}
    wider = ViT(width=6)
    wider.load_state_dict(model.state_dict())
    wider.config = Config(7)  # same weights, another config: another key
    protocol = PresentationProtocol(1, 0)
    assert cache_key(model, stimuli, protocol, ["vit"]) != cache_key(wider, stimuli, protocol, ["vit"])
