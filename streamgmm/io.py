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

Reading is guarded (:class:`NpzReader`, :func:`read_npz`): a damaged or
hostile file raises ``ValueError`` naming the file and the problem, and costs
no more memory or time than a valid file of its size. The caller names the
members it expects (a :class:`Field` each: dtype kind and shape, with named
dimensions such as ``"K"`` and ``"D"`` shared between members); only those
are read, and each member's ``.npy`` header is checked against its field and
the file's size before any of its data are read. Scalars stored as arrays,
object or structured dtypes, and sizes the file does not hold are refused.
JSON settings are parsed with bounded length and nesting (:func:`parse_json`).
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
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


# ------------------------------------------------------------------ fields
# numpy dtype kinds each field kind accepts; "str" is numpy unicode (what np.array(str) gives)
_DTYPE_KINDS = {"real": "iuf", "int": "iu", "bool": "biu", "str": "U", "any": "biufU"}
_KIND_NAMES = {
    "real": "a real number type", "int": "an integer type", "bool": "a boolean or integer type",
    "str": "a unicode string", "any": "a plain numeric or string type",
}
# .npy headers of the arrays streamgmm writes are about 128 bytes; numpy's own cap
_MAX_HEADER_CHARS = 10000


@dataclass(frozen=True)
class Field:
    """What one member of a file may be: its dtype kind and its shape.

    Parameters
    ----------
    kind : {"real", "int", "bool", "str", "any"}
        ``"real"`` accepts integer and floating dtypes, ``"int"`` integers,
        ``"bool"`` booleans and integers, ``"str"`` numpy unicode, ``"any"``
        all of them. Object, structured, complex and byte-string dtypes are
        never accepted.
    shapes : tuple of tuple, or None
        The shapes allowed, each a tuple of ints and dimension names (str);
        a name takes one value across all members of a read (``("K", "D")``
        for means, ``("K",)`` for weights). Alternatives must differ in
        rank. ``((),)`` is a scalar; ``None`` allows any shape.
    required : bool
        Whether a file without the member is refused.
    max_chars : int, optional
        ``"str"`` only: the longest string accepted.
    """

    kind: str
    shapes: tuple | None = ((),)
    required: bool = True
    max_chars: int | None = None


def scalar(kind="real", *, required=True, max_chars=None):
    """A :class:`Field` holding a 0-d array (a vector of one element is refused)."""
    return Field(kind, ((),), required, max_chars)


def array(kind, *dims, required=True):
    """A :class:`Field` holding an array of shape ``dims`` (ints and dimension names)."""
    return Field(kind, (tuple(dims),), required)


def one_of(kind, *shapes, required=True):
    """A :class:`Field` holding an array of one of ``shapes`` (of different ranks)."""
    return Field(kind, tuple(tuple(shape) for shape in shapes), required)


def prefixed(fields, prefix, *, required=None):
    """``fields`` renamed ``prefix + name``, their dimension names prefixed too.

    Parameters
    ----------
    fields : dict of str to Field
    prefix : str
    required : bool, optional
        Overrides every field's ``required`` (e.g. an optional group).

    Returns
    -------
    dict of str to Field
    """
    def rename(shapes):
        if shapes is None:
            return None
        return tuple(tuple(prefix + d if isinstance(d, str) else d for d in shape) for shape in shapes)

    return {
        prefix + name: Field(field.kind, rename(field.shapes),
                             field.required if required is None else required, field.max_chars)
        for name, field in fields.items()
    }


HEADER_FIELDS = {"kind": scalar("str", max_chars=256), "format_version": scalar("int")}
_ANY = Field("any", None, required=False)


def _shape_text(shape):
    return "a scalar (shape ())" if shape == () else f"shape ({', '.join(str(d) for d in shape)}{',' if len(shape) == 1 else ''})"


