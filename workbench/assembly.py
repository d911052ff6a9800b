"""The Assembly contract (docs/DESIGN.md §3): one labelled array shape for every response set.

An *assembly* is an :class:`xarray.DataArray` with dims ``("presentation", "neuroid",
"time_bin")``, a float dtype and plain (non-MultiIndex) coordinates:

========== ============================== =============================================
dim        required coords                meaning
========== ============================== =============================================
presentation ``stimulus_id`` (str)        which image was shown; repeats across trials,
                                          told apart by ``repetition``
neuroid    ``neuroid_id`` (str, unique)   a recording site, voxel or model unit
time_bin   ``time_bin_start``,            bin edges in milliseconds from stimulus onset;
           ``time_bin_end`` (numeric)     a static response has one bin
========== ============================== =============================================

Trial-level data repeats a ``stimulus_id`` on several presentations (one per trial); a
``repetition`` coord is informative but not required to be unique, because real releases
show the same image in several sessions with the same repetition number.

Everything downstream (metrics, stats, reports) relies on :func:`validate` having passed,
and on :func:`align` to pair assemblies by ``stimulus_id`` (never by position).
"""

import json

import numpy as np
import pandas as pd
import scipy.sparse
import xarray as xr

from .errors import AssemblyError
from .storage import atomic_path

DIMS = ("presentation", "neuroid", "time_bin")
REQUIRED_COORDS = {
    "stimulus_id": "presentation",
    "neuroid_id": "neuroid",
    "time_bin_start": "time_bin",
    "time_bin_end": "time_bin",
}
# netCDF attributes hold only strings and numbers; other attrs travel in one JSON attribute.
_JSON_ATTRS_KEY = "workbench_attrs_json"


def validate(da):
    """Check that ``da`` follows the Assembly contract and return it unchanged.

    Parameters
    ----------
    da : xarray.DataArray
        Candidate assembly, dims ``(presentation, neuroid, time_bin)``.

    Returns
    -------
    xarray.DataArray
        ``da`` itself, so calls can be chained.

    Raises
    ------
    AssemblyError
        Naming the missing or invalid dim/coord and how to fix it.
    """
    if not isinstance(da, xr.DataArray):
        raise AssemblyError(
            f"an assembly must be an xarray.DataArray, got {type(da).__name__} "
            "(fix: wrap the array with xarray.DataArray(values, dims=..., coords=...))"
        )
    if tuple(da.dims) != DIMS:
        missing = [d for d in DIMS if d not in da.dims]
        extra = [d for d in da.dims if d not in DIMS]
        if missing or extra:
            raise AssemblyError(
                f"dims must be {DIMS}, got {tuple(da.dims)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
                + " (fix: rename dims, or add a single time bin with "
                "da.expand_dims('time_bin', axis=-1) for static data)"
            )
        raise AssemblyError(
            f"dims must be in the order {DIMS}, got {tuple(da.dims)} "
            f"(fix: da.transpose{DIMS})"
        )
    if not np.issubdtype(da.dtype, np.floating):
        raise AssemblyError(
            f"values must be float32 or float64, got {da.dtype} (fix: da.astype('float64'))"
        )
    for name, index in da.indexes.items():
        if isinstance(index, pd.MultiIndex):
            raise AssemblyError(
                f"coord {name!r} is a pandas MultiIndex; the contract uses plain coords "
                f"(fix: da.reset_index({name!r}))"
            )
    for coord, dim in REQUIRED_COORDS.items():
        if coord not in da.coords:
            raise AssemblyError(
                f"missing coord {coord!r} on dim {dim!r} "
                f"(fix: da.assign_coords({coord}=({dim!r}, values)))"
            )
        if da.coords[coord].dims != (dim,):
            raise AssemblyError(
                f"coord {coord!r} must lie along dim {dim!r} only, "
                f"got dims {da.coords[coord].dims}"
            )
    for coord in ("stimulus_id", "neuroid_id"):
        values = da.coords[coord].values
        if not _is_string_array(values):
            raise AssemblyError(
                f"coord {coord!r} must hold strings, got dtype {values.dtype} "
                f"(fix: da.assign_coords({coord}=({REQUIRED_COORDS[coord]!r}, "
                f"da.{coord}.values.astype(object).astype(str))))"
            )
        bad = control_character_id(values)
        if bad is not None:
            raise AssemblyError(
                f"coord {coord!r} holds {bad!r}, with a control character; ids must be printable "
                "text (fix: clean the ids in the source file)"
            )
        blank = np.flatnonzero(pd.Series(values.ravel()).astype(str).str.strip().eq("").to_numpy())
        if len(blank):
            raise AssemblyError(
                f"coord {coord!r} is empty at position {int(blank[0])} ({len(blank)} empty in all); "
                "every row needs an id (fix: fill the missing ids in the source file)"
            )
    neuroid_ids = pd.Index(da.coords["neuroid_id"].values)
    if neuroid_ids.has_duplicates:
        dupes = neuroid_ids[neuroid_ids.duplicated()].unique()[:5].tolist()
        raise AssemblyError(
            f"coord 'neuroid_id' must be unique, duplicated: {dupes} "
            "(fix: build ids that include every distinguishing field, e.g. animal + electrode)"
        )
    empty = [dim for dim in DIMS if da.sizes[dim] == 0]
    if empty:
        raise AssemblyError(
            f"the assembly has no {empty[0]}s (shape {dict(da.sizes)}); there is nothing to score "
            "(fix: check the file's selection options, e.g. region=, time_window=, rois=)"
        )
    _validate_time_bins(da)
    return da


