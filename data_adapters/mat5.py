"""A structural check of MATLAB v5 files before scipy reads them.

scipy's v5 reader is compiled code that trusts the file: an element whose declared size
does not match its dimensions, or an unknown array class, can raise an unrelated Python
error (``UnboundLocalError``) or crash the interpreter (a segfault, found by fuzzing
BrainDecoderToolbox2 files). :func:`check` walks every data element of the variables that
will be read (tags, sizes, array flags, dimensions, names, nested cells and structs, and
the zlib streams of compressed elements) and raises :class:`~workbench.errors.DataFormatError`
naming the file and the variable at the first inconsistency, so scipy only ever sees a
well-formed file. The layout follows MathWorks' "MAT-File Format" (v5/v7): a 128-byte header,
then data elements of an 8-byte tag (type, byte count; or the 4-byte "small element" form)
padded to 8 bytes, compressed elements holding one zlib-deflated element.
"""

import struct
import zlib

from workbench.errors import DataFormatError
from workbench.resources import GB, available_bytes

HEADER_BYTES = 128
MI_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}
MI_MATRIX, MI_COMPRESSED, MI_INT8, MI_INT32, MI_UINT32, MI_UTF8 = 14, 15, 1, 5, 6, 16
MX_CELL, MX_STRUCT, MX_OBJECT, MX_CHAR, MX_SPARSE = 1, 2, 3, 4, 5
MX_NUMERIC = range(6, 16)  # double, single, int8 ... uint64
MAX_DEPTH = 32  # nested cells/structs; deeper is a damaged (or hostile) file
MAX_ELEMENTS = 2 ** 40


class _Damaged(Exception):
    pass


class _TooLarge(_Damaged):
    """Well formed, perhaps, but larger than the memory available."""


def check(path, variables=None):
    """Raise DataFormatError unless ``path`` is a well-formed MATLAB v5 file.

    Parameters
    ----------
    path : pathlib.Path
    variables : collection of str, optional
        Check these variables' contents in full (the others only as tags that fit the file);
        default: all.
    """
    data = memoryview(path.read_bytes())  # slices of a view: no copies of the payloads
    name, limit = None, available_bytes()
    try:
        if len(data) < HEADER_BYTES:
            raise _Damaged(f"{len(data)} bytes, shorter than the 128-byte header")
        indicator = bytes(data[126:128])
        endian = {b"IM": "<", b"MI": ">"}.get(indicator)
        if endian is None:
            raise _Damaged(f"endian indicator {indicator!r} (expected 'IM' or 'MI')")
        position = HEADER_BYTES
        while position < len(data):
            kind, start, end, following = _tag(data, position, len(data), endian)
            payload = data[start:end]
            if kind == MI_COMPRESSED:
                following = end  # compressed elements are not padded
                payload = memoryview(_inflate(payload, limit))
                kind, inner, inner_end, _ = _tag(payload, 0, len(payload), endian)
                if kind != MI_MATRIX:
                    raise _Damaged(f"a compressed element holds type {kind}, not a matrix")
                payload = payload[inner:inner_end]
            elif kind != MI_MATRIX:
                raise _Damaged(f"a top-level element of type {kind} (expected a matrix or compressed matrix)")
            try:
                name = _variable_name(payload, endian)
            except _Damaged:
                if variables is None:
                    raise
                name = None  # an element that is not read (e.g. MATLAB's function workspace)
            if variables is None or name in variables:
                _matrix(payload, endian, 0)
            position = following
    except _TooLarge as damage:
        raise DataFormatError(path, f"variable {name!r}: {damage}" if name else str(damage),
                              "read it on a machine with more memory, or save a smaller selection") from None
    except _Damaged as damage:
        where = f" in variable {name!r}" if name else ""
        raise DataFormatError(path, f"damaged MATLAB v5 file{where}: {damage}",
                              "is the file truncated or corrupt? re-save it from MATLAB (save -v7)") from None
    except (zlib.error, struct.error, UnicodeDecodeError, ValueError, OverflowError, MemoryError) as error:
        where = f" in variable {name!r}" if name else ""
        raise DataFormatError(path, f"damaged MATLAB v5 file{where}: {type(error).__name__}: {error}",
                              "is the file truncated or corrupt? re-save it from MATLAB (save -v7)") from None


def _padded(offset):
    return offset + (-offset % 8)


def _tag(data, position, limit, endian):
    """``(type, data start, data end, next element)`` of the element at ``position``."""
    if position + 8 > limit:
        raise _Damaged(f"an element tag at byte {position} runs past its container")
    first, second = struct.unpack_from(endian + "II", data, position)
    if first >> 16:  # small element: count in the upper half, data in the tag's last 4 bytes
        kind, size = first & 0xFFFF, first >> 16
        if size > 4:
            raise _Damaged(f"a small element at byte {position} declares {size} bytes (at most 4)")
        return kind, position + 4, position + 4 + size, position + 8
    kind, size = first, second
    end = position + 8 + size
    if end > limit:
        raise _Damaged(f"an element at byte {position} declares {size} bytes, past the end of its container")
    return kind, position + 8, end, _padded(end)


