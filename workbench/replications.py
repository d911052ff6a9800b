"""The five seed papers' findings, re-run on the embedded default (digits + simulators).

Each replication trains the zoo models it needs with their recipes (seed 0, channels
(8, 16, 32) except Lindsay's own defaults), scores them on held-out digits or simulated
data with the metrics as the papers define them, and returns :class:`Finding` records: the
claim, the measured effect, its p-value and whether the claim held. Two sizes, fixed
before any result was seen (:class:`Settings`): :data:`REDUCED` inside ``make test`` and
:data:`FULL` for ``workbench replicate --full``. Nothing here is tuned to make a claim pass;
a claim that does not hold at a size is reported as such (the tests mark it xfail with the
measured effect).

Replications (:data:`REPLICATIONS`):

- ``lindsay``: on noise calibrated to 60 % feedforward accuracy, predictive feedback
  de-noises layer 1 on the images it flips to correct and lowers layer 1's participation
  ratio (clean + noisy images); task-trained recurrence (feedback, lateral) does not
  de-noise layer 1 but does de-noise the logits; several networks -> inference across them;
- ``spoerer``: a trained BL's entropy reaction times (an extra binary readout, faces vs
  non-faces) correlate with (simulated) human uncertainty, more than its randomly
  initialised twin's (two-tailed paired test);
- ``hartmann``: gruCNN beats cCNN + Bayesian frame integration at low SNR; the
  integration time constant tau grows as SNR falls; false rejection as the paper counts it;
- ``crcn``: the recurrent-minus-feedforward accuracy gap grows with noise level;
- ``nayebi``: on a recording simulated by a trained recurrent "brain", the ConvRNN's
  shared-over-time fit beats a trained feedforward network after image offset, and the
  unit-wise majority layer map is monotone (V4 before IT).
"""

import dataclasses
import functools
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from .degradations import calibrated_noise_std, pixel_noise
from .errors import WorkbenchError
from .metrics import behaviour, denoising, dimensionality
from .metrics import reaction_time as rt
from .stats.bootstrap import mean_ci, percentile_ci, t_interval

SEED = 0
EPOCHS = 4
SMALL = {"channels": (8, 16, 32)}
N_IMAGES = 300
N_PERMUTATIONS = 2000
ALPHA = 0.05
#: bootstrap draws of each finding's 95 % CI (percentile; over the claim's own unit: images,
#: stimuli or sites); across network instances a Student-t interval, as the t-test there
N_BOOT = 2000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class Settings:
    """Sizes of one replication run, fixed before any result was seen.

    ``n_instances`` networks (seeds ``SEED .. SEED + n - 1``) are trained where a paper
    averages over networks; with 2 or more, inference is across instances (the network is
    the unit of replication), with 1 it is across images.
    """

    n_images: int = N_IMAGES
    epochs: int = EPOCHS
    n_permutations: int = N_PERMUTATIONS
    n_instances: int = 1
    n_stimuli: int = 200  # Nayebi's simulated recording
    #: Lindsay's lateral and feedback kernel sizes (the paper's 7 and 5 by default)
    lindsay_kernels: tuple = (7, 5)

    @property
    def seeds(self):
        return tuple(range(SEED, SEED + self.n_instances))


#: inside ``make test`` (all five in about 2 minutes once the zoo models are trained); 3x3
#: lateral and feedback kernels there: the paper's sizes double those two models' training
REDUCED = Settings(lindsay_kernels=(3, 3))
#: ``workbench replicate --full``: the 500 held-out digits, twice the training, 10,000
#: permutations, 4 networks per Lindsay claim, a 400-image recording for Nayebi
FULL = Settings(n_images=500, epochs=8, n_permutations=10000, n_instances=4, n_stimuli=400)

#: where each claim comes from (paper, not figure: the figure numbers could not be checked here)
SOURCES = {
    "lindsay": "Lindsay, Mrsic-Flogel & Sahani 2022 (bioRxiv 10.1101/2022.03.07.483196)",
    "spoerer": "Spoerer, Kietzmann, Mehrer, Charest & Kriegeskorte 2020 (PLoS Comput Biol)",
    "hartmann": "Hartmann, Roerig, Kietzmann et al. 2018 (gruCNN vs cCNN + Bayesian integration)",
    "crcn": "CRCN: convolutional recurrent classifier with feedback loops (seed paper 4)",
    "nayebi": "Nayebi, Bear, Kubilius et al. 2018 (NeurIPS, task-driven ConvRNNs)",
}


@dataclass
class Finding:
    """One claim of a seed paper and what this run measured: the effect with its 95 % CI
    (``ci_method`` says how it was resampled, or why there is none) and p-value."""

    replication: str
    claim: str
    effect: float
    p_value: float
    reproduced: bool
    details: dict = field(default_factory=dict)
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    ci_method: str = ""

    def record(self):
        """The finding as a :class:`~workbench.scores.Score` (``value`` = effect; the claim,
        its source paper, the verdict and the details as extra fields)."""
        from .scores import Score

        return Score(value=self.effect, benchmark=f"replication.{self.replication}", p_value=self.p_value,
                     ci_low=self.ci_low, ci_high=self.ci_high, simulated=True, seed=SEED,
                     extra={"claim": self.claim, "source": SOURCES.get(self.replication, ""),
                            "ci_method": self.ci_method,
                            "verdict": "reproduced" if self.reproduced else "not reproduced",
                            **{f"detail_{k}": _plain(v) for k, v in self.details.items()}})

    def __str__(self):
        verdict = "REPRODUCED" if self.reproduced else "NOT reproduced"
        ci = (f" 95% CI [{self.ci_low:.4f}, {self.ci_high:.4f}]" if np.isfinite([self.ci_low, self.ci_high]).all()
              else "")
        return f"[{self.replication}] {self.claim}: effect={self.effect:.4f}{ci} p={self.p_value:.4g} -> {verdict}"


