"""Model specs: validation naming the key, entry points importable from the config's folder,
identities that see code and weights."""

import os

import pytest
import torch

from workbench.errors import ConfigError
from workbench.models import ModelSpec, zoo


@pytest.mark.parametrize("spec, key, words", [
    ({"name": "m", "zoo": "bl", "seed": True}, "seed", "must be int"),
    ({"name": "m", "zoo": "bl", "epochs": -5}, "epochs", ">= 1"),
    ({"name": "m", "zoo": "bl", "layers": "conv"}, "layers", "must be list"),
    ({"name": "m", "zoo": "nosuch"}, "zoo", "valid names: b, bl"),
    ({"name": "m", "zoo": "bl", "entry_point": "a:b"}, "", "exactly one"),
    ({"name": "m", "entry_point": "a:b", "train": True}, "train", "only zoo"),
    ({"name": "", "zoo": "bl"}, "name", "non-empty"),
    ({"name": "m", "zoo": "bl", "colour": 1}, "colour", "unknown key"),
    ({"name": "m", "zoo": "bl", "config": {"channels": [4, -8]}}, "config.channels", "got -8"),
    ({"name": "m", "zoo": "bl", "config": {"chanels": [4]}}, "config.chanels", "not an option of 'bl'"),
])
def test_bad_specs_name_the_key(spec, key, words):
    with pytest.raises(ConfigError) as info:
        ModelSpec.from_dict(spec)
    assert info.value.key == key and words in info.value.problem


@pytest.mark.parametrize("content", [b'{"model": "bl", "weights": "bl.pt"}', b"", b"\x89HDF\r\n"])
def test_weights_that_are_not_a_torch_save_file_are_refused_while_validating(tmp_path, content):
    (tmp_path / "bl.json").write_bytes(content)  # e.g. the model card given instead of its .pt
    with pytest.raises(ConfigError, match="is not a torch.save or safetensors file") as info:
        ModelSpec.from_dict({"name": "m", "zoo": "bl", "weights": "bl.json"}, base=tmp_path)
    assert info.value.key == "weights"


def test_zoo_spec_defaults_and_round_trip(tmp_path):
    spec = ModelSpec.from_dict({"name": "BL", "zoo": "bl", "config": {"channels": [4, 8]}})
    assert spec.train is True and spec.seed == 0 and spec.epochs == 4
    assert ModelSpec.from_dict(spec.as_dict()) == spec
    torch.save(zoo.build("bl", channels=(4, 8)).state_dict(), tmp_path / "w.pt")
    weighted = ModelSpec.from_dict({"name": "BL", "zoo": "bl", "weights": "w.pt", "config": {"channels": [4, 8]}},
                                   base=tmp_path)
    assert weighted.train is False and weighted.weights == str((tmp_path / "w.pt").resolve())
    assert weighted.identity()["weights"] != spec.identity().get("weights")
    assert "name" not in spec.identity()


