"""Stimulus sets written to disk as a release ships them: one 8-bit PNG per image and a CSV
naming each (``stimulus_id``, ``filename``, metadata), read back by
:func:`workbench.stimuli.from_image_files`."""

import numpy as np

from workbench.storage import atomic_path


def write_png(path, image):
    """``image`` ``(C, H, W)`` in [0, 1] (C = 1: greyscale, 3: RGB) as an 8-bit PNG at
    ``path``, written atomically."""
    from PIL import Image

    pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def write_stimulus_set(data_path, stimulus_set, clip_percent=0.5):
    """``stimulus_set`` beside the data file ``data_path``: its images as PNGs in
    ``<stem>_images/`` and ``<stem>_stimuli.csv`` naming them (``stimulus_id``,
    ``filename`` relative to the CSV, then the set's metadata columns). Returns the CSV's path.

    The images (any real values, e.g. standardised and noisy) go to [0, 1] by one affine map
    for the whole set, from its ``clip_percent`` and ``100 - clip_percent`` percentiles, so
    they keep their contrast and noise relative to each other; only the most extreme pixels
    (of the noisiest images) clip.
    """
    from pathlib import Path

    data_path = Path(data_path)
    images = np.asarray(stimulus_set.images, dtype=np.float64)
    low, high = np.percentile(images, [clip_percent, 100 - clip_percent])
    unit = (images - low) / max(high - low, np.finfo(float).tiny)
    folder = data_path.with_name(f"{data_path.stem}_images")
    folder.mkdir(parents=True, exist_ok=True)
    ids = [str(i) for i in stimulus_set.stimulus_ids]
    for sid, image in zip(ids, unit):
        write_png(folder / f"{sid}.png", image)
    table = stimulus_set.metadata.drop(columns=["stimulus_id"], errors="ignore").copy()
    table.insert(0, "filename", [f"{folder.name}/{sid}.png" for sid in ids])
    table.insert(0, "stimulus_id", ids)
    csv = data_path.with_name(f"{data_path.stem}_stimuli.csv")
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    return csv
