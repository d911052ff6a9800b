"""BrainIO netCDF assemblies (Brain-Score's on-disk format) <-> the Assembly contract.

BrainIO writes one data variable (named ``data`` or ``__xarray_dataarray_variable__``)
whose pandas MultiIndex levels were flattened into plain coords; older packages call the
stimulus ``image_id``. Files written by :func:`write` load in Brain-Score's loader too.
"""

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from workbench.assembly import (DIMS, decode_attrs, is_member, select_neuroids, select_time_bins,
                                time_bin_overlap, to_netcdf, validate)
from workbench.errors import AssemblyError, DataFormatError, DataWarning

from .checks import apply_nan_policy, check_allocation, check_nan_policy, id_text
from .stimulus_set import load_stimulus_set, merge_stimulus_set, split_mask

# netCDF-4 is HDF5 underneath; netCDF-3 ("classic") starts with CDF\x01 or CDF\x02.
_MAGIC = (b"\x89HDF\r\n\x1a\n", b"CDF\x01", b"CDF\x02")


def sniff(path, head):
    return head.startswith(_MAGIC)


#: seconds the netCDF library may take to read a file's structure (a valid file takes well under
#: 1 s, a 6.5 GB recording included; a damaged one can loop forever)
OPEN_TIMEOUT_S = 20
_OPENED = {}  # (path, size, mtime, inode) -> True: files whose structure opened in a child process
_OPEN_CHECK = "import sys, netCDF4\nwith netCDF4.Dataset(sys.argv[1]) as d:\n    d.variables, d.groups, d.ncattrs()\n"