def test_entry_point_in_the_config_folder_is_importable_and_its_code_is_in_the_identity(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    source = ("import torch\n\n\ndef build(width=2):\n    torch.manual_seed(0)\n"
              "    return torch.nn.Sequential(torch.nn.Conv2d(1, width, 3))  # {}\n")
    (folder / "user_nets_for_spec_test.py").write_text(source.format("v1"))
    monkeypatch.chdir(tmp_path)  # not the config's folder, and no PYTHONPATH
    assert str(folder) not in os.environ.get("PYTHONPATH", "")
    spec = ModelSpec.from_dict({"name": "mine", "entry_point": "user_nets_for_spec_test:build",
                                "config": {"width": 3}}, base=folder)
    model = spec.build()
    assert model[0].out_channels == 3 and not model.training
    first = spec.identity()
    (folder / "user_nets_for_spec_test.py").write_text(source.format("v2: an edited comment is new code"))
    assert spec.identity()["code"] != first["code"]


def test_identity_runs_no_user_code(tmp_path):
    """Planning hashes the entry point's files; it neither imports the module nor calls it."""
    (tmp_path / "loud_module_for_spec_test.py").write_text(
        "raise RuntimeError('imported while planning')\n\ndef build():\n    raise RuntimeError('called')\n")
    spec = ModelSpec.from_dict({"name": "x", "entry_point": "loud_module_for_spec_test:build"}, base=tmp_path)
    assert len(spec.identity()["code"]) == 64
    missing = ModelSpec.from_dict({"name": "x", "entry_point": "no_such_module_anywhere:build"}, base=tmp_path)
    with pytest.raises(ConfigError, match="cannot find module 'no_such_module_anywhere'"):
        missing.identity()


def test_layers_and_protocol_come_from_the_spec_or_the_model():
    model = zoo.build("convrnn", channels=(4, 8))
    spec = ModelSpec.from_dict({"name": "c", "zoo": "convrnn", "train": False})
    assert spec.layers_of(model) == list(model.default_layers)
    assert ModelSpec.from_dict({"name": "c", "zoo": "convrnn", "layers": ["x"]}).layers_of(model) == ["x"]
    assert spec.protocol(model, 10, 15).unrolling == "layer_per_step"


def test_an_edited_or_shadowed_entry_point_module_is_imported_afresh(tmp_path, monkeypatch):
    """The code that runs is the code the cache key hashed: an edit in the same process (a
    notebook) and a same-named module imported earlier from another folder are both seen."""
    source = "import torch\n\n\ndef build():\n    return torch.nn.Conv2d(1, {}, 3)\n"
    elsewhere, configs = tmp_path / "elsewhere", tmp_path / "configs"
    for folder, width in ((elsewhere, 5), (configs, 2)):
        folder.mkdir()
        (folder / "shadowed_net_for_spec_test.py").write_text(source.format(width))
    monkeypatch.syspath_prepend(str(elsewhere))
    import shadowed_net_for_spec_test  # noqa: F401  (the other folder's module, imported first)

    spec = ModelSpec.from_dict({"name": "m", "entry_point": "shadowed_net_for_spec_test:build"}, base=configs)
    assert spec.code_files() == [(configs / "shadowed_net_for_spec_test.py").resolve()]
    assert spec.build().out_channels == 2
    first = spec.identity()["code"]
    (configs / "shadowed_net_for_spec_test.py").write_text(source.format(3))
    assert spec.identity()["code"] != first and spec.build().out_channels == 3


def test_a_builder_that_fails_or_returns_torchscript_is_a_named_one_line_error(tmp_path):
    """The user's builder raising (here TorchScript refusing to compile a forward) is named
    with the call that failed, on one line; a TorchScript module, whose layers run without
    Python hooks, is refused with the fix; so is a TorchScript layer inside a Python model."""
    from workbench.errors import ExtractionError, WorkbenchError
    from workbench.models import extract
    from workbench.stimuli import digits

    source = ("import torch\n\n\nclass Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.conv = torch.nn.Conv2d(1, 2, 3)\n\n    def forward(self, x, steps=2):\n"
              "        for _ in range(steps):\n            x = x + 0\n        return self.conv(x)\n\n\n"
              "def broken(width=2):\n    return torch.jit.script(Net())\n\n\n"
              "def traced():\n    return torch.jit.trace(Net(), torch.zeros(1, 1, 8, 8))\n\n\n"
              "def inner():\n    net = Net()\n    net.conv = torch.jit.script(net.conv)\n    return net\n")
    (tmp_path / "user_scripted_nets.py").write_text(source)
    spec = ModelSpec.from_dict({"name": "s", "entry_point": "user_scripted_nets:broken", "config": {"width": 3}},
                               base=tmp_path)
    with pytest.raises(WorkbenchError) as error:
        spec.build()
    message = str(error.value)
    assert message.startswith("model 's': its builder user_scripted_nets:broken(width=3) raised RuntimeError: ")
    assert "range" in message and "\n" not in message
    with pytest.raises(WorkbenchError, match="a TorchScript module .* cannot be recorded .*fix: return the model"):
        ModelSpec.from_dict({"name": "t", "entry_point": "user_scripted_nets:traced"}, base=tmp_path).build()
    model = ModelSpec.from_dict({"name": "i", "entry_point": "user_scripted_nets:inner"}, base=tmp_path).build()
    with pytest.raises(ExtractionError, match=r"layer\(s\) \['conv'\] are TorchScript modules"):
        extract(model, digits(2, size=8), layers=["conv"], progress=False)


def test_a_builder_called_with_arguments_that_do_not_fit_it_names_the_options(tmp_path):
    """A builder (function or class) called without its required arguments is told to take
    them as config options (the table key and the CLI flag); one given an option it does not
    take lists those it does. A TypeError raised inside the builder gets no such fix: its
    own options were not the problem."""
    from workbench.errors import WorkbenchError

    (tmp_path / "user_builders.py").write_text(
        "import torch\n\n\nclass Net(torch.nn.Module):\n    def __init__(self, channels, classes=10):\n"
        "        super().__init__()\n        self.conv = torch.nn.Conv2d(3, channels, 3)\n\n\n"
        "def build(num_classes, width=2):\n    return Net(width)\n\n\n"
        "def inner():\n    return Net()\n")

    def refusal(entry_point, config=None):
        spec = ModelSpec.from_dict({"name": "u", "entry_point": entry_point, "config": config or {}}, base=tmp_path)
        with pytest.raises(WorkbenchError) as error:
            spec.build()
        return str(error.value)

    assert refusal("user_builders:build").endswith(
        "missing 1 required positional argument: 'num_classes' (fix: give it as a config option: config = "
        "{num_classes = ...} in the model's table, --model-option num_classes=VALUE)")
    assert refusal("user_builders:Net").endswith(
        "(fix: give it as a config option: config = {channels = ...} in the model's table, --model-option "
        "channels=VALUE)")
    assert refusal("user_builders:build", {"num_classes": 3, "widht": 4}).endswith(
        "got an unexpected keyword argument 'widht' (fix: its options are num_classes, width; check the config / "
        "--model-option names)")
    inner = refusal("user_builders:inner")
    assert "missing 1 required positional argument: 'channels'" in inner and "fix" not in inner


def test_candidate_layers_that_never_respond_per_step_are_left_out_declared_ones_are_not(tmp_path):
    """A model naming no layers is recorded at its candidates; those that give no response per
    step (an auxiliary head that runs only in training; a frames model's classifier of the
    last step, with no time axis) are left out instead of failing the task. Layers the user
    declares are kept as given (extraction names what is wrong with them)."""
    from workbench.errors import ExtractionError
    from workbench.models import extract
    from workbench.stimuli import digits

    source = ("import torch\nfrom torch import nn\n\n\nclass Aux(nn.Module):\n    def __init__(self):\n"
              "        super().__init__()\n        self.conv = nn.Conv2d(1, 2, 3)\n        self.aux = nn.Linear(2, 3)\n"
              "        self.fc = nn.Linear(2, 3)\n\n    def forward(self, x):\n        h = self.conv(x).mean((2, 3))\n"
              "        return (self.fc(h), self.aux(h)) if self.training else self.fc(h)\n\n\n"
              "class Last(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.conv = nn.Conv2d(1, 2, 3, padding=1)\n        self.gru = nn.GRU(2, 4, batch_first=True)\n"
              "        self.fc = nn.Linear(4, 3)\n\n    def forward(self, frames):\n        b, t = frames.shape[:2]\n"
              "        h = self.conv(frames.flatten(0, 1)).mean((2, 3)).view(b, t, -1)\n"
              "        return self.fc(self.gru(h)[0][:, -1])\n\n\n"
              "def aux():\n    torch.manual_seed(0)\n    return Aux()\n\n\n"
              "def last():\n    torch.manual_seed(0)\n    return Last()\n")
    (tmp_path / "user_heads.py").write_text(source)
    entry = {"input_size": 16, "channels": "grey"}
    spec = ModelSpec.from_dict({"name": "a", "entry_point": "user_heads:aux", **entry}, base=tmp_path)
    model = spec.build()
    assert spec.layers_of(model) == ["conv", "fc"]
    spec = ModelSpec.from_dict({"name": "l", "entry_point": "user_heads:last", **entry}, base=tmp_path)
    model = spec.build()
    assert spec.layers_of(model) == ["conv", "gru"]
    extract(model, digits(3, size=16), layers=spec.layers_of(model), progress=False)  # frames, sequence layers
    declared = ModelSpec.from_dict({"name": "d", "entry_point": "user_heads:last", "layers": ["conv", "fc"], **entry},
                                   base=tmp_path)
    assert declared.layers_of(model) == ["conv", "fc"]
    with pytest.raises(ExtractionError, match="'fc' ran once for the whole sequence, but its output"):
        extract(model, digits(3, size=16), layers=declared.layers_of(model), progress=False)


def test_a_model_returned_inside_data_parallel_is_recorded_by_its_own_layer_names(tmp_path):
    """Training code often hands back nn.DataParallel(net): its layers were 'module.conv' and
    its blocks fell below the candidates' depth; the network inside is what is recorded, and
    a checkpoint saved from the wrapper ('module.' names) still loads. A lazy layer
    (nn.LazyLinear) is made at build, under the seed, so the checkpoint loads into it."""
    import torch

    (tmp_path / "wrapped_nets.py").write_text(
        "import torch\nfrom torch import nn\n\n\ndef build():\n    torch.manual_seed(0)\n"
        "    net = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten(), nn.LazyLinear(3))\n"
        "    return nn.DataParallel(nn.DataParallel(net))\n")
    spec = ModelSpec.from_dict({"name": "w", "entry_point": "wrapped_nets:build", "input_size": 8,
                                "channels": "grey"}, base=tmp_path)
    model = spec.build()
    assert not isinstance(model, torch.nn.DataParallel)
    assert spec.layers_of(model)[:2] == ["0", "0.0"]
    torch.save(torch.nn.DataParallel(model).state_dict(), tmp_path / "w.pt")  # 'module.0.0.weight', ...
    reloaded = ModelSpec.from_dict({"name": "w", "entry_point": "wrapped_nets:build", "weights": str(tmp_path / "w.pt"),
                                    "input_size": 8, "channels": "grey"}, base=tmp_path).build()
    assert torch.equal(reloaded[0][0].weight, model[0][0].weight)
    # its lazy layer got its weights at build, under the spec's seed: the same in every build,
    # whatever ran before (at the first extraction they depended on the global random state)
    torch.rand(5)
    assert torch.equal(spec.build()[2].weight, model[2].weight)
    (tmp_path / "compiled_nets.py").write_text(  # torch.compile's wrapper (compiled only when called)
        "import torch\n\n\ndef build():\n    return torch.compile(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)))\n")
    compiled = ModelSpec.from_dict({"name": "c", "entry_point": "compiled_nets:build"}, base=tmp_path).build()
    assert type(compiled) is torch.nn.Sequential
    from workbench.keys import ContentKey

    ContentKey().module_state("w", torch.nn.LazyLinear(3))  # an unbuilt lazy module hashes too
