"""Characters rendered from the fonts that ship with matplotlib.

Digits at 8 px are too coarse for some effects (pixel noise on them is averaged away by the
first convolution; their 10 classes are few). :func:`characters` renders any glyphs (by
default the 26 capital Latin letters) in several typefaces at any resolution, with the same
three variation levels of position, size and in-plane rotation as the HvM-style objects
(:mod:`workbench.object_stimuli`), so a set can be as easy or as hard as an analysis needs.
The fonts (DejaVu, STIX, Computer Modern) are files inside matplotlib's own package, rendered
with its bundled FreeType: nothing is downloaded, and the FreeType version is part of the
set's identifier (a different rasteriser may move edge pixels).

Images are white glyphs on black, anti-aliased (drawn at four times the size, then reduced
with a box filter). Metadata: ``category_name`` = the glyph, ``object_name`` = glyph and
font, ``font``, ``variation`` (0, 3, 6), ``ty``/``tz`` (position, in half image widths),
``s`` (size factor), ``rxy`` (rotation, degrees) and ``label`` (the glyph's index).
"""

import functools
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import WorkbenchError
from .stimuli import Preprocessing, StimulusSet

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: typeface name -> file in matplotlib's ``fonts/ttf`` folder
FONTS = {
    "dejavu-sans": "DejaVuSans.ttf",
    "dejavu-sans-bold": "DejaVuSans-Bold.ttf",
    "dejavu-sans-oblique": "DejaVuSans-Oblique.ttf",
    "dejavu-serif": "DejaVuSerif.ttf",
    "dejavu-serif-italic": "DejaVuSerif-Italic.ttf",
    "dejavu-sans-mono": "DejaVuSansMono.ttf",
    "stix": "STIXGeneral.ttf",
    "computer-modern": "cmr10.ttf",
}
#: position (half image widths), size factor range and rotation (degrees) per level; rotations
#: stay within 30 degrees so that no letter turns into another (N / Z, M / W)
VARIATION_RANGES = {
    0: {"t": 0.0, "s": (1.0, 1.0), "rxy": 0.0},
    3: {"t": 0.15, "s": (0.8, 1.15), "rxy": 15.0},
    6: {"t": 0.3, "s": (0.6, 1.3), "rxy": 30.0},
}
BASE_SIZE = 0.6  # the glyph's larger ink extent as a fraction of the image width at s = 1
SUPERSAMPLE = 4
# Pixel mean and sd of the default set (26 letters x 8 fonts x levels 0, 3, 6, 32 px),
# measured once: "set" standardisation uses them, so every subset shares one grey level.
SET_MEAN, SET_SD = 0.1001, 0.2724
_FACE_LOCK = threading.Lock()  # a FreeType face holds one size and text at a time


def characters(glyphs=LETTERS, fonts=tuple(FONTS), n_per_glyph=1, variations=(0, 3, 6), size=32, seed=0,
               preprocessing=None, ids=None):
    """Glyphs x fonts x variation levels, rendered.

    Parameters
    ----------
    glyphs : str
        The characters (each one a category), e.g. ``"ABC"`` or ``"0123456789"``.
    fonts : sequence of str
        Keys of :data:`FONTS`.
    n_per_glyph : int
        Images per glyph, font and variation level (each with its own pose).
    variations : tuple of {0, 3, 6}
    size : int
        Height = width in pixels (ignored when ``preprocessing`` is given).
    seed : int
        Seed of the poses.
    preprocessing : workbench.stimuli.Preprocessing, optional
        A model's declaration; default: greyscale at ``size``, standardised with the default
        set's statistics.
    ids : collection of str, optional
        Render only these (poses are drawn for all, so an image is the same whichever others
        are rendered); the set's order.

    Returns
    -------
    StimulusSet
        Images ``(n, channels, size, size)`` float32; ``stimulus_id``
        ``"char_<glyph>_<font>_v<level>_<i>"`` (a glyph that is not an ASCII letter or digit
        is written as ``u<code point>``).
    """
    glyphs, fonts, variations = _checked(glyphs, fonts, n_per_glyph, variations)
    preprocessing = preprocessing or Preprocessing(size=size, channels="grey")
    size = preprocessing.size
    rng = np.random.default_rng(seed)
    wanted = set(map(str, ids)) if ids is not None else None
    rows, images = [], []
    for level in variations:
        ranges = VARIATION_RANGES[level]
        for label, glyph in enumerate(glyphs):
            for font in fonts:
                for i in range(n_per_glyph):
                    pose = {"ty": rng.uniform(-1, 1) * ranges["t"], "tz": rng.uniform(-1, 1) * ranges["t"],
                            "s": rng.uniform(*ranges["s"]), "rxy": rng.uniform(-1, 1) * ranges["rxy"]}
                    pose = {key: float(value) + 0.0 for key, value in pose.items()}  # no -0.0 at level 0
                    stimulus_id = f"char_{_glyph_name(glyph)}_{font}_v{level}_{i}"
                    if wanted is not None and stimulus_id not in wanted:
                        continue
                    images.append(_render(glyph, font, size, pose))
                    rows.append({"stimulus_id": stimulus_id, "category_name": glyph,
                                 "object_name": f"{glyph}_{font}", "font": font, "variation": level,
                                 **pose, "label": label})
    if wanted is not None and len(rows) < len(wanted):
        missing = sorted(wanted - {row["stimulus_id"] for row in rows})
        raise WorkbenchError(f"not in this character set: {missing[:3]} (glyphs={glyphs!r}, "
                             f"n_per_glyph={n_per_glyph}, variations={list(variations)})")
    if not images:
        raise WorkbenchError("no character stimuli requested (ids is empty)")
    raw = np.stack(images)[:, None]
    rendered = preprocessing.normalize(preprocessing.channels_of(raw), mean=SET_MEAN, sd=SET_SD)
    from matplotlib import ft2font

    return StimulusSet(rendered, pd.DataFrame(rows),
                       identifier=f"characters(glyphs={glyphs},fonts={list(fonts)},n_per_glyph={n_per_glyph},"
                                  f"variations={list(variations)},{preprocessing.token()},seed={seed},"
                                  f"freetype={ft2font.__freetype_version__})")


