"""Rendered objects on natural backgrounds in the style of the HvM set (Majaj et al. 2015).

HvM shows 64 objects (8 categories x 8 objects) at three variation levels: V0 (centred,
fixed size and pose), V3 (moderate) and V6 (large changes of position, size and rotation),
each on a random natural-image background. The photographs cannot be redistributed, so
:func:`objects` renders stand-ins procedurally at any resolution: each object is a
silhouette (8 shape categories, 8 objects each that differ in proportions and surface
colour) lit as a smooth 3D surface (a height field from the silhouette's distance map,
Lambertian shading with a fixed light), placed with HvM's pose parameters on a crop of the
photographs that ship with scikit-image and scikit-learn.

The metadata uses HvM's column names: ``category_name``, ``object_name``, ``variation``
(0, 3, 6), ``ty``/``tz`` (position, in half image widths), ``s`` (size factor), ``rxy``
(in-plane rotation, degrees), ``rxz``/``ryz`` (out-of-plane rotation, degrees; rendered as
foreshortening and a shift of the light) and ``background_id``.
"""

import functools

import numpy as np
import pandas as pd

from .errors import WorkbenchError
from .stimuli import SKIMAGE_IMAGES, SKLEARN_IMAGES, Preprocessing, StimulusSet

CATEGORIES = ("ellipsoid", "box", "cylinder", "cone", "torus", "star", "cross", "crescent")
N_OBJECTS = 8
# Pose ranges per variation level (HvM: V0 none; V3 and V6 growing). Position in half image
# widths, size as a factor of the base size, rotations in degrees.
VARIATION_RANGES = {
    0: {"t": 0.0, "s": (1.0, 1.0), "rxy": 0.0, "rout": 0.0},
    3: {"t": 0.3, "s": (0.8, 1.2), "rxy": 45.0, "rout": 30.0},
    6: {"t": 0.6, "s": (0.6, 1.4), "rxy": 90.0, "rout": 60.0},
}
BASE_SIZE = 0.7  # object extent as a fraction of the image width at s = 1
# Pixel mean and sd of the whole rendered set (measured once): "set" standardisation uses them,
# so every subset of ids is rendered with one grey level.
SET_MEAN, SET_SD = 0.553, 0.179


def _silhouette(category, params, u, v):
    """Inside-mask of a shape in object coordinates ``u``, ``v`` (extent about [-1, 1])."""
    a, b, c = params
    if category == "ellipsoid":
        return (u / (0.6 + 0.4 * a)) ** 2 + (v / (0.6 + 0.4 * b)) ** 2 <= 1
    if category == "box":
        return (np.abs(u) <= 0.5 + 0.45 * a) & (np.abs(v) <= 0.4 + 0.5 * b)
    if category == "cylinder":
        w = 0.35 + 0.4 * a
        body = (np.abs(u) <= w) & (np.abs(v) <= 0.8)
        caps = (u / w) ** 2 + ((np.abs(v) - 0.8) / (0.15 + 0.2 * b)) ** 2 <= 1
        return body | caps
    if category == "cone":
        half = (0.3 + 0.6 * a) * (v + 0.9) / 1.8
        return (v >= -0.9) & (v <= 0.9) & (np.abs(u) <= half)
    if category == "torus":
        r = np.hypot(u, v)
        outer = 0.75 + 0.2 * a
        return (r <= outer) & (r >= outer * (0.3 + 0.3 * b))
    if category == "star":
        angle = np.arctan2(v, u)
        points = 4 + int(round(3 * a))
        radius = 0.55 + (0.25 + 0.15 * b) * np.cos(points * angle)
        return np.hypot(u, v) <= radius
    if category == "cross":
        w = 0.18 + 0.2 * a
        return ((np.abs(u) <= w) & (np.abs(v) <= 0.9)) | ((np.abs(v) <= w) & (np.abs(u) <= 0.6 + 0.3 * b))
    if category == "crescent":
        r1 = np.hypot(u, v)
        r2 = np.hypot(u - (0.3 + 0.3 * a), v)
        return (r1 <= 0.85) & (r2 >= 0.6 + 0.2 * b)
    raise WorkbenchError(f"unknown object category {category!r}; known: {CATEGORIES}")