_CONTROL = r"[\x00-\x1f\x7f-\x9f]"  # C0 and C1 control characters, NUL and ESC among them


def control_character_id(values):
    """The first id in ``values`` that holds a control character (NUL, tab, newline, ESC,
    ...), or None. Such an id is damage or an injection, never a stimulus name: it cannot be
    stored in netCDF/HDF5 text, and it rewrites terminals and logs."""
    ids = pd.Series(pd.unique(np.asarray(values, dtype=object).ravel())).astype(str)
    bad = ids[ids.str.contains(_CONTROL, regex=True)]
    return None if bad.empty else bad.iloc[0]


def _is_string_array(values):
    if values.dtype.kind == "U":
        return True
    if values.dtype.kind == "O":
        return all(isinstance(v, str) for v in values.ravel())
    return False


MAX_TIME_MS = 1e9  # time bins beyond +-11 days are a unit or parsing error, not data


def _validate_time_bins(da):
    start = da.coords["time_bin_start"].values
    end = da.coords["time_bin_end"].values
    for name, values in (("time_bin_start", start), ("time_bin_end", end)):
        if not np.issubdtype(values.dtype, np.number):
            raise AssemblyError(
                f"coord {name!r} must be numeric milliseconds, got dtype {values.dtype}"
            )
    # A static assembly of unknown window may carry NaN edges; a time course may not.
    if da.sizes["time_bin"] > 1 and not (np.isfinite(start).all() and np.isfinite(end).all()):
        raise AssemblyError(
            "coords 'time_bin_start'/'time_bin_end' must be finite when there is more than "
            "one time bin (fix: give every bin its edges in ms)"
        )
    finite = np.isfinite(start) & np.isfinite(end)
    if np.any(np.abs(start[finite]) > MAX_TIME_MS) or np.any(np.abs(end[finite]) > MAX_TIME_MS):
        raise AssemblyError(
            f"time bin edges must be milliseconds within +-{MAX_TIME_MS:g} (about 11 days), got "
            f"{start[finite].min():g}..{end[finite].max():g} (fix: convert the time coords to ms)"
        )
    if np.any(end[finite] < start[finite]):
        raise AssemblyError("every time bin needs time_bin_end >= time_bin_start (in ms)")
    if da.sizes["time_bin"] > 1 and np.any(np.diff(start) <= 0):
        raise AssemblyError(
            "coord 'time_bin_start' must increase strictly "
            "(fix: da.sortby('time_bin_start'), and drop duplicated bins)"
        )


