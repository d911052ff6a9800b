"""The format a file is read as, and whether an option applies to it, known from the file's head
before any data is read (a report config is checked so)."""

import pytest

import data_adapters
from workbench import DataFormatError


@pytest.mark.parametrize("relative, name", [
    ("brainio/assy_test_TestMe.nc", "brainio"), ("bdata/sample_vmap.h5", "bdata"), ("fmri_epi", "nifti"),
    ("hvm/hvm_stimulus_metadata.csv", "stimulus_set")])
def test_detect_format_names_what_load_would_read(shared_data, relative, name):
    assert data_adapters.detect_format(shared_data / relative) == name


def test_check_options_names_an_option_the_format_does_not_take(shared_data):
    path = shared_data / "fmri_epi"
    data_adapters.check_options(path, {"tr_s": 2.0, "masks": "epi"})
    with pytest.raises(DataFormatError, match=r"option 'labels_of' does not apply to the nifti format \(nifti takes "):
        data_adapters.check_options(path, {"labels_of": 1})
    with pytest.raises(DataFormatError, match="unknown format 'tiff'"):
        data_adapters.check_options(path, {}, format="tiff")


def test_an_unrecognised_file_is_the_same_error_as_load_gives(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("nothing a loader reads\n")
    with pytest.raises(DataFormatError) as detected:
        data_adapters.detect_format(path)
    with pytest.raises(DataFormatError) as loaded:
        data_adapters.load(path)
    assert str(detected.value) == str(loaded.value) and "not a recognised data file" in str(loaded.value)
