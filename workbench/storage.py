"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and an interrupted run leaves the previous
version (or nothing) in place.
"""

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

from .errors import DataFormatError

STALE_AFTER_S = 24 * 3600


def _default_mode():
    # mkstemp creates 0600 files; give the final file the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()


@contextlib.contextmanager
def named_as(path):
    """Re-raise an ``OSError`` of the block as one named by ``path``, the output the user
    asked for, not by the temporary beside it that the failing call saw."""
    try:
        yield
    except OSError as error:
        raise type(error)(error.errno, f"cannot write here ({error.strerror})", str(path)) from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the block raises.
    """
    path = Path(path)
    with named_as(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def exclusive(path):
    """Hold an exclusive advisory lock on the file ``path`` (created if missing) for the block.

    Processes on this machine that compute the same cache entry take turns: the second
    waits, then finds the first one's result instead of repeating the work. Where ``fcntl``
    is missing (Windows) the block runs unlocked; atomic writes keep the entry whole anyway.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def exclusive_entry(path):
    """:func:`exclusive` on a hidden lock file beside the cache entry ``path`` (a file or a
    folder), so that processes computing that entry take turns."""
    path = Path(path)
    return exclusive(path.parent / f".{path.name}.lock")


def check_regular_file(path, allow_directory=False, subject=""):
    """Refuse, before anything opens it, a path that is missing, a symbolic-link loop, or not
    a regular file (a FIFO, socket or device would block a reader forever). ``subject``
    starts the message (e.g. ``"image listed in set.csv "``)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataFormatError(path, f"{subject}file not found", "check the path") from None
    except OSError as error:
        raise DataFormatError(path, f"{subject}cannot be opened ({error.strerror})",
                              "a symbolic-link loop or an unreadable path?") from None
    except ValueError as error:  # a NUL inside the path
        raise DataFormatError(repr(str(path)), f"{subject}is not a valid path ({error})",
                              "paths must be printable text") from None
    if stat.S_ISDIR(mode):
        if allow_directory:
            return
        raise DataFormatError(path, f"{subject}is a directory", "point at a data file")
    if not stat.S_ISREG(mode):
        raise DataFormatError(path, f"{subject}is not a regular file (a FIFO, socket or device)",
                              "point at a data file: reading a pipe or device could block forever")


def owner():
    """``host-pid`` of this process: temporary files carry it, so a later run can tell a
    killed run's leftovers from a live one's."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _alive(tag):
    host, _, pid = tag.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's run (or an old name): only its age tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder, name="*"):
    """Delete temporary files and folders (``.NAME.<host-pid>.*.tmp``) that killed runs left
    in ``folder``: those of a dead process on this host, and any older than a day."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for tmp in folder.glob(f".{name}.*.tmp"):
        parts = tmp.name[1:-len(".tmp")].split(".")
        tag = next((p for p in parts if "-" in p and p.rpartition("-")[2].isdigit()), "")
        try:
            old = time.time() - tmp.lstat().st_mtime > STALE_AFTER_S
        except FileNotFoundError:
            continue
        if old or (tag and not _alive(tag)):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def write_text(path, text):
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_text(obj):
    """``obj`` as the project's JSON text: indented, non-finite floats as ``null``."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n"


def write_json(path, obj):
    """Atomically write ``obj`` as indented JSON; non-finite floats become ``null``."""
    write_text(path, json_text(obj))


def json_safe(obj):
    """``obj`` with numpy values as Python ones and non-finite floats as None (JSON-able)."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
