"""Atomic files and locking: how the store writes without ever leaving a half-written file."""

from __future__ import annotations

import errno
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import filelock

from streamgmm.io import write_atomic

from ..frontend.paths import describe_os_error, display_path, open_regular_file
from .errors import InvalidStoreError, StoreAccessError, StoreError, StoreLockedError
from .manifest import (
    BACKEND_NAME,
    _TEMP_FILE_RE,
    LOCK_NAME,
    MANIFEST_NAME,
    SPEAKERS_DIR,
    UBM_NAME,
    is_speaker_file_name,
)

#: Seconds a writer waits for another writer's lock before giving up.
DEFAULT_LOCK_TIMEOUT = 30.0


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable (best effort; not possible everywhere)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes_atomic(path, data):
    """Write ``data`` to ``path`` through a flushed temporary file in the same directory."""
    path = Path(path)
    write_atomic(path, lambda handle: handle.write(data))
    _fsync_directory(path.parent)


def _file_signature(stat_result):
    return (stat_result.st_ino, stat_result.st_dev, stat_result.st_mtime_ns, stat_result.st_size)


@contextmanager
def store_os_errors(root, action):
    """Turn the system's refusals inside the block into :class:`StoreAccessError` naming the file and the fix.

    Parameters
    ----------
    root : Path
        The store directory.
    action : {"read", "write"}
        What was being done to the store: the fix for a permission problem
        differs.

    Raises
    ------
    StoreAccessError
        For any ``OSError`` that is not already a :class:`StoreError`.
    """
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreAccessError(_access_message(Path(root), action, exc)) from exc


def _access_message(root, action, exc):
    path = display_path(exc.filename) if exc.filename else display_path(root)
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        fix = (f"make the store writable by you (chmod -R u+rwX {display_path(root)}) or use another --store"
               if action == "write" else f"make the store readable by you (chmod -R u+rX {display_path(root)})")
    elif code == errno.EROFS:
        fix = "copy the store to a writable file system (cp -r) and use the copy as --store"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space on its disk and try again"
    elif code == errno.EISDIR:
        fix = f"it must be a file: remove the directory (rmdir {path}) and try again"
    elif code in (errno.ENOENT, errno.ENOTDIR):
        fix = (f"the store is damaged: restore it from a backup, or rebuild it with `speaker-id train-ubm "
               f"--store {display_path(root)} --overwrite` and re-enroll the speakers")
    else:
        fix = "check the disk and the file system, and try again"
    changed = "; nothing was changed" if action == "write" else ""
    return f"speaker store {display_path(root)}: {path}: {describe_os_error(exc, fix=False)}{changed}; {fix}."


def read_store_file(path, root, what):
    """The bytes of a store file (the manifest), read only if it is a regular file.

    Raises
    ------
    FileNotFoundError
        If it does not exist (the caller knows what that means).
    InvalidStoreError
        If it is a directory, a FIFO, a device or a socket.
    StoreAccessError
        If the system refuses to read it.
    """
    with store_os_errors(root, "read"):
        with open_store_file(path, root, what) as handle:
            return handle.read()


def open_store_file(path, root, what):
    """Open a store file for reading if it is a regular file; see :func:`read_store_file`.

    ``FileNotFoundError`` and other system errors go through unchanged: call
    it inside :func:`store_os_errors`.
    """
    fix = (f"the store is damaged: put the original file back, or rebuild the store with `speaker-id train-ubm "
           f"--store {display_path(root)} --overwrite` and re-enroll the speakers")
    return open_regular_file(path, what, InvalidStoreError, hint=fix, system_errors=True)


@contextmanager
def _locked(root, timeout):
    lock = filelock.FileLock(str(Path(root) / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise StoreLockedError(
            f"speaker store {display_path(root)} is locked by another process (lock file "
            f"{display_path(Path(root) / LOCK_NAME)}) and was not released within {timeout:g} s; wait for the "
            "other enrollment or removal to finish and try again."
        ) from None
    try:
        yield
    finally:
        lock.release()


def _clean_orphans(root, manifest):
    """Delete files the manifest does not refer to (lock held).

    Speaker files it does not list, temporary files of crashed writes, and a
    back-end file left by an i-vector store replaced by a GMM one.
    """
    root = Path(root)
    referenced = {entry["file"] for entry in manifest["speakers"].values()}
    speakers_dir = root / SPEAKERS_DIR
    candidates = []
    try:
        if speakers_dir.is_dir():
            candidates += [
                e for e in os.scandir(speakers_dir)
                if e.name not in referenced and (is_speaker_file_name(e.name) or _TEMP_FILE_RE.fullmatch(e.name))
            ]
        candidates += [
            e for e in os.scandir(root)
            if re.fullmatch(rf"\.({re.escape(MANIFEST_NAME)}|{re.escape(UBM_NAME)}|{re.escape(BACKEND_NAME)})\..+\.tmp",
                            e.name)
            or (e.name == BACKEND_NAME and manifest["backend"] != "ivector")
        ]
    except OSError:
        return
    for entry in candidates:
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        except OSError:  # best effort: orphans are ignored by readers, and the next write tries again
            pass
