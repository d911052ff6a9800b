"""Stimulus sets: one row per image (id, file name, metadata), merged into assemblies by id.

BrainIO ships a CSV beside each assembly. The HvM set behind MajajHong2015 uses its own
column names; they are renamed to the contract's (``obj`` -> ``object_name``,
``category`` -> ``category_name``, ``var`` -> ``variation``, ``id`` -> ``stimulus_id``).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.assembly import control_character_id
from workbench.errors import DataFormatError

from .checks import csv_header

METADATA_NAMES = {"obj": "object_name", "category": "category_name", "var": "variation"}
ID_COLUMNS = ("stimulus_id", "image_id", "id")  # first one present names the image
# HvM's variation levels: the public Brain-Score split is V0 + V3, the private one V6.
SPLITS = {"public": ("V0", "V3"), "private": ("V6",)}


def sniff(path, head):
    """A CSV whose header names an image id and a file name (BrainIO stimulus sets do)."""
    header = csv_header(head, path)
    return header is not None and bool(header & set(ID_COLUMNS)) and "filename" in header


def load_stimulus_set(path, split=None):
    """Read a stimulus-set CSV into a DataFrame with contract column names.

    Parameters
    ----------
    path : str or os.PathLike
    split : {"public", "private"}, optional
        Keep only HvM's public (variation V0 + V3) or private (V6) images.

    Returns
    -------
    pandas.DataFrame
        One row per image with a unique string ``stimulus_id`` column.

    Raises
    ------
    DataFormatError
        Unreadable file, no id column, duplicated ids, or a split on a set without
        ``variation``.
    """
    path = Path(path)
    try:
        # ids and file names as written: read as numbers, "0001" became "1.0" and "1e3" "1000.0"
        frame = pd.read_csv(path, dtype={column: str for column in (*ID_COLUMNS, "filename")})
    except FileNotFoundError as error:
        raise DataFormatError(path, "file not found", "check the path") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataFormatError(path, f"cannot be read as CSV ({error})") from error
    frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed:")])
    id_column = next((c for c in ID_COLUMNS if c in frame.columns), None)
    if id_column is None:
        raise DataFormatError(
            path, f"no stimulus id column (columns: {list(frame.columns)[:12]})",
            f"a stimulus set needs one of {list(ID_COLUMNS)}",
        )
    renames = {id_column: "stimulus_id"}
    renames.update({k: v for k, v in METADATA_NAMES.items() if k in frame.columns and v not in frame.columns})
    frame = frame.rename(columns=renames)
    blank = frame["stimulus_id"].isna() | frame["stimulus_id"].astype(str).str.strip().eq("")
    if blank.any():
        raise DataFormatError(path, f"column {id_column!r} is empty in {int(blank.sum())} row(s), the first "
                              f"data row {int(np.flatnonzero(blank.to_numpy())[0])}", "every image needs an id")
    frame["stimulus_id"] = frame["stimulus_id"].astype(str)
    bad = control_character_id(frame["stimulus_id"])
    if bad is not None:
        raise DataFormatError(path, f"stimulus_id {bad!r} holds a control character",
                              "ids must be printable text: clean the file's id column")
    if "filename" in frame:
        bad = control_character_id(frame["filename"].dropna())
        if bad is not None:  # a NUL is not even a valid path
            raise DataFormatError(path, f"filename {bad!r} holds a control character",
                                  "file names must be printable text: clean the file's filename column")
    duplicated = frame["stimulus_id"][frame["stimulus_id"].duplicated()]
    if len(duplicated):
        raise DataFormatError(path, f"stimulus_id repeats, e.g. {duplicated.iloc[:3].tolist()}",
                              "every image needs its own id")
    if split is not None:
        frame = frame[split_mask(frame, split, path)].reset_index(drop=True)
    frame.attrs["path"] = str(path)
    return frame


def split_mask(frame, split, source="stimulus set"):
    """Boolean mask of the rows of a stimulus-set frame in ``split`` (see ``SPLITS``)."""
    if split not in SPLITS:
        raise DataFormatError(source, f"unknown split {split!r}", f"choose one of {list(SPLITS)}")
    if "variation" not in frame.columns:
        raise DataFormatError(source, "has no 'variation' (var) column to split on")
    return frame["variation"].isin(SPLITS[split]).to_numpy()


def merge_stimulus_set(assembly, stimulus_set, source="stimulus set"):
    """Add the stimulus set's columns as presentation coords, matched on ``stimulus_id``.

    Columns the assembly already has are left as they are. Every presentation's stimulus
    must be in the set.

    Raises
    ------
    DataFormatError
        Naming the presentations' ids that the stimulus set lacks.
    """
    index = pd.Index(stimulus_set["stimulus_id"].astype(str))
    ids = assembly.coords["stimulus_id"].values.astype(str)
    position = index.get_indexer(ids)
    if (position < 0).any():
        missing = pd.unique(ids[position < 0])
        raise DataFormatError(
            source, f"{len(missing)} stimulus ids of the assembly are not in the stimulus set, "
            f"e.g. {missing[:3].tolist()}", "is it the stimulus set of this assembly (or its split)?",
        )
    coords = {
        column: ("presentation", _coord_values(stimulus_set[column].to_numpy()[position]))
        for column in stimulus_set.columns
        if column not in assembly.coords
    }
    return assembly.assign_coords(coords)


def _coord_values(values):
    return values.astype(object) if values.dtype.kind in "OUT" or values.dtype.name == "str" else np.asarray(values)
