"""One BLAS thread for the front end's small matrix products.

A frame block's products (spectra x mel basis, log mel x DCT) are a few
hundred microseconds of work; with several BLAS threads their start and
join cost more than the product, and on a loaded machine much more (the
threads wait for busy cores): extracting 1-second 16 kHz files in one
process took 4.8 ms per file with two OpenBLAS threads while another job
ran, 1.0 ms with one. Extraction workers already run with one thread;
this gives the same to extraction in the calling process and to streams.

Setting and restoring the limit through threadpoolctl costs about 10-15 us
(both OpenBLAS copies, NumPy's and SciPy's, are set), a few percent of a
short file's features, so a caller that extracts many files holds the limit
around all of them: inside an active :func:`one_blas_thread`, or in a
process that called :func:`keep_one_blas_thread`, a nested one costs nothing.
"""

from __future__ import annotations

import functools

_depth = 0  # active one_blas_thread contexts (in any thread); > 0: the limit is already set


@functools.lru_cache(maxsize=None)
def _blas():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a declared dependency; without it the products keep their threads
        return None
    return ThreadpoolController().select(user_api="blas")


class _OneBlasThread:
    __slots__ = ("_limit",)

    def __enter__(self):
        global _depth
        self._limit = None
        if _depth == 0:
            blas = _blas()
            if blas is not None:
                self._limit = blas.limit(limits=1)
        _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        _depth -= 1
        if self._limit is not None:
            self._limit.restore_original_limits()
            self._limit = None


def one_blas_thread():
    """A context in which BLAS runs on one thread (free when one is already active).

    Examples
    --------
    >>> import numpy as np
    >>> with one_blas_thread():
    ...     with one_blas_thread():   # nested: nothing to set
    ...         _ = np.ones((4, 4)) @ np.ones((4, 4))
    """
    return _OneBlasThread()


def keep_one_blas_thread() -> None:
    """Limit BLAS to one thread for the rest of the process (extraction workers); contexts then cost nothing."""
    global _depth
    blas = _blas()
    if blas is not None:
        blas.limit(limits=1)
    _depth += 1
