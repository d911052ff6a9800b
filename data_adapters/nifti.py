"""NIfTI / Analyze BOLD series + events table + ROI masks -> the Assembly contract.

Images are opened with nibabel and turned into arrays in one place,
:func:`series_array` (a truncated or corrupt file is a named error there); masks select
voxels from that array, so NaN voxels stay NaN (nilearn's masker would zero them).
Everything after that is arrays.

Events follow BIDS ``events.tsv``: ``onset`` and ``duration`` in seconds (``duration`` may
be ``n/a``), ``trial_type`` and other columns become presentation coords, and the stimulus
id comes from ``stimulus_id``, else ``stim_file``, else the column named by
``stimulus_column=``.

Volume assignment (one rule): an event's first volume is the first volume whose
acquisition starts at or after ``onset + delay_s`` (volume ``v`` starts at ``v * TR``
seconds), so a bin never starts before its stimulus; its bins are that volume and the
next ``n_time_bins - 1``. The lag between the onset and its first volume is kept as the
presentation coord ``onset_lag_s``. Two events with the same first volume are an error;
events whose bins overlap get a :class:`~workbench.errors.DataWarning`.
"""

import gzip
import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from workbench.assembly import control_character_id
from workbench.errors import DataFormatError, DataWarning

from .bdata import roi_name, normalize_voxels
from workbench.storage import check_regular_file

from .checks import check_allocation, check_nan_policy, check_voxel_normalization, finish, id_text

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")
EVENT_COLUMNS = ("onset", "duration", "stimulus_id")
# columns that name the stimulus when the table has no stimulus_id (BIDS: stim_file)
STIMULUS_COLUMNS = ("stimulus_id", "stim_file")
# errors nibabel, gzip and numpy raise on truncated or corrupt image data
_READ_ERRORS = (OSError, EOFError, ValueError, OverflowError, zlib.error, MemoryError)
# Header ``descrip`` of volumes written by the workbench's simulator.
SIMULATED_MARK = b"neural-workbench simulation"


def _column_values(column):
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.to_numpy()
    return column.astype(str).to_numpy(dtype=object)


def _suffix(path):
    name = path.name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def sniff(path, head):
    """Analyze / NIfTI-1 headers start with sizeof_hdr = 348 (NIfTI-2: 540), either endian."""
    if path.is_dir():
        return bool(series_files(path, required=False))
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(4)
        except (OSError, EOFError, zlib.error):
            # a damaged stream: claimed when the name says NIfTI, so the reader names the
            # damage; otherwise the registry reports it beside "not a recognised data file"
            if _suffix(path) == ".nii.gz":
                return True
            raise
    if _suffix(path) == ".img" and path.with_suffix(".hdr").exists():
        return True
    if len(head) < 4:
        return False
    return any(struct.unpack(order + "i", head[:4])[0] in (348, 540) for order in "<>")


def series_files(directory, required=True):
    """The volumes of a directory (``.nii``, ``.nii.gz`` or ``.hdr`` + ``.img``), sorted."""
    files = sorted(p for p in Path(directory).iterdir()
                   if _suffix(p) in (".nii", ".nii.gz", ".hdr"))
    if required and not files:
        raise DataFormatError(directory, "directory holds no .nii, .nii.gz or .hdr volume",
                              "point at a 4D image or a folder of 3D volumes")
    return files


def header_tr(image):
    """Repetition time (s) of a 4-D image's header, or None when it gives none. An Analyze
    header has no time units (its 4th voxel size is often a placeholder 1 or 0): None."""
    if not hasattr(image.header, "get_xyzt_units"):
        return None
    zooms = image.header.get_zooms()
    units = image.header.get_xyzt_units()[1]
    tr = float(zooms[3]) if len(zooms) > 3 else 0.0
    tr = tr / {"msec": 1e3, "usec": 1e6}.get(units, 1.0)
    return tr if tr > 0 else None


def _bids_name(path):
    """``(entities, suffix)`` of a BIDS file name (``sub-01_task-blur_run-1_bold.nii.gz`` ->
    ``({"sub-01", "task-blur", "run-1"}, "bold")``), or None for other names."""
    stem = path.name
    for extension in (".nii.gz", ".nii", ".json", ".tsv"):
        if stem.lower().endswith(extension):
            stem = stem[: -len(extension)]
            break
    parts = stem.split("_")
    entities = parts[:-1]
    if not entities or not all(part.count("-") == 1 and all(part.split("-")) for part in entities):
        return None
    return set(entities), parts[-1]


