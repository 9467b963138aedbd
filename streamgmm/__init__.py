"""streamgmm: Gaussian mixture models that learn from streams.

Exact out-of-core EM (``OnlineGMM.fit`` over chunks) and online stepwise EM
(``OnlineGMM.partial_fit``), both on additive sufficient statistics
(:class:`SufficientStats`), with the E-step's elementwise work in Numba.
"""

from .estimators import ConvergenceWarning, NotFittedError, OnlineGMM, accumulate, chunk_source
from .io import load
from .mstep import estimate_parameters
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
]
__version__ = "0.1.0"