def _inflate(payload, limit=None):
    """A compressed element's bytes; at most ``limit`` of them (a few kB of zlib stream can
    declare gigabytes of zeros: inflating it whole would exhaust memory, not fail)."""
    stream = zlib.decompressobj()
    out = stream.decompress(payload, limit or 0)
    if stream.unconsumed_tail:
        raise _TooLarge(f"a compressed element inflates to more than the {limit / GB:.3g} GB of memory available")
    if not stream.eof:
        raise _Damaged("a compressed element's zlib stream is incomplete")
    return out


def _elements(payload, endian, at_most=None):
    """The sub-elements ``(type, bytes)`` of a matrix's payload, in order (the first
    ``at_most`` of them when given)."""
    position, items = 0, []
    while position < len(payload) and (at_most is None or len(items) < at_most):
        kind, start, end, position = _tag(payload, position, len(payload), endian)
        items.append((kind, payload[start:end]))
    return items


def _variable_name(payload, endian):
    if not payload:
        return None
    items = _elements(payload, endian, at_most=3)
    if len(items) < 3 or items[2][0] not in (MI_INT8, 2):
        raise _Damaged("a matrix without flags, dimensions and name")
    return bytes(items[2][1]).decode("latin-1")


def _count(kind, raw):
    if kind not in MI_SIZES:
        raise _Damaged(f"data of unknown element type {kind}")
    if len(raw) % MI_SIZES[kind]:
        raise _Damaged(f"{len(raw)} bytes of element type {kind} are not whole values")
    return len(raw) // MI_SIZES[kind]


def _matrix(payload, endian, depth):
    """Check one miMATRIX element's payload (an empty payload is an empty array)."""
    if depth > MAX_DEPTH:
        raise _Damaged(f"cells or structs nested deeper than {MAX_DEPTH}")
    if not payload:
        return
    items = _elements(payload, endian)
    if len(items) < 3:
        raise _Damaged("a matrix without flags, dimensions and name")
    (flag_kind, flags), (dim_kind, dims_raw), (name_kind, _) = items[:3]
    if flag_kind != MI_UINT32 or len(flags) != 8:
        raise _Damaged("array flags are not two uint32 values")
    if dim_kind != MI_INT32 or len(dims_raw) < 8 or len(dims_raw) % 4:
        raise _Damaged("dimensions are not two or more int32 values")
    if name_kind not in (MI_INT8, 2):
        raise _Damaged("an array name that is not text")
    word = struct.unpack_from(endian + "I", flags)[0]
    klass, complex_ = word & 0xFF, bool(word & 0x800)
    dims = struct.unpack(endian + f"{len(dims_raw) // 4}i", dims_raw)  # noqa: E231
    if min(dims) < 0:
        raise _Damaged(f"negative dimensions {dims}")
    n = 1
    for d in dims:
        n *= d
    if n > MAX_ELEMENTS:
        raise _Damaged(f"dimensions {dims} hold more than 2**40 values")
    rest = items[3:]
    if klass in MX_NUMERIC or klass == MX_CHAR:
        expected = 2 if complex_ else 1
        if len(rest) != expected:
            raise _Damaged(f"class {klass} with {len(rest)} data parts (expected {expected})")
        for kind, raw in rest:
            count = _count(kind, raw)
            if kind == MI_UTF8 and klass == MX_CHAR:
                count = len(bytes(raw).decode("utf-8"))
            if count != n:
                raise _Damaged(f"dimensions {dims} hold {n} values but the data has {count}")
    elif klass == MX_CELL:
        if len(rest) != n:
            raise _Damaged(f"a cell array of dimensions {dims} with {len(rest)} elements")
        for kind, raw in rest:
            if kind != MI_MATRIX:
                raise _Damaged(f"a cell element of type {kind}, not a matrix")
            _matrix(raw, endian, depth + 1)
    elif klass in (MX_STRUCT, MX_OBJECT):
        if klass == MX_OBJECT:
            if not rest or rest[0][0] not in (MI_INT8, 2):
                raise _Damaged("an object without a class name")
            rest = rest[1:]
        if len(rest) < 2 or rest[0][0] != MI_INT32 or len(rest[0][1]) != 4 or rest[1][0] not in (MI_INT8, 2):
            raise _Damaged("a struct without its field-name length and names")
        length = struct.unpack(endian + "i", rest[0][1])[0]
        if length <= 0 or len(rest[1][1]) % length:
            raise _Damaged(f"field names of {len(rest[1][1])} bytes are not a whole number of {length}-byte names")
        n_fields = len(rest[1][1]) // length
        values = rest[2:]
        if len(values) != n * n_fields:
            raise _Damaged(f"a struct of dimensions {dims} with {n_fields} fields has {len(values)} values")
        for kind, raw in values:
            if kind != MI_MATRIX:
                raise _Damaged(f"a struct field of type {kind}, not a matrix")
            _matrix(raw, endian, depth + 1)
    elif klass == MX_SPARSE:
        if len(dims) != 2 or len(rest) not in (3, 4):
            raise _Damaged("a sparse matrix without row indices, column indices and values")
        rows, columns = _count(rest[0][0], rest[0][1]), _count(rest[1][0], rest[1][1])
        if columns != dims[1] + 1:
            raise _Damaged(f"a sparse matrix of {dims[1]} columns with {columns} column offsets")
        for kind, raw in rest[2:]:
            if _count(kind, raw) > rows:
                raise _Damaged("a sparse matrix with more values than row indices")
    else:
        raise _Damaged(f"array class {klass} (function handles and opaque objects are not read)")
