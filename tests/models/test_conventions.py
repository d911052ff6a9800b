"""Calling conventions: frames, static_recurrent and feedforward models are all extracted,
their calls mapped to steps as documented; an unknown kind of model is a one-line error."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench import ExtractionError
from workbench.models import BLNet, PresentationProtocol, extract
from workbench.models.extraction import resolve_convention
from workbench.stimuli import Preprocessing, digits

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import user_static_rt  # noqa: E402  (a fixture model, as a user writes it)

RGB64 = Preprocessing(size=64, channels="rgb", normalization="imagenet")


@pytest.fixture(scope="module")
def rgb():
    return digits(6, seed=1, preprocessing=RGB64)


class _Undeclared(torch.nn.Module):
    """Wraps a model and hides its declarations (as an arbitrary user model has none)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def test_conventions_are_detected_where_unambiguous(rgb):
    static = user_static_rt.build()
    assert resolve_convention(static, ["V1", "IT"], rgb.images) == "static_recurrent"
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3))
    assert resolve_convention(cnn, ["0", "2"], rgb.images) == "feedforward"
    frames = _Undeclared(BLNet(channels=(4, 8), seed=0))
    grey = digits(4, size=32)
    assert resolve_convention(frames, ["inner.layers.0"], grey.images) == "frames"
    declared = BLNet(channels=(4, 8), seed=0)
    assert resolve_convention(declared, ["layers.0"], grey.images) == "frames"  # its own declaration


def test_a_model_of_no_convention_is_a_one_line_error_naming_them(rgb):
    vectors = torch.nn.Sequential(torch.nn.Linear(10, 4))  # takes (B, 10): no image convention fits
    with pytest.raises(ExtractionError) as error:
        extract(vectors, rgb, layers=["0"], progress=False)
    message = str(error.value)
    assert "\n" not in message
    for name in ("'frames'", "'static_recurrent'", "'feedforward'"):
        assert name in message
    with pytest.raises(ExtractionError, match="unknown calling convention 'loop'"):
        extract(vectors, rgb, layers=["0"], progress=False, convention="loop")


def test_static_recurrent_calls_become_steps_and_the_last_state_is_held(rgb):
    model = user_static_rt.build(times=3).eval()
    protocol = PresentationProtocol(image_steps=4, blank_steps=2)
    da = extract(model, rgb, layers=["IT"], protocol=protocol, progress=False)
    assert da.attrs["extraction"]["convention"] == "static_recurrent"
    assert da.attrs["extraction"]["sees_offset"] is False
    states = []
    hook = model.IT.register_forward_hook(lambda m, i, o: states.append(o.flatten(1)))
    with torch.no_grad():
        model(torch.from_numpy(rgb.images))
    hook.remove()
    values = da.values  # (S, U, T)
    for k in range(3):
        np.testing.assert_allclose(values[:, :, k], states[k].numpy(), atol=1e-5)
    for k in range(3, 6):  # no offset is seen: the final state is held
        np.testing.assert_array_equal(values[:, :, k], values[:, :, 2])
    assert not np.allclose(values[:, :, 0], values[:, :, 2])


def test_feedforward_models_answer_the_image_then_the_grey_frame(rgb):
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3)).eval()
    da = extract(cnn, rgb, layers=["2"], protocol=PresentationProtocol(3, 2), progress=False)
    assert da.attrs["extraction"] == {"autocast": None, "convention": "feedforward", "sees_offset": True}
    with torch.no_grad():
        image = cnn(torch.from_numpy(rgb.images)).flatten(1).numpy()
        grey = cnn(torch.zeros_like(torch.from_numpy(rgb.images))).flatten(1).numpy()
    for t in range(3):
        np.testing.assert_allclose(da.values[:, :, t], image, atol=1e-5)
    for t in (3, 4):
        np.testing.assert_allclose(da.values[:, :, t], grey, atol=1e-5)


def test_a_feedforward_declaration_on_a_recurrent_model_is_refused(rgb):
    with pytest.raises(ExtractionError, match="ran 3 times in one call of a feedforward model"):
        extract(user_static_rt.build(times=3), rgb, layers=["IT"], progress=False, convention="feedforward",
                protocol=PresentationProtocol(2, 0))


class _PerStep(torch.nn.Module):
    """A readout per step: ``frames`` models take (B, T, C, H, W); static ones loop over one
    image and return a list of (B, K) (BLnet-style) or a (B, T, K) tensor."""

    def __init__(self, kind, times=5):
        super().__init__()
        self.kind, self.times = kind, times
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def readout(self, x, h):
        h = torch.relu(self.conv(x) + (h if h is not None else 0))
        return h, self.fc(h.mean((2, 3)))

    def forward(self, x):
        h, outs = None, []
        if self.kind.startswith("frames"):
            for t in range(x.shape[1]):
                h, out = self.readout(x[:, t], h)
                outs.append(out)
            return outs if self.kind == "frames-list" else (torch.stack(outs, 1), {"h": h})  # (logits, states)
        for _ in range(self.times):
            h, out = self.readout(x, h)
            outs.append(out)
        if self.kind == "final":
            return outs[-1]
        return outs if self.kind == "list" else torch.stack(outs, 1)


@pytest.mark.parametrize("kind, declared, steps", [("frames", None, 8), ("frames", "frames", 8), ("frames-list", None, 8),
                                                   ("list", None, 5), ("list", "static_recurrent", 5),
                                                   ("tensor", None, 5)])
def test_step_readouts_of_frames_and_static_recurrent_models(kind, declared, steps):
    """Reaction times read a readout per step: from a frames model shown the image for each
    frame, or from a model that loops over one image inside forward (BLnet as published),
    declared or found by calling it; each step's readout is the model's own."""
    from workbench.models.conventions import step_readouts

    torch.manual_seed(0)
    model, images = _PerStep(kind).eval(), torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        logits = step_readouts(model, images, 8, declared)
        assert logits.shape == (6, steps, 3)
        h, expected = None, []
        for _ in range(steps):
            h, out = model.readout(images, h)  # a held image: every frame is the same image
            expected.append(out)
    torch.testing.assert_close(logits, torch.stack(expected, 1))


@pytest.mark.parametrize("kind, container", [("list", "dict"), ("tensor", "dict"), ("frames", "dict"),
                                             ("list", "dataclass")])
