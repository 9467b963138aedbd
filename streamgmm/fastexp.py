"""A vectorisable ``exp`` for Numba loops, shared by streamgmm's and speaker_id's kernels.

LLVM does not vectorise calls to libm's ``exp``; written as range reduction
plus a polynomial, the loops that turn log-densities into probabilities
vectorise. Use it as::

    x = max(value - row_max, EXP_CLAMP)
    m = np.floor(x * INV_LN2 + 0.5)
    p = exp_reduced((x - m * LN2_HI) - m * LN2_LO)   # exp(x) = p * 2**m

and build ``2**m`` from its IEEE exponent bits, ``(int64(m) + 1023) << 52``
viewed as float64, in a second loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .numba_cache import CACHE

# Flags that let LLVM vectorise the reductions and the polynomial; no
# "nnan"/"ninf": the inputs are finite by construction and must stay exact.
VECTOR_MATH = {"reassoc", "contract", "nsz", "arcp"}
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that m * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
# exp(x) underflows below about -745; exp(-700) ~ 1e-304 is already nothing
# next to the row maximum's exp(0) = 1.
EXP_CLAMP = -700.0


@njit(fastmath=VECTOR_MATH, cache=CACHE, inline="always")
def exp_reduced(r):
    """``exp(r)`` for ``|r| <= ln(2)/2``: Horner on the Taylor series to degree 13.

    The truncation error is below ``(ln2/2)**14 / 14! < 1e-17`` relative.
    """
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p


@njit(fastmath=VECTOR_MATH, cache=CACHE, inline="always")
def add_exp_terms(values, shift, top, total, poly, scale_bits):
    """``total[s] += exp(values[s] + shift - top[s])`` for every ``s``, in two vectorisable loops.

    values, top, total, poly : (S,) float64 (``poly`` is scratch);
    scale_bits : (S,) int64 scratch. ``top[s]`` is at least
    ``values[s] + shift``, so every term is at most 1.
    """
    scale = scale_bits.view(np.float64)
    for s in range(values.shape[0]):
        x = max(values[s] + shift - top[s], EXP_CLAMP)
        m = np.floor(x * INV_LN2 + 0.5)
        poly[s] = exp_reduced((x - m * LN2_HI) - m * LN2_LO)
        scale_bits[s] = (np.int64(m) + 1023) << 52
    for s in range(values.shape[0]):
        total[s] += poly[s] * scale[s]