def _plain(value):
    """A detail as JSON-friendly scalars (dicts of votes stay dicts)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def _ci(low_high, method):
    """Finding keyword arguments for a CI ``(low, high)`` and how it was computed."""
    low, high = low_high
    return {"ci_low": float(low), "ci_high": float(high), "ci_method": method}


def _spearman_ci(x, target, minus=None, seed=SEED):
    """Bootstrap CI over items of Spearman rho(x, target), or of rho(x) - rho(minus) (the
    same items resampled for both)."""
    from .stats.resampling import unit_ranks

    x, target = np.asarray(x, dtype=np.float64), np.asarray(target, dtype=np.float64)

    def rho(values, index):
        return (unit_ranks(values[index], axis=1) * unit_ranks(target[index], axis=1)).sum(1)

    def statistic(index):
        return rho(x, index) if minus is None else rho(x, index) - rho(minus, index)

    if minus is not None:
        minus = np.asarray(minus, dtype=np.float64)
    observed = float(statistic(np.arange(len(x))[None])[0])
    return percentile_ci(statistic, len(x), n_boot=N_BOOT, seed=seed, level=CI_LEVEL, observed=observed)


_MODEL_CACHE = {"directory": None, "progress": False}


def use_model_cache(directory, progress=False):
    """Keep trained models in ``directory`` (content-keyed), shared by processes and runs;
    ``progress``: show each model's training progress (``workbench replicate``). Returns the
    previous setting, which ``use_model_cache(**previous)`` restores."""
    previous = dict(_MODEL_CACHE)
    _MODEL_CACHE["directory"] = None if directory is None else str(directory)
    _MODEL_CACHE["progress"] = bool(progress)
    return previous


def model_config(name, settings=REDUCED):
    """The config a replication trains zoo model ``name`` with: channels [8, 16, 32], or for
    Lindsay's models their defaults with ``settings``' kernel sizes (one config for all of
    them, so they share one trained core). Plain JSON values (lists, not tuples), as a
    report's model spec holds them; training keys hash both alike."""
    if name.startswith("lindsay"):
        lateral, feedback = settings.lindsay_kernels
        return {"lateral_kernel": lateral, "feedback_kernel": feedback}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in SMALL.items()}


@functools.lru_cache(maxsize=None)
def _trained(name, seed, epochs, directory, progress, settings):
    from .models.training import train, train_cached

    config = model_config(name, settings)
    if directory is not None:
        return train_cached(name, directory, seed=seed, epochs=epochs, config=config, progress=progress)
    return train(name, seed=seed, epochs=epochs, config=config, progress=progress)


def trained(name, seed=SEED, epochs=EPOCHS, settings=REDUCED):
    """A zoo model trained with its recipe at the replication sizes (cached per process, and
    on disk under :func:`use_model_cache`'s directory when one is set)."""
    return _trained(name, seed, epochs, _MODEL_CACHE["directory"], _MODEL_CACHE["progress"], settings)


@functools.lru_cache(maxsize=2)
def heldout_digits(n=N_IMAGES, seed=SEED):
    """The first ``n`` of the training recipes' 500 held-out digits (32 px)."""
    from .models.training import heldout_split

    return heldout_split(seed)[1].subset(np.arange(n))


def _run(model, images, steps, batch=100):
    """Logits ``(n, steps, classes)`` and states ``{layer: (n, steps, units)}`` (numpy)."""
    logits, states = [], {}
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch])
            frames = x[:, None].expand(-1, steps, -1, -1, -1) if x.ndim == 4 else x
            out, layer_states = model.eval()(frames, return_states=True)
            logits.append(out.numpy())
            for name, value in layer_states.items():
                states.setdefault(name, []).append(value.flatten(2).numpy())
    return np.concatenate(logits), {k: np.concatenate(v) for k, v in states.items()}


def _assembly(states, step, stimuli, layers):
    values = np.concatenate([states[layer][:, step] for layer in layers], axis=1)
    layer_of = np.concatenate([[layer] * states[layer].shape[2] for layer in layers])
    meta = stimuli.metadata
    coords = {"stimulus_id": ("presentation", meta["stimulus_id"].to_numpy(str)),
              "neuroid_id": ("neuroid", [f"{layer}.{i}" for layer in layers for i in range(states[layer].shape[2])]),
              "layer": ("neuroid", layer_of)}
    if "source_id" in meta:
        coords["source_id"] = ("presentation", meta["source_id"].to_numpy(str))
    return xr.DataArray(values, dims=("presentation", "neuroid"), coords=coords)


def _softmax(logits):
    return torch.softmax(torch.from_numpy(np.asarray(logits)), dim=-1).numpy()


# ------------------------------------------------------------------ 1. Lindsay et al.


#: Lindsay et al. calibrate their noise level 3 to about 60 % accuracy of the feedforward network
NOISE_TARGET_ACCURACY = 0.6
LINDSAY_RECURRENT = ("lindsay-predictive", "lindsay-feedback", "lindsay-lateral")
MIN_FLIPPED = 8