def bids_sidecar(path, suffix=None, extension=".json"):
    """The nearest BIDS file for ``path`` with ``extension`` (a ``_bold.json`` sidecar, an
    ``_events.tsv``), by BIDS inheritance: same suffix, entities a subset of the file's, in
    its folder or a parent up to the dataset root (``dataset_description.json``); the nearest
    folder wins, and within it the file naming the most entities. None if there is none."""
    name = _bids_name(path)
    if name is None:
        return None
    entities, own_suffix = name
    suffix = suffix or own_suffix
    folder = path.parent
    for _ in range(6):
        found = []
        for candidate in folder.glob(f"*{suffix}{extension}"):
            parsed = _bids_name(candidate)
            if parsed is not None and parsed[1] == suffix and parsed[0] <= entities and candidate.is_file():
                found.append((len(parsed[0]), candidate.name, candidate))
        if found:
            return max(found)[2]
        if (folder / "dataset_description.json").exists() or folder.parent == folder:
            return None
        folder = folder.parent
    return None


def sidecar_tr(path):
    """``(RepetitionTime in s, sidecar)`` from a BOLD file's BIDS JSON sidecar, or
    ``(None, None)``; a sidecar that is not JSON or whose RepetitionTime is not a time > 0 is a
    named error."""
    sidecar = bids_sidecar(path)
    if sidecar is None:
        return None, None
    try:
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise DataFormatError(sidecar, f"BIDS sidecar cannot be read as JSON ({type(error).__name__}: "
                              f"{str(error)[:200]})") from None
    value = content.get("RepetitionTime") if isinstance(content, dict) else None
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise DataFormatError(sidecar, f"RepetitionTime {value!r} is not a time > 0",
                              "BIDS gives RepetitionTime in seconds")
    return float(value), sidecar


def open_series(path):
    """``(4-D nibabel image, TR in s or None)`` for a 4-D file or a folder of 3-D volumes.

    3-D volumes carry no repetition time, so a folder's TR is None (pass ``tr_s``).
    """
    import nibabel as nib
    from nilearn.image import concat_imgs

    path = Path(path)
    files = series_files(path) if path.is_dir() else [path]
    images = []
    for file in files:
        try:
            images.append(nib.load(file))
        except Exception as error:  # noqa: BLE001 - nibabel raises many types (HeaderDataError, ...) on damaged headers
            raise DataFormatError(file, f"cannot be read as NIfTI/Analyze ({error})",
                                  "is the file (or its .img/.hdr partner) truncated?") from error
    for file, img in zip(files, images):
        if any(int(d) <= 0 for d in img.shape):
            raise DataFormatError(file, f"the header declares dimensions {img.shape}; every one must be positive",
                                  "is the header damaged? re-export the image")
    shapes = {img.shape[:3] for img in images}
    if len(shapes) != 1 or any(len(img.shape) not in (3, 4) for img in images):
        raise DataFormatError(path, f"volumes have shapes {sorted({img.shape for img in images})}",
                              "a series needs 3-D volumes of one shape (or one 4-D image)")
    if len(images) == 1 and len(images[0].shape) == 4:
        return images[0], header_tr(images[0])
    try:
        return concat_imgs(images, ensure_ndim=4), None
    except _READ_ERRORS as error:
        raise DataFormatError(path, f"volumes cannot be stacked ({error})",
                              "every volume needs the same shape and affine") from error


def _load_image(spec, name, path):
    import nibabel as nib

    if isinstance(spec, (str, Path)):
        try:
            return nib.load(spec)
        except Exception as error:  # noqa: BLE001 - nibabel raises many types on damaged headers
            raise DataFormatError(spec, f"{name} cannot be read as NIfTI/Analyze ({error})") from error
    if isinstance(spec, nib.spatialimages.SpatialImage):
        return spec
    raise DataFormatError(path, f"{name} must be an image path or a nibabel image, got {type(spec).__name__}")


