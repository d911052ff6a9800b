"""Stimulus sets: images plus one ``stimulus_id`` each and per-image metadata.

Embedded sets: scikit-learn's digits (:func:`digits`), natural photographs from
scikit-learn and scikit-image (:func:`natural_images`) and rendered HvM-style objects
(:func:`workbench.object_stimuli.objects`). Images are float32 ``(n, channels, height,
width)``, normalised so that 0 is the background / mean grey level (a "grey frame" is all
zeros).

A model declares how it must see images with a :class:`Preprocessing` (size, channels,
normalisation); a stimulus set stays in its native form (files on disk, 8 px digits) until
it is rendered to that declaration.
"""

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .assembly import control_character_id
from .errors import WorkbenchError, check_count, check_interval


NORMALIZATIONS = ("set", "imagenet", "inception", "unit", "kinetics")
CHANNELS = ("grey", "rgb")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)  # Inception, ViT and many timm models: [-1, 1]
UNIT_MEAN, UNIT_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # ToTensor() without Normalize: pixels in [0, 1]
# Kinetics-400 video frames: torchvision's video networks (r3d_18, mc3_18, r2plus1d_18, s3d)
KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)
CHANNEL_STATS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "inception": (INCEPTION_MEAN, INCEPTION_STD),
                 "unit": (UNIT_MEAN, UNIT_STD), "kinetics": (KINETICS_MEAN, KINETICS_STD)}


def custom_stats(normalization):
    """``(mean, sd)`` tuples of floats of a ``"MEAN/SD"`` normalisation (each one number or
    one per RGB channel, comma-separated; every sd > 0), None for a named one; a ValueError
    saying what is wrong with a malformed one."""
    if not isinstance(normalization, str) or "/" not in normalization:
        return None
    parts = normalization.split("/")
    if len(parts) != 2:
        raise ValueError("expected one '/' between the means and the sds")
    try:
        mean, sd = (tuple(float(x) for x in part.split(",")) for part in parts)
    except ValueError:
        raise ValueError("means and sds must be numbers, comma-separated") from None
    if len(mean) != len(sd) or len(mean) not in (1, 3):
        raise ValueError(f"{len(mean)} mean(s) and {len(sd)} sd(s): give 1 of each, or 3 (R, G, B)")
    if not all(np.isfinite(mean + sd)) or min(sd) <= 0:
        raise ValueError("means must be finite and sds positive")
    return mean, sd


def stats_text(mean, sd):
    """The canonical ``"MEAN/SD"`` text of statistics (shortest round-trip floats)."""
    return "/".join(",".join(repr(float(x)) for x in part) for part in (mean, sd))


def canonical_normalization(normalization):
    """A valid normalisation as written once: a name as it is, a ``"MEAN/SD"`` in the
    canonical text of its statistics (:func:`stats_text`)."""
    stats = custom_stats(normalization)
    return normalization if stats is None else stats_text(*stats)


