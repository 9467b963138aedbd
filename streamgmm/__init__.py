"""streamgmm: Gaussian mixture models that learn from streams.

Exact out-of-core EM (``OnlineGMM.fit`` over chunks) and online stepwise EM
(``OnlineGMM.partial_fit``), both on additive sufficient statistics
(:class:`SufficientStats`), with the E-step's elementwise work in Numba.

Modules, bottom to top (each imports only modules listed before it)
-------------------------------------------------------------------
numba_cache
    Where Numba caches the compiled kernels: sets ``NUMBA_CACHE_DIR`` to a per-user directory.
_validation
    Input checks shared by the estimators, the scale limit of frames.
parameters
    Conversions between covariances, precisions and their Cholesky factors.
io
    The file format: atomic ``.npz`` writing; guarded, pickle-free reading (only the
    expected members, each header checked before its data); bounded JSON.
stats
    :class:`SufficientStats`, additive statistics of a mixture; their files.
fastexp, _kernels
    A vectorisable ``exp`` and the Numba kernels of the E-step.
estep
    The E-step: frames to log-likelihoods, responsibilities and statistics.
mstep
    The M-step: statistics to parameters (:func:`estimate_parameters`).
init
    Initialisation: a sample of the stream, and starting parameters from it.
sklearn_compat
    Conversion of settings and parameters to and from scikit-learn.
estimators
    :class:`OnlineGMM`, :func:`accumulate`, :func:`chunk_source`, model files (:func:`load`).
distributed
    Batch EM on a Dask cluster (the ``dask`` extra; imported on demand).
novelty
    :class:`NoveltyTracker`, novelty scoring of a stream.
demo
    ``python -m streamgmm.demo``: online learning of a drifting stream.
"""

import os

# The E-step alternates BLAS products (OpenBLAS's own threads) with Numba
# parallel loops (OpenMP threads). OpenMP threads spin-wait after each loop by
# default and then starve the BLAS threads on the same cores: on two cores the
# E-step ran 4x slower. Passive waiting costs nothing measurable here. This must
# be set before the OpenMP runtime loads; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .estimators import ConvergenceWarning, NotFittedError, OnlineGMM, accumulate, chunk_source, load
from .mstep import estimate_parameters
from .novelty import NoveltyResult, NoveltyTracker
from .stats import SufficientStats

__all__ = [
    "OnlineGMM",
    "SufficientStats",
    "accumulate",
    "chunk_source",
    "estimate_parameters",
    "load",
    "ConvergenceWarning",
    "NotFittedError",
    "NoveltyResult",
    "NoveltyTracker",
]
__version__ = "0.1.0"
