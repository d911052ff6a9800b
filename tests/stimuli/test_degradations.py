import numpy as np
import pytest

from workbench import degradations as deg
from workbench.errors import WorkbenchError
from workbench.stimuli import digits


@pytest.fixture(scope="module")
def clean():
    return digits(12, size=16, seed=0)


def test_levels_get_harder_and_ids_name_them(clean):
    for kind in deg.LEVELS:
        assert deg.degrade(clean, kind, 0) is clean
        distances = [np.linalg.norm(deg.degrade(clean, kind, level).images - clean.images)
                     for level in range(1, 5)]
        assert all(np.diff(distances) > 0), kind  # each level further from the clean image
        out = deg.degrade(clean, kind, 2)
        assert all(sid.startswith(src + "_") for sid, src in zip(out.stimulus_ids, clean.stimulus_ids))
        assert (out.metadata["source_id"] == clean.metadata["stimulus_id"]).all()


def test_closed_forms(clean):
    noisy = deg.pixel_noise(clean, 1.5, seed=1)
    assert np.std(noisy.images - clean.images) == pytest.approx(1.5, rel=0.03)
    np.testing.assert_allclose(deg.low_contrast(clean, 0.25).images, 0.25 * clean.images)
    occluded = deg.occlude(clean, 0.3, seed=2)
    changed = (occluded.images != clean.images).mean(axis=(1, 2, 3))
    assert (changed >= 0.2).all()  # pixels covered (some already equal the mean)
    for i in range(len(clean)):
        mask = occluded.images[i] != clean.images[i]
        np.testing.assert_allclose(occluded.images[i][mask], clean.images[i].mean(), rtol=1e-5)
    np.testing.assert_array_equal(deg.pixel_noise(clean, 1.0, seed=5).images,
                                  deg.pixel_noise(clean, 1.0, seed=5).images)


def test_jittered_sequences(clean):
    frames = deg.jittered_noisy_sequences(clean, n_frames=6, snr=1e6, max_jitter=3, seed=0)
    assert frames.shape == (12, 6, 1, 16, 16)
    flat = frames.reshape(12, -1)
    np.testing.assert_allclose(flat.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(1), 1, rtol=1e-4)
    # noise-free frames are shifted copies of the normalised image (up to 3 px)
    first = frames[0, 0, 0]
    assert not np.allclose(frames[0, 1:, 0], first)
    noisy = deg.jittered_noisy_sequences(clean, n_frames=200, snr=0.5, max_jitter=0, seed=0)
    # SNR 0.5 -> noise variance 4x the image's: frame-to-frame correlation ~ 1/(1 + 4) = 0.2
    a, b = noisy[:, 0].reshape(12, -1), noisy[:, 1].reshape(12, -1)
    r = np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])
    assert r == pytest.approx(0.2, abs=0.06)


def test_bad_arguments(clean):
    with pytest.raises(WorkbenchError, match="unknown degradation 'fog'"):
        deg.degrade(clean, "fog", 1)
    with pytest.raises(WorkbenchError, match="level must be 0..4"):
        deg.degrade(clean, "noise", 7)
    with pytest.raises(WorkbenchError, match="contrast factor"):
        deg.low_contrast(clean, 0)
    assert deg.grey_frames(3, (1, 8, 8)).sum() == 0


def test_calibrated_noise_std_finds_the_target_accuracy():
    # a known accuracy curve: accuracy(std) = exp(-std / 2), so 60 % lies at 2 ln(1 / 0.6)
    std = deg.calibrated_noise_std(lambda value: float(np.exp(-value / 2)), 0.6)
    assert std == pytest.approx(2 * np.log(1 / 0.6), abs=1e-3)
    with pytest.raises(WorkbenchError, match="higher upper bound"):
        deg.calibrated_noise_std(lambda value: 0.9, 0.6)
    with pytest.raises(WorkbenchError, match="target accuracy"):
        deg.calibrated_noise_std(lambda value: 0.5, 1.5)
