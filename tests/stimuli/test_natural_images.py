import numpy as np
import pytest

from workbench import WorkbenchError
from workbench.stimuli import natural_images


def test_natural_images_are_standardised_square_and_named():
    stimuli = natural_images(size=32)
    assert stimuli.images.shape == (12, 1, 32, 32) and stimuli.images.dtype == np.float32
    assert abs(stimuli.images.mean()) < 1e-5 and abs(stimuli.images.std() - 1) < 1e-5
    assert set(stimuli.metadata["image_set"]) == {"sklearn", "skimage"}
    assert "skimage_camera" in stimuli.stimulus_ids and "sklearn_china" in stimuli.stimulus_ids


def test_greyscale_is_the_luminance_of_the_colour_version():
    from sklearn.datasets import load_sample_image
    from skimage.transform import resize

    grey = natural_images(size=16, sources=("sklearn",))
    colour = natural_images(size=16, greyscale=False, sources=("sklearn",))
    assert colour.images.shape == (2, 3, 16, 16)
    # independent computation for one image: crop, luminance weights, resize, then the set's z-score
    china = load_sample_image("china.jpg") / 255.0
    side = min(china.shape[:2])
    top, left = (china.shape[0] - side) // 2, (china.shape[1] - side) // 2
    luminance = china[top:top + side, left:left + side] @ np.array([0.2125, 0.7154, 0.0721])
    small = resize(luminance, (16, 16), anti_aliasing=True)
    # standardisation is affine, so correlations are unaffected
    assert np.corrcoef(small.ravel(), grey.images[0, 0].ravel())[0, 1] > 0.999


def test_unknown_source_is_refused():
    with pytest.raises(WorkbenchError, match="sources must be among"):
        natural_images(sources=("imagenet",))
