"""Kamitani-lab BData (HDF5) and BrainDecoderToolbox2 (.mat v5 / v7.3) fMRI files.

Both hold one samples x columns matrix and a metadata table (``key``, ``description``,
``value``: keys x columns). A key *flags* the columns where its value is 1:

- the voxel key (``VoxelData``; bdpy's examples use ``Data``) flags voxel columns;
- ROI keys (``ROI_V1``, ``ROI_LH_LOC``, or plain ``V1``, ``LOC``, ...) flag the voxels of
  each region; a voxel in several ROIs (V1 is part of VC) appears once per ROI;
- a sample key (``ImageCode``, ``Modification``, ``Run``, ``TimeBin``, ...) flags the one
  column that holds its per-sample value; value maps (``/vmap``) turn codes into labels;
- voxel keys with other numbers (``voxel_x``) are per-voxel values.

Each sample is one fMRI volume (or one time bin of a trial). With a time-bin key the samples
of a trial become one presentation with ``time_bin`` bins of one TR each.
"""

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from workbench.errors import DataFormatError, DataWarning

from .checks import check_allocation, check_nan_policy, check_voxel_normalization, code_text, finish

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
_MAT73_MAGIC = b"MATLAB 7.3 MAT-file"
VOXEL_KEYS = ("VoxelData", "voxel_data", "Data")
STIMULUS_KEYS = ("ImageCode", "image_code", "stimulus_id", "stimulus_name", "Label")
TIME_KEYS = ("TimeBin", "time_bin")
KNOWN_ROIS = ("V1", "V2", "V3", "V4", "hV4", "LOC", "FFA", "PPA", "VC", "LVC", "HVC")
# Sample keys with a contract name (others keep a snake_case version of their own).
SAMPLE_RENAMES = {"ImageCode": "image_code", "Modification": "blur_level", "Category": "category",
                  "Condition": "task_condition", "Correct": "correct", "Certain": "certain",
                  "TrTest": "tr_test", "Run": "run", "Block": "block"}
_HEMISPHERES = {"LH": "left", "RH": "right", "L": "left", "R": "right",
                "left": "left", "right": "right"}


@dataclass
class BDataTable:
    """The format-independent content of a BData / BrainDecoderToolbox2 file.

    Attributes
    ----------
    dataset : numpy.ndarray, shape (n_samples, n_columns)
    keys, descriptions : list of str, length n_keys
    values : numpy.ndarray, shape (n_keys, n_columns)
        NaN where a key does not apply to a column.
    vmap : dict
        ``{key: {code (float): label (str)}}``.
    attrs : dict
        Root attributes of the file (the simulator records its provenance here).
    """

    dataset: np.ndarray
    keys: list
    descriptions: list
    values: np.ndarray
    vmap: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def flagged(self, key):
        row = self.values[self.keys.index(key)]
        return np.flatnonzero(row == 1)


def sniff(path, head):
    if head.startswith((_MAT5_MAGIC, _MAT73_MAGIC)):
        return True
    if not head.startswith(_HDF5_MAGIC):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return _layout(handle) is not None
    except (OSError, RuntimeError, KeyError, ValueError):
        return False  # damaged HDF5: let the next format's reader name the problem


# ----------------------------------------------------------------------------- reading files