@dataclass(frozen=True)
class Preprocessing:
    """How a model must be shown images.

    Attributes
    ----------
    size : int
        Height = width in pixels (images are centre-cropped to a square, then resized).
    channels : {"grey", "rgb"}
        One luminance channel (ITU-R 601-2), or three RGB channels (grey images repeated).
    normalization : {"set", "imagenet", "inception", "unit", "kinetics"} or "MEAN/SD"
        ``"set"``: standardise over the stimulus set (mean 0, sd 1 over all pixels; the zoo's
        convention). ``"imagenet"``: pixels in [0, 1], minus the ImageNet mean and over its
        sd per channel (torchvision's and CORnet's convention). ``"inception"``: (x - 0.5) /
        0.5, i.e. [-1, 1] (Inception, ViT and many timm models). ``"unit"``: pixels in [0, 1] as
        they are (a model trained on ``ToTensor()`` without ``Normalize``). ``"kinetics"``: the
        Kinetics-400 mean and sd per channel (torchvision's video networks). ``"MEAN/SD"``: the
        mean and sd a model was trained with, per channel or one for all, pixels in [0, 1]
        (e.g. CIFAR-10's ``"0.4914,0.4822,0.4465/0.2470,0.2435,0.2616"``; written back in a
        canonical form, so equal statistics are one declaration).

    The default, 32 px greyscale standardised over the set, is the seed zoo's.
    """

    size: int = 32
    channels: str = "grey"
    normalization: str = "set"

    def __post_init__(self):
        for name in ("size", "channels", "normalization"):
            problem = self.problem(name, getattr(self, name))
            if problem:
                raise WorkbenchError(f"preprocessing {name} {problem}")
        # one text per statistics: the same declaration, the same identifiers
        object.__setattr__(self, "normalization", canonical_normalization(self.normalization))

    @staticmethod
    def problem(name, value):
        """What is wrong with ``value`` for the attribute ``name`` (``None`` if nothing): the
        one check that model specs and this class share."""
        if name == "size":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                return f"must be a positive integer (pixels), got {value!r}"
            return None
        valid = CHANNELS if name == "channels" else NORMALIZATIONS
        if value in valid:
            return None
        if name == "normalization" and isinstance(value, str) and "/" in value:
            try:
                custom_stats(value)
            except ValueError as error:
                return f"MEAN/SD {value!r}: {error}"
            return None
        more = (" or MEAN/SD per channel, pixels in [0, 1] (e.g. 0.4914,0.4822,0.4465/0.2470,0.2435,0.2616)"
                if name == "normalization" else "")
        return f"must be one of {', '.join(valid)}{more}, got {value!r}"

    @property
    def n_channels(self):
        return 1 if self.channels == "grey" else 3

    @property
    def greyscale(self):
        return self.channels == "grey"

    def as_dict(self):
        return {"size": int(self.size), "channels": self.channels, "normalization": self.normalization}

    @property
    def fixed_stats(self):
        """Whether the normalisation is a fixed mean and sd (named or MEAN/SD), not the set's."""
        return self.normalization != "set"

    def describe(self):
        norm = {"imagenet": "ImageNet mean/sd", "inception": "scaled to [-1, 1]", "unit": "pixels in [0, 1]",
                "kinetics": "Kinetics-400 mean/sd", "set": "standardised over the set"}.get(
                    self.normalization, f"mean/sd {self.normalization}")
        return f"{self.size} px {'greyscale' if self.greyscale else 'RGB'}, {norm}"

    def token(self):
        """``size=…,channels=…,normalization=…``: the declaration in a stimulus set's identifier."""
        return ",".join(f"{key}={value}" for key, value in self.as_dict().items())

    def _channel_stats(self):
        """Per-channel mean and sd ``(C, 1, 1)`` of a fixed normalisation (grey: their means)."""
        means, sds = CHANNEL_STATS.get(self.normalization) or custom_stats(self.normalization)
        if self.n_channels == 1:
            means, sds = [np.mean(means)], [np.mean(sds)]
        elif len(means) == 1:  # one mean and sd for every channel
            means, sds = means * 3, sds * 3
        return np.asarray(means)[:, None, None], np.asarray(sds)[:, None, None]

    def normalize(self, images, mean=None, sd=None):
        """``images`` float ``(n, C, size, size)`` in [0, 1] (C as declared) -> model input.

        ``mean``/``sd`` override the set's own statistics for ``"set"`` (so that subsets of
        one set share a grey level)."""
        images = np.asarray(images, dtype=np.float64)
        if self.fixed_stats:
            mean_c, sd_c = self._channel_stats()
            out = (images - mean_c) / sd_c
        else:
            mean = images.mean() if mean is None else mean
            sd = images.std() if sd is None else sd
            out = (images - mean) / (sd if sd > 0 else 1.0)
        return out.astype(np.float32)

    def unit_range(self, images):
        """The inverse of :meth:`normalize` for a fixed normalisation: model input ``(n, C, H,
        W)`` -> pixels in [0, 1] (clipped), e.g. to display or save rendered images."""
        if not self.fixed_stats:
            raise WorkbenchError("images standardised over a set cannot be mapped back to [0, 1] "
                                 "without its statistics")
        mean_c, sd_c = self._channel_stats()
        return np.clip(np.asarray(images, dtype=np.float64) * sd_c + mean_c, 0.0, 1.0)

    def channels_of(self, images):
        """``(n, 1 or 3, H, W)`` -> the declared channels (luminance or repeated grey)."""
        if images.shape[1] == self.n_channels:
            return images
        if self.n_channels == 3:
            return np.repeat(images, 3, axis=1)
        weights = np.asarray([0.2125, 0.7154, 0.0721])  # skimage's rgb2gray (ITU-R 709 luma)
        return np.tensordot(images, weights, axes=([1], [0]))[:, None]


