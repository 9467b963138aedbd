"""streamgmm: Gaussian mixture models that learn from streams.

Exact out-of-core EM (``OnlineGMM.fit`` over chunks) and online stepwise EM
(``OnlineGMM.partial_fit``), both on additive sufficient statistics
(:class:`SufficientStats`), with the E-step's elementwise work in Numba.
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