def test_step_readouts_are_found_in_a_dict_output(kind, container):
    """A model that returns a dict (or a model output class) gives its per-step readouts in
    one of its values: that value is read, found or declared, whatever the other keys hold
    (the last step's logits, pooled features); where two values both hold per-step readouts,
    the one named logits; where none or an undecidable two do, the error names the keys."""
    import dataclasses

    from workbench.models.conventions import step_readouts

    class Dicts(_PerStep):
        def __init__(self, kind, keys):
            super().__init__(kind)
            self.keys = keys

        def forward(self, x):
            returned = super().forward(x)
            readouts = returned[0] if isinstance(returned, tuple) else returned
            stacked = torch.stack(readouts, 1) if isinstance(readouts, list) else readouts
            values = {"per_step": readouts, "last": stacked[:, -1], "features": torch.zeros(len(x), 4, 2, 2),
                      "per_step_logits": readouts, "other_per_step": stacked * 2}
            if container == "dict":
                return {key: values[key] for key in self.keys}
            fields = dataclasses.make_dataclass("Output", self.keys)
            return fields(**{key: values[key] for key in self.keys})

    torch.manual_seed(0)
    images, reference = torch.randn(6, 1, 8, 8), _PerStep(kind).eval()
    steps = 8 if kind == "frames" else 5
    with torch.no_grad():
        model = Dicts(kind, ["last", "per_step", "features"]).eval()
        model.load_state_dict(reference.state_dict())
        expected = step_readouts(reference, images, 8)
        assert expected.shape == (6, steps, 3)
        torch.testing.assert_close(step_readouts(model, images, 8), expected)
        declared = "frames" if kind == "frames" else "static_recurrent"
        torch.testing.assert_close(step_readouts(model, images, 8, declared), expected)
        named = Dicts(kind, ["other_per_step", "per_step_logits"]).eval()
        named.load_state_dict(reference.state_dict())
        torch.testing.assert_close(step_readouts(named, images, 8, declared), expected)
        with pytest.raises(ExtractionError, match=r"'per_step', 'other_per_step' all hold some \(fix: name the "
                                                  r"readouts' key 'logits'"):
            step_readouts(Dicts(kind, ["per_step", "other_per_step"]).eval(), images, 8, declared)
        with pytest.raises(ExtractionError, match=rf"returned a {'dict' if container == 'dict' else 'Output'} with "
                                                  r"'last', 'features', none of them per-step"):
            step_readouts(Dicts(kind, ["last", "features"]).eval(), images, 8, declared)


def test_step_readouts_refuse_one_readout_and_uncallable_models_by_name():
    from workbench.models.conventions import step_readouts

    images = torch.randn(4, 1, 8, 8)
    with pytest.raises(ExtractionError, match=r"per-step readouts .* returned \(4, 3\)"):
        step_readouts(_PerStep("final").eval(), images, 8)

    class Classifier(_PerStep):  # an image classifier returning a model output class's dict
        def forward(self, x):
            return {"logits": super().forward(x), "hidden_states": None}

    for model in (_PerStep("final"), Classifier("final")):  # a single readout is named first, as feedforward
        with pytest.raises(ExtractionError, match=r"cannot call the model for reaction times: model\(x\) gives one "
                                                  r"readout per image, \(4, 3\) \(batch, classes\): a feedforward "
                                                  r"model, which has no reaction times"):
            step_readouts(model.eval(), images, 8)
    with pytest.raises(ExtractionError, match="a feedforward model gives one readout"):
        step_readouts(_PerStep("list").eval(), images, 8, "feedforward")
    with pytest.raises(ExtractionError, match=r"model\(frames\) failed .*; model\(x\) failed .*Declare"):
        step_readouts(torch.nn.Linear(3, 3), images, 8)
    with pytest.raises(ExtractionError, match=r"calling the model as declared \(frames\) failed"):
        step_readouts(_PerStep("list").eval(), images, 8, "frames")


def test_an_undeclared_static_model_that_also_runs_on_frames_is_called_with_one_image():
    """A model that flattens its input runs on a 5-D frames batch too, returning nonsense of
    the wrong shape: undeclared, it is then called with the image, as it was written to be."""
    from workbench.models.conventions import step_readouts

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(1, 3)

        def forward(self, x):
            pooled = x.reshape(len(x), -1).mean(1, keepdim=True)  # any input shape
            return [self.fc(pooled) * (t + 1) for t in range(3)]  # 3 steps of its own loop

    model, images = Flat(), torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        logits = step_readouts(model, images, 8)
        assert logits.shape == (4, 3, 3)
        torch.testing.assert_close(logits[:, 2], 3 * model.fc(images.reshape(4, -1).mean(1, keepdim=True)))


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-5), (torch.bfloat16, 0.05)])
def test_a_model_cast_to_another_precision_is_given_images_in_its_own(rgb, dtype, tolerance):
    """``model.double()`` or ``model.to(torch.bfloat16)`` refuses float32 images ("Input type
    (float) and bias type (double) should be the same"): extraction and per-step readouts
    give each model its own dtype, and return float32 values close to the float32 model's."""
    from workbench.models.conventions import model_dtype, step_readouts

    reference = user_static_rt.build()
    cast = user_static_rt.build().to(dtype)
    assert model_dtype(cast) == dtype and model_dtype(torch.nn.ReLU()) == torch.float32
    expected = extract(reference, rgb, layers=["IT"], progress=False)
    got = extract(cast, rgb, layers=["IT"], progress=False)
    assert got.dtype == np.float32 and got.attrs["extraction"]["convention"] == "static_recurrent"
    scale = float(np.abs(expected.values).max())
    assert np.abs(got.values - expected.values).max() <= tolerance * scale

    per_step = _PerStep("list")
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        expected_logits = step_readouts(per_step.eval(), images, 8)
        logits = step_readouts(per_step.to(dtype), images, 8)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, expected_logits, atol=tolerance * float(expected_logits.abs().max()), rtol=0)


