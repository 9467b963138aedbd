"""Numba kernels for the elementwise work of the E-step.

The matrix products run in BLAS (numpy); these kernels do everything that is
elementwise over one block of rows: building the augmented design matrix,
log-sum-exp, responsibilities, and the quadratic forms of full covariances.
Each is one parallel pass over the rows of a cache-sized block, in place.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, fastmath=False)
def fill_diag_design(X, shift, out):
    """``out = [(X - shift)**2, X - shift, 1]`` in float64.

    X : (B, D) float32 or float64; shift : (D,); out : (B, 2D + 1).
    """
    n, d = X.shape
    for r in prange(n):
        for j in range(d):
            v = np.float64(X[r, j]) - shift[j]
            out[r, j] = v * v
            out[r, d + j] = v
        out[r, 2 * d] = 1.0


@njit(parallel=True, cache=True, fastmath=False)
def fill_full_design(X, shift, out):
    """``out = [X - shift, 1, upper-triangle outer products of (X - shift)]``.

    X : (B, D); shift : (D,); out : (B, D + 1 + D(D+1)/2). The outer products
    are packed row by row: (0,0), (0,1), ..., (0,D-1), (1,1), ...
    """
    n, d = X.shape
    for r in prange(n):
        for j in range(d):
            out[r, j] = np.float64(X[r, j]) - shift[j]
        out[r, d] = 1.0
        pos = d + 1
        for i in range(d):
            xi = out[r, i]
            for j in range(i, d):
                out[r, pos] = xi * out[r, j]
                pos += 1


@njit(parallel=True, cache=True, fastmath=False)
def full_log_joint(Z, centres, bias, out):
    """Log joint densities for Cholesky-factored precisions.

    Z : (B, K*D) with ``Z[:, k*D:(k+1)*D] = (X - shift) @ U_k``;
    centres : (K, D) with ``centres[k] = (mean_k - shift) @ U_k``;
    bias : (K,) log weight + log det U_k - D/2 log(2 pi); out : (B, K).
    """
    n = Z.shape[0]
    k_count, d = centres.shape
    for r in prange(n):
        for k in range(k_count):
            acc = 0.0
            base = k * d
            for j in range(d):
                diff = Z[r, base + j] - centres[k, j]
                acc += diff * diff
            out[r, k] = bias[k] - 0.5 * acc


# Flags that let LLVM vectorise the reductions and the polynomial; no
# "nnan"/"ninf": the inputs are finite by construction and must stay exact.
_VECTOR_MATH = {"reassoc", "contract", "nsz", "arcp"}
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
# exp(x) underflows below about -745; exp(-700) ~ 1e-304 is already nothing
# next to the row maximum's exp(0) = 1.
_EXP_CLAMP = -700.0


@njit(fastmath=_VECTOR_MATH, cache=True, inline="always")
def _exp_reduced(r):
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


_ROWS_PER_TASK = 32


def _normalise_rows(log_joint, log_norm):
    n, k_count = log_joint.shape
    n_tasks = (n + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in prange(n_tasks):
        # 2**m per column, built from its IEEE exponent bits so the loops vectorise
        scale_bits = np.empty(k_count, dtype=np.int64)
        scale = scale_bits.view(np.float64)
        for r in range(task * _ROWS_PER_TASK, min(n, (task + 1) * _ROWS_PER_TASK)):
            row = log_joint[r]
            top = row[0]
            for k in range(1, k_count):
                top = max(top, row[k])
            for k in range(k_count):
                x = max(row[k] - top, _EXP_CLAMP)
                m = np.floor(x * _INV_LN2 + 0.5)
                reduced = (x - m * _LN2_HI) - m * _LN2_LO
                scale_bits[k] = (np.int64(m) + 1023) << 52
                row[k] = _exp_reduced(reduced)
            total = 0.0
            for k in range(k_count):
                e = row[k] * scale[k]
                row[k] = e
                total += e
            log_norm[r] = top + np.log(total)
            inv = 1.0 / total
            for k in range(k_count):
                row[k] *= inv


def _row_logsumexp(log_joint, log_norm):
    n, k_count = log_joint.shape
    for r in prange(n):
        row = log_joint[r]
        top = row[0]
        for k in range(1, k_count):
            top = max(top, row[k])
        total = 0.0
        for k in range(k_count):
            total += np.exp(row[k] - top)
        log_norm[r] = top + np.log(total)


normalise_rows = njit(parallel=True, cache=True, fastmath=_VECTOR_MATH)(_normalise_rows)
normalise_rows.__doc__ = """Turn log joint densities into responsibilities, in place.

log_joint : (B, K), overwritten with ``exp(log_joint - logsumexp(row))``;
log_norm : (B,), receives ``logsumexp`` of each row (the frame log-likelihood).
"""
row_logsumexp = njit(parallel=True, cache=True, fastmath=_VECTOR_MATH)(_row_logsumexp)
row_logsumexp.__doc__ = """``log_norm[r] = logsumexp(log_joint[r])`` without touching ``log_joint``."""