def _correct(logits, labels):
    return logits[:, -1].argmax(-1) == labels


def _lindsay_instance(seed, settings, clean, labels, steps=4):
    """One network instance: its core, the noise calibrated on it, and per recurrent model
    the de-noising index on all and on flipped images and the clean + noisy activity."""
    core, _ = trained("lindsay-ff", seed, settings.epochs, settings)
    std = calibrated_noise_std(
        lambda value: float(_correct(_run(core, pixel_noise(clean, value, seed=SEED).images, 1)[0], labels).mean()),
        NOISE_TARGET_ACCURACY)
    noisy = pixel_noise(clean, std, seed=SEED)

    def run(model, images):
        logits, states = _run(model, images, steps)
        states["logits"] = logits  # the paper's layer 4: the readout's logits, not the fc layer
        return logits, states

    layers = list(core.default_layers)[:2] + ["logits"]
    _, clean_states = run(core, clean.images)
    ff_logits, ff_states = run(core, noisy.images)
    ff_correct = _correct(ff_logits, labels)
    clean_ff, noisy_ff = _assembly(clean_states, -1, clean, layers), _assembly(ff_states, -1, noisy, layers)
    out = {"std": std, "ff_accuracy": float(ff_correct.mean()), "layers": layers, "models": {}}
    for name in LINDSAY_RECURRENT:
        model, _ = trained(name, seed, settings.epochs, settings)
        rec_logits, rec_states = run(model, noisy.images)
        _, rec_clean_states = run(model, clean.images)
        flipped = ~ff_correct & _correct(rec_logits, labels)  # recurrence turned an error into a hit
        index = denoising.denoising_index(clean_ff, _assembly(rec_states, -1, noisy, layers), noisy_ff, by="layer")
        out["models"][name] = {
            "index": index, "flipped": flipped,
            "pr_recurrent": np.concatenate([rec_clean_states[layers[0]][:, -1], rec_states[layers[0]][:, -1]]),
            "pr_feedforward": np.concatenate([clean_states[layers[0]][:, -1], ff_states[layers[0]][:, -1]])}
    return out


def _denoising_on_flipped(instances, name, layer, settings, alternative):
    """Mean d on the images the recurrence flipped to correct: across images (1 network) or
    across networks (their per-network means, one-sample t-test)."""
    from scipy.stats import ttest_1samp

    per_network, pooled = [], []
    for instance in instances:
        entry = instance["models"][name]
        values = entry["index"].sel(group=layer).values[entry["flipped"]]
        values = values[np.isfinite(values)]
        pooled.append(values)
        if len(values):
            per_network.append(float(values.mean()))
    n_flipped = int(sum(len(v) for v in pooled))
    if len(instances) >= 2:
        if len(per_network) < 2:
            return {"value": float("nan"), "p_value": float("nan"), "n_flipped": n_flipped}
        test = ttest_1samp(per_network, 0.0, alternative=alternative)
        low, high = t_interval(per_network, level=CI_LEVEL)
        return {"value": float(np.mean(per_network)), "p_value": float(test.pvalue), "n_flipped": n_flipped,
                "sem": float(np.std(per_network, ddof=1) / np.sqrt(len(per_network))),
                "ci_low": low, "ci_high": high, "ci_method": f"t interval across {len(per_network)} networks"}
    values = pooled[0]
    if len(values) < MIN_FLIPPED:
        return {"value": float(values.mean()) if len(values) else float("nan"), "p_value": float("nan"),
                "n_flipped": n_flipped}
    index = xr.DataArray(values[:, None], dims=("pair", "group"), coords={"group": [layer]})
    record = denoising.denoising_test(index, n_permutations=settings.n_permutations, seed=SEED,
                                      alternative=alternative)[0]
    return {"value": record["value"], "p_value": record["p_value"], "n_flipped": n_flipped,
            "ci_low": record["ci_low"], "ci_high": record["ci_high"],
            "ci_method": f"bootstrap over the {n_flipped} flipped images"}


