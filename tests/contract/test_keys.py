"""The one content-key helper: order-free JSON, layout-free arrays, file contents, code."""

import importlib
import sys

import numpy as np

from workbench.keys import ContentKey, content_key, file_sha256


def test_json_parts_ignore_key_order_but_not_values():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert content_key({"a": (1, 2)}) == content_key({"a": [1, 2]})


def test_arrays_are_hashed_by_content_dtype_and_shape():
    a = np.arange(12.0).reshape(3, 4)
    assert ContentKey().array("x", a).hexdigest() == ContentKey().array("x", np.asfortranarray(a)).hexdigest()
    assert ContentKey().array("x", a).hexdigest() != ContentKey().array("x", a.reshape(4, 3)).hexdigest()
    assert ContentKey().array("x", a).hexdigest() != ContentKey().array("x", a.astype(np.float32)).hexdigest()
    b = a.copy()
    b[1, 1] += 1e-12
    assert ContentKey().array("x", a).hexdigest() != ContentKey().array("x", b).hexdigest()


def test_labels_keep_parts_apart():
    assert ContentKey().bytes("a", b"xy").bytes("b", b"z").hexdigest() != \
        ContentKey().bytes("a", b"x").bytes("b", b"yz").hexdigest()


def test_files_are_hashed_by_content_not_name(tmp_path):
    (tmp_path / "one").write_bytes(b"same")
    (tmp_path / "two").write_bytes(b"same")
    assert file_sha256(tmp_path / "one") == file_sha256(tmp_path / "two")
    assert ContentKey().file("w", tmp_path / "one").hexdigest() == ContentKey().file("w", tmp_path / "two").hexdigest()


def test_editing_a_model_forward_changes_its_source_key(tmp_path, monkeypatch):
    source = ("import torch\n\nclass Net(torch.nn.Module):\n    def forward(self, x):\n        return {}\n")
    (tmp_path / "edited_net.py").write_text(source.format("x"))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("edited_net")
    before = ContentKey().source("code", module.Net()).hexdigest()
    assert before == ContentKey().source("code", module.Net()).hexdigest()
    (tmp_path / "edited_net.py").write_text(source.format("x * 2"))
    after = ContentKey().source("code", module.Net()).hexdigest()
    assert before != after
    sys.modules.pop("edited_net", None)


def test_module_state_is_hashed_by_exact_bytes_and_dtype():
    """Weights were read as float32 for the key: a float64 model's weights that differ below
    float32's precision, or the same values in another dtype, gave the same key (a stale hit)."""
    import copy

    import torch

    def key(module):
        return ContentKey().module_state("w", module).hexdigest()

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).double()
    nudged = copy.deepcopy(net)
    with torch.no_grad():
        nudged[0].weight[0, 0] += 1e-12  # invisible in float32
    assert key(nudged) != key(net) and key(net) == key(copy.deepcopy(net))
    keys = {key(copy.deepcopy(net).to(dtype)) for dtype in (torch.float64, torch.float32, torch.bfloat16,
                                                              torch.float16)}
    assert len(keys) == 4  # the same weights in four dtypes: four keys
    assert key(torch.nn.Linear(0, 2)) == key(torch.nn.Linear(0, 2))  # empty weights hash too
    masked = torch.nn.Linear(3, 2)
    masked.register_buffer("mask", torch.ones(2), persistent=False)  # outside the state dict
    before = key(masked)
    masked.mask[0] = 0
    assert key(masked) != before
    looped = torch.nn.Linear(3, 2)
    looped.times = 4  # a loop count read from a file by the builder: same weights, other outputs
    before = key(looped)
    looped.times = 6
    assert key(looped) != before
    looped.train(False)
    assert key(looped) == key(looped.train(True))  # the mode is set by extraction, not a setting