def _object_params(category_index, object_index):
    """Fixed per-object proportions and surface colour (the object's identity)."""
    rng = np.random.default_rng([category_index, object_index, 2015])
    shape = rng.uniform(0, 1, size=3)
    hue = (category_index / len(CATEGORIES) + 0.6 * object_index / N_OBJECTS + rng.uniform(0, 0.05)) % 1.0
    return shape, _hue_rgb(hue, saturation=0.55 + 0.35 * rng.uniform())


def _hue_rgb(hue, saturation):
    k = (np.asarray([5.0, 3.0, 1.0]) + hue * 6) % 6
    return 1 - saturation * np.clip(np.minimum(k, 4 - k), 0, 1)


@functools.lru_cache(maxsize=1)
def _backgrounds():
    """The bundled photographs as read-only RGB float arrays in [0, 1] (decoded once per
    process: 1.6 s, as long as rendering a hundred small images)."""
    from skimage import data as skdata
    from skimage.color import gray2rgb
    from sklearn.datasets import load_sample_image

    photos = [load_sample_image(name) for name in SKLEARN_IMAGES]
    photos += [getattr(skdata, name)() for name in SKIMAGE_IMAGES]
    out = []
    for photo in photos:
        photo = np.asarray(photo)
        photo = photo[..., :3] if photo.ndim == 3 else gray2rgb(photo)
        out.append(photo.astype(np.float64) / (255.0 if photo.dtype == np.uint8 else max(photo.max(), 1e-12)))
        out[-1].setflags(write=False)
    return tuple(out)


def _crop_box(photo, rng):
    """A random square ``(top, left, side)`` in ``photo`` (at least a third of its short side)."""
    height, width = photo.shape[:2]
    side = int(rng.integers(min(height, width) // 3, min(height, width) + 1))
    return int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)), side


def _background_crop(photo, box, size):
    """The crop ``box`` of ``photo``, resized to ``size``, at reduced contrast."""
    from skimage.transform import resize

    top, left, side = box
    crop = resize(photo[top:top + side, left:left + side], (size, size), anti_aliasing=True)
    return 0.35 + 0.5 * crop  # lower contrast behind the object, as HvM's backgrounds


