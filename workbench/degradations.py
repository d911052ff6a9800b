"""Image degradations with levels (Lindsay et al.), noisy frame sequences (Hartmann et al.).

Every function takes a :class:`workbench.stimuli.StimulusSet` of standardised images (0 is
the mean grey) and returns a new set whose ``stimulus_id`` names the degradation, so model
and brain assemblies of degraded images align by id. Random draws are seeded per call.
"""

import numpy as np

from .errors import WorkbenchError, check_interval
from .stimuli import StimulusSet, blur

# Level 0 is the clean image; levels 1-4 get harder. The workbench's own parameter grid
# (pixel units of standardised images): Lindsay et al. used four graded levels per type.
LEVELS = {
    "noise": (0.0, 0.5, 1.0, 1.5, 2.0),        # Gaussian pixel-noise std
    "blur": (0.0, 3.0, 6.0, 12.0, 25.0),       # Gaussian sigma, % of image width
    "contrast": (1.0, 0.5, 0.25, 0.125, 0.0625),  # contrast factor around the mean grey
    "occlusion": (0.0, 0.1, 0.2, 0.3, 0.4),    # fraction of the image covered by blocks
}


def renamed(stimulus_set, images, tag, extra):
    """A degraded copy of ``stimulus_set``: new ``images``, ids suffixed ``_tag``, the clean id kept as ``source_id``."""
    metadata = stimulus_set.metadata.copy()
    metadata["source_id"] = metadata["stimulus_id"].astype(str)
    metadata["stimulus_id"] = metadata["source_id"] + f"_{tag}"
    metadata["condition"] = tag
    for key, value in extra.items():
        metadata[key] = value
    return StimulusSet(images.astype(np.float32), metadata,
                       identifier=f"{stimulus_set.identifier}|{tag}", attrs=dict(stimulus_set.attrs))


def pixel_noise(stimulus_set, std, seed=0):
    """Add Gaussian pixel noise of standard deviation ``std`` (ids ``<id>_noise_<std>``)."""
    if std < 0:
        raise WorkbenchError(f"noise std must be >= 0, got {std}")
    rng = np.random.default_rng(seed)
    images = stimulus_set.images + std * rng.standard_normal(stimulus_set.images.shape)
    return renamed(stimulus_set, images, f"noise_{std:g}", {"degradation": "noise", "level_value": std})


def calibrated_noise_std(accuracy_at, target, high=8.0, iterations=14):
    """The pixel-noise std at which a classifier's accuracy falls to ``target``.

    Replications set degradation levels by the feedforward accuracy a paper targets (e.g.
    Lindsay et al. calibrate their level 3 to about 60 % accuracy of the feedforward
    network) instead of by a fixed std that a small network on small images may barely
    notice. ``accuracy_at(std)`` must be non-increasing in ``std`` (a fixed noise seed
    makes it so in practice); bisection over ``[0, high]``, deterministic.

    Returns
    -------
    float
        The std (rounded to 4 decimals) whose accuracy is closest to ``target`` from above.
    """
    check_interval("target accuracy", target, "(0, 1)")
    if accuracy_at(high) > target:
        raise WorkbenchError(f"accuracy is still {accuracy_at(high):.3f} at noise std {high}; the target "
                             f"{target} needs a higher upper bound (high=)")
    low = 0.0
    for _ in range(iterations):
        middle = (low + high) / 2
        if accuracy_at(middle) >= target:
            low = middle
        else:
            high = middle
    return round(low, 4)


def low_contrast(stimulus_set, factor):
    """Scale contrast around the mean grey (0) by ``factor`` in (0, 1]."""
    check_interval("contrast factor", factor, "(0, 1]")
    return renamed(stimulus_set, stimulus_set.images * factor, f"contrast_{factor:g}",
                    {"degradation": "contrast", "level_value": factor})


def occlude(stimulus_set, fraction, block_px=None, seed=0):
    """Cover about ``fraction`` of each image with square blocks set to the mean intensity.

    Blocks (``block_px``, default a quarter of the width) are placed at seeded random
    positions until the covered fraction reaches ``fraction``; the covered pixels take the
    image's own mean intensity.
    """
    check_interval("occluded fraction", fraction, "[0, 1)")
    images = stimulus_set.images.copy()
    n, _, height, width = images.shape
    block = block_px or max(1, width // 4)
    rng = np.random.default_rng(seed)
    for i in range(n):
        covered = np.zeros((height, width), dtype=bool)
        while covered.mean() < fraction:
            y, x = rng.integers(0, height - block + 1), rng.integers(0, width - block + 1)
            covered[y:y + block, x:x + block] = True
        mean = images[i].mean(axis=(1, 2), keepdims=True)
        images[i] = np.where(covered[None], mean, images[i])
    return renamed(stimulus_set, images, f"occlusion_{fraction:g}",
                    {"degradation": "occlusion", "level_value": fraction})


def degrade(stimulus_set, kind, level, seed=0):
    """One of Lindsay's four degradations at level 0-4 (see ``LEVELS``); 0 is clean."""
    if kind not in LEVELS:
        raise WorkbenchError(f"unknown degradation {kind!r}; choose one of {list(LEVELS)}")
    if level not in range(len(LEVELS[kind])):
        raise WorkbenchError(f"level must be 0..{len(LEVELS[kind]) - 1}, got {level}")
    if level == 0:
        return stimulus_set
    value = LEVELS[kind][level]
    if kind == "noise":
        return pixel_noise(stimulus_set, value, seed)
    if kind == "blur":
        return blur(stimulus_set, value)
    if kind == "contrast":
        return low_contrast(stimulus_set, value)
    return occlude(stimulus_set, value, seed=seed)


def grey_frames(n_frames, shape):
    """``n_frames`` grey frames (all 0: the mean grey of standardised images)."""
    return np.zeros((n_frames,) + tuple(shape), dtype=np.float32)


def jittered_noisy_sequences(stimulus_set, n_frames, snr, max_jitter=3, seed=0):
    """Hartmann et al.'s input: each image as ``n_frames`` jittered, noisy frames.

    Every frame is the image shifted by a random integer offset of at most ``max_jitter``
    pixels in x and y (exposed pixels take the nearest edge value), plus Gaussian noise with
    std = std(image) / ``snr``; each sequence is then normalised to zero mean, unit std.

    Returns
    -------
    numpy.ndarray
        float32, ``(n_stimuli, n_frames, channels, height, width)``.
    """
    if snr <= 0 or n_frames < 1 or max_jitter < 0:
        raise WorkbenchError("need snr > 0, n_frames >= 1 and max_jitter >= 0")
    rng = np.random.default_rng(seed)
    images = stimulus_set.images
    n, c, h, w = images.shape
    pad = max_jitter
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    shifts = rng.integers(-max_jitter, max_jitter + 1, size=(n, n_frames, 2))
    frames = np.empty((n, n_frames, c, h, w), dtype=np.float64)
    for i in range(n):
        for t in range(n_frames):
            dy, dx = shifts[i, t]
            frames[i, t] = padded[i, :, pad + dy:pad + dy + h, pad + dx:pad + dx + w]
    signal_std = images.reshape(n, -1).std(axis=1)[:, None, None, None, None]
    frames += signal_std / snr * rng.standard_normal(frames.shape)
    mean = frames.mean(axis=(1, 2, 3, 4), keepdims=True)
    std = frames.std(axis=(1, 2, 3, 4), keepdims=True)
    return ((frames - mean) / np.where(std > 0, std, 1)).astype(np.float32)
