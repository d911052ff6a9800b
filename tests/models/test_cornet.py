"""CORnet-Z, -RT and -S (Kubilius et al. 2019): the public release's parameter names, the
times per area, and each one's calling convention through extraction."""

import numpy as np
import pytest
import torch

from workbench.models import PresentationProtocol, extract, load_weights, zoo
from workbench.models.spec import ModelSpec
from workbench.stimuli import Preprocessing, digits

# parameter names of the public release (github.com/dicarlolab/CORnet), spot-checked per area
RELEASE_NAMES = {
    "cornet-z": ["V1.conv.weight", "V1.conv.bias", "IT.conv.weight", "decoder.linear.weight"],
    "cornet-rt": ["V1.conv_input.weight", "V1.norm_input.weight", "V1.conv1.weight", "V1.norm1.bias",
                  "IT.conv_input.bias", "decoder.linear.bias"],
    "cornet-s": ["V1.conv1.weight", "V1.norm1.running_mean", "V1.conv2.weight", "V2.conv_input.weight",
                 "V2.skip.weight", "V2.norm_skip.weight", "V2.norm1_1.weight", "V4.norm3_3.running_var",
                 "IT.conv3.weight", "IT.norm2_1.bias", "decoder.linear.weight"],
}
SMALL = Preprocessing(size=64, channels="rgb", normalization="imagenet")


@pytest.fixture(scope="module")
def images():
    return digits(3, seed=2, preprocessing=SMALL)


@pytest.mark.parametrize("name", sorted(RELEASE_NAMES))
def test_cornet_has_the_release_names_and_declares_its_input(name):
    model = zoo.build(name, seed=0)
    keys = set(model.state_dict())
    assert set(RELEASE_NAMES[name]) <= keys
    assert model.preprocessing == Preprocessing(224, "rgb", "imagenet")
    assert model.default_layers == ["V1.output", "V2.output", "V4.output", "IT.output"]
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    spec = ModelSpec.from_dict({"name": name, "zoo": name})
    assert spec.train is False and spec.preprocessing(model).size == 224


def test_cornet_s_norms_per_repetition_follow_the_papers_times():
    model = zoo.build("cornet-s", seed=0)
    for area, times in (("V2", 2), ("V4", 4), ("IT", 2)):
        block = getattr(model, area)
        assert block.times == times
        assert hasattr(block, f"norm1_{times - 1}") and not hasattr(block, f"norm1_{times}")


@pytest.mark.parametrize("name", ["cornet-z", "cornet-s"])
def test_static_cornets_run_channels_last_with_the_values_of_the_plain_layout(name):
    """CORnet-Z and -S keep their convolutions in NHWC (faster on CPU and GPU); every area's
    output and the logits equal those of the same weights in the plain NCHW layout, and the
    weights round-trip through a state dict into a plain-layout model."""
    model = zoo.build(name, seed=0).eval()
    assert model.V1.state_dict()[next(iter(model.V1.state_dict()))].is_contiguous(memory_format=torch.channels_last)
    plain = zoo.build(name, seed=0).eval().to(memory_format=torch.contiguous_format)
    plain.forward = lambda x: plain.decoder(plain.IT(plain.V4(plain.V2(plain.V1(x)))))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        ours, reference = {}, {}
        for target, store in ((model, ours), (plain, reference)):
            hooks = [getattr(target, area).register_forward_hook(
                lambda module, inputs, output, area=area, store=store: store.__setitem__(area, output.clone()))
                for area in ("V1", "V2", "V4", "IT")]
            store["logits"] = target(x)
            for hook in hooks:
                hook.remove()
    assert reference["V1"].is_contiguous() and ours["V1"].is_contiguous(memory_format=torch.channels_last)
    for key, value in reference.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-4, atol=1e-4 * float(value.abs().max()))
    loaded = zoo.build(name, seed=1).to(memory_format=torch.contiguous_format)
    loaded.load_state_dict(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_data_parallel_state_dict_of_the_release_loads(tmp_path):
    source = zoo.build("cornet-z", seed=1)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "cornet_z.pth")
    target = load_weights(zoo.build("cornet-z", seed=2), tmp_path / "cornet_z.pth")
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)


def test_the_release_checkpoint_loads(tmp_path):
    """The CORnet release's .pth files are training checkpoints (its get_model reads
    ``ckpt["state_dict"]``): epoch, architecture name, DataParallel state dict, optimizer."""
    source = zoo.build("cornet-z", seed=1)
    checkpoint = {"epoch": 25, "arch": "CORnet_Z",
                  "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
                  "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1]}]}}
    torch.save(checkpoint, tmp_path / "cornet_z-5c427c9c.pth")
    target = load_weights(zoo.build("cornet-z", seed=2), tmp_path / "cornet_z-5c427c9c.pth")
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)


def test_cornet_s_calls_map_to_steps_one_area_per_step(images):
    model = zoo.build("cornet-s", seed=0)
    protocol = PresentationProtocol(image_steps=6, blank_steps=2, unrolling="layer_per_step")
    da = extract(model, images, protocol=protocol, progress=False)
    assert da.attrs["extraction"]["convention"] == "static_recurrent"
    activity = {layer: np.abs(da.sel(neuroid=da.layer == layer).values).sum(axis=(0, 1))
                for layer in model.default_layers}
    # area rank a, k-th call at step a + k; zeros before, the final state held after
    for layer, (first, calls) in {"V1.output": (0, 1), "V2.output": (1, 2), "V4.output": (2, 4),
                                  "IT.output": (3, 2)}.items():
        assert (activity[layer][:first] == 0).all(), layer
        assert (activity[layer][first:] > 0).all(), layer
        held = da.sel(neuroid=da.layer == layer).values[:, :, first + calls - 1:]
        np.testing.assert_array_equal(held, np.repeat(held[:, :, :1], held.shape[2], axis=2))


def test_cornet_rt_takes_frames_and_sees_the_offset(images):
    model = zoo.build("cornet-rt", seed=0).eval()
    x = torch.from_numpy(images.images)
    with torch.no_grad():  # a static image = the same frame at each of its `times` steps
        torch.testing.assert_close(model(x), model(x[:, None].expand(-1, 5, -1, -1, -1)))
    da = extract(model, images, protocol=PresentationProtocol(4, 4), progress=False)
    assert da.attrs["extraction"]["convention"] == "frames" and da.attrs["extraction"]["sees_offset"]
    v1 = da.sel(neuroid=da.layer == "V1.output").values
    assert not np.allclose(v1[:, :, 3], v1[:, :, 7])  # the grey frames change V1 after the offset


def test_cornet_z_is_feedforward(images):
    da = extract(zoo.build("cornet-z", seed=0), images, protocol=PresentationProtocol(2, 1), progress=False)
    assert da.attrs["extraction"]["convention"] == "feedforward"
    np.testing.assert_array_equal(da.values[:, :, 0], da.values[:, :, 1])