def lindsay(settings=REDUCED):
    """De-noising and participation ratio of Lindsay's recurrences, as the paper measures them.

    Noise is calibrated per network so its feedforward core is right on
    :data:`NOISE_TARGET_ACCURACY` of the held-out digits (the paper's level 3). The
    de-noising index ``d = r(A_ff clean, A_rec noisy) - r(A_ff clean, A_ff noisy)`` is
    averaged over the images the recurrence *flipped* from wrong to right (the paper's
    selection: the images where recurrence changed the outcome), per layer: layer 1 and the
    logits (the paper's layer 4). The participation ratio of layer 1 is computed on the
    responses to clean and noisy images together. With several network instances
    (``settings.n_instances``) inference is across networks (mean +- s.e.m., t-test).
    """
    clean = heldout_digits(settings.n_images)
    labels = clean.metadata["label"].to_numpy()
    instances = [_lindsay_instance(seed, settings, clean, labels) for seed in settings.seeds]
    first, last = instances[0]["layers"][0], instances[0]["layers"][-1]
    common = {"noise_std": instances[0]["std"], "ff_accuracy": instances[0]["ff_accuracy"],
              "n_networks": len(instances)}

    def all_images(name, layer):
        return float(np.nanmean([i["models"][name]["index"].sel(group=layer).values.mean() for i in instances]))

    def late_minus_early_ci(name):
        """CI of d(last layer) - d(first layer) on the flipped images: the same images
        resampled for both layers (one network), or a t interval across networks."""
        pairs = []
        for instance in instances:
            entry = instance["models"][name]
            pairs.append(np.stack([entry["index"].sel(group=layer).values[entry["flipped"]]
                                   for layer in (last, first)]))
        if len(instances) >= 2:
            differences = [np.nanmean(late) - np.nanmean(early) for late, early in pairs if late.size]
            return _ci(t_interval(differences, level=CI_LEVEL), f"t interval across {len(differences)} networks")
        late, early = pairs[0]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            interval = percentile_ci(lambda index: np.nanmean(late[index], 1) - np.nanmean(early[index], 1),
                                     len(late), n_boot=N_BOOT, seed=SEED, level=CI_LEVEL,
                                     observed=float(np.nanmean(late) - np.nanmean(early)))
        return _ci(interval, f"bootstrap over the {len(late)} flipped images (both layers)")

    def split(result):
        """A test's result as (the finding's details, its CI keyword arguments)."""
        ci = {key: result[key] for key in ("ci_low", "ci_high", "ci_method") if key in result}
        return {k: v for k, v in result.items() if k not in ("value", "p_value", *ci)}, ci

    findings = []
    predictive = _denoising_on_flipped(instances, "lindsay-predictive", first, settings, "greater")
    details, ci = split(predictive)
    findings.append(Finding(
        "lindsay", f"predictive feedback de-noises {first} on the images it flips to correct (d > 0)",
        predictive["value"], predictive["p_value"], predictive["value"] > 0 and predictive["p_value"] < ALPHA,
        {**common, **details, "d_all_images": all_images("lindsay-predictive", first)}, **ci))
    recurrent = [i["models"]["lindsay-predictive"]["pr_recurrent"] for i in instances]
    feedforward = [i["models"]["lindsay-predictive"]["pr_feedforward"] for i in instances]
    if len(instances) >= 2:
        across = dimensionality.participation_ratio_across_networks(recurrent, feedforward, alternative="less")
        pr = {"value": across["value"], "p_value": across["p_value"], "sem": across["sem"],
              "pr_recurrent": float(np.mean(across["pr_recurrent"])),
              "pr_feedforward": float(np.mean(across["pr_feedforward"])),
              **_ci(t_interval(across["differences"], level=CI_LEVEL),
                    f"t interval across {len(across['differences'])} networks")}
    else:
        test = dimensionality.participation_ratio_difference_test(
            recurrent[0], feedforward[0], n_permutations=settings.n_permutations, seed=SEED, alternative="less",
            level=CI_LEVEL)
        pr = {"value": test["value"], "p_value": test["p_value"], "pr_recurrent": test["pr_a"],
              "pr_feedforward": test["pr_b"],
              **_ci((test["ci_low"], test["ci_high"]), f"jackknife over the {len(recurrent[0])} images")}
    details, ci = split(pr)
    findings.append(Finding("lindsay", f"predictive feedback lowers the participation ratio of {first} "
                                       "(clean + noisy images)",
                            pr["value"], pr["p_value"], pr["value"] < 0 and pr["p_value"] < ALPHA,
                            {**common, **details}, **ci))
    for name in ("lindsay-feedback", "lindsay-lateral"):
        early = _denoising_on_flipped(instances, name, first, settings, "greater")
        late = _denoising_on_flipped(instances, name, last, settings, "greater")
        holds = (not (early["value"] > 0 and early["p_value"] < ALPHA)
                 and late["value"] > 0 and late["p_value"] < ALPHA)
        findings.append(Finding("lindsay", f"{name.split('-')[1]} recurrence de-noises {last} but not {first} "
                                           "(images it flips to correct)",
                                late["value"] - early["value"], late["p_value"], holds,
                                {**common, f"d_{first}": early["value"], f"p_{first}": early["p_value"],
                                 f"d_{last}": late["value"], f"p_{last}": late["p_value"],
                                 "n_flipped": late["n_flipped"],
                                 f"d_{last}_all_images": all_images(name, last)},
                                **late_minus_early_ci(name)))
    return findings


# ------------------------------------------------------------------ 2. Spoerer et al.


def spoerer_stimuli(n=N_IMAGES, seed=SEED):
    """Held-out digits, each with its own pixel-noise std ~ U(0, 2), and the planted human
    uncertainty ``D = clip(0.2 std + 0.05 z, 0, 0.5)`` (z ~ N(0, 1): image difficulty the
    noise does not explain)."""
    from .degradations import renamed

    clean = heldout_digits(n, seed)
    rng = np.random.default_rng(seed + 101)
    stds = rng.uniform(0.0, 2.0, n)
    images = clean.images + stds[:, None, None, None] * rng.standard_normal(clean.images.shape)
    noisy = renamed(clean, images, "varnoise", {"degradation": "noise", "level_value": stds})
    planted = np.clip(0.2 * stds + 0.05 * rng.standard_normal(n), 0.0, 0.5)
    return noisy, pd.Series(planted, index=noisy.stimulus_ids, name="uncertainty")