def _check_opens(path):
    """Open the file's structure in a child process first, with a time limit.

    Found by fuzzing: a run of zero bytes in one object header of a netCDF-4 file made
    libnetcdf loop forever at 100 % CPU inside ``netCDF4.Dataset`` (h5py opened the same
    file at once), and no signal interrupts a loop in C. A child that does not finish in
    :data:`OPEN_TIMEOUT_S`, or that dies of a signal (the library crashing), is a named error
    here; any other failure is left to the open in this process, which names it. A file
    checked once in a process (same size, modification time and inode) is not checked
    again: about 0.1 s per new file.
    """
    import os
    import subprocess
    import sys

    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key in _OPENED:
        return
    try:
        child = subprocess.run([sys.executable, "-c", _OPEN_CHECK, str(path)], capture_output=True,
                               timeout=OPEN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DataFormatError(path, f"the netCDF library did not finish reading the file's structure in "
                                    f"{OPEN_TIMEOUT_S} s (damaged metadata)",
                              "is the file truncated or corrupt? Re-export it") from None
    except OSError:  # no interpreter to start (an embedded Python): open it here, unchecked
        return
    if child.returncode < 0:
        raise DataFormatError(path, f"the netCDF library crashed reading the file's structure (signal "
                                    f"{-child.returncode})", "is the file truncated or corrupt? Re-export it")
    if child.returncode == 0:
        _OPENED[key] = True


def _groups(path):
    """The names of the file's netCDF-4 groups (none for netCDF-3)."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as handle:
            return sorted(handle.groups)
    except OSError:
        return []


def read(path, variable=None, stimulus_set=None, stimulus_split=None, region=None, animal=None,
         time_window=None, lazy=False, chunk_mb=64, nan_policy="warn", time_unit=None):
    """Read a BrainIO assembly file into a validated Assembly.

    Parameters
    ----------
    path : pathlib.Path
    variable : str, optional
        Data variable to read when the file holds several.
    stimulus_set : path or pandas.DataFrame, optional
        Stimulus-set CSV (or its loaded frame) whose columns become presentation coords,
        matched on ``stimulus_id`` (``image_id``/``id`` in the CSV are accepted).
    stimulus_split : {"public", "private"}, optional
        Keep only the presentations of the stimulus set's split (HvM: V0+V3 / V6).
    region, animal : str or list of str, optional
        Keep only these neuroids.
    time_window : (float, float), optional
        Keep the time bins within ``[start, end]`` ms.
    lazy : bool
        Keep the values on disk as a dask array (chunks of about ``chunk_mb`` MB of whole
        presentations): opening costs only the coords, and
        :func:`workbench.assembly.average_repetitions` then streams the file with bounded
        memory. Non-finite values are not counted when lazy (that would read everything).
    nan_policy : {"warn", "raise", "propagate"}
        See :func:`data_adapters.checks.apply_nan_policy` (ignored when ``lazy``).
    time_unit : {"ms", "s", "us"}, optional
        Unit of the file's time-bin edges. Default: the ``units`` attribute of
        ``time_bin_start``/``time_bin_end`` where the file has one (``"s"``, ``"seconds"``,
        ``"ms"``, ...), else ms, as BrainIO writes them. Edges are converted to ms. Time-bin
        edges without units that span less than 1 ms in all are refused: they are seconds
        (a 10 ms bin read as 0.01 ms), and ``time_unit="s"`` reads them.

    Overlapping time windows (e.g. 20 ms windows every 10 ms, as in the MajajHong2015
    temporal release) are kept, reported in ``attrs["time_bin_overlap"]`` and warned
    about (:class:`workbench.errors.DataWarning`): neighbouring bins share spikes.

    Returns
    -------
    xarray.DataArray
        float assembly ``(presentation, neuroid, time_bin)``; a file without a time
        dimension gets one bin with NaN edges (window unknown). ``attrs['source']`` is the
        path; ``attrs['simulated']`` is False unless the file says otherwise.
    """
    check_nan_policy(path, nan_policy)
    _check_opens(path)
    try:
        # time-bin edges are read as stored (their unit is read here: _time_in_ms); CF time
        # decoding would take "ms since onset" for a date and fail to open the file
        raw = xr.open_dataset(path, engine="netcdf4", decode_times=False, decode_timedelta=False)
    except (OSError, ValueError, RuntimeError) as error:
        raise DataFormatError(
            path, f"cannot be opened as netCDF ({error})", "is the file truncated or corrupt?"
        ) from error
    try:
        dataset = _decode_times_except_edges(raw)
        names = list(dataset.data_vars)
        if variable is None:
            if len(names) == 1:
                variable = names[0]
            else:
                preferred = [n for n in ("data", "__xarray_dataarray_variable__") if n in names]
                if len(preferred) != 1:
                    groups = [] if names else _groups(path)
                    raise DataFormatError(
                        path,
                        f"expected one data variable, found {names or 'none'}"
                        + (f" at the root; the file's groups {groups} are not read" if groups else ""),
                        "re-save the assembly at the root (xarray's to_netcdf without group=), as BrainIO "
                        "writes it" if groups else "pass variable=NAME to choose one",
                    )
                variable = preferred[0]
        elif variable not in names:
            raise DataFormatError(path, f"no data variable {variable!r}; found {names}")
        da = dataset[variable]
        unwritten = _default_fill(da)
        if lazy:
            da = da.chunk(_presentation_chunks(da, chunk_mb))
        else:
            check_allocation(path, f"variable {variable!r}", da.shape, da.dtype.itemsize + 8,
                             "is the file damaged? Otherwise open it with lazy=True (read in chunks)")
            da = da.load()
        if unwritten is not None:
            da = da.where(da != unwritten)
    except (OSError, RuntimeError, KeyError, IndexError) as error:
        raise DataFormatError(path, f"cannot be read as netCDF ({error})",
                              "is the file truncated or corrupt?") from error
    finally:
        if not lazy:
            raw.close()
    da = _to_contract(da, path, time_unit)
    try:
        if stimulus_set is not None:
            if isinstance(stimulus_set, pd.DataFrame):
                frame, source = stimulus_set, "stimulus set"
            else:
                frame, source = load_stimulus_set(stimulus_set), stimulus_set
            da = merge_stimulus_set(da, frame, source=source)
            if stimulus_split is not None:
                split_ids = frame.loc[split_mask(frame, stimulus_split, source), "stimulus_id"].astype(str)
                da = da.isel(presentation=np.flatnonzero(is_member(da.coords["stimulus_id"].values, split_ids)))
        elif stimulus_split is not None:
            raise DataFormatError(path, "stimulus_split needs a stimulus_set", "pass stimulus_set=CSV")
        criteria = {k: v for k, v in (("region", region), ("animal", animal)) if v is not None}
        if criteria:
            da = select_neuroids(da, **criteria)
        if time_window is not None:
            da = select_time_bins(da, *time_window)
    except AssemblyError as error:
        raise DataFormatError(path, str(error)) from error
    overlap = time_bin_overlap(da)
    if overlap:
        da.attrs["time_bin_overlap"] = overlap
        warnings.warn(
            f"{path}: time bins overlap ({overlap['window_ms']:g} ms windows every "
            f"{overlap['step_ms']:g} ms); neighbouring bins share spikes, so treat them as "
            "smoothed, not independent", DataWarning, stacklevel=3,
        )
    if lazy:
        da.attrs["nonfinite"] = "not counted (lazy)"
        return da
    return apply_nan_policy(da, path, nan_policy)


_EDGES = ("time_bin_start", "time_bin_end")


def _decode_times_except_edges(raw):
    """``raw`` (opened without CF time decoding) with the dates and durations of every
    variable but the time-bin edges decoded, as xarray would have; as it is where decoding
    fails (a coord whose time units name no date: its numbers are kept)."""
    edges = [name for name in _EDGES if name in raw.variables]
    try:
        decoded = xr.decode_cf(raw.drop_vars(edges), decode_timedelta=True)
    except (ValueError, TypeError, OverflowError):
        return raw
    coords = {name: raw[name] for name in edges if name in raw.coords}
    variables = {name: raw[name] for name in edges if name not in raw.coords}
    return decoded.assign_coords(coords).assign(variables)


def _default_fill(da):
    """The value a never-written cell of ``da`` reads as, where it must be masked here.

    netCDF fills unwritten cells with a default fill value (``netCDF4.default_fillvals``:
    9.97e36 for floats, -2147483647 for int32, ...) when the variable declares no
    ``_FillValue``. xarray masks only a declared ``_FillValue`` or ``missing_value``, so a
    recording cut short by its writer would load its missing cells as responses of 9.97e36.
    netCDF4 itself masks them, except in byte variables (where every value is plausible data).
    """
    import netCDF4

    encoding = {**da.attrs, **da.encoding}
    if any(k in encoding for k in ("_FillValue", "missing_value", "scale_factor", "add_offset")):
        return None
    dtype = np.dtype(encoding.get("dtype", da.dtype))
    if dtype.itemsize == 1:
        return None
    fill = netCDF4.default_fillvals.get(f"{dtype.kind}{dtype.itemsize}")
    return None if fill is None else dtype.type(fill)


def _presentation_chunks(da, chunk_mb):
    """Whole presentations per chunk, about ``chunk_mb`` MB each (rows are contiguous on disk)."""
    row_bytes = max(1, int(np.prod([n for d, n in da.sizes.items() if d != "presentation"]))
                    * da.dtype.itemsize)
    rows = max(1, int(chunk_mb * 2**20 // row_bytes))
    return {dim: (rows if dim == "presentation" else -1) for dim in da.dims}



def _in_time_order(da, path):
    """``da`` with its time bins in time order. A netCDF dimension has no order of its own: a
    file merged from parts or concatenated by hand may hold its bins in any order, and every
    analysis here reads the time axis as a time course. Sorting by start is lossless where
    the starts are distinct numbers; anything else is left to the contract's check."""
    if "time_bin_start" not in da.coords or da.sizes["time_bin"] < 2:
        return da
    start = np.asarray(da.coords["time_bin_start"].values)
    if (start.ndim != 1 or not np.issubdtype(start.dtype, np.number) or not np.isfinite(start).all()
            or len(np.unique(start)) < len(start) or np.all(np.diff(start) > 0)):
        return da
    warnings.warn(f"{path}: its time bins are stored out of time order; they are read in order of "
                  "time_bin_start", DataWarning, stacklevel=4)
    return da.isel(time_bin=np.argsort(start, kind="stable"))


_TIME_UNITS = {"ms": 1.0, "msec": 1.0, "millisecond": 1.0, "milliseconds": 1.0, "s": 1e3, "sec": 1e3,
               "second": 1e3, "seconds": 1e3, "us": 1e-3, "usec": 1e-3, "microsecond": 1e-3,
               "microseconds": 1e-3}


def _time_in_ms(da, path, time_unit):
    """``da`` with its time-bin edges in ms: converted from the unit given, or the one the
    file's ``units`` attribute names, or timedelta64 values; edges without a unit that span
    under 1 ms are refused (seconds read as ms)."""
    edges = [name for name in _EDGES if name in da.coords]
    if not edges:
        return da
    if time_unit is not None and str(time_unit).strip().lower() not in _TIME_UNITS:
        raise DataFormatError(path, f"time_unit {time_unit!r} is not a unit of time", "time_unit='ms', 's' or 'us'")
    converted = {}
    for name in edges:
        coord = da.coords[name]
        values = np.asarray(coord.values)
        if values.dtype.kind == "m":  # timedelta64: the unit is in the values
            converted[name], source = values / np.timedelta64(1, "ms"), "timedelta64"
            continue
        declared = coord.attrs.get("units")
        unit = time_unit if time_unit is not None else declared
        if unit is None:
            continue
        words = str(unit).strip().lower().split()  # "ms", "seconds", "ms since onset"
        factor = _TIME_UNITS.get(words[0] if words else "")
        if factor is None:  # read as ms, as before units were read: say so
            warnings.warn(f"{path}: coord {name!r} has units {declared!r}, not a unit of time this reader "
                          "knows; its edges are read as ms (time_unit='s' or 'us' says otherwise)",
                          DataWarning, stacklevel=5)
            continue
        if factor != 1.0 and np.issubdtype(values.dtype, np.number):
            converted[name], source = values.astype(np.float64) * factor, str(unit)
    if converted:
        da = da.assign_coords({name: (da.coords[name].dims, values) for name, values in converted.items()})
        da.attrs["time_unit_read"] = source  # the edges were converted from it to ms
    elif time_unit is None and len(edges) == 2 and all(np.issubdtype(da.coords[n].dtype, np.number) for n in edges):
        start, end = (np.asarray(da.coords[n].values, dtype=np.float64) for n in edges)
        finite = np.isfinite(start) & np.isfinite(end)
        span = float(end[finite].max() - start[finite].min()) if finite.any() else 0.0
        if 0 < span < 1:
            raise DataFormatError(path, f"its time bins span {span:g} ms in all ({start[finite].min():g} to "
                                  f"{end[finite].max():g}): BrainIO time bins are in ms, so these look like "
                                  "seconds", "load(..., time_unit='s') reads them as seconds")
    return da


def _to_contract(da, path, time_unit=None):
    missing = [dim for dim in ("presentation", "neuroid") if dim not in da.dims]
    extra = [dim for dim in da.dims if dim not in DIMS]
    if missing or extra:
        raise DataFormatError(
            path,
            f"data dims are {tuple(da.dims)}"
            + (f", missing {missing}" if missing else "")
            + (f", unexpected {extra}" if extra else ""),
            "a BrainIO assembly has dims (presentation, neuroid[, time_bin])",
        )
    if "time_bin" not in da.dims:
        da = da.expand_dims("time_bin", axis=-1).assign_coords(
            time_bin_start=("time_bin", [np.nan]), time_bin_end=("time_bin", [np.nan])
        )
    da = da.transpose(*DIMS)
    da = _in_time_order(_time_in_ms(da, path, time_unit), path)
    if "stimulus_id" not in da.coords:
        if "image_id" not in da.coords:
            raise DataFormatError(
                path,
                "presentation has neither 'stimulus_id' nor 'image_id'",
                "BrainIO assemblies name the stimulus of each presentation in one of them",
            )
        da = da.assign_coords(stimulus_id=("presentation", da.coords["image_id"].values))
    for coord in ("stimulus_id", "neuroid_id"):
        if coord in da.coords:
            da = da.assign_coords({coord: (da.coords[coord].dims, id_text(da.coords[coord].values))})
    if not np.issubdtype(da.dtype, np.floating):
        if da.dtype.kind not in "iub":
            raise DataFormatError(path, f"the data variable holds {da.dtype} values, not numbers",
                                  "a BrainIO assembly stores numeric responses (rates or counts)")
        da = da.astype(np.float64)
    try:
        attrs = decode_attrs(da.attrs)
    except AssemblyError as error:
        raise DataFormatError(path, str(error), "rewrite the file (workbench.assembly.to_netcdf), or drop "
                              "that attribute") from None
    attrs.setdefault("source", str(path))
    attrs.setdefault("identifier", path.stem)
    attrs.setdefault("simulated", False)
    da.attrs = attrs
    da.name = None
    try:
        return validate(da)
    except AssemblyError as error:
        raise DataFormatError(path, str(error)) from error


def write(da, path):
    """Write an Assembly as a BrainIO netCDF file (flat coords, one variable), atomically."""
    to_netcdf(da, path)
