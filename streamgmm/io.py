"""The file format: one ``.npz`` per object, with a kind and a format version, never pickled.

Every file holds a header of two 0-d arrays, ``kind`` (a string naming what
the file holds, e.g. :data:`STATS_KIND` or :data:`MODEL_KIND`) and
``format_version`` (:data:`FORMAT_VERSION`), beside the object's own arrays,
which each object's ``save`` chooses. This module knows only arrays and
headers, not the objects: :meth:`streamgmm.SufficientStats.save` and
:meth:`streamgmm.OnlineGMM.save` build their arrays and write them here.

Loading a file from an untrusted source must never run code, so everything
is read with ``allow_pickle=False``; strings are stored as numpy unicode
arrays and nested settings as a JSON string.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
STATS_KIND = "streamgmm.SufficientStats"
MODEL_KIND = "streamgmm.OnlineGMM"


def header(kind):
    """The header arrays of a file holding a ``kind``, at the current format version.

    Parameters
    ----------
    kind : str
        What the file holds, e.g. :data:`STATS_KIND`.

    Returns
    -------
    dict of str to ndarray of shape ()
        ``kind`` (a unicode string) and ``format_version`` (an integer).
    """
    return {"kind": np.array(kind), "format_version": np.array(FORMAT_VERSION)}


def write_npz_atomic(path, arrays):
    """Write ``arrays`` to ``path`` as ``.npz`` through a temporary file and a rename.

    A crash mid-write leaves the previous file (if any) untouched.

    Parameters
    ----------
    path : str or Path
        Destination. Unlike ``np.savez`` no ``.npz`` suffix is appended.
    arrays : dict of str to array-like
        Must not contain object arrays.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"cannot write {path}: directory {directory} does not exist; create it first.")
    for name, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"field {name!r} is an object array; only plain arrays are written.")
    write_atomic(path, lambda handle: np.savez(handle, **arrays))


def write_atomic(path, write):
    """Write a file through a flushed temporary file in its directory and a rename.

    A reader sees the old file or the whole new one, never a part; a crash
    or an exception in ``write`` leaves the previous file (if any) untouched
    and no temporary file behind.

    Parameters
    ----------
    path : str or Path
        Destination; its directory must exist.
    write : callable
        ``write(handle)`` writes the content to a binary file handle.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_npz(path):
    """Read every array of an ``.npz`` file into a dict, refusing pickled content.

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz`` archive, truncated, or holds
        object (pickled) arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file; check the path.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a readable streamgmm .npz file (not a zip archive); "
            "it is truncated or of another format."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(
            f"{path} is not a readable streamgmm .npz file ({exc}); it is truncated or of another format."
        ) from None
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(
                f"{path} holds pickled objects, which are never loaded (they could run code); "
                "it was not written by streamgmm."
            ) from None
        raise ValueError(f"{path} could not be read as .npz: {exc}") from None


def check_header(arrays, kind, source):
    """Check that ``arrays`` carry the expected ``kind`` and a known format version.

    Parameters
    ----------
    arrays : dict of str to ndarray
        As returned by :func:`read_npz`.
    kind : str
        The kind expected, e.g. :data:`MODEL_KIND`.
    source : str
        What the arrays came from (e.g. ``"model file m.npz"``), for the messages.

    Raises
    ------
    ValueError
        If the header is missing, names another kind, or another format version.
    """
    if "kind" not in arrays or "format_version" not in arrays:
        raise ValueError(f"{source} has no streamgmm header (kind, format_version); it is not a streamgmm file.")
    found = str(arrays["kind"])
    if found != kind:
        raise ValueError(f"{source} holds a {found!r}, not a {kind!r}.")
    version = int(arrays["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{source} has format version {version}; this streamgmm reads version {FORMAT_VERSION}. "
            "Re-save it with the streamgmm version that wrote it, or upgrade streamgmm."
        )
