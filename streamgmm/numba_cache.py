"""Where Numba keeps the compiled kernels: a per-user cache directory, never the installed package.

Left to itself, Numba's ``cache=True`` writes into a ``__pycache__`` folder
beside the source, inside the installed package. That fails in two ways. A
read-only install whose HOME cannot be written either cannot be imported
at all (``RuntimeError: cannot cache function ...: no locator available``).
And cache files written into ``site-packages/streamgmm/__pycache__`` after
``pip install .`` are not in pip's record, so they outlive the package when
``pip install -e .`` replaces it; the folder left behind then shadows the
editable install as a namespace package (``ImportError: cannot import name
'OnlineGMM' from 'streamgmm' (unknown location)``).

So importing this module, before any kernel is compiled, sets
``NUMBA_CACHE_DIR`` (kept when the user set it to a writable directory) to
the per-user cache directory, ``~/.cache/streamgmm/numba`` on Linux
(``$XDG_CACHE_HOME/streamgmm/numba`` when set; the platform's cache
directory elsewhere). Numba has one cache setting per process, so kernels of
other packages (librosa's) are cached there too. When that directory cannot
be written, a private temporary directory serves this process and is
removed at exit; when none can be written, caching is off (:data:`CACHE` is
False) and the kernels compile on every run. Either fallback logs one line.

Every ``@njit`` of the project takes ``cache=CACHE``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

import platformdirs

_log = logging.getLogger(__name__)
_ADVICE = "set NUMBA_CACHE_DIR to a writable directory to keep the compiled kernels"
_temporary = None  # the TemporaryDirectory this process made, removed at exit


def default_cache_dir():
    """The per-user directory the kernels are cached in when ``NUMBA_CACHE_DIR`` is not set.

    Returns
    -------
    str
    """
    return os.path.join(platformdirs.user_cache_dir("streamgmm", appauthor=False), "numba")


def is_writable_dir(path):
    """Whether ``path`` is, or can be made, a directory this process can write into (Numba's own test)."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def choose_cache_dir(environ):
    """The directory to cache kernels in, and the notice to log (None when all went as planned).

    Parameters
    ----------
    environ : mapping
        The environment (``NUMBA_CACHE_DIR`` is read from it).

    Returns
    -------
    directory : str or None
        None when no directory can be written: caching must be off.
    notice : str or None
        One line saying what was not writable and what is done instead.
    """
    chosen = environ.get("NUMBA_CACHE_DIR", "")
    if chosen and is_writable_dir(chosen):
        return chosen, None
    default = default_cache_dir()
    if chosen:
        problem = f"NUMBA_CACHE_DIR={chosen} is not a writable directory"
        if is_writable_dir(default):
            return default, f"streamgmm: {problem}; caching Numba kernels in {default} instead"
    elif is_writable_dir(default):
        return default, None
    else:
        problem = f"the cache directory {default} is not writable"
    temporary = _make_temporary_dir()
    if temporary is None:
        return None, f"streamgmm: {problem}, nor is a temporary directory; Numba kernels compile on every run ({_ADVICE})"
    return temporary, f"streamgmm: {problem}; Numba kernels are cached in {temporary} for this process only ({_ADVICE})"


def _make_temporary_dir():
    global _temporary
    try:
        _temporary = tempfile.TemporaryDirectory(prefix="streamgmm-numba-")
    except OSError:
        return None
    return _temporary.name


def configure(environ=os.environ):
    """Point ``NUMBA_CACHE_DIR`` at a writable directory; return whether kernels may be cached.

    Parameters
    ----------
    environ : mutable mapping, default ``os.environ``

    Returns
    -------
    bool
        False when no directory can be written: decorate with ``cache=False``.
    """
    directory, notice = choose_cache_dir(environ)
    if notice:
        _log.warning(notice)
    if directory is None:
        return False
    if environ.get("NUMBA_CACHE_DIR") != directory:
        environ["NUMBA_CACHE_DIR"] = directory
        numba_config = sys.modules.get("numba.core.config")
        if numba_config is not None and environ is os.environ:
            numba_config.reload_config()  # Numba read the environment before we set it
    return True


#: Whether the project's kernels are cached (``@njit(cache=CACHE)``).
CACHE = configure()
