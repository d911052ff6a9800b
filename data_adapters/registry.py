"""``load(path)``: recognise a file's format from its content and read it into the contract.

Other packages add formats without touching this repository, like xarray's backends: an
entry point in the group ``workbench.formats`` names an object (a module or a class
instance) with ``sniff(path, head_bytes) -> bool``, ``read(path, **options)`` and a
``description`` string (and ``directory = True`` for formats that read folders); or call
:func:`register_format` directly. Built-in formats are tried first.
"""

from pathlib import Path

from workbench.errors import DataFormatError

from . import bdata, brainio, human, nifti, stimulus_set
from .checks import first_line
from workbench.storage import check_regular_file

# name -> (sniff(path, head_bytes) -> bool, reader(path, **options) -> Assembly, description).
# Order matters: BData is HDF5 too, so it is recognised before BrainIO's netCDF-4.
FORMATS = {
    "bdata": (bdata.sniff, bdata.read,
              "BData fMRI HDF5 (.h5) or BrainDecoderToolbox2 MAT-file (.mat v5 / v7.3)"),
    "brainio": (brainio.sniff, brainio.read, "BrainIO netCDF assembly (.nc)"),
    "psiturk": (human.sniff_sqlite, human.read_psiturk, "psiTurk participants database (sqlite)"),
    "human_csv": (human.sniff_csv, human.read_csv,
                  "tidy CSV of human trials (worker, stimulus_id, truth, response, rt_ms, max_rt_ms)"),
    "psiturk_trialdata": (human.sniff_psiturk_trialdata, human.read_psiturk_trialdata,
                          "psiTurk trialdata.csv (download_datafiles: uniqueid, trial, time, trialdata JSON)"),
    "jspsych": (human.sniff_jspsych, human.read_jspsych,
                "jsPsych data file (.csv or .json as jsPsych writes it; trials among the timeline's records)"),
    "stimulus_set": (stimulus_set.sniff, stimulus_set.load_stimulus_set,
                     "stimulus-set CSV (id/image_id/stimulus_id + filename + metadata), "
                     "returned as a DataFrame"),
    "nifti": (nifti.sniff, nifti.read,
              "NIfTI / Analyze BOLD series (.nii, .nii.gz, .hdr/.img, or a folder of volumes) "
              "with events=TABLE and ROI masks"),
}
# Formats that read a whole folder (a series of volumes).
DIRECTORY_FORMATS = ["nifti"]
ENTRY_POINT_GROUP = "workbench.formats"
_PLUGINS = {"loaded": False}


def register_format(name, sniff, read, description, directory=False):
    """Add a format to :func:`load`: ``sniff(path, head)`` recognises it from the path and
    the file's first 512 bytes, ``read(path, **options)`` returns an assembly (raising
    :class:`~workbench.errors.DataFormatError` on bad input)."""
    if name in FORMATS:
        raise ValueError(f"format {name!r} is already registered")
    FORMATS[name] = (sniff, read, description)
    if directory:
        DIRECTORY_FORMATS.append(name)


def _load_plugins():
    if _PLUGINS["loaded"]:
        return
    _PLUGINS["loaded"] = True
    import warnings
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in FORMATS:
            continue
        try:
            backend = point.load()
            register_format(point.name, backend.sniff, backend.read, backend.description,
                            getattr(backend, "directory", False))
        except Exception as error:  # a broken plugin must not hide the other formats
            warnings.warn(f"data format plugin {point.name!r} ({point.value}) failed to load: {error}",
                          stacklevel=3)


def _check_options(name, path, options):
    """An option format ``name``'s reader does not take is a named error, not a TypeError
    from deep inside."""
    import inspect

    try:
        parameters = inspect.signature(FORMATS[name][1]).parameters
    except (TypeError, ValueError):  # a builtin or C reader: let it check its own options
        return
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        taken = [n for n in parameters if n != "path"]
        unknown = sorted(set(options) - set(taken))
        if unknown:
            raise DataFormatError(path, f"option {unknown[0]!r} does not apply to the {name} format",
                                  f"{name} takes {', '.join(taken) or 'no options'}")


def _read(name, path, options):
    """Call format ``name``'s reader with ``options`` (checked by :func:`_check_options`)."""
    reader = FORMATS[name][1]
    _check_options(name, path, options)
    try:
        return reader(path, **options)
    except MemoryError as error:  # a size no reader's own check foresaw: still a named error
        raise DataFormatError(path, f"needs more memory than is available to read as {name} ({error})",
                              "is the file damaged? Otherwise read it on a machine with more memory, "
                              "or a smaller selection of it") from None


def supported_formats():
    """``{name: description}`` of every format :func:`load` reads."""
    _load_plugins()
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
    return _read(detect_format(path, format), path, options)


def check_options(path, options, format=None):
    """Raise :class:`DataFormatError` if an option in ``options`` does not apply to the format
    of ``path`` (detected as :func:`load` does, reading only the file's head), before any
    data is read: a report config is checked so, before its tasks run."""
    path = Path(path)
    _check_options(detect_format(path, format), path, options)


def detect_format(path, format=None):
    """The name of the format :func:`load` reads ``path`` as (``format`` checked when given)."""
    _load_plugins()
    path = Path(path)
    check_regular_file(path, allow_directory=True)
    if format is not None:
        if format not in FORMATS:
            raise DataFormatError(
                path, f"unknown format {format!r}", f"supported: {', '.join(FORMATS)}"
            )
        return format
    failures = []
    if path.is_dir():
        for name in DIRECTORY_FORMATS:
            if _sniffed(name, path, b"", failures):
                return name
        raise DataFormatError(path, "is a directory without a series of volumes",
                              "expected a data file, or a folder of .nii/.hdr volumes")
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as error:
        raise DataFormatError(path, f"cannot be read ({error.strerror})") from error
    for name in FORMATS:
        if _sniffed(name, path, head, failures):
            return name
    listing = "; ".join(f"{name}: {text}" for name, text in supported_formats().items())
    damaged = "".join(f"; the {name} check could not read it ({error})" for name, error in failures)
    line = first_line(head)  # a table separated otherwise (spreadsheets in comma-decimal locales export ';')
    if line and line.replace("\t", " ").isprintable() and "," not in line:
        if ";" in line:
            damaged += "; its first line is separated by ';' (save it as a comma-separated CSV)"
        elif "\t" in line and path.suffix.lower() == ".csv":
            damaged += "; its first line is separated by tabs (save it as a comma-separated CSV)"
    raise DataFormatError(path, f"not a recognised data file{damaged}", f"supported formats are {listing}")


def _sniffed(name, path, head, failures):
    """Whether format ``name`` claims ``path``. A check that fails on damaged content
    (a corrupt gzip stream, a plugin's own error) does not claim it: the failure is kept for
    the message, and the other formats are still tried."""
    try:
        return bool(FORMATS[name][0](path, head))
    except Exception as error:  # any library's error on damaged bytes; never a raw traceback
        failures.append((name, f"{type(error).__name__}: {error}"))
        return False