def face_stimuli(seed=SEED):
    """scikit-image's ``lfw_subset`` (100 faces, 100 non-face patches, 25 px greyscale) at the
    zoo's 32 px, standardised over the set: a seeded half (50 + 50, clean) trains the binary
    readout; the other half is shown with pixel noise of std ``u * std_max`` (``u ~ U(0,
    1)`` per image, ``std_max`` calibrated by the caller) and planted human uncertainty
    ``D = clip(0.4 u + 0.05 z, 0, 0.5)`` (z ~ N(0, 1): difficulty the noise does not explain).

    Returns ``(train_images, train_labels, test_images, noise, u, test_metadata, planted)``
    with ``noise`` a fixed unit-std field per test image and labels 1 for a face.
    """
    from skimage.data import lfw_subset

    raw = torch.from_numpy(lfw_subset().astype(np.float32))[:, None]
    images = torch.nn.functional.interpolate(raw, size=(32, 32), mode="bilinear", align_corners=False).numpy()
    images = (images - images.mean()) / images.std()
    labels = np.r_[np.ones(100, int), np.zeros(100, int)]
    rng = np.random.default_rng(seed + 202)
    train = np.zeros(200, bool)
    for value in (0, 1):  # half of each class
        train[rng.choice(np.flatnonzero(labels == value), 50, replace=False)] = True
    test = np.flatnonzero(~train)
    u = rng.uniform(0.0, 1.0, len(test))
    noise = rng.standard_normal(images[test].shape).astype(np.float32)
    ids = np.array([f"lfw_{i:03d}" for i in test])
    metadata = pd.DataFrame({"stimulus_id": ids, "category_name": np.where(labels[test] == 1, "face", "non-face"),
                             "label": labels[test], "noise_fraction": u})
    planted = np.clip(0.4 * u + 0.05 * rng.standard_normal(len(test)), 0.0, 0.5)
    return (images[train], labels[train], images[test], noise, u, metadata,
            pd.Series(planted, index=ids, name="uncertainty"))


class BinaryReadout:
    """Spoerer et al.'s extra binary readout (paraphrased: a separate two-way readout on the
    trained network, its evidence accumulated over time steps): a logistic regression on the
    last layer's channel means (the network's own readout pools the same way), fitted on
    the given training images at every step with the network frozen."""

    def __init__(self, network, steps):
        self.network, self.steps = network, steps

    def _pooled(self, images):
        _, states = _run(self.network, images, self.steps)
        last = states[sorted(states)[-1]]  # (n, steps, C * H * W), channel-major
        return last.reshape(len(images), self.steps, self.network.config["channels"][-1], -1).mean(axis=3)

    def fit(self, images, labels):
        from sklearn.linear_model import LogisticRegression

        pooled = self._pooled(images)
        self.mean_, self.std_ = pooled.mean(axis=(0, 1)), pooled.std(axis=(0, 1)) + 1e-8
        self.model_ = LogisticRegression(C=1.0, max_iter=2000).fit(
            ((pooled - self.mean_) / self.std_).reshape(-1, pooled.shape[2]), np.repeat(labels, self.steps))
        return self

    def probabilities(self, images):
        """``(n, steps, 2)``: softmax of the running sum of the per-step logits."""
        pooled = (self._pooled(images) - self.mean_) / self.std_
        logits = self.model_.decision_function(pooled.reshape(-1, pooled.shape[2])).reshape(len(images), self.steps)
        return rt.cumulative_probabilities(np.stack([np.zeros_like(logits), logits], axis=2), cumulative=True)


def human_uncertainty(ratings):
    """Per-stimulus D = 0.5 - |0.5 - PC| over all valid trials of loaded ratings."""
    correct = (ratings.trials["response"] == ratings.trials["truth"]).groupby(ratings.trials["stimulus_id"]).mean()
    return (0.5 - (0.5 - correct).abs()).rename("uncertainty")


