"""Atomic files and locking: how the store writes without ever leaving a half-written file."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import filelock

from streamgmm.io import write_atomic

from .errors import StoreLockedError
from .manifest import (
    BACKEND_NAME,
    _SPEAKER_FILE_RE,
    _TEMP_FILE_RE,
    LOCK_NAME,
    MANIFEST_NAME,
    SPEAKERS_DIR,
    UBM_NAME,
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
def _locked(root, timeout):
    lock = filelock.FileLock(str(Path(root) / LOCK_NAME), timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise StoreLockedError(
            f"speaker store {root} is locked by another process (lock file {Path(root) / LOCK_NAME}) and was "
            f"not released within {timeout:g} s; wait for the other enrollment to finish and try again, "
            "or raise the lock timeout."
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
    if speakers_dir.is_dir():
        candidates += [
            e for e in os.scandir(speakers_dir)
            if e.name not in referenced and (_SPEAKER_FILE_RE.fullmatch(e.name) or _TEMP_FILE_RE.fullmatch(e.name))
        ]
    candidates += [
        e for e in os.scandir(root)
        if re.fullmatch(rf"\.({re.escape(MANIFEST_NAME)}|{re.escape(UBM_NAME)}|{re.escape(BACKEND_NAME)})\..+\.tmp",
                        e.name)
        or (e.name == BACKEND_NAME and manifest["backend"] != "ivector")
    ]
    for entry in candidates:
        if entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
