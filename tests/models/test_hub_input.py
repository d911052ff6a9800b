"""The input a torchvision or timm model is shown: what its weights' transforms (or timm's
config) name, checked against a stand-in library (neither is installed in the test
environment; the stand-in has torchvision's interface: ``models.get_model_weights(name)
.DEFAULT.transforms()`` with ``_crop_size``, ``_mean`` and ``_std``)."""

import sys
import types
from functools import partial

import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.models.hub import preprocessing
from workbench.stimuli import KINETICS_MEAN, KINETICS_STD, Preprocessing


class _Transforms:
    """torchvision's ImageClassification / VideoClassification presets, as far as read here."""

    def __init__(self, crop_size, mean, std):
        self._crop_size, self._mean, self._std = list(crop_size), list(mean), list(std)


def _weights(crop, mean, std):
    default = types.SimpleNamespace(transforms=partial(_Transforms, crop, mean, std))
    return types.SimpleNamespace(DEFAULT=default)


@pytest.fixture
def torchvision(monkeypatch):
    """A stand-in torchvision with the weights of four models (and one without any)."""
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    known = {"resnet18": _weights([224], *imagenet), "inception_v3": _weights([299], *imagenet),
             "r3d_18": _weights([112, 112], KINETICS_MEAN, KINETICS_STD),
             "mvit_v1_b": _weights([224, 224], (0.45,) * 3, (0.225,) * 3)}

    def get_model_weights(name):
        if name not in known:
            raise ValueError(f"no weights for {name}")
        return known[name]

    library = types.ModuleType("torchvision")
    library.models = types.SimpleNamespace(get_model_weights=get_model_weights)
    monkeypatch.setitem(sys.modules, "torchvision", library)
    return library


@pytest.mark.parametrize("name, size, normalization", [("resnet18", 224, "imagenet"), ("inception_v3", 299, "imagenet"),
                                                       ("r3d_18", 112, "kinetics"), ("custom_net", 224, "imagenet")])
def test_a_torchvision_model_is_shown_the_input_its_weights_transforms_name(torchvision, name, size, normalization):
    """The crop, mean and sd of the model's default weights' transforms: a video network
    sees 112 px frames with the Kinetics-400 mean and sd (not ImageNet's at 224 px), an
    Inception 299 px; a model without registered weights the standard 224 px ImageNet."""
    shown = preprocessing(f"torchvision:{name}", object())
    assert shown == Preprocessing(size=size, channels="rgb", normalization=normalization)


def test_unrendered_statistics_are_named_and_a_declaration_wins(torchvision):
    """Statistics no normalisation of the workbench renders are a named error with the fix;
    the spec's declaration wins over the weights'."""
    with pytest.raises(WorkbenchError, match=r"torchvision:mvit_v1_b: expects mean \(0.45, 0.45, 0.45\) / sd "
                                             r"\(0.225, 0.225, 0.225\), which the workbench does not render"):
        preprocessing("torchvision:mvit_v1_b", object())
    assert preprocessing("torchvision:r3d_18", object(), "imagenet").normalization == "imagenet"


def test_a_timm_model_is_shown_its_configs_input():
    model = types.SimpleNamespace(pretrained_cfg={"input_size": (3, 288, 288), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    assert preprocessing("timm:some_net", model) == Preprocessing(size=288, channels="rgb", normalization="inception")


def test_kinetics_normalisation_uses_the_kinetics_statistics():
    """``kinetics``: (pixel - mean) / sd per channel with Kinetics-400's numbers; grey images
    their means."""
    images = np.random.default_rng(0).uniform(size=(2, 3, 4, 4))
    shown = Preprocessing(size=4, channels="rgb", normalization="kinetics")
    expected = (images - np.asarray(KINETICS_MEAN)[:, None, None]) / np.asarray(KINETICS_STD)[:, None, None]
    np.testing.assert_allclose(shown.normalize(images), expected, rtol=1e-6)
    np.testing.assert_allclose(shown.unit_range(shown.normalize(images)), images, atol=1e-6)
    grey = Preprocessing(size=4, channels="grey", normalization="kinetics")
    np.testing.assert_allclose(grey.normalize(images[:, :1]),
                               (images[:, :1] - np.mean(KINETICS_MEAN)) / np.mean(KINETICS_STD), rtol=1e-6)
    assert shown.describe() == "4 px RGB, Kinetics-400 mean/sd"


def test_a_torchvision_video_network_is_called_with_a_clip():
    """Library models are called as image models (``feedforward``), but torchvision's video
    networks (its ``torchvision.models.video`` classes) with a clip (``video``); a
    declaration wins."""
    from workbench.models.spec import ModelSpec

    VideoResNet = type("VideoResNet", (), {"__module__": "torchvision.models.video.resnet"})
    ResNet = type("ResNet", (), {"__module__": "torchvision.models.resnet"})
    video = ModelSpec.from_dict({"name": "v", "zoo": "torchvision:r3d_18"})
    assert video.convention_of(VideoResNet()) == "video"
    assert ModelSpec.from_dict({"name": "r", "zoo": "torchvision:resnet18"}).convention_of(ResNet()) == "feedforward"
    declared = ModelSpec.from_dict({"name": "v", "zoo": "torchvision:r3d_18", "convention": "frames"})
    assert declared.convention_of(VideoResNet()) == "frames"
