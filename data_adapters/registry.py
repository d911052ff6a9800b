"""``load(path)``: recognise a file's format from its content and read it into the contract."""

from pathlib import Path

from workbench.errors import DataFormatError

from . import bdata, brainio, human, nifti, stimulus_set

# name -> (sniff(path, head_bytes) -> bool, reader(path, **options) -> Assembly, description).
# Order matters: BData is HDF5 too, so it is recognised before BrainIO's netCDF-4.
FORMATS = {
    "bdata": (bdata.sniff, bdata.read,
              "BData fMRI HDF5 (.h5) or BrainDecoderToolbox2 MAT-file (.mat v5 / v7.3)"),
    "brainio": (brainio.sniff, brainio.read, "BrainIO netCDF assembly (.nc)"),
    "psiturk": (human.sniff_sqlite, human.read_psiturk, "psiTurk participants database (sqlite)"),
    "human_csv": (human.sniff_csv, human.read_csv,
                  "tidy CSV of human trials (worker, stimulus_id, truth, response, rt_ms, max_rt_ms)"),
    "stimulus_set": (stimulus_set.sniff, stimulus_set.load_stimulus_set,
                     "stimulus-set CSV (id/image_id/stimulus_id + filename + metadata), "
                     "returned as a DataFrame"),
    "nifti": (nifti.sniff, nifti.read,
              "NIfTI / Analyze BOLD series (.nii, .nii.gz, .hdr/.img, or a folder of volumes) "
              "with events=TABLE and ROI masks"),
}
# Formats that read a whole folder (a series of volumes).
DIRECTORY_FORMATS = ("nifti",)


def supported_formats():
    """``{name: description}`` of every format :func:`load` reads."""
    return {name: description for name, (_, _, description) in FORMATS.items()}


def load(path, format=None, **options):
    """Load a data file into an Assembly (or the format's documented result).

    Assemblies come from ``brainio``, ``bdata`` and ``nifti``; ``psiturk`` and
    ``human_csv`` give :class:`data_adapters.HumanRatings`; ``stimulus_set`` a DataFrame.

    Parameters
    ----------
    path : str or os.PathLike
    format : str, optional
        Skip content sniffing and read as this format (see :func:`supported_formats`).
    **options
        Passed to the format's reader.

    Raises
    ------
    DataFormatError
        The file is missing, unreadable or in no supported format; the message names the
        file and lists the supported formats.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "file not found", "check the path")
    if format is not None:
        if format not in FORMATS:
            raise DataFormatError(
                path, f"unknown format {format!r}", f"supported: {', '.join(FORMATS)}"
            )
        return FORMATS[format][1](path, **options)
    if path.is_dir():
        for name in DIRECTORY_FORMATS:
            sniff, reader, _ = FORMATS[name]
            if sniff(path, b""):
                return reader(path, **options)
        raise DataFormatError(path, "is a directory without a series of volumes",
                              "expected a data file, or a folder of .nii/.hdr volumes")
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as error:
        raise DataFormatError(path, f"cannot be read ({error.strerror})") from error
    for sniff, reader, _ in FORMATS.values():
        if sniff(path, head):
            return reader(path, **options)
    listing = "; ".join(f"{name}: {text}" for name, text in supported_formats().items())
    raise DataFormatError(path, "not a recognised data file", f"supported formats are {listing}")
