"""Declared preprocessing (size, channels, normalisation) and the HvM-style object set."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from workbench import WorkbenchError
from workbench.object_stimuli import CATEGORIES, object_ids, objects
from workbench.stimuli import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, digits, from_image_files

IMAGENET = Preprocessing(size=48, channels="rgb", normalization="imagenet")


@pytest.mark.parametrize("kwargs, match", [({"size": 0}, "size"), ({"channels": "bgr"}, "channels"),
                                           ({"normalization": "zscore"}, "normalization")])
def test_preprocessing_is_validated(kwargs, match):
    with pytest.raises(WorkbenchError, match=match):
        Preprocessing(**kwargs)


def test_digits_rendered_for_an_imagenet_model():
    shown = digits(5, seed=3, preprocessing=IMAGENET)
    assert shown.images.shape == (5, 3, 48, 48)
    # the background (ink 0) is exactly (0 - mean) / sd in each channel; the channels are copies
    corner = shown.images[:, :, 0, 0]
    np.testing.assert_allclose(corner, np.tile(-np.asarray(IMAGENET_MEAN) / IMAGENET_STD, (5, 1)), rtol=1e-6)
    raw = shown.images * np.asarray(IMAGENET_STD)[:, None, None] + np.asarray(IMAGENET_MEAN)[:, None, None]
    np.testing.assert_allclose(raw[:, 0], raw[:, 2], atol=1e-6)
    assert raw.min() >= -1e-6 and raw.max() <= 1 + 1e-6
    assert "size=48" in shown.identifier and "imagenet" in shown.identifier
    inception = digits(5, seed=3, preprocessing=Preprocessing(48, "rgb", "inception"))
    assert inception.images.min() == -1.0 and inception.images.max() <= 1.0  # [-1, 1]: ink 0 -> -1
    # "unit": ToTensor() without Normalize: the pixels in [0, 1] as they are, grey or RGB
    unit = digits(5, seed=3, preprocessing=Preprocessing(48, "rgb", "unit"))
    np.testing.assert_allclose(unit.images, raw, atol=1e-6)
    grey = digits(5, seed=3, preprocessing=Preprocessing(48, "grey", "unit"))
    np.testing.assert_allclose(grey.images[:, 0], raw[:, 0], atol=1e-6)
    assert Preprocessing(48, "grey", "unit").describe() == "48 px greyscale, pixels in [0, 1]"


def test_the_zoo_default_is_bit_identical_and_ids_render_a_chosen_subset():
    np.testing.assert_array_equal(digits(7, size=32, seed=1).images,
                                  digits(7, seed=1, preprocessing=Preprocessing()).images)
    full = digits(size=16)
    chosen = digits(ids=["digit_0005", "digit_0002"], size=16)
    np.testing.assert_array_equal(chosen.images, full.images[[5, 2]])
    with pytest.raises(WorkbenchError, match="not scikit-learn digits"):
        digits(ids=["cat"])


def test_image_files_are_rendered_as_declared(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    table = pd.DataFrame({"stimulus_id": ["a", "b"], "filename": ["a.png", "b.png"]})
    table.attrs["path"] = str(tmp_path / "set.csv")
    rgb = from_image_files(table, preprocessing=IMAGENET)
    grey = from_image_files(table, preprocessing=Preprocessing(size=16))
    assert rgb.images.shape == (2, 3, 48, 48) and grey.images.shape == (2, 1, 16, 16)
    assert abs(grey.images.mean()) < 1e-5 and abs(grey.images.std() - 1) < 1e-4  # standardised over the set
    raw = rgb.images * np.asarray(IMAGENET_STD)[:, None, None] + np.asarray(IMAGENET_MEAN)[:, None, None]
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5 and raw[:, 0].std() > 0.1


def test_objects_have_hvm_metadata_and_render_alike_at_any_resolution_and_subset():
    small = objects(n_per_object=1, variations=(0, 6), size=32, seed=0)
    assert len(small) == 2 * len(CATEGORIES) * 8
    columns = {"stimulus_id", "category_name", "object_name", "variation", "ty", "tz", "s", "rxy", "rxz", "ryz",
               "background_id"}
    assert columns <= set(small.metadata.columns)
    v0 = small.metadata[small.metadata.variation == 0]
    assert (v0[["ty", "tz", "rxy", "rxz", "ryz"]] == 0).all().all() and (v0.s == 1).all()
    v6 = small.metadata[small.metadata.variation == 6]
    assert v6.rxy.abs().max() > 45 and v6.ty.abs().max() > 0.3
    large = objects(n_per_object=1, variations=(0, 6), size=64, seed=0)
    pd.testing.assert_frame_equal(small.metadata, large.metadata)  # same poses and backgrounds
    chosen = objects(n_per_object=1, variations=(0, 6), size=32, seed=0, ids=list(small.stimulus_ids[[3, 40]]))
    np.testing.assert_allclose(chosen.images, small.images[[3, 40]], atol=1e-6)
    again = objects(n_per_object=1, variations=(0, 6), size=32, seed=0)
    np.testing.assert_array_equal(again.images, small.images)
    assert object_ids(n_per_object=1, variations=(0, 6)) == list(small.stimulus_ids)  # without rendering
    # an object differs from its background: the centre of a V0 image is the object's colour
    assert small.images.shape[1] == 3 and np.ptp(small.images[0, :, 16, 16]) > 0


def test_a_simulated_recordings_objects_are_a_seeded_subset_of_the_full_set():
    """The simulator renders only the objects it keeps; they are the images (and ids, in
    order) of rendering the whole set and taking the seeded subset."""
    from workbench.simulators.macaque import embedded_stimuli

    shown = embedded_stimuli("objects", 40, seed=3)
    full = objects(n_per_object=1, seed=3, preprocessing=Preprocessing(size=32))
    keep = np.sort(np.random.default_rng(3).choice(len(full), 40, replace=False))
    assert list(shown.stimulus_ids) == list(full.stimulus_ids[keep])
    np.testing.assert_allclose(shown.images, full.images[keep], atol=1e-6)
    pd.testing.assert_frame_equal(shown.metadata[["stimulus_id", "background_id", "s"]],
                                  full.metadata.iloc[keep].reset_index(drop=True)[["stimulus_id", "background_id", "s"]])


def test_objects_reject_bad_arguments():
    with pytest.raises(WorkbenchError, match="variations"):
        objects(variations=(1,))
    with pytest.raises(WorkbenchError, match="not in this object set"):
        objects(size=16, ids=["obj_box_0_v0_0", "obj_box_0_v0_9"])


def test_lazy_image_files_render_batch_by_batch_like_the_eager_set(tmp_path):
    from workbench.models import PresentationProtocol, extract
    from workbench.models.cache import cache_key

    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    table = pd.DataFrame({"stimulus_id": [f"s{i}" for i in range(5)], "filename": [f"{i}.png" for i in range(5)]})
    table.attrs["path"] = str(tmp_path / "set.csv")
    for declared in (Preprocessing(size=16), IMAGENET):
        eager = from_image_files(table, preprocessing=declared)
        lazy = from_image_files(table, preprocessing=declared, lazy=True)
        assert lazy.images.shape == eager.images.shape and len(lazy) == 5
        np.testing.assert_allclose(lazy.images[1:4], eager.images[1:4], atol=1e-5)
        np.testing.assert_allclose(lazy.subset([4, 0]).images[[0, 1]], eager.images[[4, 0]], atol=1e-5)
        np.testing.assert_allclose(np.asarray(lazy.images), eager.images, atol=1e-5)
    protocol = PresentationProtocol(2, 1)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3))
    eager_acts = extract(model, eager, layers=["0"], protocol=protocol, progress=False, batch_size=2)
    lazy_acts = extract(model, lazy, layers=["0"], protocol=protocol, progress=False, batch_size=2)
    np.testing.assert_allclose(lazy_acts.values, eager_acts.values, atol=1e-4)
    # the cache key hashes the files: replacing one is a new key, re-rendering the same is not
    before = cache_key(model, lazy, protocol, ["0"])
    assert cache_key(model, from_image_files(table, preprocessing=IMAGENET, lazy=True), protocol, ["0"]) == before
    (tmp_path / "2.png").write_bytes((tmp_path / "3.png").read_bytes())
    assert cache_key(model, from_image_files(table, preprocessing=IMAGENET, lazy=True), protocol, ["0"]) != before


def test_unit_range_inverts_a_fixed_normalisation_only():
    shown = digits(3, seed=0, preprocessing=IMAGENET)
    raw = IMAGENET.unit_range(shown.images)
    np.testing.assert_allclose(IMAGENET.normalize(raw), shown.images, atol=1e-5)
    assert raw.min() >= 0 and raw.max() <= 1
    with pytest.raises(WorkbenchError, match="cannot be mapped back"):
        Preprocessing().unit_range(shown.images[:, :1])


def test_image_files_keep_their_own_scale_whatever_their_bit_depth(tmp_path):
    """A dim 16-bit PNG (max 20,000 of 65,535) was divided by its own maximum and came out
    as bright as a full-range image; it now matches the same picture saved in 8 bits. Float
    images outside [0, 1] and 32-bit integers beyond 16 bits are named errors."""
    from PIL import Image

    from workbench.errors import DataFormatError

    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64) * 20000 / 65535
    Image.fromarray(np.round(ramp * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.round(ramp * 255).astype(np.uint8)).save(tmp_path / "shallow.png")
    Image.fromarray((ramp * 5).astype(np.float32)).save(tmp_path / "float.tiff")  # up to 1.53
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32)).save(tmp_path / "wide.tiff")
    table = pd.DataFrame({"stimulus_id": ["deep", "shallow"], "filename": ["deep.png", "shallow.png"]})
    shown = from_image_files(table, image_dir=tmp_path, preprocessing=Preprocessing(size=16, normalization="imagenet"))
    unit = Preprocessing(size=16, normalization="imagenet").unit_range(shown.images)
    assert unit[0].max() == pytest.approx(20000 / 65535, abs=0.01)
    np.testing.assert_allclose(unit[0], unit[1], atol=0.01)
    for name, words in (("float.tiff", "outside \\[0, 1\\]"), ("wide.tiff", "outside 16 bits")):
        with pytest.raises(DataFormatError, match=words):
            from_image_files(pd.DataFrame({"stimulus_id": ["x"], "filename": [name]}), image_dir=tmp_path)


def test_image_files_are_read_as_a_browser_shows_them(tmp_path):
    """A camera JPEG stores its rotation in EXIF; browsers (where jsPsych and psiTurk show
    the images) apply it and PIL does not: a model must see what participants saw."""
    from workbench.stimuli import _read_image

    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255  # a wide image, white on the left
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: shown rotated 90 degrees clockwise
    image.save(tmp_path / "camera.jpg", exif=exif.tobytes(), quality=95)
    shown = _read_image(tmp_path / "camera.jpg", "test")
    assert shown.shape == (40, 20, 3)  # tall, as displayed
    assert shown[:8].mean() > 0.9 and shown[-8:].mean() < 0.1  # the white strip is now on top


def test_transparent_pixels_show_the_page_not_the_hidden_colours(tmp_path):
    """A cut-out object in a PNG is seen over the page's background. Its alpha channel was
    dropped, so the model saw the RGB values stored under transparent pixels (here red),
    which no participant saw."""
    from workbench.errors import DataFormatError

    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., 0] = 255  # red everywhere, but only the centre is opaque and white
    pixels[2:6, 2:6] = 255
    Image.fromarray(pixels, "RGBA").save(tmp_path / "cutout.png")
    Image.fromarray(np.full((8, 8, 4), 90, np.uint8), "RGBA").save(tmp_path / "translucent.png")
    opaque = np.full((8, 8, 4), 200, np.uint8)
    opaque[..., 3] = 255
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    palette = Image.fromarray(np.where(np.arange(64).reshape(8, 8) < 32, 1, 0).astype(np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.save(tmp_path / "palette.png", transparency=0)  # index 0 (red) is transparent
    table = pd.DataFrame({"stimulus_id": ["c", "t", "o", "p"],
                          "filename": ["cutout.png", "translucent.png", "opaque.png", "palette.png"]})
    with pytest.raises(DataFormatError, match="cutout.png.*transparent pixels \\(75.0% of them\\).*background="):
        from_image_files(table, image_dir=tmp_path, size=8, greyscale=False)
    fixed = Preprocessing(size=8, channels="rgb", normalization="imagenet")
    pixels_of = lambda stimuli: fixed.unit_range(np.asarray(stimuli.images))  # noqa: E731
    shown = pixels_of(from_image_files(table, image_dir=tmp_path, preprocessing=fixed, background=1.0))
    assert np.allclose(shown[0][:, 2:6, 2:6], 1.0, atol=1e-5) and np.allclose(shown[0][:, :2], 1.0, atol=1e-5)
    assert np.allclose(shown[1], 90 / 255 * 90 / 255 + (1 - 90 / 255), atol=1e-5)  # alpha-blended
    assert np.allclose(shown[2], 200 / 255, atol=1e-5)  # opaque: the alpha channel changes nothing
    assert np.allclose(shown[3][:, :4], [[[0]], [[0]], [[1]]], atol=1e-5) and np.allclose(shown[3][:, 4:], 1.0)
    black = from_image_files(table, image_dir=tmp_path, preprocessing=fixed, background=0.0)
    assert np.allclose(pixels_of(black)[0][:, :2], 0.0, atol=1e-5) and black.identifier != from_image_files(
        table, image_dir=tmp_path, preprocessing=fixed, background=1.0).identifier
    lazy = from_image_files(table, image_dir=tmp_path, preprocessing=fixed, background=0.0, lazy=True)
    np.testing.assert_allclose(np.asarray(lazy.images.take([0, 3])), black.images[[0, 3]], atol=1e-6)
    assert lazy.images.content_digest() != from_image_files(
        table, image_dir=tmp_path, preprocessing=fixed, background=1.0, lazy=True).images.content_digest()


def test_the_cache_digest_of_image_files_covers_the_code_that_decodes_them(tmp_path, monkeypatch):
    """Lazily rendered files are keyed by their bytes, not by a rendering: the key must also
    cover the decoding code and the libraries' versions, or a fix such as applying EXIF
    orientation would leave stale cached extractions of the old pixels."""
    from workbench import keys

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    table = pd.DataFrame({"stimulus_id": ["a"], "filename": ["a.png"]})
    lazy = from_image_files(table, image_dir=tmp_path, size=8, lazy=True)
    hashed = []
    original = keys.ContentKey.file
    monkeypatch.setattr(keys.ContentKey, "file", lambda self, label, path: (hashed.append(label), original(self, label, path))[1])
    digest = lazy.images.content_digest()
    assert "rendering:workbench.stimuli" in hashed and "a.png" in hashed
    monkeypatch.setattr("PIL.__version__", "0.0")
    assert lazy.images.content_digest() != digest


def test_a_brainio_stimulus_set_reads_its_images_from_the_zip_beside_its_csv(tmp_path):
    """BrainIO ships a stimulus set as a CSV and a ZIP whose members the ``filename`` column
    names; the images need not be extracted."""
    import zipfile

    import data_adapters
    from workbench.errors import DataFormatError

    rng = np.random.default_rng(0)
    folder = tmp_path / "extracted"
    folder.mkdir()
    names = ["n0.png", "sub/n1.png", "n2.png"]
    with zipfile.ZipFile(tmp_path / "image_test_set.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            (folder / name).parent.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / name)
            archive.write(folder / name, name)
    pd.DataFrame({"stimulus_id": ["a", "b", "c"], "filename": names}).to_csv(tmp_path / "image_test_set.csv", index=False)
    table = data_adapters.load_stimulus_set(tmp_path / "image_test_set.csv")
    from_zip = from_image_files(table, size=16)
    from_folder = from_image_files(table, image_dir=folder, size=16)
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    lazy = from_image_files(table, size=16, lazy=True)
    np.testing.assert_array_equal(np.asarray(lazy.images), from_folder.images)
    digest = lazy.images.content_digest()
    with zipfile.ZipFile(tmp_path / "image_test_set.zip", "a") as archive:  # a replaced image: a new key
        archive.writestr("n2.png", (folder / "n0.png").read_bytes())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        assert from_image_files(table, size=16, lazy=True).images.content_digest() != digest
    bad = table.assign(filename=["n0.png", "missing.png", "n2.png"])
    with pytest.raises(DataFormatError, match="image_test_set.zip: has no member 'missing.png'"):
        from_image_files(bad, image_dir=tmp_path / "image_test_set.zip")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataFormatError, match="broken.zip: cannot be read as a ZIP archive"):
        from_image_files(table, image_dir=tmp_path / "broken.zip")
    raw = bytearray((tmp_path / "image_test_set.zip").read_bytes())
    start = raw.find(b"PK\x03\x04") + 30 + len("n0.png")  # n0.png's deflated bytes
    raw[start:start + 8] = b"\xff" * 8
    (tmp_path / "damaged.zip").write_bytes(bytes(raw))
    with pytest.raises(DataFormatError, match="damaged.zip!n0.png: image listed in .* cannot be read"):
        from_image_files(table, image_dir=tmp_path / "damaged.zip")
