"""CORnet-Z, CORnet-RT and CORnet-S (Kubilius et al. 2019, "Brain-like object recognition
with high-performing shallow recurrent ANNs", NeurIPS).

Four areas V1 -> V2 -> V4 -> IT and a decoder (global average pool, linear readout to 1,000
classes). Module and parameter names follow the public release, so its state dicts load
(``weights = "cornet_s.pth"``; a ``module.`` prefix from ``DataParallel`` is removed by
:func:`workbench.models.weights.load_weights`). Every area has an ``output`` identity
module: the layers to record are ``V1.output`` ... ``IT.output``.

- **CORnet-Z** (feedforward): each area is conv -> ReLU -> max-pool.
- **CORnet-RT** (recurrent over whole-network steps, ``times = 5``): at every step each area
  adds its previous state to its input, ``state = ReLU(GN(conv1(ReLU(GN(conv_input(input)))
  + state)))``, and the input of an area at step t is the lower area's output at step t-1
  (the paper's "one step = one area" delay: IT first sees the image at step 3; before, an
  area receives zeros). Called with frames ``(B, T, C, H, W)`` it takes frame t at step t,
  so it sees a stimulus offset; with a static ``(B, C, H, W)`` image it runs ``times`` steps.
- **CORnet-S** (recurrent within areas): V1 is two convolutions; V2, V4 and IT repeat a
  bottleneck residual block 2, 4 and 2 times (the paper's times per area) with a separate
  batch norm per repetition; the first repetition downsamples. It takes one static image
  (calling convention ``static_recurrent``, "one step = one area" unrolling).

All three take 224 px RGB images normalised with the ImageNet mean and sd.
"""

from collections import OrderedDict

import torch
from torch import nn

from ...stimuli import Preprocessing
from .base import ZooModel, seeded

IMAGENET_224 = Preprocessing(size=224, channels="rgb", normalization="imagenet")
AREAS = ("V1", "V2", "V4", "IT")


def _decoder(n_classes):
    return nn.Sequential(OrderedDict(avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                              linear=nn.Linear(512, n_classes), output=nn.Identity()))


class _CORnet(ZooModel):
    """What the three share: areas, decoder, 224 px RGB ImageNet input."""

    preprocessing = IMAGENET_224
    default_layers = [f"{area}.output" for area in AREAS]

    def _finish(self, n_classes, channels_last=False):
        self.decoder = _decoder(n_classes)
        if channels_last:
            # oneDNN's and cuDNN's convolutions run faster on NHWC tensors (CORnet-S at 224 px
            # on 2 CPU cores, side by side: 9-26 % less time per image); the values are the same
            # to float32 rounding, and the states a hook records keep their logical NCHW shape
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _nhwc(x):
        return x.contiguous(memory_format=torch.channels_last)