def _checked(glyphs, fonts, n_per_glyph, variations):
    if not isinstance(glyphs, str) or not glyphs:
        raise WorkbenchError(f"glyphs must be a non-empty string of characters, got {glyphs!r}")
    if len(set(glyphs)) != len(glyphs):
        raise WorkbenchError(f"glyphs repeat a character: {glyphs!r}")
    if any(not g.isprintable() or g.isspace() for g in glyphs):
        raise WorkbenchError(f"glyphs must be visible characters, got {glyphs!r}")
    fonts = tuple(fonts)
    unknown = [f for f in fonts if f not in FONTS]
    if unknown or not fonts:
        raise WorkbenchError(f"unknown fonts {unknown} (available: {', '.join(FONTS)})")
    if isinstance(n_per_glyph, bool) or not isinstance(n_per_glyph, (int, np.integer)) or n_per_glyph < 1:
        raise WorkbenchError(f"n_per_glyph must be a positive integer, got {n_per_glyph!r}")
    variations = tuple(variations)
    if not variations or set(variations) - set(VARIATION_RANGES):
        raise WorkbenchError(f"variations must be among {sorted(VARIATION_RANGES)}, got {variations}")
    for font in fonts:
        face = _face(font)
        missing = [g for g in glyphs if face.get_char_index(ord(g)) == 0]
        if missing:
            raise WorkbenchError(f"font {font!r} has no glyph for {''.join(missing)!r}; choose other fonts")
    return glyphs, fonts, variations


def _glyph_name(glyph):
    return glyph if glyph.isascii() and glyph.isalnum() else f"u{ord(glyph):04x}"


@functools.lru_cache(maxsize=None)
def _face(font):
    import matplotlib
    from matplotlib.ft2font import FT2Font

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONTS[font]
    if not path.is_file():
        raise WorkbenchError(f"font file {path} is missing from this matplotlib installation "
                             f"(fix: pip install --force-reinstall matplotlib, or choose other fonts)")
    return FT2Font(str(path))


@functools.lru_cache(maxsize=4096)
def _ink(glyph, font, pixels):
    """The glyph's anti-aliased coverage in [0, 1], cropped to its ink, at ``pixels`` per em."""
    face = _face(font)
    with _FACE_LOCK:
        face.set_size(pixels, 72)  # 72 dpi: points are pixels
        face.set_text(glyph, 0.0)
        face.draw_glyphs_to_bitmap(antialiased=True)
        bitmap = np.asarray(face.get_image(), dtype=np.float64) / 255.0
    rows, columns = np.flatnonzero(bitmap.any(1)), np.flatnonzero(bitmap.any(0))
    if not len(rows):
        raise WorkbenchError(f"glyph {glyph!r} of font {font!r} has no ink")
    return bitmap[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def _render(glyph, font, size, pose):
    """One greyscale image ``(size, size)`` in [0, 1]: the glyph's ink scaled so that its
    larger extent is ``BASE_SIZE * s`` of the width, rotated, centred at ``(ty, tz)``."""
    from PIL import Image

    big = size * SUPERSAMPLE
    ink = _ink(glyph, font, 2 * big)
    extent = BASE_SIZE * pose["s"] * big
    scale = extent / max(ink.shape)
    shape = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    glyph_image = Image.fromarray((ink * 255).astype(np.uint8)).resize(shape, Image.Resampling.LANCZOS)
    glyph_image = glyph_image.rotate(pose["rxy"], resample=Image.Resampling.BICUBIC, expand=True)
    canvas = Image.new("L", (big, big), 0)
    x = round(big / 2 * (1 + pose["ty"]) - glyph_image.width / 2)
    y = round(big / 2 * (1 + pose["tz"]) - glyph_image.height / 2)
    canvas.paste(glyph_image, (x, y))
    reduced = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(reduced, dtype=np.float64) / 255.0
