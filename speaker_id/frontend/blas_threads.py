"""One BLAS thread for the front end's small matrix products.

A frame block's products (spectra x mel basis, log mel x DCT) are a few
hundred microseconds of work; with several BLAS threads their start and
join cost more than the product, and on a loaded machine much more (the
threads wait for busy cores): extracting 1-second 16 kHz files in one
process took 4.8 ms per file with two OpenBLAS threads while another job
ran, 1.0 ms with one. Extraction workers already run with one thread;
this gives the same to extraction in the calling process and to streams.
"""

from __future__ import annotations

import contextlib
import functools


@functools.lru_cache(maxsize=None)
def _blas():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a declared dependency; without it the products keep their threads
        return None
    return ThreadpoolController().select(user_api="blas")


def one_blas_thread():
    """A context in which BLAS runs on one thread (about 3 us to enter and leave)."""
    blas = _blas()
    return blas.limit(limits=1) if blas is not None else contextlib.nullcontext()