def _oriented(image):
    """Whether ``image``'s affine is stored (NIfTI; SPM's Analyze with its ``.mat``), not
    made up from the voxel sizes as for a plain Analyze header (which stores no orientation)."""
    import nibabel as nib

    if isinstance(image, nib.Nifti1Pair):  # NIfTI-1 and -2, single file or pair
        return True
    name = image.get_filename()
    return name is not None and Path(name).with_suffix(".mat").is_file()


def _same_grid(image, series):
    """Whether ``image`` lies on the series' voxel grid: equal affines, or, where either has
    no stored orientation (Analyze), equal voxel sizes (the shapes are compared before)."""
    if _oriented(image) and _oriented(series):
        return np.allclose(image.affine, series.affine, atol=1e-3)
    return np.allclose(np.abs(image.header.get_zooms()[:3]), np.abs(series.header.get_zooms()[:3]), atol=1e-3)


def roi_masks(series, path, masks=None, labels=None, label_names=None, data=None):
    """``{roi_name: boolean 3-D array}`` from mask images, a label image, or ``"epi"``
    (``data``: the series' values, already read, for the EPI mask)."""
    import nibabel as nib
    from nilearn.masking import compute_epi_mask

    shape = series.shape[:3]
    result = {}
    if isinstance(masks, str) and masks == "epi":
        values = series_array(series, path) if data is None else data
        in_memory = nib.Nifti1Image(np.nan_to_num(values, nan=0.0).astype(np.float32), series.affine)
        result["brain"] = np.asarray(compute_epi_mask(in_memory).get_fdata(), dtype=bool)
    elif masks is not None:
        for roi, spec in dict(masks).items():
            image = _load_image(spec, f"mask {roi!r}", path)
            if image.shape[:3] != shape:
                raise DataFormatError(_file_of(image, path),
                                      f"mask {roi!r} has shape {image.shape[:3]}, the series {shape}",
                                      "resample the mask to the BOLD grid first")
            if not _same_grid(image, series):
                raise DataFormatError(_file_of(image, path),
                                      f"mask {roi!r} is on another grid (affine differs)",
                                      "resample the mask to the BOLD grid first")
            result[roi] = _image_values(image, path, f"mask {roi!r}").reshape(shape) > 0
    elif labels is not None:
        image = _load_image(labels, "label image", path)
        source = _file_of(image, path)  # errors name the label file
        if image.shape[:3] != shape:
            raise DataFormatError(source, f"label image has shape {image.shape[:3]}, the series {shape}",
                                  "resample the label image to the BOLD grid first")
        if not _same_grid(image, series):
            raise DataFormatError(source, "the label image is on another grid (its affine differs from the series')",
                                  "resample the label image to the BOLD grid first (nearest neighbour)")
        raw = np.nan_to_num(_image_values(image, path, "label image"))
        values = np.rint(raw)
        fractional = np.abs(raw - values) > 1e-3
        if fractional.any():
            raise DataFormatError(source, f"the label image holds non-integer values (e.g. {raw[fractional].flat[0]:g})",
                                  "a label image gives each voxel an integer ROI code (resample it with "
                                  "nearest-neighbour interpolation)")
        values = values.astype(np.int64).reshape(shape)
        names = label_names or {int(v): f"label_{int(v)}" for v in np.unique(values) if v != 0}
        if not names:
            raise DataFormatError(source, "the label image labels no voxel (all values are 0)",
                                  "pass the atlas in the BOLD grid, or masks={roi: image}")
        for code, roi in names.items():
            result[roi] = values == int(code)
    else:
        raise DataFormatError(path, "no ROI given",
                              "pass masks={roi: image}, labels=IMAGE (+ label_names) or masks='epi'")
    for roi, mask in result.items():
        if not mask.any():
            raise DataFormatError(path, f"ROI {roi!r} is empty (no voxel inside the mask)",
                                  "check the mask's threshold and grid")
    return result


def _file_of(image, path):
    """The file an image was read from (errors name it), else ``path``: an in-memory
    nibabel image has none."""
    return getattr(image, "get_filename", lambda: None)() or path


def _image_values(image, path, name):
    """An image's (scaled) voxel values, read now; truncated data is a named error."""
    source = _file_of(image, path)
    if image.get_data_dtype().kind not in "iufb":
        raise DataFormatError(source, f"{name} holds {image.get_data_dtype()} voxels, not real numbers",
                              "BOLD series, masks and label images hold integer or float voxels")
    check_allocation(source, name, image.shape, image.get_data_dtype().itemsize + 8,
                     "is the header's dim field damaged? Otherwise load fewer volumes or runs")
    try:
        return np.asarray(np.asanyarray(image.dataobj), dtype=np.float64)
    except _READ_ERRORS as error:
        raise DataFormatError(source, f"{name} data cannot be read ({type(error).__name__}: {error})",
                              "is the file (or its .img partner) truncated?") from error