def _check_member(name, shape, dtype, field, dims, source):
    """Check one member's declared ``shape`` and ``dtype`` against ``field``; bind named dimensions.

    Parameters
    ----------
    name : str
    shape : tuple of int
    dtype : numpy.dtype
    field : Field
    dims : dict of str to (int, str)
        Named dimensions bound so far, each with where its value came from;
        updated in place.
    source : str
        The file (or arrays), for the messages.

    Raises
    ------
    ValueError
        Naming ``source``, the member and what is wrong.
    """
    plain = not dtype.hasobject and dtype.names is None and dtype.subdtype is None
    if not plain or dtype.kind not in _DTYPE_KINDS[field.kind]:
        raise ValueError(
            f"{source}: member {name!r} has dtype {dtype}, not {_KIND_NAMES[field.kind]}; "
            "the file is corrupt or was not written by this software."
        )
    if field.kind == "str" and field.max_chars is not None and dtype.itemsize // 4 > field.max_chars:
        raise ValueError(
            f"{source}: member {name!r} holds strings of up to {dtype.itemsize // 4} characters, "
            f"more than the {field.max_chars} it can have; the file is corrupt or hostile."
        )
    if any(not isinstance(size, int) or size < 0 for size in shape):
        raise ValueError(f"{source}: member {name!r} declares an invalid shape {shape}; the file is corrupt.")
    if field.shapes is None:
        return
    candidates = [pattern for pattern in field.shapes if len(pattern) == len(shape)]
    if not candidates:
        expected = " or ".join(_shape_text(pattern) for pattern in field.shapes)
        what = "a scalar stored as an array" if field.shapes == ((),) else "an array of the wrong rank"
        raise ValueError(
            f"{source}: member {name!r} is {what}: {_shape_text(shape)}, expected {expected}; "
            "the file is corrupt or was not written by this software."
        )
    for size, dim in zip(shape, candidates[0]):
        if isinstance(dim, int):
            if size != dim:
                raise ValueError(
                    f"{source}: member {name!r} has {_shape_text(shape)}, expected {_shape_text(candidates[0])}; "
                    "the file is corrupt."
                )
        elif dim not in dims:
            dims[dim] = (size, f"from member {name!r}")
        elif dims[dim][0] != size:
            value, origin = dims[dim]
            raise ValueError(
                f"{source}: member {name!r} has {_shape_text(shape)} but its dimension {dim} is {value} "
                f"({origin}); the file is corrupt or its members do not belong together."
            )


def _bound_dims(dims):
    """Caller-given dimension values in the form :func:`_check_member` keeps."""
    return {name: (int(value), "as the file's settings say") for name, value in (dims or {}).items()}


def check_arrays(arrays, fields, source, *, dims=None):
    """Check in-memory arrays as :func:`read_npz` checks a file's members.

    Parameters
    ----------
    arrays : mapping of str to array-like
        Members not named in ``fields`` are ignored.
    fields : dict of str to Field
    source : str
        What the arrays came from, for the messages.
    dims : dict of str to int, optional
        Values of named dimensions known beforehand.

    Returns
    -------
    dict of str to int
        The value of every named dimension.

    Raises
    ------
    ValueError
        If a required member is missing or a member does not match its field.
    """
    bound = _bound_dims(dims)
    for name, field in fields.items():
        if name not in arrays:
            if field.required:
                raise ValueError(f"{source} is missing the field {name!r}; it is truncated or foreign.")
            continue
        value = arrays[name]
        if not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{source}: member {name!r} is not an array ({exc}).") from None
        _check_member(name, value.shape, value.dtype, field, bound, source)
    return {name: value for name, (value, _) in bound.items()}


# ------------------------------------------------------------------ reading
# What zipfile and numpy's .npy reader raise on damaged input (RuntimeError:
# an encrypted member; NotImplementedError: an unknown compression method).
_FORMAT_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, OSError, EOFError,
    ValueError, TypeError, OverflowError, SyntaxError, RecursionError, RuntimeError, NotImplementedError,
)


