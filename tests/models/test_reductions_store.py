"""Reductions on the device, streaming to zarr, autocast and protocol checks."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SklearnPCA

from workbench import ExtractionError
from workbench.models import (PCA, BLNet, PresentationProtocol, SparseRandomProjection, SpatialPool,
                              extract, open_activations, zoo)
from workbench.stimuli import digits

PROTOCOL = PresentationProtocol(image_steps=3, blank_steps=2)


@pytest.fixture(scope="module")
def stimuli():
    return digits(20, size=16, seed=1)


@pytest.fixture(scope="module")
def full(stimuli):
    return extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, batch_size=7, progress=False)


def test_spatial_pool_equals_pooling_the_full_output(stimuli, full):
    pooled = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, batch_size=7, progress=False,
                     reduction=SpatialPool(2))
    layer0 = full.sel(neuroid=full.layer == "layers.0").values.reshape(20, 8, 16, 16, 5)
    expected = layer0.reshape(20, 8, 2, 8, 2, 8, 5).mean(axis=(3, 5)).reshape(20, 32, 5)
    got = pooled.sel(neuroid=pooled.layer == "layers.0")
    np.testing.assert_allclose(got.values, expected, rtol=1e-5, atol=1e-6)
    assert pooled.sizes["neuroid"] == 8 * 4 + 16 * 4
    assert set(np.unique(got.y.values)) == {0, 1}
    assert pooled.attrs["reduction"] == {"reduction": "SpatialPool", "size": 2}


def test_sparse_random_projection_is_seeded_and_matches_its_matrix(stimuli, full):
    reduction = SparseRandomProjection(64, seed=3)
    a = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False, reduction=reduction)
    b = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False,
                reduction=SparseRandomProjection(64, seed=3))
    c = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False,
                reduction=SparseRandomProjection(64, seed=4))
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)
    # independent computation: dense matrix times the full layer-0 output at step 1
    matrix = reduction.matrix("layers.0", 8 * 16 * 16, torch.device("cpu")).to_dense().numpy()
    raw = full.sel(neuroid=full.layer == "layers.0").values[..., 1]
    got = a.sel(neuroid=a.layer == "layers.0").values[..., 1]
    np.testing.assert_allclose(got, raw @ matrix.T, rtol=1e-4, atol=1e-4)
    assert list(a.component.values[:3]) == [0, 1, 2] and (a.channel.values == -1).all()
    # distances are preserved in expectation: the ratio is near 1 for this many components
    ratio = np.linalg.norm(got[0] - got[1]) / np.linalg.norm(raw[0] - raw[1])
    assert 0.6 < ratio < 1.4


def test_sparse_random_projection_keeps_small_layers_only_when_asked(stimuli, full):
    # layer 0 has 8 x 16 x 16 = 2,048 features (projected to 1,500); layer 1 has 16 x 8 x 8 =
    # 1,024, which 1,500 components cannot reduce: an error unless keep_small
    with pytest.raises(ExtractionError, match="would not reduce it"):
        extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False, reduction=SparseRandomProjection(1500))
    mixed = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False,
                    reduction=SparseRandomProjection(1500, keep_small=True))
    kept = mixed.sel(neuroid=mixed.layer == "layers.1")
    np.testing.assert_array_equal(kept.values, full.sel(neuroid=full.layer == "layers.1").values)
    assert mixed.sel(neuroid=mixed.layer == "layers.0").sizes["neuroid"] == 1500
    assert (kept.component.values == -1).all() and (kept.channel.values >= 0).all()


def test_pca_matches_sklearn_fitted_on_the_same_subset(stimuli, full):
    reduction = PCA(n_components=5, n_fit=12, seed=0)
    got = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, batch_size=5, progress=False,
                  reduction=reduction)
    subset = np.sort(np.random.default_rng(0).choice(20, 12, replace=False))
    raw = full.sel(neuroid=full.layer == "layers.1").values  # (20, units, steps)
    fit_rows = raw[subset].transpose(2, 0, 1).reshape(-1, raw.shape[1])  # steps x stimuli rows
    reference = SklearnPCA(5, svd_solver="full").fit(fit_rows.astype(np.float64))
    projected = reference.transform(raw.transpose(0, 2, 1).reshape(-1, raw.shape[1]))
    mine = got.sel(neuroid=got.layer == "layers.1").values.transpose(0, 2, 1).reshape(-1, 5)
    signs = np.sign((projected * mine).sum(axis=0))
    np.testing.assert_allclose(mine, projected * signs, rtol=1e-3, atol=1e-3)


def test_zarr_store_streams_the_same_values(stimuli, full, tmp_path):
    stored = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, batch_size=7, progress=False,
                     store=tmp_path / "acts.zarr")
    assert stored.chunks is not None  # lazy: values stay on disk
    np.testing.assert_array_equal(stored.values, full.values)
    for coord in ("stimulus_id", "neuroid_id", "layer", "time_bin_start"):
        np.testing.assert_array_equal(stored[coord].values, full[coord].values)
    assert stored.attrs["protocol"] == full.attrs["protocol"]
    reopened = open_activations(tmp_path / "acts.zarr")
    np.testing.assert_array_equal(reopened.values, full.values)


def test_interrupted_extraction_leaves_no_store(stimuli, tmp_path):
    class FailsOnSecondBatch(BLNet):
        calls = 0

        def forward(self, frames):
            FailsOnSecondBatch.calls += 1
            if FailsOnSecondBatch.calls == 2:
                raise KeyboardInterrupt
            return super().forward(frames)

    with pytest.raises(KeyboardInterrupt):
        extract(FailsOnSecondBatch(seed=0), stimuli, protocol=PROTOCOL, batch_size=7,
                progress=False, store=tmp_path / "acts.zarr")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExtractionError, match="not a complete activation store"):
        open_activations(tmp_path / "acts.zarr")


def test_bf16_autocast_is_close_and_fp16_on_cpu_is_refused(stimuli, full):
    low = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False, autocast="bf16",
                  device="cpu")
    assert low.dtype == np.float32
    scale = np.abs(full.values).max()
    assert np.abs(low.values - full.values).max() < 0.05 * scale
    with pytest.raises(ExtractionError, match="fp16 autocast needs an accelerator"):
        extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False, autocast="fp16", device="cpu")


def test_a_projection_under_bf16_autocast_projects_the_low_precision_layer_in_float32(stimuli):
    # the sparse product has no half-precision kernel (a bf16 forward pass failed in it): the
    # projection of a bf16 forward pass is the float32 projection of that pass's outputs
    reduction = SparseRandomProjection(64, seed=3)
    low_raw = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False, autocast="bf16", device="cpu")
    low = extract(BLNet(seed=0), stimuli, protocol=PROTOCOL, progress=False, autocast="bf16", device="cpu",
                  reduction=reduction)
    matrix = reduction.matrix("layers.0", 8 * 16 * 16, torch.device("cpu")).to_dense().numpy()
    for step in range(PROTOCOL.n_steps):
        raw = low_raw.sel(neuroid=low_raw.layer == "layers.0").values[..., step]
        got = low.sel(neuroid=low.layer == "layers.0").values[..., step]
        np.testing.assert_allclose(got, raw @ matrix.T, rtol=1e-4, atol=1e-4)


def test_layer_per_step_layer_k_first_responds_at_step_k():
    stimuli = digits(6, size=32, seed=0)
    model = zoo.build("convrnn", channels=(4, 8, 8), seed=0)
    da = extract(model, stimuli, protocol=PresentationProtocol(4, 2, unrolling="layer_per_step"),
                 progress=False)
    for k in range(3):
        layer = da.sel(neuroid=da.layer == f"out.layer{k}").values
        active = [bool(np.abs(layer[..., t]).max() > 0) for t in range(6)]
        assert active.index(True) == k, (k, active)
        assert all(active[k:])


def test_protocol_unrolling_must_match_the_model():
    with pytest.raises(ExtractionError, match="unrolls 'layer_per_step'"):
        extract(zoo.build("convrnn", channels=(4, 8, 8)), digits(4, size=32),
                protocol=PresentationProtocol(2, 1), progress=False)


def test_non_finite_activations_are_reported(stimuli):
    model = BLNet(seed=0)
    with torch.no_grad():
        model.layers[0].bottom_up.bias[0] = float("nan")
    with pytest.raises(ExtractionError, match="non-finite activations in the batch starting at stimulus"):
        extract(model, stimuli, protocol=PROTOCOL, progress=False)


def test_stimuli_of_the_wrong_shape(stimuli):
    with pytest.raises(ExtractionError, match="expected a 4-D|must be float"):
        extract(BLNet(seed=0), type(stimuli)(stimuli.images[:, :, :, :].astype(np.int16),
                                             stimuli.metadata), progress=False)