class CORblockZ(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = nn.Identity()

    def forward(self, x):
        return self.output(self.pool(self.nonlin(self.conv(x))))


class CORnetZ(_CORnet):
    """CORnet-Z: the feedforward member (calling convention ``feedforward``)."""

    name = "CORnetZ"
    convention = "feedforward"

    def __init__(self, n_classes=1000, seed=None):
        super().__init__(n_classes=n_classes, seed=seed)
        with seeded(seed):
            self.V1 = CORblockZ(3, 64, kernel_size=7, stride=2)
            self.V2 = CORblockZ(64, 128)
            self.V4 = CORblockZ(128, 256)
            self.IT = CORblockZ(256, 512)
            self._finish(n_classes, channels_last=True)

    def forward(self, x):
        return self.decoder(self.IT(self.V4(self.V2(self.V1(self._nhwc(x))))))


class CORblockRT(nn.Module):
    """One CORnet-RT area; ``forward(inp, state)`` returns ``(output, state)``."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        self.out_channels = out_channels
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, out_channels)
        self.nonlin_input = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, out_channels)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.output = nn.Identity()

    def out_size(self, size):
        conv = self.conv_input
        return (size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1

    def forward(self, inp, state, shape):
        if inp is None:  # the lower area has not answered yet: zeros of this area's shape
            x = torch.zeros(shape, device=self.conv1.weight.device, dtype=self.conv1.weight.dtype)
        else:
            x = self.nonlin_input(self.norm_input(self.conv_input(inp)))
        x = x + state if state is not None else x
        state = self.output(self.nonlin1(self.norm1(self.conv1(x))))
        return state, state


class CORnetRT(_CORnet):
    """CORnet-RT: recurrent over whole-network steps (``times`` for a static image)."""

    name = "CORnetRT"
    convention = "frames"

    def __init__(self, times=5, n_classes=1000, seed=None):
        super().__init__(times=times, n_classes=n_classes, seed=seed)
        with seeded(seed):
            self.V1 = CORblockRT(3, 64, kernel_size=7, stride=4)
            self.V2 = CORblockRT(64, 128, stride=2)
            self.V4 = CORblockRT(128, 256, stride=2)
            self.IT = CORblockRT(256, 512, stride=2)
            self._finish(n_classes)

    def forward(self, x):
        """``x`` ``(B, C, H, W)`` (``times`` steps of the image) or frames ``(B, T, C, H, W)``
        (frame t at step t); returns the decoder's logits after the last step."""
        frames = x.unsqueeze(1).expand(-1, self.config["times"], -1, -1, -1) if x.dim() == 4 else x
        batch, size = frames.shape[0], frames.shape[-1]
        shapes = {}
        for area in AREAS:
            size = getattr(self, area).out_size(size)
            shapes[area] = (batch, getattr(self, area).out_channels, size, size)
        outputs, states = {}, {area: None for area in AREAS}
        for t in range(frames.shape[1]):
            new = {}
            for i, area in enumerate(AREAS):
                inp = frames[:, t] if i == 0 else outputs.get(AREAS[i - 1])
                new[area], states[area] = getattr(self, area)(inp, states[area], shapes[area])
            outputs = new
        return self.decoder(outputs["IT"])


class CORblockS(nn.Module):
    """One CORnet-S area: a bottleneck residual block repeated ``times`` times."""

    scale = 4  # bottleneck expansion

    def __init__(self, in_channels, out_channels, times=1):
        super().__init__()
        self.times = times
        wide = out_channels * self.scale
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(wide, wide, kernel_size=3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = nn.Identity()
        for t in range(times):  # one set of norms per repetition, as in the release
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp):
        x = self.conv_input(inp)
        for t in range(self.times):
            # the first repetition downsamples (stride 2 in conv2 and the skip path)
            skip = self.norm_skip(self.skip(x)) if t == 0 else x
            stride = 2 if t == 0 else 1
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = nn.functional.conv2d(x, self.conv2.weight, stride=stride, padding=1)
            x = self.nonlin2(getattr(self, f"norm2_{t}")(x))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.output(self.nonlin3(x + skip))
        return x


class CORnetS(_CORnet):
    """CORnet-S: areas repeat their block (V2 2, V4 4, IT 2 times; the paper's times)."""

    name = "CORnetS"
    convention = "static_recurrent"
    unrolling = "layer_per_step"

    def __init__(self, times=(2, 4, 2), n_classes=1000, seed=None):
        super().__init__(times=list(times), n_classes=n_classes, seed=seed)
        with seeded(seed):
            self.V1 = nn.Sequential(OrderedDict(
                conv1=nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False), norm1=nn.BatchNorm2d(64),
                nonlin1=nn.ReLU(inplace=True), pool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                conv2=nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False), norm2=nn.BatchNorm2d(64),
                nonlin2=nn.ReLU(inplace=True), output=nn.Identity()))
            self.V2 = CORblockS(64, 128, times=times[0])
            self.V4 = CORblockS(128, 256, times=times[1])
            self.IT = CORblockS(256, 512, times=times[2])
            self._finish(n_classes, channels_last=True)

    def forward(self, x):
        return self.decoder(self.IT(self.V4(self.V2(self.V1(self._nhwc(x))))))
