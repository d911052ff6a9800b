"""Lindsay et al.: a feedforward core plus four kinds of recurrence added to it, frozen.

The core (2 conv layers + fc + output) is trained on clean images; a recurrence is then
added and only its own weights are trained (task-trained feedback and lateral) or fitted
without the task (predictive feedback's decoders learn to reconstruct) or fixed (surround
suppression). With ``recurrence=None`` every step repeats the feedforward pass.
"""

import torch
from torch import nn

from .base import Taps, ZooModel, seeded

RECURRENCES = (None, "feedback", "lateral", "predictive", "surround")


def difference_of_gaussians(size=7, sigma_center=1.0, sigma_surround=2.5):
    """A ``(size, size)`` centre-minus-surround kernel; each Gaussian sums to one, so the
    kernel sums to zero (a uniform input is neither excited nor suppressed)."""
    axis = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    radius2 = axis[:, None] ** 2 + axis[None, :] ** 2

    def gaussian(sigma):
        g = torch.exp(-radius2 / (2 * sigma ** 2))
        return g / g.sum()

    return (gaussian(sigma_center) - gaussian(sigma_surround)).float()


class LindsayNet(ZooModel):
    """Core and recurrences, per step ``t`` on frame ``x_t`` (layer 1 = ``l1``):

    .. math::
        d_t &= W_1 * x_t + b_1 \\\\
        \\text{none:}\\; l^1_t &= \\mathrm{ReLU}(d_t) \\\\
        \\text{lateral:}\\; l^1_t &= \\mathrm{ReLU}(d_t + L * l^1_{t-1}) \\\\
        \\text{feedback:}\\; l^1_t &= \\mathrm{ReLU}(d_t + F * \\mathrm{up}(l^2_{t-1})) \\\\
        \\text{surround:}\\; l^1_t &= \\mathrm{ReLU}(d_t + s\\, (G_c - G_s) \\circledast l^1_{t-1}) \\\\
        \\text{predictive:}\\; l^1_t &= \\mathrm{ReLU}\\big(\\beta\\,\\mathrm{ReLU}(d_t) + \\lambda\\, D_1(l^2_{t-1})
            + (1-\\beta-\\lambda)\\, l^1_{t-1} - \\alpha \\nabla_{l^1} \\lVert x_t - D_0(l^1_{t-1}) \\rVert^2\\big)

    then :math:`l^2_t = \\mathrm{ReLU}(W_2 * \\mathrm{pool}(l^1_t))`, fc and output on
    :math:`\\mathrm{pool}(l^2_t)`. :math:`\\circledast` is a fixed depthwise
    difference-of-Gaussians; the predictive term is Predify's (Choksi et al. 2021): feedback
    prediction :math:`D_1`, memory, and the gradient of layer 1's error in predicting its
    input through the decoder :math:`D_0` (closed form: :math:`-2 D_0^\\top(x_t - D_0 l^1_{t-1})`).
    At ``t = 0`` every recurrent term is absent (the feedforward core).

    Parameters
    ----------
    channels : (int, int)
        Channels of conv layers 1 and 2 (5x5, 'same'), each followed by 2x2 max-pooling.
    lateral_kernel, feedback_kernel : int
        Sizes of the lateral and feedback convolutions (odd; default the paper's 7 and 5).
    hidden : int
        Units of the fc layer.
    image_size : int
        Input height = width (fixes the fc's input size; a multiple of 4).
    recurrence : {None, "feedback", "lateral", "predictive", "surround"}
    beta, lam, alpha : float
        Predictive-feedback weights (feedforward, feedback, error-gradient step).
    surround_strength : float
    """

    name = "LindsayNet"

    def __init__(self, channels=(8, 16), hidden=64, image_size=32, in_channels=1, n_classes=10,
                 recurrence=None, beta=0.6, lam=0.3, alpha=0.01, surround_strength=1.0, lateral_kernel=7,
                 feedback_kernel=5, seed=None):
        if recurrence not in RECURRENCES:
            raise ValueError(f"recurrence must be one of {RECURRENCES}, got {recurrence!r}")
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        if lateral_kernel % 2 == 0 or feedback_kernel % 2 == 0:
            raise ValueError(f"kernel sizes must be odd ('same' padding), got {lateral_kernel}, {feedback_kernel}")
        super().__init__(channels=list(channels), hidden=hidden, image_size=image_size,
                         in_channels=in_channels, n_classes=n_classes, recurrence=recurrence,
                         beta=beta, lam=lam, alpha=alpha, surround_strength=surround_strength,
                         lateral_kernel=lateral_kernel, feedback_kernel=feedback_kernel, seed=seed)
        c1, c2 = channels
        with seeded(seed):
            self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
            self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
            self.fc = nn.Linear(c2 * (image_size // 4) ** 2, hidden)
            self.output = nn.Linear(hidden, n_classes)
            # the paper's kernel sizes by default: 7x7 lateral, 5x5 feedback
            if recurrence == "lateral":
                self.lateral = nn.Conv2d(c1, c1, lateral_kernel, padding=lateral_kernel // 2, bias=False)
                nn.init.zeros_(self.lateral.weight)  # added to a trained core: start as the core
            elif recurrence == "feedback":
                self.feedback = nn.Conv2d(c2, c1, feedback_kernel, padding=feedback_kernel // 2, bias=False)
                nn.init.zeros_(self.feedback.weight)
            elif recurrence == "predictive":
                self.decode_input = nn.Conv2d(c1, in_channels, 5, padding=2)  # D_0: l1 -> x
                self.decode_layer1 = nn.Conv2d(c2, c1, 3, padding=1)  # D_1: up(l2) -> l1
        if recurrence == "surround":
            kernel = difference_of_gaussians().expand(c1, 1, 7, 7).contiguous()
            self.register_buffer("surround_kernel", kernel)
        self.out = Taps(["layer1", "layer2", "fc"])

    default_layers = property(lambda self: ["out.layer1", "out.layer2", "out.fc"])

    def core_parameters(self):
        """Parameters of the feedforward core (frozen while a recurrence is trained)."""
        return [p for module in (self.conv1, self.conv2, self.fc, self.output) for p in module.parameters()]

    def recurrent_parameters(self):
        core = {id(p) for p in self.core_parameters()}
        return [p for p in self.parameters() if id(p) not in core]

    def _layer1(self, x, previous1, previous2):
        drive = self.conv1(x)
        kind = self.config["recurrence"]
        if previous1 is None or kind is None:
            return torch.relu(drive)
        if kind == "lateral":
            return torch.relu(drive + self.lateral(previous1))
        if kind == "feedback":
            return torch.relu(drive + self.feedback(self._up(previous2, drive)))
        if kind == "surround":
            surround = nn.functional.conv2d(previous1, self.surround_kernel, padding=3,
                                            groups=previous1.shape[1])
            return torch.relu(drive + self.config["surround_strength"] * surround)
        beta, lam, alpha = (self.config[k] for k in ("beta", "lam", "alpha"))
        return torch.relu(beta * torch.relu(drive)
                          + lam * self.decode_layer1(self._up(previous2, drive))
                          + (1 - beta - lam) * previous1
                          - alpha * self.prediction_error_gradient(x, previous1))

    @staticmethod
    def _up(high, like):
        return nn.functional.interpolate(high, size=like.shape[-2:], mode="nearest")

    def prediction_error_gradient(self, x, layer1):
        """:math:`\\nabla_{l^1} \\lVert x - D_0(l^1) \\rVert^2 = -2 D_0^\\top (x - D_0(l^1))`
        (the adjoint of a stride-1 convolution is the transposed convolution)."""
        residual = x - self.decode_input(layer1)
        return -2.0 * nn.functional.conv_transpose2d(residual, self.decode_input.weight, padding=2)

    def run(self, frames, history):
        layer1 = layer2 = None
        logits = []
        for t in range(frames.shape[1]):
            layer1 = self.out["layer1"](self._layer1(frames[:, t], layer1, layer2))
            layer2 = self.out["layer2"](torch.relu(self.conv2(nn.functional.max_pool2d(layer1, 2))))
            fc = self.out["fc"](torch.relu(self.fc(nn.functional.max_pool2d(layer2, 2).flatten(1))))
            logits.append(self.output(fc))
            for name, value in (("out.layer1", layer1), ("out.layer2", layer2), ("out.fc", fc)):
                history.add(name, value)
        return logits


def decoder_loss(model, images):
    """Predictive feedback's unsupervised objective on feedforward activity: D_0 reconstructs
    the image from layer 1, D_1 reconstructs layer 1 from layer 2 (mean squared errors)."""
    with torch.no_grad():  # step 0 of the network is the feedforward core
        _, states = model(images[:, None], return_states=True)
    layer1, layer2 = states["out.layer1"][:, 0], states["out.layer2"][:, 0]
    recon_input = nn.functional.mse_loss(model.decode_input(layer1), images)
    recon_layer1 = nn.functional.mse_loss(model.decode_layer1(model._up(layer2, layer1)), layer1)
    return recon_input + recon_layer1

