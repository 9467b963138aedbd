"""Opening input files safely, and saying in words why a path cannot be used.

Every file the project reads by name (audio, ``wav.scp`` lists, store files)
is opened through :func:`open_regular_file`: a FIFO, a device or a socket is
refused at once instead of blocking forever or reading without end, and the
errors the system gives (permission denied, ...) become one sentence naming
the file and the fix. :func:`display_path` prints any name, also one whose
bytes are not UTF-8.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["describe_os_error", "display_path", "open_regular_file"]

_PHRASES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error (the disk or file system has a problem)",
    errno.EMFILE: "too many open files",
}

_FIXES = {
    errno.EACCES: "check its permissions (ls -l) and give yourself access (chmod), or use another path",
    errno.EPERM: "check its permissions (ls -l) and give yourself access (chmod), or use another path",
    errno.EROFS: "use a path on a writable file system",
    errno.ENOSPC: "free some space and try again",
    errno.EDQUOT: "free some space and try again",
}


def display_path(path) -> str:
    """``path`` as printable text: bytes that are not UTF-8 are shown as ``\\xNN``.

    Python keeps such bytes of file names as lone surrogates, which cannot be
    printed or written to a UTF-8 stream; this never fails.

    Examples
    --------
    >>> display_path(b"caf\\xe9.wav".decode("utf-8", "surrogateescape"))
    'caf\\\\xe9.wav'
    >>> display_path("ok/zoë.wav")
    'ok/zoë.wav'
    """
    raw = os.fsencode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path).encode()
    return raw.decode("utf-8", "backslashreplace")


def describe_os_error(exc: OSError, fix: bool = True) -> str:
    """What an ``OSError`` means, in words and without ``[Errno N]``; with a fix where one is general.

    Parameters
    ----------
    exc : OSError
    fix : bool, default True
        Append the general fix (``"permission denied: check its permissions ..."``).

    Returns
    -------
    str

    Examples
    --------
    >>> import errno
    >>> describe_os_error(PermissionError(errno.EACCES, "Permission denied", "x.wav"))
    'permission denied: check its permissions (ls -l) and give yourself access (chmod), or use another path'
    >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device"), fix=False)
    'no space left on the device'
    """
    phrase = _PHRASES.get(exc.errno) or (exc.strerror or str(exc) or type(exc).__name__).lower()
    remedy = _FIXES.get(exc.errno) if fix else None
    return f"{phrase}: {remedy}" if remedy else phrase


def _kind(mode) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular_file(path, what="file", error=ValueError, *, hint=None, system_errors=False):
    """Open ``path`` for binary reading if it is a regular file; refuse anything else at once.

    The file is opened without blocking (a FIFO would otherwise wait for a
    writer forever) and checked on the open descriptor, so it cannot be
    swapped between the check and the read.

    Parameters
    ----------
    path : str or os.PathLike
    what : str, default "file"
        What the file should be, for messages (``"audio file"``).
    error : type, default ValueError
        Exception class raised, with a message naming the path and the fix.
    hint : str, optional
        The fix given when the path is not a regular file (default: pass
        the files of a directory, copy other data into a regular file).
    system_errors : bool, default False
        Let the system's ``OSError`` (not found, permission denied, ...)
        through unchanged, for a caller that words them itself; only "not a
        regular file" is raised as ``error`` then.

    Returns
    -------
    io.BufferedReader
        The open file; close it (``with``).

    Raises
    ------
    error
        If the path does not exist, is a directory, a FIFO, a device or a
        socket, or cannot be read (permission denied, ...).

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.mkfifo(os.path.join(d, "pipe.wav"))
    >>> open_regular_file(os.path.join(d, "pipe.wav"), "audio file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../pipe.wav: is a FIFO (named pipe), not an audio file; give a regular file ...
    """
    shown = display_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if system_errors:
            raise
        if isinstance(exc, FileNotFoundError):
            raise error(f"{shown}: {what} not found; check the path (and the current directory for relative "
                        "paths)") from None
        raise error(f"{shown}: cannot open the {what}: {describe_os_error(exc)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            if hint is None:
                hint = ("pass the files inside it" if stat.S_ISDIR(mode)
                        else "give a regular file (copy the data into one first)")
            raise error(f"{shown}: is {_kind(mode)}, not {_article(what)}; {hint}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _article(what: str) -> str:
    return f"an {what}" if what[:1] in "aeiou" else f"a {what}"