class NpzReader:
    """A guarded reader of one ``.npz`` file: each member's header is checked before its data.

    Opening reads the zip directory only. :meth:`read` reads the members
    named by the caller, after checking each one's ``.npy`` header (dtype,
    shape) against its :class:`Field` and its declared size against what the
    file holds; members not asked for are never read. The data of all the
    members read may not exceed the file's size, so a file costs at most
    its own size in memory.

    Parameters
    ----------
    path : str or Path
    source : str, optional
        How the file is called in messages (default: its path).

    Raises
    ------
    ValueError
        If the file is missing, not a zip archive, or lists a member twice.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npz")
    >>> write_npz_atomic(path, {**header("demo"), "means": np.zeros((2, 3)), "weights": np.ones(2) / 2})
    >>> with NpzReader(path) as reader:
    ...     reader.check_kind("demo")
    ...     arrays = reader.read({"means": array("real", "K", "D"), "weights": array("real", "K")})
    >>> arrays["means"].shape
    (2, 3)
    """

    def __init__(self, path, source=None):
        self.path = Path(path)
        self.source = source or str(self.path)
        if not self.path.is_file():
            raise ValueError(f"{self.path} does not exist or is not a file; check the path.")
        self._size = self.path.stat().st_size
        try:
            self._zip = zipfile.ZipFile(self.path)
        except _FORMAT_ERRORS as exc:
            raise ValueError(
                f"{self.source} is not a readable .npz file (not a zip archive: {exc}); "
                "it is truncated or of another format."
            ) from None
        try:
            self._members = self._index()
        except BaseException:
            self._zip.close()
            raise
        self._headers = {}
        self._read_bytes = {}

    def _index(self):
        members = {}
        for info in self._zip.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[: -len(".npy")]
            if name in members:
                raise ValueError(f"{self.source} lists the member {name!r} twice; the file is corrupt or hostile.")
            members[name] = info
        return members

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __contains__(self, name):
        return name in self._members

    @property
    def names(self):
        """The members of the file (``.npy`` entries without the suffix), in file order."""
        return list(self._members)

    def _fail(self, name, what):
        return ValueError(f"{self.source}: member {name!r} {what}; the file is truncated, corrupt or hostile.")

    def _header(self, name):
        """``(shape, dtype)`` declared by a member's ``.npy`` header; nothing of the data is read."""
        if name in self._headers:
            return self._headers[name]
        info = self._members[name]
        if info.flag_bits & 0x1:
            raise self._fail(name, "is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self._fail(name, f"uses zip compression method {info.compress_type}, not stored or deflated")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise self._fail(name, f"is stored with {info.compress_size} bytes but claims {info.file_size}")
        if info.header_offset + info.compress_size > self._size:
            raise self._fail(name, f"extends beyond the end of the file ({self._size} bytes)")
        try:
            with self._zip.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f".npy format version {version[0]}.{version[1]} is not read here")
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(stream, max_header_size=_MAX_HEADER_CHARS)
                header_bytes = stream.tell()
        except _FORMAT_ERRORS as exc:
            raise self._fail(name, f"has no valid .npy header ({_first_line(exc)})") from None
        if dtype.hasobject:
            raise ValueError(
                f"{self.source} holds pickled objects (member {name!r}), which are never loaded (they could "
                "run code); it was not written by streamgmm."
            )
        if all(isinstance(size, int) and size >= 0 for size in shape):
            data_bytes = math.prod(shape) * dtype.itemsize
            if header_bytes + data_bytes != info.file_size:
                raise self._fail(
                    name, f"declares {_shape_text(shape)} of {dtype} ({data_bytes} bytes) but holds "
                    f"{info.file_size - header_bytes} bytes of data",
                )
        self._headers[name] = (tuple(shape), dtype)
        return self._headers[name]

    def check_kind(self, kind):
        """Check the file's header members (see :func:`check_header`) before anything else is read."""
        if "kind" not in self or "format_version" not in self:
            raise ValueError(
                f"{self.source} has no streamgmm header (kind, format_version); it is not a streamgmm file."
            )
        check_header(self.read(HEADER_FIELDS), kind, self.source)

    def read(self, fields, *, dims=None):
        """Read the members named in ``fields``, each checked against its field before its data.

        Parameters
        ----------
        fields : dict of str to Field
        dims : dict of str to int, optional
            Values of named dimensions known beforehand (e.g. ``{"K": 8}``
            from the settings).

        Returns
        -------
        dict of str to ndarray
            The members of ``fields`` the file holds.

        Raises
        ------
        ValueError
            If a required member is missing, a header does not match its
            field or the file, or the data cannot be read.
        """
        bound = _bound_dims(dims)
        present = [name for name in fields if name in self._members]
        for name, field in fields.items():
            if field.required and name not in self._members:
                raise ValueError(f"{self.source} is missing the field {name!r}; it is truncated or foreign.")
        for name in present:
            shape, dtype = self._header(name)
            _check_member(name, shape, dtype, fields[name], bound, self.source)
        for name in present:
            self._read_bytes[name] = self._members[name].file_size
        total = sum(self._read_bytes.values())
        if total > self._size:
            raise ValueError(
                f"{self.source}: its members declare {total} bytes, more than the file's {self._size}; "
                "the file is corrupt or hostile (streamgmm writes members uncompressed)."
            )
        return {name: self._data(name) for name in present}

    def _data(self, name):
        try:
            with self._zip.open(self._members[name]) as stream:
                value = np.lib.format.read_array(stream, allow_pickle=False, max_header_size=_MAX_HEADER_CHARS)
        except _FORMAT_ERRORS as exc:
            raise self._fail(name, f"could not be read ({_first_line(exc)})") from None
        if value.shape != self._headers[name][0]:
            raise self._fail(name, "changed while it was read")
        return value


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def read_npz(path, fields=None, *, kind=None, dims=None, source=None):
    """Read the expected members of an ``.npz`` file, each checked before its data are read.

    Parameters
    ----------
    path : str or Path
    fields : dict of str to Field, optional
        The members to read (see :class:`Field`); others are not read. The
        header members ``kind`` and ``format_version`` are added. ``None``
        reads every member, still refusing object and structured dtypes
        and sizes the file does not hold.
    kind : str, optional
        Check the header (:func:`check_header`) before reading anything else.
    dims : dict of str to int, optional
        Values of named dimensions known beforehand.
    source : str, optional
        How the file is called in messages (default: its path).

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz`` archive, truncated, of
        another kind or version, holds object (pickled) or structured arrays,
        lacks a required member, or a member's dtype, shape or size does not
        match. The message names the file and the member.
    """
    with NpzReader(path, source) as reader:
        if kind is not None:
            reader.check_kind(kind)
        if fields is None:
            fields = {name: _ANY for name in reader.names}
        header_fields = HEADER_FIELDS if kind is not None else prefixed(HEADER_FIELDS, "", required=False)
        return reader.read({**fields, **header_fields}, dims=dims)


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
        If the header is missing, not two scalars (a string and an integer),
        names another kind, or another format version.
    """
    if "kind" not in arrays or "format_version" not in arrays:
        raise ValueError(f"{source} has no streamgmm header (kind, format_version); it is not a streamgmm file.")
    check_arrays(arrays, HEADER_FIELDS, source)
    found = str(arrays["kind"])
    if found != kind:
        raise ValueError(f"{source} holds a {found!r}, not a {kind!r}.")
    version = int(arrays["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{source} has format version {version}; this streamgmm reads version {FORMAT_VERSION}. "
            "Re-save it with the streamgmm version that wrote it, or upgrade streamgmm."
        )


# --------------------------------------------------------------------- JSON
def parse_json(text, source, *, what=None, max_chars=None, max_depth=32):
    """Parse JSON from a file with bounded length and nesting, or raise ``ValueError``.

    ``json.loads`` recurses once per level of nesting; a document nested
    deeper than the interpreter allows raises ``RecursionError``, turned here
    into ``ValueError`` like every other defect. The parsed document's depth
    is then measured without recursion. Time and memory stay linear in the
    length of the text.

    Parameters
    ----------
    text : str
    source : str
        The file, for the messages.
    what : str, optional
        Which part of the file holds the JSON (e.g. ``"member 'params_json'"``);
        by default the whole file.
    max_chars : int, optional
        Longest text accepted.
    max_depth : int
        Deepest nesting of arrays and objects accepted (a flat object is 1).

    Returns
    -------
    object
        The parsed document.

    Examples
    --------
    >>> parse_json('{"a": [1, 2]}', "f.json")
    {'a': [1, 2]}
    >>> parse_json("[" * 100000, "f.json")
    Traceback (most recent call last):
    ...
    ValueError: f.json is not valid JSON (nested too deeply); the file is corrupt or hostile.
    """
    where = source if what is None else f"{source}: {what}"
    if max_chars is not None and len(text) > max_chars:
        raise ValueError(
            f"{where} is {len(text)} characters of JSON, more than the {max_chars} it can be; "
            "the file is corrupt or hostile."
        )
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError(f"{where} is not valid JSON (nested too deeply); the file is corrupt or hostile.") from None
    except ValueError as exc:  # JSONDecodeError, and integer literals too long to convert
        raise ValueError(f"{where} is not valid JSON ({exc}); the file is corrupt.") from None
    depth = json_depth(document)
    if depth > max_depth:
        raise ValueError(
            f"{where} is JSON nested {depth} levels deep, more than {max_depth}; the file is corrupt or hostile."
        )
    return document


def json_depth(document):
    """Nesting depth of a parsed JSON document (0 for a scalar), computed without recursion."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            pending.extend((child, depth + 1) for child in children)
    return deepest
