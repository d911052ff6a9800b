"""Letters rendered from matplotlib's fonts: what the set holds, that its images are the
glyphs (a nearest-template reader names the letter of every centred image), that poses and
subsets are reproducible, and the errors for what cannot be rendered."""

import numpy as np
import pytest

from workbench import WorkbenchError
from workbench.character_stimuli import FONTS, LETTERS, characters
from workbench.stimuli import Preprocessing


def test_the_default_set_is_every_letter_in_every_font_at_three_levels():
    shown = characters()
    meta = shown.metadata
    assert shown.images.shape == (26 * 8 * 3, 1, 32, 32) and shown.images.dtype == np.float32
    assert set(meta["category_name"]) == set(LETTERS) and set(meta["font"]) == set(FONTS)
    assert sorted(meta["variation"].unique()) == [0, 3, 6]
    assert (meta["label"] == meta["category_name"].map(LETTERS.index)).all()
    level0 = meta["variation"] == 0
    assert (meta.loc[level0, ["ty", "tz", "rxy"]] == 0).all().all() and (meta.loc[level0, "s"] == 1).all()
    assert meta.loc[meta["variation"] == 6, "rxy"].abs().max() > 15  # level 6 rotates more than level 3 can
    # "set" standardisation with the default set's measured statistics: mean 0, sd 1 over it
    assert abs(float(shown.images.mean())) < 0.02 and abs(float(shown.images.std()) - 1) < 0.02
    assert "freetype=" in shown.identifier


def test_centred_glyphs_are_read_back_by_the_nearest_template_of_another_font():
    """The images are the letters: nearly every letter in DejaVu Sans is closest
    (correlation) to the same letter in DejaVu Sans Bold, among all 26 (measured: all but P,
    read as F; chance is 1 in 26, and a wrong or blank rendering fails)."""
    plain = characters(fonts=["dejavu-sans"], variations=(0,)).images.reshape(26, -1)
    bold = characters(fonts=["dejavu-sans-bold"], variations=(0,)).images.reshape(26, -1)
    z = lambda x: (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)  # noqa: E731
    similarity = z(plain) @ z(bold).T / plain.shape[1]
    assert (similarity.argmax(1) == np.arange(26)).sum() >= 24


def test_poses_subsets_and_sizes_are_reproducible():
    full = characters(glyphs="AB", n_per_glyph=2, seed=3)
    again = characters(glyphs="AB", n_per_glyph=2, seed=3)
    np.testing.assert_array_equal(full.images, again.images)
    wanted = list(full.stimulus_ids[[5, 17]])
    chosen = characters(glyphs="AB", n_per_glyph=2, seed=3, ids=wanted)
    np.testing.assert_array_equal(chosen.images, full.images[[5, 17]])
    assert not np.array_equal(characters(glyphs="AB", n_per_glyph=2, seed=4).images, full.images)
    rgb = characters(glyphs="AB", variations=(0,), preprocessing=Preprocessing(size=64, channels="rgb"))
    assert rgb.images.shape == (16, 3, 64, 64)
    # non-letters get ids by code point
    assert characters(glyphs="7?", fonts=["stix"], variations=(0,)).stimulus_ids[1] == "char_u003f_stix_v0_0"


@pytest.mark.parametrize("arguments,words", [
    ({"glyphs": "AA"}, "repeat"), ({"glyphs": ""}, "non-empty"), ({"glyphs": "A B"}, "visible"),
    ({"fonts": ["comic-sans"]}, "unknown fonts"), ({"n_per_glyph": 0}, "positive integer"),
    ({"variations": (1,)}, "variations must be"), ({"glyphs": "\u6f22", "fonts": ["computer-modern"]}, "has no glyph"),
    ({"ids": ["char_A_stix_v0_9"]}, "not in this character set"),
])
def test_what_cannot_be_rendered_is_a_named_error(arguments, words):
    with pytest.raises(WorkbenchError, match=words):
        characters(**arguments)