def spoerer(settings=REDUCED, workdir=None):
    """Entropy RTs of a trained BL vs simulated human uncertainty, vs a random-init twin.

    As the paper: an extra binary readout (faces vs non-faces, :func:`face_stimuli`,
    :class:`BinaryReadout`) on the frozen network gives the entropy, on noise up to the std
    where the trained readout falls to 60 % accuracy; the
    10-way digit readout's figures on noisy digits (:func:`spoerer_stimuli`) are kept in the
    details (``*_ten_way``)."""
    import data_adapters

    from . import simulators

    from .models import zoo

    n_permutations = settings.n_permutations
    model, _ = trained("bl", SEED, settings.epochs)
    twin = zoo.from_config(model.config | {"seed": SEED + 1})
    networks = (("trained", model), ("random init", twin))
    steps = 8

    def scores(entropies, planted, categories, ids, workdir_name):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(workdir or tmp) / workdir_name
            simulators.simulate_human_ratings(path, uncertainty=planted, seed=SEED)
            measured = human_uncertainty(data_adapters.load(path))
        records = {}
        for label, entropy in entropies.items():
            entropy = xr.DataArray(entropy, dims=("presentation", "time_bin"),
                                   coords={"stimulus_id": ("presentation", ids),
                                           "category_name": ("presentation", categories)})
            records[label] = rt.rt_uncertainty_score(entropy, measured, n_permutations=n_permutations, seed=SEED,
                                                     within="category_name")
        paired = rt.compare_rt_scores(records["trained"], records["random init"], measured,
                                      n_permutations=n_permutations, seed=SEED)
        return records, paired, measured

    train_images, train_labels, clean, noise, u, metadata, planted = face_stimuli()
    clean_readout = BinaryReadout(model, steps).fit(train_images, train_labels)

    def accuracy_at(std):  # the trained readout's final-step accuracy, every test image at this std
        p = clean_readout.probabilities((clean + std * noise).astype(np.float32))[:, -1, 1]
        return float(((p > 0.5) == metadata["label"].to_numpy()).mean())

    # the noise range spans what the trained readout (fitted on clean images) can tell apart:
    # at its top the readout is at 60 % (as Lindsay's level 3), so entropy has room to track it
    std_max = calibrated_noise_std(accuracy_at, 0.6, high=64.0)
    faces = (clean + (u * std_max)[:, None, None, None] * noise).astype(np.float32)
    # refit on training images across the same noise range, so the readout's confidence is
    # calibrated on noisy inputs instead of extrapolated from clean ones
    rng = np.random.default_rng(SEED + 303)
    augmented = np.concatenate([train_images] + [
        (train_images + (rng.uniform(0, 1, len(train_images)) * std_max)[:, None, None, None]
         * rng.standard_normal(train_images.shape)).astype(np.float32) for _ in range(3)])
    readouts = {label: BinaryReadout(network, steps).fit(augmented, np.tile(train_labels, 4))
                for label, network in networks}
    records, paired, measured = scores(
        {label: rt.readout_entropy(readout.probabilities(faces)) for label, readout in readouts.items()},
        planted, metadata["category_name"].to_numpy(), metadata["stimulus_id"].to_numpy(), "sim_face_ratings.sqlite")
    digits, planted_digits = spoerer_stimuli(settings.n_images)
    ten_way, paired_ten_way, _ = scores(
        {label: rt.readout_entropy(rt.cumulative_probabilities(
            _run(network, digits.images, steps)[0], cumulative=network.config.get("readout") != "cumulative"))
         for label, network in networks},
        planted_digits, digits.metadata["label"].to_numpy(), digits.stimulus_ids, "sim_human_ratings.sqlite")
    trained_record = records["trained"]
    # the CIs resample the test faces: held-out RTs (thresholds as fitted) against D
    rts = {label: record["rt"] for label, record in records.items()}
    common = rts["trained"].index.intersection(rts["random init"].index)
    uncertainty = measured.reindex(common).to_numpy(dtype=np.float64)
    rt_trained, rt_random = (rts[label].reindex(common).to_numpy() for label in ("trained", "random init"))
    how = f"bootstrap over the {len(common)} test faces (held-out RTs)"
    return [
        Finding("spoerer", "trained BL's entropy RTs (binary face readout) correlate with human uncertainty",
                trained_record["value"], trained_record["p_value"],
                trained_record["value"] > 0 and trained_record["p_value"] < 0.01,
                {"p_within_category": trained_record["p_within"], "n": trained_record["n"], "noise_std_max": std_max,
                 "rho_ten_way": ten_way["trained"]["value"], "p_ten_way": ten_way["trained"]["p_value"]},
                **_ci(_spearman_ci(rt_trained, uncertainty), how)),
        Finding("spoerer", "trained BL beats its random-init twin (binary readout; paired swap test, two-tailed)",
                paired["difference"], paired["p_value"], paired["difference"] > 0 and paired["p_value"] < 0.01,
                {"rho_random_init": paired["rho_b"], "p_random_init": records["random init"]["p_value"],
                 "difference_ten_way": paired_ten_way["difference"], "p_ten_way": paired_ten_way["p_value"]},
                **_ci(_spearman_ci(rt_trained, uncertainty, minus=rt_random), how)),
    ]


# ------------------------------------------------------------------ 3. Hartmann et al.

SNRS = (0.25, 0.5, 1.0, 2.0)


def hartmann(settings=REDUCED, n_frames=8):
    """gruCNN vs cCNN + Bayesian integration over jittered noisy frames, per SNR."""
    from .degradations import jittered_noisy_sequences
    from .models.zoo.hartmann import bayesian_integration

    clean = heldout_digits(settings.n_images)
    labels = clean.metadata["label"].to_numpy()
    gru, _ = trained("grucnn", SEED, settings.epochs)
    ccnn, _ = trained("ccnn", SEED, settings.epochs)
    accuracy, taus, last, rejection = {}, {}, {}, {}
    for snr in SNRS:
        frames = jittered_noisy_sequences(clean, n_frames, snr, seed=SEED)
        gru_logits, _ = _run(gru, frames, n_frames)
        ff_logits = []
        with torch.no_grad():
            for start in range(0, len(frames), 100):
                per_frame = ccnn.eval().training_logits(torch.from_numpy(frames[start:start + 100]))
                ff_logits.append(bayesian_integration(per_frame).numpy())
        probs = {"gruCNN": _softmax(gru_logits), "cCNN+Bayes": _softmax(np.concatenate(ff_logits))}
        table = behaviour.accuracy_over_steps(probs, labels)
        accuracy[snr] = table
        curve = table[table.condition == "gruCNN"]
        taus[snr] = behaviour.fit_integration_curve(curve["step"].to_numpy() + 1, curve["accuracy"].to_numpy())["tau"]
        last[snr] = {name: p[:, -1].argmax(-1) == labels for name, p in probs.items()}
        rejection[snr] = {name: behaviour.false_rejection_rate(p, labels) for name, p in probs.items()}
    low = SNRS[0]
    test = behaviour.mcnemar_test(last[low]["gruCNN"], last[low]["cCNN+Bayes"])
    gap = float(last[low]["gruCNN"].mean() - last[low]["cCNN+Bayes"].mean())
    tau = np.array([taus[s] for s in SNRS])
    from scipy.stats import spearmanr

    rho = float(spearmanr(SNRS, tau)[0])
    per_image = last[low]["gruCNN"].astype(np.float64) - last[low]["cCNN+Bayes"].astype(np.float64)
    return [
        Finding("hartmann", f"gruCNN beats cCNN + Bayesian integration at SNR {low}", gap, test["p_value"],
                gap > 0 and test["p_value"] < ALPHA,
                {"gru_only": test["a_only"], "ccnn_only": test["b_only"],
                 # Hartmann's false rejection (correct category in the pooled lowest quintile)
                 "false_rejection_gruCNN": rejection[low]["gruCNN"],
                 "false_rejection_ccnn_bayes": rejection[low]["cCNN+Bayes"]},
                **_ci(mean_ci(per_image, n_boot=N_BOOT, seed=SEED, level=CI_LEVEL),
                      f"bootstrap over the {len(per_image)} images (paired)")),
        Finding("hartmann", "gruCNN's integration time constant tau grows as SNR falls", -rho, float("nan"),
                tau[0] > tau[-1] and rho < 0, {f"tau_snr_{s:g}": float(t) for s, t in zip(SNRS, tau)},
                ci_method=f"none: one tau per SNR level ({len(SNRS)} levels), nothing to resample"),
    ]


