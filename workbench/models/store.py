"""Where extracted activations go, one batch at a time: memory or a zarr store on disk.

Both sinks are allocated once, when the first batch fixes the number of units, and then
filled in place, so no step ever concatenates the whole result. The zarr sink writes in a
background thread (disk I/O overlaps the next batch's forward pass), into a temporary
directory beside the target that is renamed onto it only when every batch is written: an
interrupted extraction leaves no store that looks complete.

Completion marker: the last file written into a store is ``COMPLETE`` (JSON: the size of
every other file). :func:`open_activations` opens only stores with the marker and checks
every listed size, so a truncated chunk or metadata file is a named error, not a wrong
array. Temporary directories left by killed runs (same host, dead process, or older than a
day) are removed by the next extraction into the same folder.
"""

import json
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

from ..assembly import DIMS, decode_attrs, encode_attrs, validate
from ..errors import AssemblyError, DataFormatError, ExtractionError
from ..storage import named_as, owner, remove_stale_temporaries

VARIABLE = "activations"
MARKER = "COMPLETE"


class MemorySink:
    """Fills one preallocated ``(presentation, neuroid, time_bin)`` float32 array."""

    def open(self, template):
        self.template = template
        self.data = np.empty(template.shape, dtype=np.float32)

    def write(self, start, block):
        self.data[start:start + len(block)] = block

    def close(self):
        return validate(self.template.copy(deep=False, data=self.data))

    def abort(self):
        self.data = None


class ZarrSink:
    """Streams batches into a zarr store at ``path`` (zarr format 2, chunks of one batch)."""

    def __init__(self, path, chunk_presentations):
        self.path = Path(path)
        self.chunk = int(chunk_presentations)
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending = None

    def open(self, template):
        import dask.array

        with named_as(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path.parent, self.path.name)
        self.tmp = self.path.with_name(f".{self.path.name}.{owner()}.{uuid.uuid4().hex}.tmp")
        lazy = dask.array.zeros(template.shape, dtype=np.float32,
                                chunks=(self.chunk,) + template.shape[1:])
        dataset = template.copy(data=lazy).to_dataset(name=VARIABLE)
        dataset.attrs = encode_attrs(template.attrs)
        dataset[VARIABLE].attrs = {}
        # Writes coords and metadata now; the data chunks are filled batch by batch.
        # Uncompressed: float activations barely compress, and compressing would take CPU
        # from the forward pass the write overlaps with.
        try:
            with named_as(self.path):
                dataset.to_zarr(self.tmp, mode="w", compute=False, zarr_format=2, consolidated=True,
                                encoding={VARIABLE: {"compressors": None}})
        except OSError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        import zarr

        self._array = zarr.open_group(str(self.tmp), mode="r+", zarr_format=2)[VARIABLE]

    def _wait(self):
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def write(self, start, block):
        self._wait()
        self._pending = self._pool.submit(self._array.__setitem__, slice(start, start + len(block)), block)

    def close(self):
        self._wait()
        self._pool.shutdown()
        write_marker(self.tmp)
        if self.path.exists():
            shutil.rmtree(self.path)
        self.tmp.rename(self.path)
        return open_activations(self.path)

    def abort(self):
        try:
            self._wait()
        finally:
            self._pool.shutdown()
            if hasattr(self, "tmp"):
                shutil.rmtree(self.tmp, ignore_errors=True)


def write_marker(directory):
    """Write the completion marker last: every file's size, relative to the store."""
    directory = Path(directory)
    sizes = {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*")) if p.is_file()}
    (directory / MARKER).write_text(json.dumps({"files": sizes}))


def is_complete(path):
    """True when ``path`` is a finished store (its completion marker exists: it is written
    after every batch, and the store is renamed into place after that)."""
    return (Path(path) / MARKER).is_file()


def check_store(path):
    """Every file the marker lists exists with its size; a named error otherwise."""
    path = Path(path)
    try:
        listed = json.loads((path / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise DataFormatError(path / MARKER, f"completion marker cannot be read ({error})",
                              "extract again") from None
    for name, size in listed.items():
        file = path / name
        actual = file.stat().st_size if file.is_file() else None
        if actual != size:
            raise DataFormatError(file, f"{'missing' if actual is None else f'{actual} bytes, expected {size}'} "
                                  "(truncated or altered after the extraction)", "extract again")


def open_activations(path):
    """Open a store written by :func:`workbench.models.extract` as a lazy assembly.

    The values stay on disk (dask, one chunk per extraction batch); coords are loaded.
    """
    path = Path(path)
    if not is_complete(path):
        raise ExtractionError(f"{path}: not a complete activation store (no {MARKER} marker); "
                              "fix: extract again (an interrupted extraction leaves no store)")
    check_store(path)
    try:
        dataset = xr.open_zarr(path, zarr_format=2, consolidated=True)
    except Exception as error:  # zarr/json/numcodecs raise many types on corrupt metadata
        raise DataFormatError(path, f"not a readable zarr store ({type(error).__name__}: {error})",
                              "extract again") from error
    if VARIABLE not in dataset or dataset[VARIABLE].dims != DIMS:
        raise ExtractionError(f"{path}: no {VARIABLE!r} variable with dims {DIMS}")
    da = dataset[VARIABLE]
    coords = {}
    for name, coord in da.coords.items():
        values = coord.values
        if values.dtype.kind in "UT":  # zarr returns numpy StringDType; the contract uses str objects
            values = values.astype(object)
        coords[name] = (coord.dims, values)
    try:
        attrs = decode_attrs(dataset.attrs)
    except AssemblyError as error:
        raise DataFormatError(path, str(error), "extract again") from None
    da = xr.DataArray(da.data, dims=da.dims, coords=coords, attrs=attrs)
    return validate(da)