@dataclass(frozen=True)
class StimulusSet:
    """Images with ids and metadata.

    Attributes
    ----------
    images : numpy.ndarray
        float32, shape ``(n_stimuli, channels, height, width)``.
    metadata : pandas.DataFrame
        One row per image, in the same order; must contain ``stimulus_id`` (str, unique).
    identifier : str
        Names the set and its preprocessing (goes into provenance and cache keys).
    """

    images: np.ndarray
    metadata: pd.DataFrame
    identifier: str = "stimuli"
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.images.ndim != 4:
            raise WorkbenchError(
                f"stimulus images must be (n, channels, height, width), got shape "
                f"{self.images.shape}"
            )
        if "stimulus_id" not in self.metadata.columns:
            raise WorkbenchError("stimulus metadata needs a 'stimulus_id' column")
        if len(self.metadata) != len(self.images):
            raise WorkbenchError(
                f"{len(self.images)} images but {len(self.metadata)} metadata rows"
            )
        if self.metadata["stimulus_id"].duplicated().any():
            raise WorkbenchError("stimulus_id values must be unique within a stimulus set")

    def __len__(self):
        return len(self.images)

    @property
    def stimulus_ids(self):
        return self.metadata["stimulus_id"].astype(str).to_numpy()

    def subset(self, index):
        """Stimuli at integer positions ``index`` (kept in that order)."""
        index = np.asarray(index)
        return StimulusSet(
            self.images.take(index) if isinstance(self.images, LazyImages) else self.images[index],
            self.metadata.iloc[index].reset_index(drop=True),
            self.identifier,
            dict(self.attrs),
        )