# ------------------------------------------------------------------ 4. CRCN


def crcn(settings=REDUCED):
    """Recurrent-minus-feedforward accuracy gap of CRCN across pixel-noise levels."""
    from .degradations import LEVELS
    from .stats.resampling import sign_flip_test

    clean = heldout_digits(settings.n_images)
    labels = clean.metadata["label"].to_numpy()
    recurrent, _ = trained("crcn", SEED, settings.epochs)
    feedforward, _ = trained("crcn-ff", SEED, settings.epochs)
    steps = 4
    gaps, per_image = [], []
    for level in LEVELS["noise"]:
        noisy = pixel_noise(clean, level, seed=SEED)
        correct = [(_run(net, noisy.images, steps)[0][:, -1].argmax(-1) == labels).astype(float)
                   for net in (recurrent, feedforward)]
        per_image.append(correct[0] - correct[1])
        gaps.append(float(per_image[-1].mean()))
    test = sign_flip_test(per_image[-1] - per_image[0], n_permutations=settings.n_permutations, seed=SEED,
                          alternative="greater")
    effect = gaps[-1] - gaps[0]
    from scipy.stats import spearmanr

    rho = float(spearmanr(LEVELS["noise"], gaps)[0])
    change = per_image[-1] - per_image[0]
    return [Finding("crcn", "recurrent-minus-feedforward accuracy gap grows with noise level", effect,
                    float(test["p_value"][0]), effect > 0 and rho > 0 and test["p_value"][0] < ALPHA,
                    {"spearman_gap_vs_level": rho,
                     **{f"gap_noise_{lv:g}": g for lv, g in zip(LEVELS["noise"], gaps)}},
                    **_ci(mean_ci(change, n_boot=N_BOOT, seed=SEED, level=CI_LEVEL),
                          f"bootstrap over the {len(change)} images (paired)"))]


# ------------------------------------------------------------------ 5. Nayebi et al.