def series_array(series, path):
    """The BOLD series as a float64 array ``(i, j, k, volume)`` (NaN kept as NaN)."""
    values = _image_values(series, path, "BOLD series")
    return values.reshape(values.shape[:3] + (-1,))


def masked_series(data, mask):
    """``(n_volumes, n_voxels)`` values of the voxels in ``mask`` (C order of i, j, k),
    from the series array (:func:`series_array`); NaN voxels stay NaN."""
    return data[mask].T


def read_events(events, path, stimulus_column=None):
    """Events table (BIDS TSV, CSV or DataFrame): float ``onset``/``duration`` (s; a
    ``duration`` may be ``n/a``) and a string ``stimulus_id`` taken from ``stimulus_column``
    (default: ``stimulus_id``, else ``stim_file``)."""
    source = path
    if not isinstance(events, pd.DataFrame):
        if events is None:
            raise DataFormatError(path, "an events table is needed to cut trials",
                                  "pass events=CSV/TSV with onset, duration, stimulus_id[, condition]")
        source = Path(events)
        check_regular_file(source)
        try:
            sep = "\t" if source.suffix.lower() == ".tsv" else None
            ids = {column: str for column in (*STIMULUS_COLUMNS, stimulus_column) if column}  # "0001" stays "0001"
            events = pd.read_csv(source, sep=sep, engine="python", na_values=["n/a"], keep_default_na=True, dtype=ids)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError) as error:
            raise DataFormatError(source, f"events table cannot be read ({error})") from error
    events = events.reset_index(drop=True)
    if stimulus_column is None:
        stimulus_column = next((c for c in STIMULUS_COLUMNS if c in events.columns), "stimulus_id")
    for column in ("onset", "duration", stimulus_column):
        if column not in events.columns:
            raise DataFormatError(source, f"events table lacks column(s) {[column]}",
                                  f"columns needed: onset, duration (seconds) and the stimulus id "
                                  f"({' or '.join(STIMULUS_COLUMNS)}, or pass stimulus_column=)")
    if events.empty:
        raise DataFormatError(source, "events table has no rows", "one row per image presentation")
    for column in ("onset", "duration"):
        numeric = pd.to_numeric(events[column], errors="coerce")
        bad = numeric.isna() & events[column].notna() | (events[column].isna() & (column == "onset"))
        bad |= numeric.notna() & ~np.isfinite(numeric.fillna(0.0)) | (numeric.abs() > 1e7)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = events[column].iloc[row]
            shown = "n/a" if pd.isna(shown) else repr(shown.item() if hasattr(shown, "item") else shown)
            raise DataFormatError(source, f"events column {column!r} row {row} is {shown}, not a number of seconds")
        events[column] = numeric.astype(float)
    missing = events[stimulus_column].isna()
    if missing.any():
        raise DataFormatError(source, f"events column {stimulus_column!r} row {int(np.flatnonzero(missing)[0])} "
                              "names no stimulus", "every presentation needs its stimulus id")
    events["stimulus_id"] = id_text(events[stimulus_column].to_numpy())
    bad = control_character_id(events["stimulus_id"])
    if bad is not None:
        raise DataFormatError(source, f"events column {stimulus_column!r} holds {bad!r}, with a control character",
                              "ids must be printable text: clean the events table")
    return events, source


def assign_volumes(onsets_s, tr_s, n_time_bins, delay_s=0.0):
    """First volume of each event (the first acquired at or after ``onset + delay_s``) and
    its lag in seconds; see the module docstring for the rule."""
    position = (np.asarray(onsets_s, dtype=np.float64) + delay_s) / tr_s
    first = np.ceil(position - 1e-6).astype(np.int64)  # on-boundary onsets stay on their volume
    return first, first * tr_s - (np.asarray(onsets_s) + delay_s)