def read_table(path):
    """Read the raw :class:`BDataTable` of a BData .h5 or BrainDecoderToolbox2 .mat file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(128)
    except OSError as error:
        raise DataFormatError(path, f"cannot be read ({error.strerror})") from error
    if head.startswith(_MAT5_MAGIC):
        table = _read_mat5(path)
    elif head.startswith((_MAT73_MAGIC, _HDF5_MAGIC)):
        table = _read_hdf5(path, matlab=head.startswith(_MAT73_MAGIC))
    else:
        raise DataFormatError(path, "neither HDF5 nor a MATLAB MAT-file",
                              "expected a BData .h5 or a BrainDecoderToolbox2 .mat")
    _check_table(table, path)
    return table


def _stored(path, name, dataset):
    """An HDF5 dataset's values, once its declared size is known to fit in memory (with the
    float64 copy :func:`_numeric` makes)."""
    extra = 0 if dataset.dtype == np.float64 else 8
    check_allocation(path, name, dataset.shape, dataset.dtype.itemsize + extra,
                     "is the file damaged? A BData file holds samples x columns of stored values")
    if (dataset.size and dataset.id.get_storage_size() == 0 and dataset.external is None
            and not dataset.is_virtual):
        raise DataFormatError(path, f"{name} declares shape {dataset.shape} but stores no values "
                                    f"(every one would read as the fill value {dataset.fillvalue})",
                              "the writer stopped before writing the data: export the file again")
    return dataset[()]


def _numeric(path, name, value):
    """``value`` as a float64 array; text or objects are a named error."""
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise ValueError(f"dtype {array.dtype}")
        return array.astype(np.float64, copy=False)
    except (ValueError, TypeError) as error:
        raise DataFormatError(path, f"{name} holds non-numeric values ({error})",
                              "BData matrices are numeric; text labels belong in a value map (vmap)") from None


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# the variable names of each layout: bdpy's own files use lower case; BrainDecoderToolbox2
# (MATLAB) camel case; bdpy reads either in either container, and so do we
_NAMES = (("dataset", "metadata"), ("dataSet", "metaData"))


def _layout(container, matlab_first=False):
    """``(data name, metadata name)`` of the first naming ``container`` holds both of (bdpy's
    first, or MATLAB's with ``matlab_first``), or None."""
    names = reversed(_NAMES) if matlab_first else _NAMES
    return next(((data, meta) for data, meta in names if data in container and meta in container), None)


def _read_hdf5(path, matlab=False):
    """A BData HDF5 file (bdpy: ``/dataset``, ``/metadata/{key,description,value}``, ``/vmap``)
    or a MATLAB v7.3 MAT-file (``matlab``: its 512-byte header; matrices stored transposed,
    text as cell arrays of character arrays)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            names = _layout(handle)
            if names is None:
                raise DataFormatError(
                    path, f"HDF5 file without /dataset + /metadata (found {sorted(handle)})",
                    "expected a BData file (bdpy) or a BrainDecoderToolbox2 v7.3 .mat",
                )
            data_name, meta_name = names
            meta = handle[meta_name]
            # fields named as their layout's users know them: MATLAB variables, or HDF5 paths
            data_label, meta_label = (data_name, meta_name) if matlab else (f"/{data_name}", f"/{meta_name}")
            value_label = f"{meta_label}.value" if matlab else f"{meta_label}/value"
            required = ("key", "value") if matlab else ("key", "description", "value")
            for name in required:
                if name not in meta:
                    raise DataFormatError(path, f"{meta_label} has no '{name}'",
                                          f"{meta_label} holds key, description and value")
            keys = _strings(handle, meta["key"])
            descriptions = _strings(handle, meta["description"]) if "description" in meta else [""] * len(keys)
            dataset = _numeric(path, data_label, _stored(path, data_label, handle[data_name]))
            values = _numeric(path, value_label, _stored(path, value_label, meta["value"]))
            if matlab:  # MATLAB stores column-major: HDF5 sees every matrix transposed
                dataset, values = dataset.T, np.atleast_2d(values.T)
            table = BDataTable(
                dataset=dataset, keys=keys, descriptions=descriptions, values=values,
                vmap=_read_vmap(handle),
                attrs={k: _decode(v) if isinstance(v, bytes) else v for k, v in handle.attrs.items()},
            )
    except (OSError, RuntimeError) as error:
        raise DataFormatError(path, f"cannot be opened as HDF5 ({error})",
                              "is the file truncated or corrupt?") from error
    except (KeyError, TypeError, ValueError, IndexError) as error:
        if isinstance(error, DataFormatError):
            raise
        raise DataFormatError(path, f"unexpected HDF5 layout ({error})",
                              "expected a BData file written by bdpy") from error
    return table


def _strings(handle, dataset):
    """A list of texts: bdpy's byte strings, or MATLAB v7.3 cells of character arrays (object
    references to uint16 codes), whichever the dataset holds."""
    import h5py

    if h5py.check_dtype(ref=dataset.dtype) is not None:
        return _mat73_strings(handle, dataset)
    return [_decode(item) for item in np.asarray(dataset[()]).ravel()]


def _read_vmap(handle):
    vmap = {}
    if "vmap" not in handle:
        return vmap
    for key, group in handle["vmap"].items():
        vmap[key] = {float(code): _decode(group[code][()]) for code in group}
    return vmap


def _mat73_strings(handle, cell):
    """A MATLAB v7.3 cell array of char arrays (object references to uint16 codes)."""
    strings = []
    for ref in np.asarray(cell[()]).ravel():
        codes = np.asarray(handle[ref][()]).ravel()
        strings.append("".join(map(chr, codes)) if codes.dtype.kind in "ui" else _decode(codes))
    return strings


def _read_mat5(path):
    import scipy.io

    from . import mat5

    # scipy's compiled reader trusts the file (a damaged element can crash the interpreter):
    # the variables it will read are checked element by element first
    wanted = tuple(name for pair in _NAMES for name in pair)
    mat5.check(path, variables=wanted)
    try:
        content = scipy.io.loadmat(path, simplify_cells=True, variable_names=wanted)
    except Exception as error:  # noqa: BLE001 - any reader error on a damaged file is ours to name
        raise DataFormatError(path, f"cannot be read as a MATLAB v5 file ({type(error).__name__}: {error})",
                              "is the file truncated or corrupt?") from error
    names = _layout(content, matlab_first=True)
    if names is None:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DataFormatError(path, f"no variables 'dataSet' and 'metaData' (found {found})",
                              "a BrainDecoderToolbox2 file holds dataSet and metaData")
    data_name, meta_name = names
    meta = content[meta_name]
    if not isinstance(meta, dict) or "key" not in meta or "value" not in meta:
        raise DataFormatError(path, f"{meta_name} is not a struct with fields key and value",
                              "BrainDecoderToolbox2 metaData holds key, description, value")
    keys = [str(k) for k in np.atleast_1d(meta["key"])]
    descriptions = [str(d) for d in np.atleast_1d(meta.get("description", [""] * len(keys)))]
    return BDataTable(
        dataset=np.atleast_2d(_numeric(path, data_name, content[data_name])),
        keys=keys, descriptions=descriptions,
        values=np.atleast_2d(_numeric(path, f"{meta_name}.value", meta["value"])),
    )


def _check_table(table, path):
    if table.dataset.ndim != 2:
        raise DataFormatError(path, f"dataset has shape {table.dataset.shape}",
                              "expected a 2-D samples x columns matrix")
    n_keys, n_columns = len(table.keys), table.dataset.shape[1]
    if table.values.shape != (n_keys, n_columns):
        raise DataFormatError(
            path,
            f"metadata value has shape {table.values.shape}, expected (n_keys, n_columns) = "
            f"({n_keys}, {n_columns})", "metadata rows are keys, columns are dataset columns",
        )
    if len(set(table.keys)) != n_keys:
        dupes = sorted({k for k in table.keys if table.keys.count(k) > 1})
        raise DataFormatError(path, f"metadata keys repeated: {dupes}", "keys must be unique")


# ------------------------------------------------------------------------- to the contract

def read(path, subject=None, rois=None, hemisphere=None, voxel_key=None, stimulus_key=None,
         time_key=None, tr_s=2.0, voxel_normalization=None, nan_policy="warn", require_roi=True):
    """Read a BData .h5 or BrainDecoderToolbox2 .mat file into an Assembly.

    Parameters
    ----------
    path : pathlib.Path
    subject : str, optional
        Subject label (neuroid coord ``subject``); default: the file's stem.
    rois : list of str, optional
        ROIs to keep (``"V1"`` matches ``ROI_V1``, ``ROI_LH_V1``, ...). Default: every ROI
        key.
    require_roi : bool
        A file without any ROI key is an error (its voxels have no region to score);
        ``require_roi=False`` loads every voxel without a ``region`` coord.
    hemisphere : {"left", "right"}, optional
        Keep the voxels of one hemisphere (from ROI names such as ``ROI_LH_V1``).
    voxel_key, stimulus_key, time_key : str, optional
        Metadata keys that flag voxel columns, name each sample's image, and give each
        sample's time bin within its trial. Defaults: the first present of
        ``VOXEL_KEYS``, ``STIMULUS_KEYS``, ``TIME_KEYS``.
    tr_s : float
        Repetition time in seconds: time bin ``k`` spans ``[k TR, (k+1) TR)`` in ms.
    voxel_normalization : {None, "zscore", "unit_norm"}
        Per voxel, over every presentation and time bin: ``"zscore"`` zero mean, unit
        variance; ``"unit_norm"`` zero mean, unit Euclidean norm (Lindsay et al.).
    nan_policy : {"warn", "raise", "propagate"}
        See :func:`data_adapters.checks.apply_nan_policy`.

    Returns
    -------
    xarray.DataArray
        ``(presentation, neuroid, time_bin)``: presentations are trials (``stimulus_id``
        plus every sample key as a coord; with a ``Modification`` key, ``blur_level`` in %
        and ``condition`` ``"clean"`` / ``"blur_<level>"``; a blurred image's
        ``stimulus_id`` is ``"<image>_blur_<level>"``, as :func:`workbench.stimuli.blur`
        names it); neuroids are (ROI, voxel) pairs with ``region``,
        ``hemisphere``, ``subject``, ``voxel_index``.
    """
    path = Path(path)
    check_nan_policy(path, nan_policy)
    check_voxel_normalization(path, voxel_normalization)
    table = read_table(path)
    subject = str(subject) if subject is not None else path.stem
    voxels, neuroids = _neuroids(table, path, subject, rois, hemisphere, voxel_key, require_roi)
    samples = _sample_fields(table, set(voxels))
    da = _to_assembly(table, path, samples, neuroids, stimulus_key, time_key, tr_s)
    if voxel_normalization is not None:
        da = normalize_voxels(da, voxel_normalization)
    da.attrs.update({"source": str(path), "identifier": f"{subject}", "simulated":
                     bool(table.attrs.get("simulated", False)), "units": "BOLD (file units)",
                     "voxel_normalization": voxel_normalization or "none"})
    for key in ("simulator", "seed"):
        if key in table.attrs:
            da.attrs[key] = table.attrs[key]
    return finish(da, path, nan_policy)


def normalize_voxels(da, method="zscore"):
    """Per-voxel normalisation over presentations and time bins (NaN-aware).

    ``"zscore"``: zero mean, unit standard deviation. ``"unit_norm"``: zero mean, unit
    Euclidean norm. A constant voxel becomes NaN (it carries no signal).
    """
    centred = da - da.mean(dim=("presentation", "time_bin"), skipna=True)
    if method == "zscore":
        scale = centred.std(dim=("presentation", "time_bin"), skipna=True)
    else:
        scale = np.sqrt((centred ** 2).sum(dim=("presentation", "time_bin"), skipna=True))
    out = (centred / scale.where(scale > 0)).transpose(*da.dims)
    out.attrs = dict(da.attrs)
    return out


def roi_name(key):
    """``ROI_LH_V1`` -> (``V1``, ``left``); ``V4`` -> (``V4``, None); else None."""
    body = key[4:] if key.startswith("ROI_") else key
    hemisphere = None
    parts = re.split(r"[_\-]", body)
    if len(parts) > 1 and parts[0] in _HEMISPHERES:
        hemisphere, parts = _HEMISPHERES[parts[0]], parts[1:]
    elif len(parts) > 1 and parts[-1] in _HEMISPHERES:
        hemisphere, parts = _HEMISPHERES[parts[-1]], parts[:-1]
    name = "_".join(parts)
    if key.startswith("ROI_") or name in KNOWN_ROIS:
        return name, hemisphere
    return None


def _neuroids(table, path, subject, rois, hemisphere, voxel_key, require_roi=True):
    if voxel_key is None:
        voxel_key = next((k for k in VOXEL_KEYS if k in table.keys), None)
    elif voxel_key not in table.keys:
        raise DataFormatError(path, f"no metadata key {voxel_key!r} (voxel_key)",
                              f"keys are {table.keys}")
    roi_keys = {key: roi_name(key) for key in table.keys if key != voxel_key}
    roi_keys = {key: parsed for key, parsed in roi_keys.items()
                if parsed is not None and len(table.flagged(key))}
    voxel_columns = (table.flagged(voxel_key) if voxel_key is not None else
                     np.unique(np.concatenate([table.flagged(k) for k in roi_keys] or [[]])).astype(int))
    if len(voxel_columns) == 0:
        raise DataFormatError(
            path, f"no voxel columns: no key among {list(VOXEL_KEYS)} and no ROI key "
            f"(keys are {table.keys})", "pass voxel_key=KEY naming the key that flags voxels",
        )
    if not roi_keys and require_roi:
        raise DataFormatError(path, f"no ROI keys (ROI_<name> metadata flagging voxels; keys are {table.keys})",
                              "add ROI keys, or pass require_roi=False to load every voxel without a region")
    if rois is not None:
        wanted = [rois] if isinstance(rois, str) else list(rois)
        available = sorted({name for name, _ in roi_keys.values()})
        unknown = [r for r in wanted if r not in available]
        if unknown:
            raise DataFormatError(path, f"ROI(s) {unknown} not in the file",
                                  f"ROIs available: {available}")
        roi_keys = {k: v for k, v in roi_keys.items() if v[0] in wanted}
    if hemisphere is not None:
        if hemisphere not in ("left", "right"):
            raise DataFormatError(path, f"hemisphere={hemisphere!r}", "use 'left' or 'right'")
        roi_keys = {k: v for k, v in roi_keys.items() if v[1] == hemisphere}
        if not roi_keys:
            raise DataFormatError(path, f"no ROI of the {hemisphere} hemisphere",
                                  "ROI keys name it as ROI_LH_<roi> / ROI_RH_<roi>")
    per_voxel = _per_voxel_fields(table, voxel_columns, set(roi_keys) | {voxel_key})
    columns, fields = [], {"region": [], "hemisphere": []}
    if roi_keys:
        voxel_set = set(voxel_columns.tolist())
        for key, (name, hemi) in roi_keys.items():
            members = [c for c in table.flagged(key) if c in voxel_set]
            if not members:
                raise DataFormatError(path, f"ROI {key!r} flags no voxel column",
                                      "an ROI needs at least one voxel")
            columns += members
            fields["region"] += [name] * len(members)
            fields["hemisphere"] += [hemi or "unknown"] * len(members)
        ids = [f"{subject}.{r}.{h}.{c}" for r, h, c in zip(fields["region"], fields["hemisphere"], columns)]
    else:
        columns = voxel_columns.tolist()
        fields = {}
        ids = [f"{subject}.{c}" for c in columns]
    columns = np.asarray(columns, dtype=int)
    coords = {"neuroid_id": np.asarray(ids, dtype=object), "subject": np.full(len(columns), subject, dtype=object),
              "voxel_index": columns}
    coords.update({k: np.asarray(v, dtype=object) for k, v in fields.items()})
    position = {c: i for i, c in enumerate(voxel_columns.tolist())}
    for name, values in per_voxel.items():
        coords[name] = values[[position[c] for c in columns]]
    return voxel_columns, (columns, coords)


def _per_voxel_fields(table, voxel_columns, skip):
    """Keys whose values on voxel columns are not a 0/1 flag (e.g. voxel_x)."""
    fields = {}
    for key, row in zip(table.keys, table.values):
        if key in skip:
            continue
        on_voxels = row[voxel_columns]
        finite = on_voxels[np.isfinite(on_voxels)]
        if finite.size == len(voxel_columns) and not np.isin(finite, (0, 1)).all():
            integral = np.array_equal(on_voxels, np.round(on_voxels))
            fields[_snake(key)] = on_voxels.astype(np.int64) if integral else on_voxels
    return fields


def _snake(key):
    return SAMPLE_RENAMES.get(key) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def _sample_fields(table, voxel_columns):
    """``{key: (n_samples,) values}`` for keys flagging exactly one column, not a voxel."""
    fields = {}
    for key in table.keys:
        flagged = table.flagged(key)
        if len(flagged) == 1 and flagged[0] not in voxel_columns:
            fields[key] = table.dataset[:, flagged[0]]
    return fields


def _labels(table, key, codes, path=None):
    """Text labels of a sample key's codes (its value map, else the codes themselves);
    distinct codes always get distinct labels."""
    mapping = table.vmap.get(key) or {}
    # once per distinct code: a file has many samples (volumes) per image
    distinct, inverse = np.unique(np.asarray(codes, dtype=np.float64), return_inverse=True)
    texts = np.array([mapping.get(float(c), code_text(c)) for c in distinct], dtype=object)
    labels = texts[inverse.reshape(-1)]
    pairs = pd.DataFrame({"code": distinct, "label": texts})
    merged = pairs[pairs["label"].duplicated(keep=False)]
    if len(merged):
        raise DataFormatError(path or "<bdata>", f"codes {merged['code'].tolist()[:4]} of {key!r} all map to the "
                              f"label {merged['label'].iloc[0]!r}", "each image needs its own code and label")
    return labels


def _to_assembly(table, path, samples, neuroids, stimulus_key, time_key, tr_s):
    sample_keys = sorted(samples)
    if stimulus_key is None:
        stimulus_key = next((k for k in STIMULUS_KEYS if k in samples), None)
        if stimulus_key is None:
            raise DataFormatError(path, f"no sample key naming the image among {list(STIMULUS_KEYS)} "
                                  f"(sample keys are {sample_keys})", "pass stimulus_key=KEY")
    elif stimulus_key not in samples:
        raise DataFormatError(path, f"stimulus_key {stimulus_key!r} is not a sample key",
                              f"sample keys are {sample_keys}")
    if time_key is None:
        time_key = next((k for k in TIME_KEYS if k in samples), None)
    elif time_key not in samples:
        raise DataFormatError(path, f"time_key {time_key!r} is not a sample key",
                              f"sample keys are {sample_keys}")
    columns, neuroid_coords = neuroids
    data = table.dataset[:, columns]  # (n_samples, n_neuroids)
    n_samples = data.shape[0]
    if time_key is None:
        trial_rows = np.arange(n_samples)[:, None]  # every sample a presentation, one bin
        starts = ends = np.array([np.nan])
    else:
        trial_rows, bins = _trials(samples[time_key], path, time_key)
        starts = np.arange(len(bins)) * tr_s * 1000.0
        ends = starts + tr_s * 1000.0
    codes = np.asarray(samples[stimulus_key][trial_rows[:, 0]], dtype=np.float64)
    no_image = ~np.isfinite(codes)
    if no_image.all():
        raise DataFormatError(path, f"every trial's {stimulus_key!r} is NaN or inf: no image to score",
                              "pass stimulus_key= the key that codes the images")
    if no_image.any():
        # rest and fixation blocks carry no image code: they are not presentations (never the stimulus "nan")
        warnings.warn(f"{path}: {int(no_image.sum())} of {len(codes)} trials have no {stimulus_key!r} (NaN or inf), "
                      "as rest or fixation blocks do; they are left out", DataWarning, stacklevel=4)
        trial_rows = trial_rows[~no_image]
    first = trial_rows[:, 0]
    presentation = {}
    for key in sample_keys:
        if key == time_key:
            continue
        values = samples[key][trial_rows]
        if not np.array_equal(values, values[:, :1].repeat(values.shape[1], 1), equal_nan=True):
            raise DataFormatError(path, f"sample key {key!r} changes within a trial",
                                  f"the samples of a trial (same {time_key} cycle) must share it")
        column = values[:, 0]
        presentation[_snake(key)] = _labels(table, key, column, path) if key in table.vmap else column
    image = _labels(table, stimulus_key, samples[stimulus_key][first], path)
    if "Modification" in samples:
        level = samples["Modification"][first]
        condition = np.array(["clean" if lv == 0 else f"blur_{code_text(lv)}" for lv in level], dtype=object)
        presentation["condition"] = condition
        stimulus_id = np.array([i if c == "clean" else f"{i}_{c}" for i, c in zip(image, condition)],
                               dtype=object)
    else:
        stimulus_id = image
    presentation["stimulus_id"] = stimulus_id
    presentation["repetition"] = pd.Series(stimulus_id).groupby(stimulus_id).cumcount().to_numpy()
    values = data[trial_rows]  # (n_trials, n_bins, n_neuroids)
    coords = {name: ("presentation", v) for name, v in presentation.items()}
    coords.update({name: ("neuroid", v) for name, v in neuroid_coords.items()})
    coords.update({"time_bin_start": ("time_bin", starts), "time_bin_end": ("time_bin", ends)})
    return xr.DataArray(values.transpose(0, 2, 1), dims=("presentation", "neuroid", "time_bin"),
                        coords=coords)


def _trials(bin_values, path, time_key):
    """Rows of each trial, ``(n_trials, n_bins)``: the k-th sample of every bin value."""
    finite = np.isfinite(bin_values)
    if not finite.all():
        raise DataFormatError(path, f"{(~finite).sum()} samples have no {time_key!r}",
                              "every sample needs its time bin within the trial")
    bins = np.unique(bin_values)
    rows = [np.flatnonzero(bin_values == b) for b in bins]
    counts = {len(r) for r in rows}
    if len(counts) != 1:
        raise DataFormatError(
            path, f"time bins {bins.tolist()} occur {[len(r) for r in rows]} times",
            f"every trial needs one sample of each {time_key!r} value",
        )
    trial_rows = np.stack(rows, axis=1)
    if np.any(np.diff(trial_rows, axis=1) <= 0):
        raise DataFormatError(path, f"samples of a trial are not in {time_key!r} order",
                              "store each trial's samples consecutively, first bin first")
    return trial_rows, bins


# ---------------------------------------------------------------------------------- writing

def write(path, dataset, metadata, vmap=None, attrs=None):
    """Write a BData HDF5 file (bdpy's layout), atomically.

    Parameters
    ----------
    path : str or os.PathLike
    dataset : array, shape (n_samples, n_columns)
    metadata : list of (key, description, values) with values of shape (n_columns,)
    vmap : dict, optional
        ``{key: {code: label}}``.
    attrs : dict, optional
        Root attributes (provenance: ``simulated``, ``simulator``, ``seed``).
    """
    import h5py

    from workbench.storage import atomic_path

    dataset = np.asarray(dataset, dtype=np.float64)
    keys = [k for k, _, _ in metadata]
    values = np.stack([np.asarray(v, dtype=np.float64) for _, _, v in metadata])
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("dataset", data=dataset)
            meta = handle.create_group("metadata")
            meta.create_dataset("key", data=np.array(keys, dtype="S"))
            meta.create_dataset("description", data=np.array([d for _, d, _ in metadata], dtype="S"))
            meta.create_dataset("value", data=values)
            group = handle.create_group("vmap")
            for key, mapping in (vmap or {}).items():
                sub = group.create_group(key)
                for code, label in mapping.items():
                    sub.create_dataset(f"{float(code)}", data=label)
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value


def write_mat(path, dataset, metadata, version="5"):
    """Write a BrainDecoderToolbox2 .mat file (``dataSet``, ``metaData``), atomically.

    ``version="5"`` writes a MATLAB v5 file (scipy); ``"7.3"`` writes MATLAB's HDF5-based
    layout (512-byte header, column-major matrices, cell arrays as object references).
    Arguments as in :func:`write`.
    """
    from workbench.storage import atomic_path

    dataset = np.asarray(dataset, dtype=np.float64)
    keys = [k for k, _, _ in metadata]
    descriptions = [d for _, d, _ in metadata]
    values = np.stack([np.asarray(v, dtype=np.float64) for _, _, v in metadata])
    if version == "5":
        import scipy.io

        cells = lambda items: np.array(items, dtype=object).reshape(1, -1)  # noqa: E731
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                scipy.io.savemat(handle, {"dataSet": dataset, "metaData": {
                    "key": cells(keys), "description": cells(descriptions), "value": values}})
        return
    if version != "7.3":
        raise ValueError(f"version must be '5' or '7.3', got {version!r}")
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=512) as handle:
            handle.create_dataset("dataSet", data=dataset.T).attrs["MATLAB_class"] = np.bytes_("double")
            meta = handle.create_group("metaData")
            meta.attrs["MATLAB_class"] = np.bytes_("struct")
            refs = handle.create_group("#refs#")
            for name, items in (("key", keys), ("description", descriptions)):
                targets = []
                for i, text in enumerate(items):
                    char = refs.create_dataset(f"{name}_{i}", data=np.array(
                        [ord(ch) for ch in text], dtype=np.uint16).reshape(-1, 1))
                    char.attrs["MATLAB_class"] = np.bytes_("char")
                    targets.append(char.ref)
                cell = meta.create_dataset(name, data=np.array(targets, dtype=h5py.ref_dtype).reshape(-1, 1))
                cell.attrs["MATLAB_class"] = np.bytes_("cell")
            meta.create_dataset("value", data=values.T).attrs["MATLAB_class"] = np.bytes_("double")
        header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: neural-workbench HDF5 schema 1.00 ."
        with open(tmp, "r+b") as handle:
            handle.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