class _WholeSequence(torch.nn.Module):
    """A frames model whose layers run once over all the frames, as video models are
    written: a CNN on every frame at once (time folded into the batch, image- or
    step-major), a 3-D convolution over (batch, C, steps, H, W), and nn.GRUs over
    (batch, steps, features) and (steps, batch, features)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)  # image-major rows
        self.conv_tm = torch.nn.Conv2d(3, 2, 3, stride=8, padding=1)  # step-major rows
        self.conv3d = torch.nn.Conv3d(4, 2, (1, 3, 3), padding=(0, 1, 1))  # (B, C, T, H, W)
        self.gru = torch.nn.GRU(4 * 16 * 16, 6, batch_first=True)  # (B, T, F)
        self.gru_tf = torch.nn.GRU(6, 5)  # (T, B, F): nn.GRU's default layout
        self.fc = torch.nn.Linear(5, 3)

    def forward(self, frames):
        batch, steps = frames.shape[:2]
        c = torch.relu(self.conv(frames.flatten(0, 1)))  # (B * T, 4, 16, 16)
        self.conv_tm(frames.transpose(0, 1).flatten(0, 1))  # (T * B, 2, 8, 8): recorded only
        volume = c.view(batch, steps, *c.shape[1:]).transpose(1, 2)  # (B, 4, T, 16, 16)
        self.conv3d(volume)
        out, _ = self.gru(c.view(batch, steps, -1))
        out_tf, _ = self.gru_tf(out.transpose(0, 1))
        return self.fc(out_tf.transpose(0, 1))


def test_layers_that_run_once_over_the_whole_sequence_are_split_into_their_steps(rgb):
    """Each such layer's steps are found (by how its time axis follows the number of frames,
    and how the first image's steps come out when it is shown alone) and recorded as the
    steps of a frames model; each step equals the module's own output for that step."""
    from workbench.models.conventions import split_steps

    model = _WholeSequence().eval()
    layers = ["conv", "conv_tm", "conv3d", "gru", "gru_tf"]
    assert resolve_convention(model, layers, rgb.images) == "frames"
    protocol = PresentationProtocol(image_steps=3, blank_steps=2)
    got = extract(model, rgb, layers=layers, protocol=protocol, progress=False)
    assert got.attrs["extraction"]["sequence_layers"] == {
        "conv": "rows:batch-major", "conv_tm": "rows:time-major", "conv3d": "axis:2", "gru": "axis:1",
        "gru_tf": "axis:0"}
    frames = protocol.frames(torch.from_numpy(np.asarray(rgb.images, dtype=np.float32)))
    outputs = {}

    def keep(name):
        def hook(module, inputs, output):
            outputs[name] = output[0] if isinstance(output, tuple) else output
        return hook

    hooks = [getattr(model, name).register_forward_hook(keep(name)) for name in layers]
    with torch.no_grad():
        model(frames)
    for hook in hooks:
        hook.remove()
    batch, steps = frames.shape[:2]
    expected = {"conv": outputs["conv"].view(batch, steps, -1),
                "conv_tm": outputs["conv_tm"].view(steps, batch, -1).transpose(0, 1),
                "conv3d": outputs["conv3d"].transpose(1, 2).reshape(batch, steps, -1),
                "gru": outputs["gru"], "gru_tf": outputs["gru_tf"].transpose(0, 1)}
    for name in layers:
        values = got.sel(neuroid=got.coords["layer"] == name).values  # (images, units, steps)
        np.testing.assert_allclose(values, expected[name].permute(0, 2, 1).numpy(), rtol=1e-4, atol=1e-5)
    assert split_steps(torch.zeros(7, 3), "rows:batch-major", 5) is None  # 7 rows: not 5 steps of images


def test_a_feature_axis_as_long_as_the_steps_is_not_taken_for_time():
    """A static model that flattens whatever it is given also runs on frames, returning
    (batch, 3) where 3 is its classes: with 3 and with 4 frames it returns 3 columns, so
    no time axis follows the frames, and it is called as the static model it is."""

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(1, 3)

        def forward(self, x):
            return self.fc(x.reshape(len(x), -1).mean(1, keepdim=True))

    assert resolve_convention(Flat(), ["fc"], digits(4, size=8).images) == "feedforward"