def grouped_nanmean(values, codes, n_groups):
    """Mean of the rows of ``values`` ``(n_rows, k)`` per group, ignoring NaN.

    ``codes`` ``(n_rows,)`` gives each row's group in ``0..n_groups-1`` (-1: skip the row).
    One sparse (groups x rows) indicator product sums all rows at once. A group with no
    finite value is NaN.
    """
    rows = np.flatnonzero(codes >= 0)
    indicator = scipy.sparse.csr_matrix(
        (np.ones(len(rows)), (codes[rows], rows)), shape=(n_groups, len(codes))
    )
    finite = np.isfinite(values)
    sums = indicator @ np.where(finite, values, 0.0)
    counts = indicator @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def has_repetitions(da):
    """True when some ``stimulus_id`` occurs on more than one presentation."""
    return pd.Index(da.coords["stimulus_id"].values).has_duplicates


def stimulus_moments(da, block_mb=64, squares=False, shift=None):
    """Per-stimulus sums (and sums of squares) of the finite trials, read in blocks.

    ``shift`` ``(n_neuroids * n_time_bins,)``, optional, is subtracted from every trial
    first (sums of squares about a typical value do not cancel catastrophically).

    Whole storage chunks of a lazily opened file are read once each and summed in float64
    sub-blocks of about ``block_mb`` MB, so memory stays at the results plus one block.

    Returns
    -------
    codes : ndarray ``(n_trials,)``
        Each trial's stimulus, in order of first appearance.
    sums : ndarray ``(n_stimuli, n_neuroids * n_time_bins)`` float64
    counts : ndarray, ``(n_stimuli, 1)``, or ``(n_stimuli, cells)`` when some values are not finite
        Finite trials per stimulus (and cell).
    squares : ndarray like ``sums``, or None
        Sums of squares, when ``squares``.
    """
    codes, uniques = pd.factorize(da.coords["stimulus_id"].values)
    n_stimuli, n_trials = len(uniques), len(codes)
    row_size = int(np.prod(da.shape[1:]))
    rows_per_block = max(1, int(block_mb * 2**20 // max(1, row_size * 8)))
    sums = np.zeros((n_stimuli, row_size))
    sum_squares = np.zeros((n_stimuli, row_size)) if squares else None
    trial_counts = np.zeros(n_stimuli)
    nonfinite = None  # per-value counts of skipped NaN/inf, allocated only if there are any
    # Read whole storage chunks (one disk read each) and sum them in float64 sub-blocks.
    chunks = da.chunks[0] if da.chunks is not None else (n_trials,)
    edges = np.concatenate([[0], np.cumsum(chunks)])
    for chunk_start, chunk_stop in zip(edges[:-1], edges[1:]):
        chunk = np.asarray(da.variable[chunk_start:chunk_stop].values).reshape(chunk_stop - chunk_start, -1)
        for start in range(0, len(chunk), rows_per_block):
            block = chunk[start:start + rows_per_block].astype(np.float64)
            if shift is not None:
                block -= shift
            block_codes = codes[chunk_start + start:chunk_start + start + len(block)]
            # Only the stimuli of this block: the product stays block-sized.
            groups, local = np.unique(block_codes, return_inverse=True)
            indicator = scipy.sparse.csr_matrix(
                (np.ones(len(block)), (local, np.arange(len(block)))), shape=(len(groups), len(block)))
            finite = np.isfinite(block)
            if not finite.all():
                block = np.where(finite, block, 0.0)
                if nonfinite is None:
                    nonfinite = np.zeros((n_stimuli, row_size))
                nonfinite[groups] += indicator @ (~finite).astype(np.float64)
            sums[groups] += indicator @ block
            if squares:
                sum_squares[groups] += indicator @ (block * block)
            trial_counts += np.bincount(block_codes, minlength=n_stimuli)
    counts = trial_counts[:, None] - (nonfinite if nonfinite is not None else 0.0)
    return codes, sums, counts, sum_squares


def average_repetitions(da, block_mb=64):
    """Average trial-level presentations into one presentation per ``stimulus_id``.

    NaN trials are ignored (a stimulus whose trials are all NaN stays NaN). Presentation
    coords that are constant within every stimulus are kept; coords that vary across
    repetitions (``repetition`` itself, trial order, ...) are dropped. Stimuli keep the
    order of their first appearance.

    The trials are read in blocks of about ``block_mb`` MB and summed per stimulus, so
    a lazily opened (dask-backed) file larger than memory is averaged with memory of
    the order of the result plus one block.

    Parameters
    ----------
    da : xarray.DataArray
        Assembly, shape ``(n_trials, n_neuroids, n_time_bins)``, in memory or dask-backed.
    block_mb : float
        Size of the blocks of trials read at once.

    Returns
    -------
    xarray.DataArray
        Assembly, shape ``(n_stimuli, n_neuroids, n_time_bins)``, same dtype, in memory.
    """
    validate(da)
    codes, sums, counts, _ = stimulus_moments(da, block_mb)
    return averaged_from_moments(da, codes, sums, counts)


def averaged_from_moments(da, codes, sums, counts, shift=None):
    """The :func:`average_repetitions` assembly of ``da`` from its :func:`stimulus_moments`
    (``sums`` become the means, in place: the result is the only stimulus-sized array
    kept). ``shift``: the one the sums were taken about, added back."""
    n_stimuli = sums.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        sums /= counts
    if shift is not None:
        sums += shift
    sums[np.broadcast_to(counts == 0, sums.shape)] = np.nan
    means = sums
    means = means.reshape((n_stimuli,) + da.shape[1:]).astype(da.dtype, copy=False)

    _, first = np.unique(codes, return_index=True)  # first trial of each stimulus
    coords = {name: coord for name, coord in da.coords.items() if "presentation" not in coord.dims}
    for name, coord in da.coords.items():
        if coord.dims != ("presentation",) or name == "repetition":
            continue
        values = coord.values
        representative = values[first]
        if _equal_or_both_nan(values, representative[codes]).all():
            coords[name] = ("presentation", representative)
    return xr.DataArray(means, dims=DIMS, coords=coords, attrs=dict(da.attrs), name=da.name)


def _equal_or_both_nan(a, b):
    equal = a == b
    if a.dtype.kind == "f":
        equal |= np.isnan(a) & np.isnan(b)
    return np.asarray(equal, dtype=bool)


def align(a, b):
    """Pair two assemblies by ``stimulus_id`` (inner join, in ``a``'s order).

    Parameters
    ----------
    a, b : xarray.DataArray
        Assemblies with one presentation per stimulus (average repetitions first).

    Returns
    -------
    tuple of xarray.DataArray
        ``(a_aligned, b_aligned)``, both restricted to the shared stimuli, presentation
        ``i`` of one showing the same stimulus as presentation ``i`` of the other.

    Raises
    ------
    AssemblyError
        If either side repeats a stimulus id, or no stimulus is shared.
    """
    for side, da in (("first", a), ("second", b)):
        validate(da)
        if has_repetitions(da):
            raise AssemblyError(
                f"the {side} assembly repeats stimulus ids; align needs one presentation per "
                "stimulus (fix: workbench.assembly.average_repetitions(da))"
            )
    ids_a = pd.Index(a.coords["stimulus_id"].values)
    ids_b = pd.Index(b.coords["stimulus_id"].values)
    shared = ids_a[ids_a.isin(ids_b)]
    if len(shared) == 0:
        raise AssemblyError(
            "the two assemblies share no stimulus_id "
            f"(first has e.g. {ids_a[:3].tolist()}, second has e.g. {ids_b[:3].tolist()}); "
            "check that both use the same id scheme (e.g. image_id vs file name)"
        )
    return (take_positions(a, "presentation", ids_a.get_indexer(shared)),
            take_positions(b, "presentation", ids_b.get_indexer(shared)))


def take_positions(da, dim, positions):
    """``da.isel({dim: positions})`` (a DataArray or Dataset), without the copy when
    ``positions`` is a run of consecutive entries in order (the common case: features and recording share their
    stimuli, and a model's bins are a run of the recording's; a fancy-index copy of a
    3,200-image layer costs 0.3 s and its size in memory). A slice is a view, as xarray's
    basic indexing gives."""
    positions = np.asarray(positions)
    if len(positions) and positions[0] >= 0 and np.array_equal(positions, positions[0] + np.arange(len(positions))):
        return da.isel({dim: slice(int(positions[0]), int(positions[0]) + len(positions))})
    return da.isel({dim: positions})


def align_time_bins(a, b):
    """Keep the time bins that both assemblies have (same start and end, in ms).

    Raises
    ------
    AssemblyError
        If no bin is shared (the message gives both ranges, e.g. to adjust a model
        protocol's ``onset_ms``).
    """
    keys = []
    for da in (a, b):
        validate(da)
        keys.append(pd.MultiIndex.from_arrays(
            [da.coords["time_bin_start"].values, da.coords["time_bin_end"].values]
        ))
    shared = keys[0][keys[0].isin(keys[1])]
    if len(shared) == 0:
        ranges = [
            f"{k.get_level_values(0).min()}..{k.get_level_values(1).max()} ms"
            f" in {len(k)} bins" for k in keys
        ]
        raise AssemblyError(
            f"the two assemblies share no time bin (first: {ranges[0]}; second: {ranges[1]}); "
            "bins match on identical start and end (fix: set the model protocol's step_ms "
            "and onset_ms to the recording's bins, or select_time_bins)"
        )
    return (take_positions(a, "time_bin", keys[0].get_indexer(shared)),
            take_positions(b, "time_bin", keys[1].get_indexer(shared)))


def is_member(values, wanted):
    """Boolean mask: which of ``values`` equal an item of ``wanted`` (as :func:`numpy.isin`).

    Hash-based (pandas): numpy sorts both sides, which on object-dtype string ids is
    O(n log n) Python comparisons: 3,200 stimulus ids took 92 ms against 0.5 ms here.
    """
    return pd.Index(np.asarray(values)).isin(wanted)


def select_neuroids(da, **criteria):
    """Keep the neuroids whose coords match every criterion.

    ``select_neuroids(da, region="IT", animal=["Chabo", "Tito"])``: a value keeps
    neuroids equal to it, a list keeps neuroids equal to any of its items.

    Raises
    ------
    AssemblyError
        If a coord is missing or nothing matches (the message lists what exists).
    """
    validate(da)
    keep = np.ones(da.sizes["neuroid"], dtype=bool)
    for name, wanted in criteria.items():
        if name not in da.coords or da.coords[name].dims != ("neuroid",):
            raise AssemblyError(f"no neuroid coord {name!r} to select on")
        wanted = list(wanted) if isinstance(wanted, (list, tuple, set, np.ndarray)) else [wanted]
        values = da.coords[name].values
        matches = is_member(values, wanted)
        keep &= matches
        if not matches.any():
            raise AssemblyError(
                f"no neuroid has {name} in {wanted}; available: {sorted(set(values.tolist()))[:20]}"
            )
    if not keep.any():
        raise AssemblyError(f"no neuroid matches all of {criteria}")
    return da.isel(neuroid=np.flatnonzero(keep))


def time_bin_overlap(da):
    """Describe overlapping time windows (e.g. 20 ms windows stepped by 10 ms).

    Returns
    -------
    dict or None
        ``{"window_ms": ..., "step_ms": ...}`` (medians) when consecutive bins overlap,
        else None. Overlapping bins are not independent samples in time.
    """
    start = da.coords["time_bin_start"].values
    end = da.coords["time_bin_end"].values
    if len(start) < 2 or not np.all(np.isfinite(start)) or not np.any(end[:-1] > start[1:]):
        return None
    return {"window_ms": float(np.median(end - start)), "step_ms": float(np.median(np.diff(start)))}


def select_time_bins(da, start=None, end=None):
    """Keep the time bins lying within ``[start, end]`` milliseconds.

    A bin is kept when ``time_bin_start >= start`` and ``time_bin_end <= end``; either
    bound may be ``None`` (open).

    Raises
    ------
    AssemblyError
        If no bin lies in the window (the message lists the available range).
    """
    validate(da)
    bin_start = da.coords["time_bin_start"].values
    bin_end = da.coords["time_bin_end"].values
    keep = np.ones(da.sizes["time_bin"], dtype=bool)
    if start is not None:
        keep &= bin_start >= start
    if end is not None:
        keep &= bin_end <= end
    if not keep.any():
        raise AssemblyError(
            f"no time bin lies within [{start}, {end}] ms; the assembly covers "
            f"{np.nanmin(bin_start)}..{np.nanmax(bin_end)} ms"
        )
    return da.isel(time_bin=np.flatnonzero(keep))


def encode_attrs(attrs):
    """Attributes as file formats hold them: strings and numbers stay, the rest (bool,
    None, dicts, lists) travel in one JSON attribute that :func:`decode_attrs` unpacks."""
    native, extra = {}, {}
    for key, value in attrs.items():
        if isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)
        ):
            native[key] = value
        else:
            extra[key] = value
    if extra:
        native[_JSON_ATTRS_KEY] = json.dumps(extra, default=_json_default)
    return native