def read(path, events=None, masks=None, labels=None, label_names=None, tr_s=None,
         n_time_bins=4, delay_s=0.0, subject=None, voxel_normalization=None, nan_policy="warn",
         stimulus_column=None):
    """Read a BOLD series and cut it into trials.

    Parameters
    ----------
    path : pathlib.Path
        A 4-D NIfTI/Analyze image, or a folder of 3-D volumes (sorted by name).
    events : path or pandas.DataFrame
        One row per presentation (BIDS ``events.tsv``): ``onset`` and ``duration`` in
        seconds from the first volume, the stimulus id; every other column
        (``trial_type``, ``condition``, ...) becomes a presentation coord.
    masks : dict or "epi", optional
        ``{roi: mask image}`` on the BOLD grid (``"LH_V1"`` names set ``hemisphere``), or
        ``"epi"`` for nilearn's EPI brain mask (one ROI, ``"brain"``).
    labels, label_names : image and ``{code: roi}``, optional
        A label image instead of masks.
    tr_s : float, optional
        Repetition time in seconds; default: the header's (error if it has none).
    n_time_bins : int
        Volumes per trial (Lindsay et al.: 4 bins of TR 2 s for an 8 s presentation).
    delay_s : float
        Shift of the first bin after onset (haemodynamic delay), seconds.
    subject : str, optional
        Neuroid coord ``subject``; default the file or folder name.
    voxel_normalization, nan_policy
        As in :func:`data_adapters.bdata.read`.
    stimulus_column : str, optional
        The events column naming each stimulus (default ``stimulus_id``, else ``stim_file``).

    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid, time_bin)``; bins start at ``delay_s + k TR`` (ms);
        neuroids carry ``region``, ``hemisphere``, ``subject`` and voxel ``i, j, k``.
    """
    path = Path(path)
    check_nan_policy(path, nan_policy)
    check_voxel_normalization(path, voxel_normalization)
    if isinstance(n_time_bins, bool) or not isinstance(n_time_bins, (int, np.integer)) or n_time_bins < 1:
        raise DataFormatError(path, f"n_time_bins={n_time_bins!r}", "give a whole number of volumes >= 1")
    series, header_tr_s = open_series(path)
    n_volumes = series.shape[3]
    tr_source = "tr_s"
    if tr_s is None:
        tr_s, tr_source = header_tr_s, "NIfTI header"
        bids_tr, sidecar = sidecar_tr(path) if path.is_file() else (None, None)
        if bids_tr is not None:
            # BIDS: the sidecar is authoritative (converters may leave pixdim[4] at 1 or 0)
            if header_tr_s is not None and abs(header_tr_s - bids_tr) > 1e-3 * bids_tr:
                warnings.warn(f"{path}: the header's repetition time {header_tr_s:g} s differs from "
                              f"RepetitionTime {bids_tr:g} s in {sidecar}; using the sidecar's", DataWarning,
                              stacklevel=3)
            tr_s, tr_source = bids_tr, str(sidecar)
        if tr_s is None:
            raise DataFormatError(path, "the header gives no repetition time",
                                  "pass tr_s=SECONDS")
    if not (isinstance(tr_s, (int, float)) and np.isfinite(tr_s) and tr_s > 0):
        raise DataFormatError(path, f"tr_s={tr_s!r}", "the repetition time is a number of seconds > 0")
    if events is None and path.is_file():  # BIDS: the run's events.tsv beside it (or inherited)
        events = bids_sidecar(path, suffix="events", extension=".tsv")
    events, events_source = read_events(events, path, stimulus_column)
    first_volume, lag = assign_volumes(events["onset"].to_numpy(), tr_s, n_time_bins, delay_s)
    _check_overlaps(events, first_volume, n_time_bins, events_source)
    volumes = first_volume[:, None] + np.arange(n_time_bins)[None, :]
    outside = np.flatnonzero((volumes < 0).any(1) | (volumes >= n_volumes).any(1))
    run_s = n_volumes * tr_s
    onsets = events["onset"].to_numpy()
    # onsets saved in ms: most of them past the run, all inside it as seconds
    in_ms = bool((onsets > run_s).mean() > 0.5 and 0 <= onsets.min() and onsets.max() / 1000 < run_s)
    if len(outside):
        row = int(outside[0])
        raise DataFormatError(
            events_source, f"event row {row} (onset {events['onset'].iloc[row]:g} s) needs volumes "
            f"{volumes[row, 0]}..{volumes[row, -1]}, the series has {n_volumes}"
            + (f" ({run_s:g} s); the onsets (up to {onsets.max():g}) look like ms" if in_ms else ""),
            "BIDS onsets are seconds: divide them by 1000" if in_ms else
            "check onsets (seconds from the first volume), tr_s and n_time_bins",
        )
    durations = events["duration"].to_numpy()
    if np.isfinite(durations).any() and np.nanmax(durations) > run_s:
        warnings.warn(f"{events_source}: event durations up to {np.nanmax(durations):g} s are longer than the run "
                      f"({n_volumes} volumes of {tr_s:g} s): BIDS durations are seconds; are these ms? (they are "
                      "kept as a coord; trials are cut by n_time_bins)", DataWarning, stacklevel=3)
    subject = str(subject) if subject is not None else path.name.split(".")[0]
    data = series_array(series, path)
    rois = roi_masks(series, path, masks, labels, label_names, data=data)
    blocks, neuroid = [], {k: [] for k in ("neuroid_id", "region", "hemisphere", "i", "j", "k")}
    for roi, mask in rois.items():
        name, hemi = roi_name(f"ROI_{roi}") or (roi, None)
        hemi = hemi or "unknown"
        blocks.append(masked_series(data, mask))
        ijk = np.argwhere(mask)
        neuroid["region"] += [name] * len(ijk)
        neuroid["hemisphere"] += [hemi] * len(ijk)
        neuroid["neuroid_id"] += [f"{subject}.{name}.{hemi}.{i}_{j}_{k}" for i, j, k in ijk]
        for axis, letter in enumerate("ijk"):
            neuroid[letter] += ijk[:, axis].tolist()
    bold = np.concatenate(blocks, axis=1)  # (n_volumes, n_neuroids)
    values = bold[volumes].transpose(0, 2, 1)  # (n_events, n_neuroids, n_bins)
    starts = (delay_s + np.arange(n_time_bins) * tr_s) * 1000.0
    coords = {name: ("presentation", _column_values(events[name])) for name in events.columns}
    coords["repetition"] = ("presentation", events.groupby("stimulus_id").cumcount().to_numpy())
    coords["onset_lag_s"] = ("presentation", lag)
    coords.update({name: ("neuroid", np.asarray(v, dtype=object if name in ("neuroid_id", "region", "hemisphere") else int))
                   for name, v in neuroid.items()})
    coords["subject"] = ("neuroid", np.full(len(neuroid["neuroid_id"]), subject, dtype=object))
    coords["time_bin_start"] = ("time_bin", starts)
    coords["time_bin_end"] = ("time_bin", starts + tr_s * 1000.0)
    da = xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords=coords)
    if voxel_normalization is not None:
        da = normalize_voxels(da, voxel_normalization)
    description = series.header.get("descrip")
    simulated = description is not None and bytes(np.asarray(description)).startswith(SIMULATED_MARK)
    da.attrs = {"source": str(path), "identifier": subject, "simulated": bool(simulated),
                "units": "BOLD (file units)", "tr_s": float(tr_s), "tr_source": tr_source, "delay_s": float(delay_s),
                "volume_rule": "first volume acquired at or after onset + delay_s",
                "voxel_normalization": voxel_normalization or "none"}
    return finish(da, path, nan_policy)


def _check_overlaps(events, first_volume, n_time_bins, source):
    """Two events on one first volume: error; overlapping bins: a warning."""
    order = np.argsort(first_volume, kind="stable")
    ordered = first_volume[order]
    same = np.flatnonzero(np.diff(ordered) == 0)
    if len(same):
        a, b = int(order[same[0]]), int(order[same[0] + 1])
        raise DataFormatError(source, f"events rows {a} and {b} (onsets {events['onset'].iloc[a]:g} s and "
                              f"{events['onset'].iloc[b]:g} s) start on the same volume {int(ordered[same[0]])}",
                              "each presentation needs its own first volume: check onsets and tr_s")
    overlap = np.flatnonzero(np.diff(ordered) < n_time_bins)
    if len(overlap):
        warnings.warn(f"{source}: {len(overlap)} event(s) start before the previous event's {n_time_bins} "
                      f"bins end (e.g. rows {int(order[overlap[0]])} and {int(order[overlap[0] + 1])}); "
                      "their responses overlap", DataWarning, stacklevel=5)