def _render(size, category_index, object_index, pose, background):
    """One RGB image ``(3, size, size)`` in [0, 1]."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    shape, colour = _object_params(category_index, object_index)
    grid = (np.arange(size) + 0.5) / size * 2 - 1  # image coordinates in [-1, 1]
    y, x = np.meshgrid(grid, grid, indexing="ij")
    scale = BASE_SIZE * pose["s"]
    theta = np.deg2rad(pose["rxy"])
    # image -> object coordinates: translate, rotate in plane, undo size and foreshortening
    xs, ys = (x - pose["ty"]) / scale, (y - pose["tz"]) / scale
    u = (np.cos(theta) * xs + np.sin(theta) * ys) / max(np.cos(np.deg2rad(pose["ryz"])), 0.3)
    v = (-np.sin(theta) * xs + np.cos(theta) * ys) / max(np.cos(np.deg2rad(pose["rxz"])), 0.3)
    mask = _silhouette(CATEGORIES[category_index], shape, u, v)
    if not mask.any():
        mask[size // 2, size // 2] = True
    # a smooth dome over the silhouette: its normals give 3D-looking shading
    depth = distance_transform_edt(mask) / max(size * scale * 0.5, 1.0)
    height = np.sqrt(np.clip(depth, 0, None))
    height = gaussian_filter(height, sigma=max(size / 96, 0.5))
    gy, gx = np.gradient(height * size * 0.25)
    normal = np.stack([-gx, -gy, np.ones_like(gx)])
    normal /= np.linalg.norm(normal, axis=0, keepdims=True)
    light = np.asarray([-0.5 + 0.01 * pose["ryz"], -0.6 + 0.01 * pose["rxz"], 0.7])
    light /= np.linalg.norm(light)
    shade = np.clip(np.tensordot(light, normal, axes=1), 0, 1)
    lit = colour[:, None, None] * (0.25 + 0.75 * shade)[None] + 0.25 * shade[None] ** 12  # + highlight
    alpha = gaussian_filter(mask.astype(np.float64), sigma=max(size / 224, 0.3))[None]
    return np.clip(alpha * lit + (1 - alpha) * background.transpose(2, 0, 1), 0, 1)


def _object_id(category, k, level, i):
    return f"obj_{category}_{k}_v{level}_{i}"


def object_ids(n_per_object=1, variations=(0, 3, 6)):
    """The ``stimulus_id`` of every image :func:`objects` renders with these arguments, in its
    order (nothing is rendered: choose a subset, then render only it with ``ids=``)."""
    return [_object_id(category, k, level, i) for level in variations for category in CATEGORIES
            for k in range(N_OBJECTS) for i in range(n_per_object)]


def objects(n_per_object=1, variations=(0, 3, 6), size=64, seed=0, preprocessing=None, ids=None):
    """HvM-style object images (8 categories x 8 objects x variation levels).

    Parameters
    ----------
    n_per_object : int
        Images per object and variation level (HvM: 10 at V0, 40 at V3 and V6).
    variations : tuple of {0, 3, 6}
    size : int
        Height = width in pixels (ignored when ``preprocessing`` is given).
    seed : int
        Seed of the poses and the background crops.
    preprocessing : workbench.stimuli.Preprocessing, optional
        A model's declaration; default: RGB at ``size``, standardised over the set.
    ids : collection of str, optional
        Render only these stimuli (the poses and backgrounds are drawn for all, so an image
        is the same whichever others are rendered); the order is the set's.

    Returns
    -------
    StimulusSet
        ``stimulus_id`` ``"obj_<category>_<k>_v<level>_<i>"`` with HvM's metadata columns.
    """
    unknown = set(variations) - set(VARIATION_RANGES)
    if unknown or not variations:
        raise WorkbenchError(f"variations must be among {sorted(VARIATION_RANGES)}, got {variations}")
    if isinstance(n_per_object, bool) or not isinstance(n_per_object, (int, np.integer)) or n_per_object < 1:
        raise WorkbenchError(f"n_per_object must be a positive integer, got {n_per_object!r}")
    preprocessing = preprocessing or Preprocessing(size=size, channels="rgb")
    size = preprocessing.size
    rng = np.random.default_rng(seed)
    photos = _backgrounds()
    wanted = set(map(str, ids)) if ids is not None else None
    rows, images = [], []
    for level in variations:
        ranges = VARIATION_RANGES[level]
        for c, category in enumerate(CATEGORIES):
            for k in range(N_OBJECTS):
                for i in range(n_per_object):
                    pose = {"ty": rng.uniform(-1, 1) * ranges["t"], "tz": rng.uniform(-1, 1) * ranges["t"],
                            "s": rng.uniform(*ranges["s"]), "rxy": rng.uniform(-1, 1) * ranges["rxy"],
                            "rxz": rng.uniform(-1, 1) * ranges["rout"], "ryz": rng.uniform(-1, 1) * ranges["rout"]}
                    background_id = int(rng.integers(len(photos)))
                    crop = _crop_box(photos[background_id], rng)
                    stimulus_id = _object_id(category, k, level, i)
                    if ids is not None and stimulus_id not in wanted:
                        continue
                    background = _background_crop(photos[background_id], crop, size)
                    images.append(_render(size, c, k, pose, background))
                    rows.append({"stimulus_id": stimulus_id, "category_name": category,
                                 "object_name": f"{category}_{k}", "variation": level, **pose,
                                 "background_id": background_id})
    if not images:
        raise WorkbenchError(f"none of the requested ids is an object stimulus (e.g. {sorted(wanted)[:2]})")
    if wanted is not None and len(images) < len(wanted):
        missing = sorted(wanted - {row["stimulus_id"] for row in rows})
        raise WorkbenchError(f"not in this object set: {missing[:3]} (n_per_object={n_per_object}, seed={seed})")
    images = np.stack(images)
    rendered = preprocessing.normalize(preprocessing.channels_of(images), mean=SET_MEAN, sd=SET_SD)
    return StimulusSet(rendered, pd.DataFrame(rows),
                       identifier=f"hvm-style-objects(n_per_object={n_per_object},variations={list(variations)},"
                                  f"{preprocessing.token()},seed={seed})")