def to_netcdf(da, path):
    """Write an assembly to a BrainIO-compatible netCDF-4 file, atomically.

    Plain coords and one data variable named ``data``; attributes that netCDF cannot
    hold travel as JSON (:func:`encode_attrs`) and are restored by :func:`from_netcdf`. A
    dask-backed assembly is computed and written one block at a time.
    """
    validate(da)
    out = da.copy(deep=False)
    out.attrs = encode_attrs(da.attrs)
    out.name = "data"
    with atomic_path(path) as tmp:
        if isinstance(out.data, np.ndarray):
            out.to_netcdf(tmp, engine="netcdf4")
        else:
            import dask

            # one block at a time, in order: the threaded scheduler computes blocks ahead of
            # the writer and held the whole array (12.9 GB peak for a 6.5 GB recording)
            with dask.config.set(scheduler="synchronous"):
                out.to_netcdf(tmp, engine="netcdf4")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"attribute value of type {type(value).__name__} is not serialisable")


def decode_attrs(attrs):
    """Restore attributes written by :func:`to_netcdf` (inverse of its JSON packing)."""
    attrs = dict(attrs)
    packed = attrs.pop(_JSON_ATTRS_KEY, None)
    if packed is not None:
        try:
            unpacked = json.loads(packed)
        except (ValueError, TypeError, RecursionError) as error:  # damaged, 5,000-digit numbers, deep nesting
            raise AssemblyError(f"attribute {_JSON_ATTRS_KEY!r} is not JSON ({type(error).__name__}: "
                                f"{str(error)[:120]}); the file's attributes are damaged") from None
        if not isinstance(unpacked, dict):
            raise AssemblyError(f"attribute {_JSON_ATTRS_KEY!r} holds a {type(unpacked).__name__}, not a JSON "
                                "object of attributes; the file's attributes are damaged")
        attrs.update(unpacked)
    return attrs


def from_netcdf(path):
    """Read an assembly written by :func:`to_netcdf` (or any contract-following file).

    For files from other tools (BrainIO packages, Brain-Score caches) use
    :func:`data_adapters.load`, which also converts their conventions.
    """
    with xr.open_dataarray(path, engine="netcdf4") as stored:
        da = stored.load()
    da.attrs = decode_attrs(da.attrs)
    da.name = None
    return validate(da)