def nayebi(settings=REDUCED, workdir=None, progress=False):
    """Shared-over-time fit of a ConvRNN and its feedforward twin to a simulated recording."""
    import data_adapters

    from . import simulators

    from .metrics import map_layers_to_regions
    from .models import PresentationProtocol, extract
    from .models.reductions import SparseRandomProjection
    from .stimuli import digits
    from .stats import compare_encodings

    with tempfile.TemporaryDirectory() as tmp:
        # the simulator's trained brain comes from the replication's model cache when one is
        # set (a report prepares it there once; trained again in each worker, it took 34 s)
        simulation = simulators.simulate_macaque(Path(workdir or tmp) / "sim_macaque.nc", n_stimuli=settings.n_stimuli,
                                                    seed=SEED, brain_seed=SEED, model_cache=_MODEL_CACHE["directory"])
        recording = data_adapters.load(simulation.path)
        recording.load()
    latencies = {region: latency for region, _, latency in simulation.regions}
    # the model sees the same digits at its training resolution
    shown = digits(size=32)
    shown = shown.subset(pd.Index(shown.stimulus_ids).get_indexer(simulation.stimuli.stimulus_ids))
    protocol = PresentationProtocol(image_steps=10, blank_steps=15, step_ms=10, unrolling="layer_per_step",
                                    onset_ms=min(latencies.values()))
    model, _ = trained("convrnn", SEED, settings.epochs)
    # the paper's control: a feedforward network of the same depth and widths trained on the
    # same task (the zoo's B: three conv stages, channels 8/16/32), not the ConvRNN with its
    # gates pinned. (A ConvRNN trained with its gates pinned shut reached only 0.16 accuracy
    # in 4 epochs: no control at all.)
    control, _ = trained("b", SEED, settings.epochs)
    results = {}
    for label, network in (("ConvRNN", model.eval()), ("feedforward", control.eval())):
        # every layer projected to 256 seeded sparse random directions: bounded features
        # for the ridge fits, the same projection for both networks
        shown_as = dataclasses.replace(protocol, unrolling=getattr(network, "unrolling", protocol.unrolling))
        features = extract(network, shown, protocol=shown_as, progress=progress,
                           reduction=SparseRandomProjection(n_components=256, seed=SEED, keep_small=True))
        # Nayebi et al.'s mapping: each site to its best layer, the region to the majority
        results[label] = map_layers_to_regions(features, recording, seed=SEED, rule="unit_majority")
    # each region's own post-offset window: its latency + the image's duration (V4's
    # response to the offset arrives before IT's; one window for both would start V4 late)
    offset_ms = {region: latency + protocol.image_steps * protocol.step_ms for region, latency in latencies.items()}
    findings = []
    differences, p_values, site_r = {}, {}, {}
    for region in latencies:
        a, b = (results[label].evaluation[region] for label in ("ConvRNN", "feedforward"))
        post = np.flatnonzero(a["time_bin_start"].values >= offset_ms[region])
        a, b = a.isel(time_bin=post), b.isel(time_bin=post)
        test = compare_encodings(a, b, n_permutations=settings.n_permutations, seed=SEED, alternative="greater")
        site_r[region] = [np.nan_to_num(x["r"].transpose("neuroid", "time_bin").values, nan=0.0).mean(-1) for x in (a, b)]
        r_a, r_b = (float(np.nanmedian(values)) for values in site_r[region])
        differences[region], p_values[region] = r_a - r_b, test.groups[region]["p_value"]
    worst = min(differences, key=differences.get)
    sites_a, sites_b = site_r[worst]
    interval = percentile_ci(lambda index: np.median(sites_a[index], 1) - np.median(sites_b[index], 1),
                             len(sites_a), n_boot=N_BOOT, seed=SEED, level=CI_LEVEL, observed=differences[worst])
    findings.append(Finding("nayebi", "ConvRNN's shared-over-time fit beats a trained feedforward network "
                                      "after image offset",
                            differences[worst], max(p_values.values()),
                            all(differences[r] > 0 and p_values[r] < ALPHA for r in differences),
                            {**{f"r_difference_{r}": v for r, v in differences.items()},
                             **{f"p_{r}": v for r, v in p_values.items()},
                             **{f"offset_ms_{r}": v for r, v in offset_ms.items()}},
                            **_ci(interval, f"bootstrap over the {len(sites_a)} {worst} sites (the region with "
                                            "the smaller difference), fits held fixed")))
    layers = list(pd.unique(results["ConvRNN"].selection["layer"].values))
    chosen = results["ConvRNN"].layer_for_region
    order = [layers.index(chosen[region]) for region in sorted(latencies, key=latencies.get)]
    monotone = all(earlier < later for earlier, later in zip(order, order[1:]))
    findings.append(Finding("nayebi", "layer-to-region map is monotone (V4-like sites map to earlier layers than IT)",
                            float(order[-1] - order[0]), float("nan"), monotone,
                            {**{f"layer_{region}": chosen[region] for region in latencies},
                             # the median-over-sites rule's choice, for comparison
                             **{f"layer_{region}_median_rule": str(results["ConvRNN"].selection.sel(region=region)
                                                                   .idxmax("layer").item())
                                for region in latencies},
                             **{f"votes_{region}": dict(zip(layers, results["ConvRNN"].votes.sel(region=region)
                                                            .values.tolist())) for region in latencies}},
                            ci_method="none: a difference of layer positions"))
    return findings


REPLICATIONS = {"lindsay": lindsay, "spoerer": spoerer, "hartmann": hartmann, "crcn": crcn, "nayebi": nayebi}
#: the zoo models each replication trains (with :func:`model_config`, seeds
#: :attr:`Settings.seeds`, :attr:`Settings.epochs`); Nayebi's also trains the simulator's brain
MODELS = {"lindsay": ("lindsay-ff",) + LINDSAY_RECURRENT, "spoerer": ("bl",), "hartmann": ("grucnn", "ccnn"),
          "crcn": ("crcn", "crcn-ff"), "nayebi": ("convrnn", "b")}


def required_models(name, full=False):
    """Training specs (as a report's model specs) of what replication ``name`` trains at
    :data:`REDUCED` (or :data:`FULL`) size, so that a report can train them before, and
    side by side with, other work."""
    from .simulators.macaque import DEFAULT_BRAIN

    settings = FULL if full else REDUCED
    seeds = settings.seeds if name == "lindsay" else (SEED,)
    specs = [{"name": f"replication model {model}" + (f" (seed {seed})" if seed != SEED else ""), "zoo": model,
              "train": True, "seed": seed, "epochs": settings.epochs, "config": model_config(model, settings)}
             for model in MODELS[name] for seed in seeds]
    if name == "nayebi":
        specs.append({**DEFAULT_BRAIN, "name": "replication simulated brain", "seed": SEED})
    return specs


def run_replication(name, full=False, **options):
    """Run one replication by name; returns its list of :class:`Finding`.

    ``full=True`` runs it at :data:`FULL` size (``workbench replicate --full``), else at
    :data:`REDUCED` (an explicit ``settings=`` wins). Its models are trained on the
    training's fixed threads (:data:`workbench.models.training.TRAINING_THREADS`) and the
    rest runs on one thread (BLAS and torch), whatever the machine or the calling report
    task, so its numbers do not depend on the core count (the Spoerer effect was 0.079 at two
    threads and 0.101 at one before threads were fixed), and report workers running side by
    side do not oversubscribe cores.
    """
    from .backend import fixed_threads

    if name not in REPLICATIONS:
        raise WorkbenchError(f"unknown replication {name!r}; available: {', '.join(REPLICATIONS)}")
    options.setdefault("settings", FULL if full else REDUCED)
    with fixed_threads(1):
        return REPLICATIONS[name](**options)


def findings_table(findings):
    """Findings as a DataFrame (one row per claim)."""
    return pd.DataFrame([asdict(f) for f in findings])
