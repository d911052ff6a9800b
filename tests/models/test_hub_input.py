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


def test_statistics_of_a_models_own_are_rendered_as_they_are_and_a_declaration_wins(torchvision):
    """Statistics no named normalisation has (MViT's 0.45 / 0.225) are rendered as the
    model's own MEAN/SD; the spec's declaration wins over the weights'."""
    shown = preprocessing("torchvision:mvit_v1_b", object())
    assert shown.normalization == "0.45,0.45,0.45/0.225,0.225,0.225"
    images = np.random.default_rng(1).uniform(size=(1, 3, 2, 2))
    np.testing.assert_allclose(shown.normalize(images), (images - 0.45) / 0.225, rtol=1e-6)
    assert preprocessing("torchvision:r3d_18", object(), "imagenet").normalization == "imagenet"


def test_a_declared_mean_and_sd_normalise_as_given_in_one_canonical_form():
    """``normalization = "MEAN/SD"`` (CIFAR-10's, say): pixels minus the mean over the sd per
    channel (one value for all, or grey images' means); equal statistics written two ways are
    one declaration (one identifier); malformed ones are named errors."""
    from workbench.errors import ConfigError
    from workbench.models.spec import ModelSpec

    cifar = Preprocessing(size=4, channels="rgb", normalization="0.4914,0.4822,0.4465/0.2470,0.2435,0.2616")
    images = np.random.default_rng(0).uniform(size=(2, 3, 4, 4))
    mean, sd = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    np.testing.assert_allclose(cifar.normalize(images), (images - mean[:, None, None]) / sd[:, None, None], rtol=1e-6)
    np.testing.assert_allclose(cifar.unit_range(cifar.normalize(images)), images, atol=1e-6)
    assert cifar.normalization == "0.4914,0.4822,0.4465/0.247,0.2435,0.2616"  # canonical
    assert cifar.token() == Preprocessing(size=4, channels="rgb", normalization="0.49140,0.4822,0.4465/0.2470,"
                                                                               "0.2435,0.26160").token()
    assert cifar.describe() == "4 px RGB, mean/sd 0.4914,0.4822,0.4465/0.247,0.2435,0.2616"
    one = Preprocessing(size=4, channels="rgb", normalization="0.5/0.25")
    np.testing.assert_allclose(one.normalize(images), (images - 0.5) / 0.25, rtol=1e-6)
    grey = Preprocessing(size=4, channels="grey", normalization="0.4914,0.4822,0.4465/0.2470,0.2435,0.2616")
    np.testing.assert_allclose(grey.normalize(images[:, :1]), (images[:, :1] - mean.mean()) / sd.mean(), rtol=1e-6)
    base = {"name": "c", "entry_point": "my_nets:build"}
    spec = ModelSpec.from_dict({**base, "normalization": "0.50,0.5,0.5/0.25,0.25,0.250"})
    assert spec.normalization == "0.5,0.5,0.5/0.25,0.25,0.25"
    for bad, words in (("0.5/0", "sds positive"), ("0.5,0.5/0.2,0.2", "2 mean"), ("a/b", "must be numbers"),
                       ("0.5/0.2/0.1", "one '/'"), ("nan/0.2", "finite"), ("cifar", "or MEAN/SD per channel")):
        with pytest.raises(ConfigError, match=words):
            ModelSpec.from_dict({**base, "normalization": bad})
        with pytest.raises(WorkbenchError, match=words):
            Preprocessing(normalization=bad)


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
