"""Checks shared by every loader: options, CSV headers, non-finite values, the contract.

Each reader turns its file into an assembly and then calls :func:`finish`, so the
``nan_policy`` option means the same thing for every format.
"""

import csv
import warnings

import numpy as np

from workbench.assembly import validate
from workbench.errors import AssemblyError, DataFormatError, DataWarning
from workbench.resources import GB, available_bytes

NAN_POLICIES = ("warn", "raise", "propagate")
#: responses beyond this magnitude are damage or a unit error: their squares, summed over a
#: recording, overflow float64 (rates, counts and BOLD signal are many orders smaller)
MAX_ABS_VALUE = 1e100
VOXEL_NORMALIZATIONS = (None, "zscore", "unit_norm")


def code_text(code):
    """A numeric code as text, exactly: the shortest decimal that reads back as the same
    float, without exponent or trailing zeros (Kamitani-lab releases code images as
    ``synset.imagenumber``, e.g. ``1443537.022563``; ``3.0`` is ``"3"``)."""
    code = float(code)
    if not np.isfinite(code):
        return "nan" if np.isnan(code) else ("inf" if code > 0 else "-inf")
    return np.format_float_positional(code, unique=True, trim="-")


def id_text(values):
    """Ids as an object array of text. Numbers read as a person writes them: a file that
    stores image 3 as the float ``3.0`` names the image ``"3"``, as the stimulus set's CSV
    does (``"3.0"`` matched nothing there); other floats exactly (:func:`code_text`)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" or (values.dtype.kind == "O" and any(isinstance(v, float) for v in values.flat)):
        distinct, inverse = np.unique(values.astype(object).ravel().astype(str), return_inverse=True)
        flat = values.ravel()
        first = np.zeros(len(distinct), dtype=np.int64)
        first[inverse[::-1]] = np.arange(len(flat))[::-1]  # one element per distinct text
        texts = np.array([code_text(flat[i]) if isinstance(flat[i], (float, np.floating)) else str(flat[i])
                          for i in first], dtype=object)
        return texts[inverse].reshape(values.shape)
    return values.astype(str).astype(object)


def check_nan_policy(path, nan_policy):
    if nan_policy not in NAN_POLICIES:
        raise DataFormatError(
            path, f"unknown nan_policy {nan_policy!r}", f"use one of {', '.join(NAN_POLICIES)}"
        )


def check_voxel_normalization(path, method):
    if method not in VOXEL_NORMALIZATIONS:
        raise DataFormatError(path, f"unknown voxel_normalization {method!r}",
                              "use None, 'zscore' or 'unit_norm'")


def check_allocation(path, what, shape, itemsize, fix):
    """Refuse an array the file declares before it is allocated, when it cannot fit.

    A header's dimensions cost nothing to write: an HDF5 or netCDF variable declared
    10 million x 10,000 with no data stored is a few kB on disk. Reading it would raise a raw
    ``MemoryError``, or, when the size lies between the memory available and what the kernel
    lets a process reserve, be killed by the kernel part-way through.

    Parameters
    ----------
    path : path of the file (for the message)
    what : str
        The field, e.g. ``"/dataset"``.
    shape : tuple of int
        Declared shape.
    itemsize : int
        Bytes per element the reader will hold (the file's type plus a float64 copy where
        the reader converts).
    fix : str
        What the user can do (a smaller selection, another file).
    """
    n_bytes = int(itemsize)
    for size in shape:
        n_bytes *= int(size)
    available = available_bytes()
    if available is not None and n_bytes > available:
        raise DataFormatError(
            path, f"{what} declares shape {tuple(int(s) for s in shape)}, {n_bytes / GB:.3g} GB to read, "
                  f"more than the {available / GB:.3g} GB of memory available", fix)


def csv_first_row(head, path=None):
    """The fields of a CSV's first line, or None.

    ``head``: the file's first bytes; when they hold no line end (a wide header, such as a
    jsPsych export's) and ``path`` is given, up to 1 MB is read to find it. Quoted fields (R's
    ``write.csv``, jsPsych) are unquoted, a UTF-8 byte-order mark is dropped, and a multi-byte
    character cut at the end of ``head`` does not matter: only the first line is decoded.
    """
    if b"\n" not in head and path is not None:
        try:
            with open(path, "rb") as handle:
                head = handle.read(1 << 20)
        except OSError:
            return None
    line = first_line(head)
    try:
        return None if line is None else next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None


def first_line(head):
    """The first line of ``head`` (a file's first bytes) as text, without a UTF-8
    byte-order mark or line end; None when it is not UTF-8."""
    try:
        return head.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        return None


def csv_header(head, path=None):
    """The column names of a CSV's first line (:func:`csv_first_row`), or None."""
    row = csv_first_row(head, path)
    return None if row is None else {column.strip() for column in row}


def apply_nan_policy(da, path, nan_policy="warn"):
    """Count NaN and inf values and act on them.

    ``"warn"`` (default): inf becomes NaN (every metric ignores NaN; an inf would poison
    sums), a :class:`DataWarning` gives the counts. ``"raise"``: any non-finite value is a
    :class:`DataFormatError` naming the first one's stimulus and neuroid. ``"propagate"``:
    values are kept as they are. All three record ``attrs["nonfinite"] = {"nan": n,
    "inf": m}`` (counts in the file as read).
    """
    check_nan_policy(path, nan_policy)
    values = np.asarray(da.values)
    n_nan = int(np.isnan(values).sum())
    n_inf = int(np.isinf(values).sum())
    da.attrs["nonfinite"] = {"nan": n_nan, "inf": n_inf}
    largest = float(np.nanmax(np.abs(np.where(np.isinf(values), np.nan, values)), initial=0.0))
    if largest > MAX_ABS_VALUE:
        p, n, t = np.argwhere(np.abs(values) == largest)[0]
        raise DataFormatError(
            path, f"a value of magnitude {largest:.3g} (stimulus_id={da.coords['stimulus_id'].values[p]!r}, "
            f"neuroid_id={da.coords['neuroid_id'].values[n]!r}, time bin {t}): beyond {MAX_ABS_VALUE:g}, its "
            "square overflows and every correlation with it is garbage",
            "check the file's units and scaling (responses are rates, counts or BOLD signal)")
    if n_nan + n_inf == 0:
        return da
    if n_nan + n_inf == values.size and nan_policy != "propagate":
        raise DataFormatError(
            path, f"holds no finite response: all {values.size} values are NaN or inf (missing)",
            "is this the file the writer finished? pass nan_policy='propagate' to load it anyway")
    if nan_policy == "raise":
        p, n, t = np.argwhere(~np.isfinite(values))[0]
        raise DataFormatError(
            path,
            f"{n_nan} NaN and {n_inf} inf values, the first at stimulus_id="
            f"{da.coords['stimulus_id'].values[p]!r}, neuroid_id="
            f"{da.coords['neuroid_id'].values[n]!r}, time bin {t}",
            "pass nan_policy='warn' to load them as missing values",
        )
    if nan_policy == "warn":
        if n_inf:
            da = da.where(~np.isinf(da))
            da.attrs["nonfinite"] = {"nan": n_nan, "inf": n_inf}
        warnings.warn(
            f"{path}: {n_nan} NaN and {n_inf} inf values of {values.size} "
            f"({(n_nan + n_inf) / values.size:.2%}); loaded as missing values (NaN), which "
            "metrics ignore", DataWarning, stacklevel=4,
        )
    return da


def finish(da, path, nan_policy="warn"):
    """Validate the contract (as a DataFormatError naming the file) and apply nan_policy."""
    try:
        validate(da)
    except AssemblyError as error:
        raise DataFormatError(path, str(error)) from error
    return apply_nan_policy(da, path, nan_policy)