class _Cell(torch.nn.Module):
    """A recurrent cell the caller steps: forward(x, hidden=None) -> (readout, hidden)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.lateral = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)
        self.state = torch.nn.Identity()  # the hidden state, recorded

    def forward(self, x, hidden=None):
        drive = self.conv(x)
        hidden = self.state(torch.tanh(drive + (self.lateral(hidden) if hidden is not None else 0)))
        return self.fc(hidden.mean((2, 3))), hidden


class _CellOverFrames(torch.nn.Module):
    """The same cell stepped inside forward over (B, T, C, H, W) frames."""

    convention = "frames"

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, frames):
        hidden, readouts = None, []
        for t in range(frames.shape[1]):
            readout, hidden = self.cell(frames[:, t], hidden)
            readouts.append(readout)
        return torch.stack(readouts, 1)


def test_a_stepwise_cell_is_stepped_over_the_frames_with_its_state(rgb):
    """convention='stepwise' calls model(frame, state) once per frame with the state it
    returned: every step's activations and readouts equal those of the same cell stepped by
    a frames model; it sees the offset; it is detected by its state changing its output (not
    for a model returning (logits, features)), and a cell that returns no state is a named
    error."""
    from workbench.models.conventions import sees_offset, step_readouts

    cell = _Cell().eval()
    protocol = PresentationProtocol(image_steps=3, blank_steps=2)
    stepped = extract(cell, rgb, layers=["conv", "state"], protocol=protocol, progress=False,
                      convention="stepwise")
    framed = extract(_CellOverFrames(cell), rgb, layers=["cell.conv", "cell.state"], protocol=protocol,
                     progress=False)
    np.testing.assert_array_equal(stepped.values, framed.values)
    assert stepped.attrs["extraction"]["convention"] == "stepwise" and sees_offset("stepwise")
    state = stepped.sel(neuroid=stepped.layer == "state").values
    assert np.abs(state[..., 3] - state[..., 2]).max() > 1e-3  # the grey frame after the image reaches it
    # a lateral connection the first step skips (no state yet) reads 0 there, then its calls
    lateral = extract(cell, rgb, layers=["lateral"], protocol=protocol, progress=False).values  # detected
    assert np.abs(lateral[..., 0]).max() == 0
    with torch.no_grad():
        _, first = cell(torch.from_numpy(np.asarray(rgb.images, dtype=np.float32)), None)
        np.testing.assert_allclose(lateral[..., 1], cell.lateral(first).flatten(1).numpy(), rtol=1e-5, atol=1e-6)
    images = torch.from_numpy(np.asarray(rgb.images, dtype=np.float32))
    with torch.no_grad():
        torch.testing.assert_close(step_readouts(cell, images, 6, "stepwise"),
                                   _CellOverFrames(cell)(images[:, None].expand(-1, 6, -1, -1, -1)))
    assert resolve_convention(cell, ["conv"], rgb.images) == "stepwise"  # its state changes its readout

    class VectorCell(torch.nn.Module):  # readout and state both (B, 3): no list of 2 readouts
        def __init__(self):
            super().__init__()
            self.drive, self.lateral = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)

        def forward(self, x, hidden=None):
            hidden = torch.tanh(self.drive(x.mean((2, 3))) + (self.lateral(hidden) if hidden is not None else 0))
            return 2 * hidden, hidden

    vector = VectorCell().eval()
    with torch.no_grad():
        undeclared = step_readouts(vector, images, 6)
        torch.testing.assert_close(undeclared, step_readouts(vector, images, 6, "stepwise"))
    assert undeclared.shape == (len(images), 6, 3)

    class Features(torch.nn.Module):  # (logits, features) and a second argument that is no state
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x, scale=None):
            features = self.conv(x)
            return features.mean((2, 3)), features

    assert resolve_convention(Features(), ["conv"], rgb.images) == "feedforward"

    class NoState(_Cell):
        def forward(self, x, hidden=None):
            return super().forward(x, hidden)[1]

    with pytest.raises(ExtractionError, match=r"a stepwise model returns \(output, state\) .* returned \(6, 4, 16, 16\)"):
        extract(NoState().eval(), rgb, layers=["conv"], protocol=protocol, progress=False, convention="stepwise")


class _Recurrent(torch.nn.Module):
    """A conv recurrence over frames, batch first (``(B, T, C, H, W)``) or time first
    (``(T, B, C, H, W)``, ``for frame in frames``), with a GRU over the steps' pooled
    responses (nn.GRU's own layout: time first unless ``batch_first``) and per-step logits."""

    def __init__(self, time_first):
        super().__init__()
        self.time_first = time_first
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.lateral = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.gru = torch.nn.GRU(4, 5, batch_first=not time_first)
        self.fc = torch.nn.Linear(5, 3)

    def forward(self, frames):
        if frames.ndim != 5:
            raise ValueError("expected a sequence of frames")
        steps = frames.unbind(0 if self.time_first else 1)
        h, pooled = torch.zeros(frames.shape[1 if self.time_first else 0], 4, *frames.shape[-2:]), []
        for frame in steps:
            h = torch.relu(self.conv(frame) + self.lateral(h))
            pooled.append(h.mean((2, 3)))
        sequence, _ = self.gru(torch.stack(pooled, 0 if self.time_first else 1))
        return self.fc(sequence)  # (T, B, 3) or (B, T, 3)


def _twins():
    torch.manual_seed(0)
    batch_first, time_first = _Recurrent(False).eval(), _Recurrent(True).eval()
    time_first.load_state_dict(batch_first.state_dict())
    return batch_first, time_first


def test_a_model_that_takes_time_first_frames_is_found_and_read_as_its_batch_first_twin(rgb):
    """Recurrent code often loops over the first axis, ``(steps, batch, C, H, W)``. Shown a
    ``(batch, steps, ...)`` call its layers run once per image, not per step; the model is
    then tried time first, where each runs once per frame, and is called so. Its recordings
    (per-step convolutions and a time-first GRU over the sequence) equal those of the same
    weights written batch first, and its reaction-time readouts too (before, read as batch
    first, they were the right shape and mixed the images)."""
    from workbench.models.conventions import step_readouts

    batch_first, time_first = _twins()
    layers = ["conv", "lateral", "gru"]
    assert resolve_convention(batch_first, layers, rgb.images) == "frames"
    assert resolve_convention(time_first, layers, rgb.images) == "frames_time_first"
    # from one image too (a one-image extraction: the memory probe's first), where its loop
    # over the batch axis would run once, like a layer over the whole sequence
    assert resolve_convention(time_first, layers, rgb.images[:1]) == "frames_time_first"
    assert resolve_convention(batch_first, layers, rgb.images[:1]) == "frames"
    protocol = PresentationProtocol(image_steps=3, blank_steps=2)
    expected = extract(batch_first, rgb, layers=layers, protocol=protocol, progress=False)
    found = extract(time_first, rgb, layers=layers, protocol=protocol, progress=False)
    assert found.attrs["extraction"]["convention"] == "frames_time_first"
    assert found.attrs["extraction"]["sequence_layers"] == {"gru": "axis:0"}
    assert expected.attrs["extraction"]["sequence_layers"] == {"gru": "axis:1"}
    assert float(np.abs(found.values).max()) > 0
    np.testing.assert_allclose(found.values, expected.values, rtol=1e-5, atol=1e-6)
    images = torch.from_numpy(np.asarray(rgb.images, dtype=np.float32))
    with torch.no_grad():
        reference = step_readouts(batch_first, images, 6)
        torch.testing.assert_close(step_readouts(time_first, images, 6), reference)
        torch.testing.assert_close(step_readouts(time_first, images, 6, "frames_time_first"), reference)
        torch.testing.assert_close(step_readouts(time_first, images[:1], 6), reference[:1])  # one image


class _Clip(torch.nn.Module):
    """A video network: 3-D convolutions over a clip (batch, C, steps, H, W), as torchvision's
    r3d_18 takes it (its time axis kept: padded temporal kernels, stride 1)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.temporal = torch.nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, clip):
        return self.temporal(torch.relu(self.conv(clip)))


class _ClipFromFrames(torch.nn.Module):
    """The same network taking (batch, steps, C, H, W) frames."""

    convention = "frames"

    def __init__(self, clip):
        super().__init__()
        self.net = clip

    def forward(self, frames):
        return self.net(frames.transpose(1, 2))


def test_a_video_network_is_found_and_read_per_step(rgb):
    """A clip model, shown 3 frames of RGB images batch first, runs too (the steps read as
    channels) but no time axis follows the steps; as a clip its 3-D convolutions' time axes
    do, and each step's response is read from them. The recordings equal those of the same
    network given the frames batch first, and a model that fails on other frame counts is a
    named error, never a raw one."""
    clip = _Clip().eval()
    assert resolve_convention(clip, ["conv", "temporal"], rgb.images) == "video"
    protocol = PresentationProtocol(image_steps=3, blank_steps=2)
    found = extract(clip, rgb, layers=["conv", "temporal"], protocol=protocol, progress=False)
    expected = extract(_ClipFromFrames(clip), rgb, layers=["net.conv", "net.temporal"], protocol=protocol,
                       progress=False)
    assert found.attrs["extraction"]["convention"] == "video"
    assert found.attrs["extraction"]["sequence_layers"] == {"conv": "axis:2", "temporal": "axis:2"}
    np.testing.assert_array_equal(found.values, expected.values)
    temporal = found.sel(neuroid=found.layer == "temporal").values
    assert np.abs(temporal[..., 3] - temporal[..., 2]).max() > 1e-3  # the grey frame after the image reaches it
    # declared frames, grey: 3 frames pass as its 3 channels, 4 cannot
    with pytest.raises(ExtractionError, match=r"calling the model on 4 frames of 2 image\(s\) \(frames\) failed: "
                                              r"RuntimeError: .*to have 3 channels, but got 4"):
        extract(clip, digits(4, size=32), layers=["conv"], protocol=protocol, progress=False, convention="frames")


def test_a_video_layer_after_a_temporal_stride_holds_each_position_over_its_steps(rgb):
    """A video network's later stages, after strides over time, have one time position per
    2, 4 or 8 steps. Each is found with its stride (the length follows the steps / stride,
    rounded either way: 8, not 7, where both round to the same), recorded alone or with
    others, and each of its positions is its response over those steps: equal to the layer
    computed by hand from the recorded stride-1 layer before it."""

    class Strided(_Clip):
        def __init__(self):
            super().__init__()
            self.later = torch.nn.Conv3d(4, 4, 3, stride=2, padding=1)
            self.pool = torch.nn.MaxPool3d(2)
            self.last = torch.nn.Conv3d(4, 4, 3, stride=(2, 1, 1), padding=1)

        def forward(self, clip):
            return self.last(self.pool(torch.relu(self.later(torch.relu(super().forward(clip))))))

    model = Strided().eval()
    assert resolve_convention(model, ["later"], rgb.images) == "video"
    protocol = PresentationProtocol(image_steps=3, blank_steps=4)
    found = extract(model, rgb, layers=["temporal", "later", "pool", "last"], protocol=protocol, progress=False)
    assert found.attrs["extraction"]["sequence_layers"] == {"temporal": "axis:2", "later": "axis:2/2",
                                                            "pool": "axis:2/4", "last": "axis:2/8"}
    n, steps = len(rgb.images), protocol.n_steps
    temporal = torch.from_numpy(found.sel(neuroid=found.layer == "temporal").values)  # (n, C H W, steps)
    temporal = temporal.reshape(n, 4, 64, 64, steps).permute(0, 1, 4, 2, 3)  # a clip (n, C, steps, H, W)
    with torch.no_grad():
        later = model.later(torch.relu(temporal))  # (n, 4, 4 positions, 32, 32)
    assert later.shape[2] == 4
    recorded = found.sel(neuroid=found.layer == "later").values.reshape(n, 4, 32, 32, steps)
    for step in range(steps):
        np.testing.assert_allclose(recorded[..., step], later[:, :, step // 2].numpy(), rtol=1e-4, atol=1e-5)
    alone = extract(model, rgb, layers=["last"], protocol=protocol, progress=False)
    assert alone.attrs["extraction"]["sequence_layers"] == {"last": "axis:2/8"}
    np.testing.assert_array_equal(alone.values, found.sel(neuroid=found.layer == "last").values)

    class Headed(Strided):  # a head that pools over the whole clip: no time axis is left
        def __init__(self):
            super().__init__()
            self.head = torch.nn.AdaptiveAvgPool3d(1)

        def forward(self, clip):
            return self.head(super().forward(clip))

    headed = Headed().eval()
    with pytest.raises(ExtractionError, match=r"model\(clip\) as video \(batch, C, steps, H, W\) ran, but no recorded "
                                              r"layer's output holds the steps \(one that pools over the whole clip"):
        resolve_convention(headed, ["head"], rgb.images)
    with pytest.raises(ExtractionError, match=r"layer 'head' ran once for the whole sequence, .*also after a stride "
                                              r"over time of up to 8.*record the stages before it"):
        extract(headed, rgb, layers=["later", "head"], protocol=protocol, progress=False)


def test_split_steps_reads_a_strided_time_axis_rounded_either_way():
    """``axis:N/S``: one position per S steps, ceil(steps / S) positions (padded) or floor (not
    padded: the last steps take the last position); any other length is not this layout."""
    from workbench.models.conventions import split_steps, strided_layers

    output = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)  # (batch, C, positions)
    for steps, positions in ((7, 4), (8, 4), (9, 4)):  # ceil(7/2), 8/2, floor(9/2)
        parts = split_steps(output[..., :positions], "axis:2/2", steps)
        assert len(parts) == steps
        assert [int(part[0, 0]) for part in parts] == [min(step // 2, positions - 1) for step in range(steps)]
    assert split_steps(output, "axis:2/2", 12) is None and split_steps(output, "axis:2/2", 5) is None
    assert split_steps(output, "axis:2", 4) is not None and split_steps(output, "axis:2", 8) is None
    assert strided_layers({"a": "axis:2", "b": "axis:2/4", "c": "rows:batch-major"}) == {"b": 4}


class _Leaky(torch.nn.Module):
    """A multi-step leaky integrator (as spiking-network libraries run a layer over a whole
    sequence at once): v_t = 0.5 v_(t-1) + x_t along ``axis``."""

    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, sequence):
        v, out = 0, []
        for x in sequence.unbind(self.axis):
            v = 0.5 * v + x
            out.append(v)
        return torch.stack(out, self.axis)


class _MultiStep(torch.nn.Module):
    """Every layer once over the sequence: a convolution on all frames folded into the batch,
    then the integrator; time first ((steps, batch, C, H, W)) or batch first."""

    def __init__(self, time_first):
        super().__init__()
        torch.manual_seed(0)
        self.time_first = time_first
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.leaky = _Leaky(0 if time_first else 1)

    def forward(self, frames):
        folded = self.conv(frames.flatten(0, 1))
        return self.leaky(folded.reshape(*frames.shape[:2], *folded.shape[1:]))


def test_a_time_first_model_whose_layers_run_once_over_the_sequence_is_not_read_batch_first(rgb):
    """Shown (batch, steps, ...) frames, a time-first multi-step model reads the images as
    steps: its integrator's output (images, frames, ...) looks like (batch, steps, ...) and
    the first image's steps equal those computed for it alone (it is the first moment), but
    the second image's do not (the model integrated the first into it). Each image is
    checked alone, so it is read time first: as its batch-first twin."""
    time_first, batch_first = _MultiStep(True).eval(), _MultiStep(False).eval()
    time_first.load_state_dict(batch_first.state_dict())
    layers = ["conv", "leaky"]
    assert resolve_convention(batch_first, layers, rgb.images) == "frames"
    assert resolve_convention(time_first, layers, rgb.images) == "frames_time_first"
    protocol = PresentationProtocol(image_steps=3, blank_steps=2)
    found = extract(time_first, rgb, layers=layers, protocol=protocol, progress=False)
    expected = extract(batch_first, rgb, layers=layers, protocol=protocol, progress=False)
    assert found.attrs["extraction"]["sequence_layers"] == {"conv": "rows:time-major", "leaky": "axis:0"}
    assert expected.attrs["extraction"]["sequence_layers"] == {"conv": "rows:batch-major", "leaky": "axis:1"}
    np.testing.assert_allclose(found.values, expected.values, rtol=1e-6, atol=1e-6)
    leaky = found.sel(neuroid=found.layer == "leaky").values
    assert np.abs(leaky[..., 1] - leaky[..., 0]).max() > 1e-3  # it integrates over the steps


def test_a_time_first_model_called_batch_first_is_refused_when_declared_so(rgb):
    """Declared as it is not (``frames`` for a time-first model), its layers run once per
    image: the error says so, and the other declaration is named."""
    _, time_first = _twins()
    with pytest.raises(ExtractionError, match=r"called \{'conv': 2\} times for 3 steps \(once per image of 2: .* "
                                              "convention 'frames_time_first'"):
        extract(time_first, rgb, layers=["conv"], protocol=PresentationProtocol(image_steps=3, blank_steps=2),
                progress=False, convention="frames")
    with pytest.raises(ExtractionError, match="'frames_time_first'"):
        extract(time_first, rgb, layers=["conv"], progress=False, convention="time_first")


def test_a_cell_whose_state_argument_has_no_default_is_found_and_stepped(rgb):
    """ConvLSTM-style cells are often written forward(x, state) with no default, ``None`` on
    the first step: model(x) fails for the missing argument, model(x, None) returns the pair,
    and the cell is stepped like one whose state defaults to None (same recordings, same
    readouts)."""
    from workbench.models.conventions import step_readouts

    class Required(_Cell):
        def forward(self, x, hidden):
            return super().forward(x, hidden)

    optional, required = _Cell().eval(), Required().eval()
    required.load_state_dict(optional.state_dict())
    assert resolve_convention(required, ["conv", "state"], rgb.images) == "stepwise"
    protocol = PresentationProtocol(image_steps=3, blank_steps=2)
    found = extract(required, rgb, layers=["conv", "state"], protocol=protocol, progress=False)
    expected = extract(optional, rgb, layers=["conv", "state"], protocol=protocol, progress=False)
    assert found.attrs["extraction"]["convention"] == "stepwise"
    np.testing.assert_array_equal(found.values, expected.values)
    images = torch.from_numpy(np.asarray(rgb.images, dtype=np.float32))
    with torch.no_grad():
        torch.testing.assert_close(step_readouts(required, images, 6), step_readouts(optional, images, 6))

    class TwoInputs(torch.nn.Module):  # a second argument that is no state: still an error
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x, scale):
            return self.conv(x) * (1.0 if scale is None else scale)

    with pytest.raises(ExtractionError, match=r"model\(x\) needs a second argument, and model\(x, None\) did not"):
        resolve_convention(TwoInputs(), ["conv"], rgb.images)


def test_a_model_that_keeps_state_between_calls_is_refused_with_the_fix(rgb):
    """A hidden state kept in an attribute and never reset carries one batch into the next
    (and the image into the grey frame): two identical calls differ, and detection says why
    and how to fix it; a stochastic model likewise. Declared, the convention is taken as is."""

    class Stateful(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)
            self.h = None

        def forward(self, x):
            out = self.conv(x)
            self.h = out if self.h is None else torch.tanh(out + self.h)  # never reset
            return self.h

    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.conv(x) + torch.randn(1)

    for model in (Stateful(), Noisy()):
        with pytest.raises(ExtractionError, match=r"returns other outputs when called twice on the same input \("
                                                  r"as feedforward\): it keeps state .*convention 'stepwise'"):
            resolve_convention(model, ["conv"], rgb.images)
    assert resolve_convention(Stateful(), ["conv"], rgb.images, convention="feedforward") == "feedforward"

    class Resettable(Stateful):  # the fix the message names, for a model with a reset method
        def reset(self):
            self.h = None

    with pytest.raises(ExtractionError, match=r"reset = 'reset' in the model's table or --reset reset; a library's "
                                              r"reset function by module:function, e.g. reset = "
                                              r"'snntorch.utils:reset'"):
        resolve_convention(Resettable(), ["conv"], rgb.images)
    fixed = Resettable()
    fixed.register_forward_pre_hook(lambda module, args: module.reset())
    assert resolve_convention(fixed, ["conv"], rgb.images) == "feedforward"


def test_a_model_shown_the_wrong_input_is_told_which_declaration_fixes_it(rgb):
    """No convention fits a model shown images it was not built for; the error says so first
    and names the declaration (channels, input_size), not only the conventions."""
    grey_net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    with pytest.raises(ExtractionError, match=r"a convolution takes 1 channel\(s\) and the images have 3: declare the "
                                              r"input it expects \(channels = 'grey', --channels grey\)\. Otherwise: "):
        resolve_convention(grey_net, ["0"], rgb.images)
    fixed = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Flatten(),
                                torch.nn.Linear(2 * 32 * 32, 4))  # built for 32 px
    with pytest.raises(ExtractionError, match=r"sizes did not match images of 64 px: .* declare input_size"):
        resolve_convention(fixed, ["0", "2"], rgb.images)


    class NeedsMask(torch.nn.Module):  # fails for another reason than its input: no input hint
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x, mask=None):
            if mask is None:
                raise ValueError("pass a mask")
            return self.conv(x * mask)

    with pytest.raises(ExtractionError) as error:
        resolve_convention(NeedsMask(), ["conv"], rgb.images)
    assert "Otherwise" not in str(error.value) and "pass a mask" in str(error.value)


class _NormalisesInPlace(torch.nn.Module):
    """Normalises its input in place (``x -= 0.5``), as some model code does; ``times`` > 1:
    a BLnet-style loop with a readout per step."""

    def __init__(self, times=1):
        super().__init__()
        torch.manual_seed(0)
        self.times = times
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        x -= 0.5
        h, readouts = 0, []
        for _ in range(self.times):
            h = torch.relu(self.conv(x) + 0.5 * h)
            readouts.append(self.fc(h.mean((2, 3))))
        return readouts if self.times > 1 else readouts[0]


def test_a_model_that_overwrites_its_input_gets_its_own_copy(rgb):
    """A forward that normalises its input in place was refused as "returns other outputs
    when called twice" (its second call saw the first's subtraction), and, declared, wrote
    into the stimulus set's images, which every later model then saw. Each call now gets its
    own copy: the model is detected, the images are left as they were, and the activations
    and readouts are those of the same network subtracting out of place."""
    from workbench.models.conventions import step_readouts

    before = np.array(rgb.images, copy=True)
    model = _NormalisesInPlace().eval()
    assert resolve_convention(model, ["conv"], rgb.images) == "feedforward"
    found = extract(model, rgb, layers=["conv"], progress=False)
    np.testing.assert_array_equal(np.asarray(rgb.images), before)
    with torch.no_grad():
        expected = model.conv(torch.from_numpy(before) - 0.5).flatten(1).numpy()
    np.testing.assert_allclose(found.values[..., 0], expected, rtol=1e-5, atol=1e-6)
    looped = _NormalisesInPlace(times=3).eval()
    images = torch.from_numpy(np.array(rgb.images, copy=True))
    with torch.no_grad():
        readouts = step_readouts(looped, images, 6)
        np.testing.assert_array_equal(images.numpy(), before)
        assert readouts.shape == (len(images), 3, 2)
        torch.testing.assert_close(step_readouts(looped, images, 6, batch_size=4), readouts)  # batches change nothing
        h = torch.relu(looped.conv(torch.from_numpy(before) - 0.5))
        torch.testing.assert_close(readouts[:, 0], looped.fc(h.mean((2, 3))))


def test_a_spec_that_names_the_models_reset_method_is_reset_before_every_call(rgb, tmp_path, monkeypatch):
    """A stateful model (a spiking network's neurons keep their potentials between calls) is
    refused as keeping state; named in its spec (reset = "reset"), the method is called before
    every call of the model, so it is detected and each batch's activations are those of a
    fresh model. A name the model has no method for, or that is not a name, is a named error;
    the reset is part of the model's identity (cache keys)."""
    from workbench.errors import ConfigError, WorkbenchError
    from workbench.models.extraction import extract
    from workbench.models.spec import ModelSpec

    (tmp_path / "spiking_nets.py").write_text(
        "import torch\n\n"
        "class Leaky(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 4, 3)\n"
        "        self.out = torch.nn.Identity()  # the potential, recorded\n"
        "        self.potential = None\n\n"
        "    def reset(self):\n"
        "        self.potential = None\n\n"
        "    def forward(self, x):\n"
        "        drive = self.conv(x)\n"
        "        self.potential = drive if self.potential is None else 0.5 * self.potential + drive\n"
        "        return self.out(self.potential)\n\n"
        "def build():\n"
        "    return Leaky()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = ModelSpec.from_dict({"name": "leaky", "entry_point": "spiking_nets:build"}, base=tmp_path)
    with pytest.raises(ExtractionError, match=r"keeps state .*reset = 'reset' in the model's table or --reset reset"):
        resolve_convention(plain.build(), ["conv"], rgb.images)
    spec = ModelSpec.from_dict({"name": "leaky", "entry_point": "spiking_nets:build", "reset": "reset"}, base=tmp_path)
    model = spec.build()
    assert resolve_convention(model, ["out"], rgb.images) == "feedforward"
    batched = extract(model, rgb, layers=["out"], batch_size=2, progress=False)
    for index in range(6):  # each call from rest: every image's potential is a fresh model's to it alone
        alone = extract(spec.build(), rgb.subset([index]), layers=["out"], batch_size=1, progress=False,
                        convention="feedforward")
        np.testing.assert_allclose(batched.isel(presentation=[index]).values, alone.values, rtol=1e-4, atol=1e-6)
    stale = extract(plain.build(), rgb, layers=["out"], batch_size=2, progress=False, convention="feedforward")
    assert np.abs(stale.values - batched.values).max() > 0.1  # without the reset, the potential carries over
    assert spec.identity() != plain.identity() and spec.identity()["reset"] == "reset"
    wrong = ModelSpec.from_dict({"name": "leaky", "entry_point": "spiking_nets:build", "reset": "clear"},
                                base=tmp_path)
    with pytest.raises(WorkbenchError, match=r"model 'leaky': reset = 'clear', but the model has no method 'clear' "
                                             r"\(its methods named like it: reset\)"):
        wrong.build()
    with pytest.raises(ConfigError, match="must name a method of the model"):
        ModelSpec.from_dict({"name": "leaky", "entry_point": "spiking_nets:build", "reset": "reset()"})


def test_a_spec_names_a_librarys_reset_function_called_with_the_model(rgb, tmp_path, monkeypatch):
    """Spiking-network libraries reset a network with a function (snntorch's
    ``utils.reset(net)``, spikingjelly's ``functional.reset_net(net)``), not a method: named
    ``module:function``, it is called with the model before every call, so each batch's
    activations are a fresh model's; the library's installed version joins the model's
    identity. A module that cannot be imported, a function it lacks and a malformed name are
    named errors."""
    from workbench.errors import ConfigError, WorkbenchError
    from workbench.models.extraction import extract
    from workbench.models.spec import ModelSpec

    (tmp_path / "spiking_lib.py").write_text(
        "def reset(net):\n"
        "    for module in net.modules():\n"
        "        if hasattr(module, 'potential'):\n"
        "            module.potential = None\n")
    (tmp_path / "lib_nets.py").write_text(
        "import torch\n\n"
        "class Neurons(torch.nn.Module):  # keeps its potential, as a library's leaky neuron does\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.potential = None\n\n"
        "    def forward(self, drive):\n"
        "        self.potential = drive if self.potential is None else 0.5 * self.potential + drive\n"
        "        return self.potential\n\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 4, 3)\n"
        "        self.lif = Neurons()\n\n"
        "    def forward(self, x):\n"
        "        return self.lif(self.conv(x))\n\n"
        "def build():\n"
        "    return Net()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base = {"name": "lib", "entry_point": "lib_nets:build"}
    with pytest.raises(ExtractionError, match="keeps state"):
        resolve_convention(ModelSpec.from_dict(base, base=tmp_path).build(), ["lif"], rgb.images)
    spec = ModelSpec.from_dict({**base, "reset": "spiking_lib:reset"}, base=tmp_path)
    model = spec.build()
    assert resolve_convention(model, ["lif"], rgb.images) == "feedforward"
    batched = extract(model, rgb, layers=["lif"], batch_size=2, progress=False)
    for index in range(6):  # each call from rest: every image's response is a fresh model's to it alone
        fresh = spec.build()
        alone = extract(fresh, rgb.subset([index]), layers=["lif"], batch_size=1, progress=False,
                        convention="feedforward")
        np.testing.assert_allclose(batched.isel(presentation=[index]).values, alone.values, rtol=1e-4, atol=1e-6)
    stale = extract(ModelSpec.from_dict(base, base=tmp_path).build(), rgb, layers=["lif"], batch_size=2,
                    progress=False, convention="feedforward")
    assert np.abs(stale.values - batched.values).max() > 0.1  # without the reset, the potential carries over
    identity = spec.identity()
    assert identity["reset"] == "spiking_lib:reset" and identity["reset_library"] is None  # a local module
    numpy_reset = ModelSpec.from_dict({**base, "reset": "numpy:seterr"}, base=tmp_path).identity()
    assert numpy_reset["reset_library"] == f"numpy=={np.__version__}"  # an installed library: its version
    for name, words in (("no_such_lib:reset", r"no_such_lib cannot be imported \(ModuleNotFoundError"),
                        ("spiking_lib:clear", r"spiking_lib has no function 'clear'")):
        with pytest.raises(WorkbenchError, match=rf"model 'lib': reset = '{name}', but {words}"):
            ModelSpec.from_dict({**base, "reset": name}, base=tmp_path).build()
    for bad in ("spiking_lib:", "a b:reset", "lib:reset()"):
        with pytest.raises(ConfigError, match="or a function called with it"):
            ModelSpec.from_dict({**base, "reset": bad}, base=tmp_path)


class _NeedsSteps(_PerStep):
    """A recurrent net as often written: ``forward(x, n_steps)`` without a default, returning
    each step's readout; or ``forward(x, n_steps=5, return_all=False)``, the last one unless
    asked for all."""

    def __init__(self, switch=False):
        super().__init__("list")
        self.switch = switch

    def forward(self, x, n_steps=None, return_all=False):
        if n_steps is None and not self.switch:
            raise TypeError("_NeedsSteps.forward() missing 1 required positional argument: 'n_steps'")
        self.times = n_steps or 5
        outs = super().forward(x)
        return outs if return_all or not self.switch else outs[-1]


def _needs_steps(switch):
    """A _NeedsSteps whose signature is the one users write (a required n_steps, or a switch)."""
    model = _NeedsSteps(switch)
    if switch:
        return model

    class Required(_NeedsSteps):
        def forward(self, x, n_steps):
            return super().forward(x, n_steps)

    required = Required(switch)
    required.load_state_dict(model.state_dict())
    return required


def test_forward_options_give_forward_its_arguments(rgb):
    """A model whose forward needs an argument besides the image (``forward(x, n_steps)``)
    cannot be called by any convention: the error names the argument and the spec key that
    gives it. Given as forward options, every call passes it (a call that gives one keeps its
    own): the model is a static recurrent one with that many steps, its activations those of
    calling it with the argument by hand. A name forward does not take is an error naming
    the ones it takes."""
    from workbench.models.conventions import with_forward_options

    torch.manual_seed(0)
    images = torch.randn(4, 1, 8, 8)
    model = _needs_steps(False).eval()
    with pytest.raises(ExtractionError, match=r"its forward needs n_steps besides the input: give it with "
                                              r"forward_options = \{n_steps = \.\.\.\} in the model's table \(or "
                                              r"--forward-option n_steps=VALUE\)"):
        resolve_convention(model, ["conv"], images)
    assert with_forward_options(model, n_steps=3) is model
    assert resolve_convention(model, ["conv"], images) == "static_recurrent"
    with torch.no_grad():
        assert len(model(images)) == 3 and len(model(images, n_steps=2)) == 2  # the caller's own wins
        steps = torch.stack(model(images), 1)
        by_hand = torch.stack(_NeedsSteps.forward(model, images, 3), 1)
    torch.testing.assert_close(steps, by_hand)
    shown = digits(4, seed=1, preprocessing=Preprocessing(size=8, channels="grey", normalization="set"))
    recorded = extract(model, shown, layers=["conv"], protocol=PresentationProtocol(3, 0), progress=False)
    assert recorded.sizes["time_bin"] == 3 and np.isfinite(recorded.values).all()
    with_forward_options(model, n_steps=2)  # again: replaces the first options
    with torch.no_grad():
        assert len(model(images)) == 2
    with pytest.raises(ExtractionError, match=r"Required.forward takes no argument 'n_step' \(it takes x, n_steps\)"):
        with_forward_options(_needs_steps(False), n_step=3)


def test_reaction_times_read_a_model_that_returns_every_step_when_asked():
    """A model that returns every step's readout only when asked (``return_all=True``) gives
    one readout to the reaction-time call: the error says which switch to turn on and how;
    turned on as a forward option, its readouts are the ones it returns when asked."""
    from workbench.models.conventions import step_readouts, with_forward_options

    torch.manual_seed(0)
    images = torch.randn(6, 1, 8, 8)
    model = _needs_steps(True).eval()
    with pytest.raises(ExtractionError, match=r"its forward takes return_all=False: if return_all=True returns every "
                                              r"step's readout, give forward_options = \{return_all = true\} in the "
                                              r"model's table \(or --forward-option return_all=true\)"):
        step_readouts(model, images, 8)
    with torch.no_grad():
        asked = torch.stack(model(images, return_all=True), 1)
        with_forward_options(model, return_all=True)
        torch.testing.assert_close(step_readouts(model, images, 8), asked)


def test_a_spec_gives_forward_options_and_they_are_part_of_the_models_identity(tmp_path, monkeypatch):
    """``forward_options`` in a model's table reach every call of its forward; they change the
    model's identity (cache keys), an empty table does not; keys that are not names, a value
    that is not a table, and names forward does not take are named errors."""
    from workbench.errors import ConfigError, WorkbenchError
    from workbench.models.spec import ModelSpec

    (tmp_path / "stepped_nets.py").write_text(
        "import torch\n\n"
        "class Stepped(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)\n\n"
        "    def forward(self, x, n_steps):\n"
        "        h = torch.zeros_like(self.conv(x))\n"
        "        for _ in range(n_steps):\n"
        "            h = torch.relu(self.conv(x) + 0.5 * h)\n"
        "        return h\n\n"
        "def build():\n"
        "    return Stepped()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base = {"name": "stepped", "entry_point": "stepped_nets:build"}
    plain, empty = (ModelSpec.from_dict(spec, base=tmp_path) for spec in (base, {**base, "forward_options": {}}))
    three, four = (ModelSpec.from_dict({**base, "forward_options": {"n_steps": n}}, base=tmp_path) for n in (3, 4))
    assert plain.identity() == empty.identity()
    assert len({str(spec.identity()) for spec in (plain, three, four)}) == 3
    model = three.build()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 4, 8, 8)
    assert resolve_convention(model, ["conv"], torch.randn(2, 3, 8, 8)) == "static_recurrent"
    for bad, words in (({"n-steps": 3}, "'n-steps' is not a keyword name"), (3, "must be dict")):
        with pytest.raises(ConfigError, match=words):
            ModelSpec.from_dict({**base, "forward_options": bad}, base=tmp_path)
    wrong = ModelSpec.from_dict({**base, "forward_options": {"steps": 3}}, base=tmp_path)
    with pytest.raises(WorkbenchError, match=r"model 'stepped': forward_options: Stepped.forward takes no argument "
                                             r"'steps' \(it takes x, n_steps\)"):
        wrong.build()