def _nearest(images, size):
    """Nearest-neighbour resize of ``(..., h, w)`` to ``size`` x ``size`` (an integer
    factor repeats pixels exactly: no interpolation artefacts)."""
    h, w = images.shape[-2:]
    if size % h == 0 and size % w == 0:
        return images.repeat(size // h, axis=-2).repeat(size // w, axis=-1)
    rows = np.minimum((np.arange(size) * h) // size, h - 1)
    cols = np.minimum((np.arange(size) * w) // size, w - 1)
    return images[..., rows, :][..., cols]


def digits(n_stimuli=None, size=8, seed=0, preprocessing=None, ids=None):
    """scikit-learn's 1,797 handwritten digits as a stimulus set.

    Parameters
    ----------
    n_stimuli : int, optional
        Draw this many images (seeded, without replacement); all by default.
    size : int
        Output height and width in pixels (nearest-neighbour upsampling from 8 px, so no
        interpolation artefacts). Ignored when ``preprocessing`` is given.
    seed : int
        Seed of the subset draw.
    preprocessing : Preprocessing, optional
        Render for a model's declaration (size, channels, normalisation); default:
        greyscale at ``size``, standardised with the statistics of all 1,797 digits.
    ids : sequence of str, optional
        Render exactly these digits (``"digit_0042"``), in this order, instead of a draw.

    Returns
    -------
    StimulusSet
        Greyscale images ``(n, 1, size, size)`` standardised over the whole set, with
        ``stimulus_id`` ``"digit_0042"`` (the index in scikit-learn's array),
        ``category_name`` and ``object_name`` (the digit as text).
    """
    from sklearn.datasets import load_digits

    if preprocessing is not None and preprocessing.channels == "grey" and preprocessing.normalization == "set":
        size, preprocessing = preprocessing.size, None  # the default rendering, bit for bit
    elif preprocessing is None and size % 8:
        raise WorkbenchError(f"digits size must be a multiple of 8 px, got {size}")
    data = load_digits()
    images = data.images.astype(np.float32) / 16.0
    labels = data.target
    index = np.arange(len(images))
    if ids is not None:
        wanted = [str(i) for i in ids]
        known = {f"digit_{i:04d}": i for i in index}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise WorkbenchError(f"not scikit-learn digits: {unknown[:3]} (ids look like 'digit_0042')")
        index = np.asarray([known[i] for i in wanted], dtype=int)
    elif n_stimuli is not None:
        check_count("n_stimuli", n_stimuli)
        if not 0 < n_stimuli <= len(images):
            raise WorkbenchError(f"n_stimuli must be in 1..{len(images)}, got {n_stimuli}")
        index = np.sort(np.random.default_rng(seed).choice(len(images), n_stimuli, replace=False))
    images = images[index]
    if preprocessing is not None:
        size = preprocessing.size
    images = _nearest(images, size)
    if preprocessing is None:
        # Standardise with the statistics of all digits, so subsets share one grey level.
        images = (images - data.images.mean() / 16.0) / (data.images.std() / 16.0)
        images = images[:, None]
        rendered = f"size={size}"
    else:
        # ink is white on black: the background (0) is the darkest pixel, as in the 8 px set
        images = preprocessing.normalize(preprocessing.channels_of(images[:, None]),
                                         mean=data.images.mean() / 16.0, sd=data.images.std() / 16.0)
        rendered = preprocessing.token()
    metadata = pd.DataFrame(
        {
            "stimulus_id": [f"digit_{i:04d}" for i in index],
            "category_name": [str(labels[i]) for i in index],
            "object_name": [f"digit_{labels[i]}" for i in index],
            "label": labels[index].astype(np.int64),
        }
    )
    return StimulusSet(
        images.astype(np.float32),
        metadata,
        identifier=f"sklearn-digits(n={len(index)},{rendered},seed={seed})",
    )


# Photographs bundled inside the scikit-image wheel (no download needed).
SKIMAGE_IMAGES = ("astronaut", "camera", "cat", "coffee", "coins", "horse", "moon", "page",
                  "rocket", "text")
SKLEARN_IMAGES = ("china.jpg", "flower.jpg")


def _square(image):
    """Centre crop to a square."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def _prepared(image, size, greyscale):
    """An image array (H, W[, C], any dtype) as float ``(C, size, size)`` in [0, 1] before
    standardisation: RGBA -> RGB, greyscale by luminance (or RGB), centre square, resize."""
    from skimage.color import gray2rgb, rgb2gray
    from skimage.transform import resize

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 4:  # RGBA -> RGB
        image = image[..., :3]
    # 8-bit arrays (scikit-image's photographs) / 255; anything else is already in [0, 1]
    # (image files pass through _unit_pixels)
    image = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    if greyscale:
        image = rgb2gray(image) if image.ndim == 3 else image
        image = image[..., None]
    elif image.ndim == 2:
        image = gray2rgb(image)
    image = resize(_square(image), (size, size), anti_aliasing=True)
    return image.transpose(2, 0, 1)


MAX_IMAGE_PIXELS = 100_000_000  # larger images are refused (decompression bombs)


MAX_MEMBER_BYTES = 1 << 30  # an archive member larger than this is refused (a zip bomb?)


class ZipMember:
    """One image inside a ZIP archive: a BrainIO stimulus set ships its images as one, each
    named in the archive by the CSV's ``filename``. Picklable (archive path + member name)."""

    def __init__(self, archive, member):
        self.archive, self.member = Path(archive), member

    @property
    def name(self):
        return self.member.rsplit("/", 1)[-1]

    def __str__(self):
        return f"{self.archive}!{self.member}"

    def read_bytes(self):
        return _zip_archive(self.archive).read(self.member)


def _zip_archive(path):
    """The open archive at ``path``, once per process and version of the file (its central
    directory is read once, not once per image; a rewritten archive is opened again)."""
    stat = Path(path).stat()
    return _open_zip(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _open_zip(path, mtime_ns, size):
    import zipfile

    return zipfile.ZipFile(path)


def _archive_member(name, archive, source):
    """The checked :class:`ZipMember` of one listed image."""
    import posixpath
    import zipfile

    from .errors import DataFormatError
    from .storage import check_regular_file

    check_regular_file(archive, subject="image archive ")
    try:
        members = _zip_archive(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DataFormatError(archive, f"cannot be read as a ZIP archive ({type(error).__name__}: {error})",
                              "is the archive complete?") from None
    member = posixpath.normpath(str(name).replace("\\", "/"))
    try:
        info = members.getinfo(member)
    except KeyError:
        raise DataFormatError(archive, f"has no member {name!r} (listed in {source})",
                              "a BrainIO stimulus set's filename is the image's name inside its ZIP") from None
    if info.is_dir() or info.flag_bits & 0x1 or info.file_size > MAX_MEMBER_BYTES:
        problem = ("is a folder" if info.is_dir() else "is encrypted" if info.flag_bits & 0x1
                   else f"inflates to {info.file_size:,} bytes, over the limit of {MAX_MEMBER_BYTES:,}")
        raise DataFormatError(archive, f"member {member!r} (listed in {source}) {problem}",
                              "store each image as a plain file in the archive")
    return ZipMember(archive, member)


def _is_archive(path):
    return str(path).lower().endswith(".zip")


def _image_file(name, base, source, allow_outside):
    """The checked path of one listed image: inside the set's folder (unless allowed), an
    existing regular file (never a FIFO, device or symbolic-link loop); or a member of the
    set's ZIP archive when ``base`` is one."""
    from pathlib import Path

    from .errors import DataFormatError
    from .storage import check_regular_file

    if control_character_id([str(name)]) is not None:  # a NUL makes every path call raise ValueError
        raise DataFormatError(base, f"image {name!r} listed in {source} holds a control character",
                              "file names must be printable text")
    if _is_archive(base):
        return _archive_member(name, base, source)
    path = Path(name) if Path(name).is_absolute() else base / name
    if not allow_outside:
        try:
            inside = path.resolve().is_relative_to(base.resolve())
        except (OSError, RuntimeError):  # a symbolic-link loop
            inside = False
        if not inside:
            raise DataFormatError(path, f"image listed in {source} lies outside the stimulus set's folder {base}",
                                  "keep images inside it, or pass allow_outside=True if you trust the list")
    check_regular_file(path, subject=f"image listed in {source} ")
    return path


def _read_image(path, source, background=None):
    """Pixels of one image file in [0, 1]; anything the image libraries raise becomes a named
    error. Transparent pixels are composited over ``background`` (a grey level in [0, 1]);
    without one they are an error: what a viewer saw through them is the page's colour, which
    the file does not hold, and the RGB values stored under them are arbitrary."""
    import warnings

    from PIL import Image, ImageOps

    from .errors import DataFormatError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(path.read_bytes()) if isinstance(path, ZipMember) else path) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise ValueError(f"{image.width} x {image.height} pixels is over the limit of "
                                     f"{MAX_IMAGE_PIXELS:,} (a decompression bomb?)")
                image.load()
                # as a browser shows it (jsPsych, psiTurk): camera photographs store their
                # rotation in EXIF, which browsers apply and PIL does not
                image = ImageOps.exif_transpose(image)
                mode, alpha = image.mode, None
                if not mode.startswith(("I", "F")) and (mode in ("RGBA", "LA", "PA", "RGBa", "La")
                                                         or "transparency" in image.info):
                    rgba = np.asarray(image.convert("RGBA"))
                    if (rgba[..., 3] < 255).any():
                        alpha = rgba[..., 3:].astype(np.float64) / 255.0
                    pixels, mode = rgba[..., :3], "RGB"
                else:
                    pixels = np.asarray(image if mode in ("L", "RGB", "F", "I") or mode.startswith("I;16")
                                        else image.convert("RGB"))
    except Exception as error:  # noqa: BLE001 - PIL raises many types on bad files; none may leak
        raise DataFormatError(path, f"image listed in {source} cannot be read ({type(error).__name__}: {error})",
                              "check the file is a complete image (PNG, JPEG, TIFF, ...)") from None
    pixels = _unit_pixels(pixels, mode, path, source)
    if alpha is None:
        return pixels
    if background is None:
        raise DataFormatError(path, f"image listed in {source} has transparent pixels ({np.mean(alpha < 1):.1%} of "
                              "them): what a viewer saw there is the page's background, which the file does not hold",
                              "pass background= (the page's grey level in [0, 1], e.g. 1.0 for white) to "
                              "from_image_files, or save the images without transparency")
    return pixels * alpha + float(background) * (1.0 - alpha)


def _unit_pixels(pixels, mode, path, source):
    """Pixels in [0, 1] on the file's own full scale: 8-bit / 255, 16-bit / 65535, float as
    stored. (Dividing each image by its own maximum, as before, brightened dim images, so
    one set's images were on different scales.)"""
    from .errors import DataFormatError

    if pixels.dtype == np.uint8:
        return pixels.astype(np.float64) / 255.0
    if mode.startswith("I"):  # 16-bit (I;16, I;16B) or 32-bit integers holding 16-bit values
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise DataFormatError(path, f"image listed in {source} holds integers from {pixels.min()} to "
                                  f"{pixels.max()}, outside 16 bits", "save it as an 8- or 16-bit image")
        return pixels.astype(np.float64) / 65535.0
    pixels = pixels.astype(np.float64)  # a float image ("F"): intensities as stored
    if not np.isfinite(pixels).all() or (pixels.size and (pixels.min() < 0 or pixels.max() > 1)):
        raise DataFormatError(path, f"image listed in {source} is a float image with values outside [0, 1] "
                              f"({np.nanmin(pixels):g} to {np.nanmax(pixels):g}, or not finite)",
                              "scale it to [0, 1], or save it as an 8- or 16-bit image")
    return pixels


def _rendered_file(path, source, preprocessing, background=None):
    """One image file at the declared size and channels, in [0, 1] (not yet normalised)."""
    return _prepared(_read_image(path, source, background), preprocessing.size, preprocessing.greyscale)


def image_location(csv, names):
    """Where a stimulus-set CSV's images are: its folder, or the ZIP archive beside it with the
    same name (``hvm.csv`` + ``hvm.zip``: a BrainIO stimulus set as fetched) when the folder
    lacks the first listed file."""
    folder = Path(csv).parent
    archive = Path(csv).with_suffix(".zip")
    first = next((str(n) for n in names if isinstance(n, str) and n.strip()), None)
    if archive.is_file() and first is not None and not (folder / first).exists():
        return archive
    return folder


def from_image_files(stimulus_set, image_dir=None, size=32, greyscale=True, filename_column="filename",
                     allow_outside=False, preprocessing=None, lazy=False, background=None):
    """Images listed in a stimulus set (e.g. a BrainIO stimulus-set CSV), read from disk.

    Parameters
    ----------
    stimulus_set : pandas.DataFrame
        A stimulus-set table with ``stimulus_id`` and ``filename_column``, as
        :func:`data_adapters.load_stimulus_set` returns it (its ``attrs["path"]`` names
        the CSV, whose folder is the default ``image_dir``).
    image_dir : path, optional
        Where relative file names are resolved: a folder, or a ZIP archive whose members the
        names are (a BrainIO stimulus set's images). Default: :func:`image_location` (the
        CSV's folder, or the ZIP beside it with the same name).
    size, greyscale :
        Output height = width and channels, as :func:`natural_images` (the zoo models see
        32 px greyscale).
    allow_outside : bool
        Allow file names that resolve outside ``image_dir`` (absolute paths, ``../``,
        links); refused by default, since a stimulus list may come from anywhere.
    preprocessing : Preprocessing, optional
        A model's declaration (size, channels, normalisation); overrides ``size`` and
        ``greyscale``. Default: standardised over the set.
    lazy : bool
        Render the images batch by batch when they are used (:class:`LazyImages`), so memory
        does not grow with the set: every file is checked now, and read again per batch
        (for ``"set"`` normalisation, once more now for the set's mean and sd).
    background : float in [0, 1], optional
        The grey level of the page the images were shown on (1.0: white). Transparent pixels
        are composited over it, as a browser does; without it an image with transparent
        pixels is an error (opaque images, alpha channel or not, never need it).

    Returns
    -------
    StimulusSet
        Normalised as declared; metadata = the stimulus set's columns.

    Raises
    ------
    DataFormatError
        Naming the file: missing, outside the folder, not a regular file, not an image, or
        over ``MAX_IMAGE_PIXELS``.
    """
    from pathlib import Path

    from .errors import DataFormatError

    if background is not None:  # NaN would composite into NaN pixels; 2.5 past white
        check_interval("background", background, "[0, 1]")
    preprocessing = preprocessing or Preprocessing(size=size, channels="grey" if greyscale else "rgb")
    if not isinstance(stimulus_set, pd.DataFrame):
        # reading the CSV is a data adapter's job (stimuli sit below the adapters' users)
        raise WorkbenchError(f"from_image_files takes a stimulus-set table, got {type(stimulus_set).__name__} "
                             "(fix: from_image_files(data_adapters.load_stimulus_set(path)))")
    source = stimulus_set.attrs.get("path", "stimulus set")
    if filename_column not in stimulus_set.columns:
        raise DataFormatError(source, f"no {filename_column!r} column naming each image file",
                              f"columns are {list(stimulus_set.columns)[:12]}")
    if image_dir is None and "path" in stimulus_set.attrs:
        image_dir = image_location(stimulus_set.attrs["path"], stimulus_set[filename_column])
    base = Path(image_dir or ".")
    names = stimulus_set[filename_column]
    blank = names.isna() | names.astype(str).str.strip().eq("")
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataFormatError(source, f"{int(blank.sum())} row(s) name no image file in {filename_column!r}, the "
                              f"first for stimulus {str(stimulus_set['stimulus_id'].iloc[row])!r}",
                              "every listed stimulus needs its file")
    paths = [_image_file(name, base, source, allow_outside) for name in names.astype(str)]
    if not paths:
        raise DataFormatError(source, "lists no images")
    if background is not None and not (np.isscalar(background) and 0.0 <= float(background) <= 1.0):
        raise WorkbenchError(f"background must be a grey level in [0, 1], got {background!r}")
    rendered = preprocessing.token() + ("" if background is None else f",background={float(background):g}")
    metadata = stimulus_set.reset_index(drop=True).copy()
    if lazy:
        images = LazyImages(paths, preprocessing, source, background=background)
        return StimulusSet(images, metadata, identifier=f"files({source},{rendered},lazy)")
    images = preprocessing.normalize(np.stack([_rendered_file(path, source, preprocessing, background)
                                               for path in paths]))
    return StimulusSet(images, metadata, identifier=f"files({source},{rendered})")


class LazyImages:
    """Image files rendered for a :class:`Preprocessing` when indexed, batch by batch.

    Looks like the ``(n, C, size, size)`` float32 array it stands for (``shape``, ``ndim``,
    ``dtype``, ``len``, indexing by int, slice or integer array, ``np.asarray``), so
    extraction streams a large stimulus set in bounded memory. ``"set"`` normalisation uses
    the whole set's mean and sd, measured in one streaming pass when it is made.
    """

    def __init__(self, paths, preprocessing, source, stats=None, background=None):
        self.paths = [p if isinstance(p, ZipMember) else Path(p) for p in paths]
        self.preprocessing = preprocessing
        self.source = source
        self.background = background
        size = preprocessing.size
        self.shape = (len(self.paths), preprocessing.n_channels, size, size)
        self.ndim, self.dtype = 4, np.dtype(np.float32)
        if stats is None and preprocessing.normalization == "set":
            total = total_sq = count = 0.0
            for path in self.paths:
                raw = self._raw(path)
                total, total_sq, count = total + raw.sum(), total_sq + (raw ** 2).sum(), count + raw.size
            mean = total / count
            stats = (mean, float(np.sqrt(max(total_sq / count - mean ** 2, 0.0))))
        self.stats = stats or (None, None)

    def _raw(self, path):
        return _rendered_file(path, self.source, self.preprocessing, self.background)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        chosen = np.arange(len(self))[index]
        if np.ndim(chosen) == 0:
            return self[[int(chosen)]][0]
        raw = np.stack([self._raw(self.paths[i]) for i in chosen]) if len(chosen) else np.empty((0,) + self.shape[1:])
        mean, sd = self.stats
        return self.preprocessing.normalize(raw, mean=mean, sd=sd)

    def __array__(self, dtype=None, copy=None):
        images = self[:]
        return images if dtype is None else images.astype(dtype)

    def take(self, index):
        """A lazy subset (the same normalisation statistics)."""
        return LazyImages([self.paths[i] for i in np.asarray(index).reshape(-1)], self.preprocessing, self.source,
                          stats=self.stats, background=self.background)

    def content_digest(self):
        """Hash of what the rendered images depend on: every file's bytes, the preprocessing,
        the normalisation statistics, the code that decodes and resizes them and the versions
        of the libraries it calls (for cache keys, without rendering; a change of decoding, such
        as applying EXIF orientation, must not leave a cached extraction of the old pixels)."""
        import PIL
        import skimage

        from .keys import ContentKey

        key = ContentKey({"preprocessing": self.preprocessing.as_dict(), "stats": list(map(str, self.stats)),
                          "background": self.background,
                          "versions": {"pillow": PIL.__version__, "scikit-image": skimage.__version__}})
        key.source("rendering", _read_image)
        for path in self.paths:
            if isinstance(path, ZipMember):
                key.bytes(path.member, path.read_bytes())
            else:
                key.file(path.name, path)
        return key.hexdigest()


def natural_images(size=64, greyscale=True, sources=("sklearn", "skimage")):
    """Natural photographs that ship with scikit-learn and scikit-image.

    Parameters
    ----------
    size : int
        Output height = width in pixels (centre crop to a square, then anti-aliased resize).
    greyscale : bool
        Luminance (ITU-R 601-2 weights) in one channel; else three RGB channels (greyscale
        originals are repeated).
    sources : tuple of {"sklearn", "skimage"}

    Returns
    -------
    StimulusSet
        ``stimulus_id`` ``"<source>_<name>"``, ``image_set`` (the source), standardised over
        the set (0 is the mean grey).
    """
    from skimage import data as skdata

    unknown = set(sources) - {"sklearn", "skimage"}
    if unknown or not sources:
        raise WorkbenchError(f"sources must be among ('sklearn', 'skimage'), got {sources}")
    if size < 8:
        raise WorkbenchError(f"size must be >= 8 px, got {size}")
    named = []
    if "sklearn" in sources:
        from sklearn.datasets import load_sample_image

        named += [("sklearn", name.removesuffix(".jpg"), load_sample_image(name)) for name in SKLEARN_IMAGES]
    if "skimage" in sources:
        named += [("skimage", name, getattr(skdata, name)()) for name in SKIMAGE_IMAGES]
    images = [_prepared(image, size, greyscale) for _, _, image in named]
    images = np.stack(images)
    images = ((images - images.mean()) / images.std()).astype(np.float32)
    metadata = pd.DataFrame({"stimulus_id": [f"{source}_{name}" for source, name, _ in named],
                             "image_set": [source for source, _, _ in named],
                             "object_name": [name for _, name, _ in named]})
    return StimulusSet(images, metadata,
                       identifier=f"natural-images(size={size},greyscale={greyscale},sources={','.join(sources)})")


def blur(stimulus_set, level_percent):
    """Gaussian-blurred copies (Abdelhack & Kamitani 2018 blur levels, e.g. 6, 12, 25 %).

    Parameters
    ----------
    stimulus_set : StimulusSet
    level_percent : float
        Gaussian sigma as a percentage of the image width; 0 returns the set unchanged.

    Returns
    -------
    StimulusSet
        Same order; ``stimulus_id`` ``"<id>_blur_<level>"`` (the clean id is kept in
        ``source_id``), ``condition`` ``"blur_<level>"``, ``blur_level`` in %. Pixels
        beyond the border count as grey (0), the background of every stimulus.
    """
    from scipy.ndimage import gaussian_filter

    if level_percent < 0:
        raise WorkbenchError(f"blur level must be >= 0 %, got {level_percent}")
    if level_percent == 0:
        return stimulus_set
    metadata = stimulus_set.metadata.copy()
    sigma = level_percent / 100.0 * stimulus_set.images.shape[-1]
    images = gaussian_filter(stimulus_set.images, sigma=(0, 0, sigma, sigma), mode="constant", cval=0.0)
    condition = f"blur_{level_percent:g}"
    metadata["source_id"] = metadata["stimulus_id"].astype(str)
    metadata["stimulus_id"] = metadata["source_id"] + "_" + condition
    metadata["condition"] = condition
    metadata["blur_level"] = float(level_percent)
    return StimulusSet(images.astype(np.float32), metadata,
                       identifier=f"{stimulus_set.identifier}|blur({level_percent:g}%)",
                       attrs=dict(stimulus_set.attrs))
