"""Numba kernels for the elementwise work of the E-step.

The matrix products run in BLAS (numpy); these kernels do everything that is
elementwise over one block of rows: building the augmented design matrix,
log-sum-exp, responsibilities, and the quadratic forms of full covariances.
Each is one parallel pass over the rows of a cache-sized block, in place.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .fastexp import EXP_CLAMP, INV_LN2, LN2_HI, LN2_LO, VECTOR_MATH, exp_reduced
from .numba_cache import CACHE


@njit(parallel=True, cache=CACHE, fastmath=False)
def fill_diag_design(X, shift, out):
    """``out = [(X - shift)**2, X - shift, 1]``, computed in float64.

    X : (B, D) float32 or float64; shift : (D,); out : (B, 2D + 1), float64
    (or float32, rounded from the float64 values, for a float32 product).
    """
    n, d = X.shape
    for r in prange(n):
        for j in range(d):
            v = np.float64(X[r, j]) - shift[j]
            out[r, j] = v * v
            out[r, d + j] = v
        out[r, 2 * d] = 1.0


@njit(parallel=True, cache=CACHE, fastmath=False)
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


@njit(parallel=True, cache=CACHE, fastmath=False)
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
                x = max(row[k] - top, EXP_CLAMP)
                m = np.floor(x * INV_LN2 + 0.5)
                reduced = (x - m * LN2_HI) - m * LN2_LO
                scale_bits[k] = (np.int64(m) + 1023) << 52
                row[k] = exp_reduced(reduced)
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


normalise_rows = njit(parallel=True, cache=CACHE, fastmath=VECTOR_MATH)(_normalise_rows)
normalise_rows.__doc__ = """Turn log joint densities into responsibilities, in place.

log_joint : (B, K), overwritten with ``exp(log_joint - logsumexp(row))``;
log_norm : (B,), receives ``logsumexp`` of each row (the frame log-likelihood).
"""
row_logsumexp = njit(parallel=True, cache=CACHE, fastmath=VECTOR_MATH)(_row_logsumexp)
row_logsumexp.__doc__ = """``log_norm[r] = logsumexp(log_joint[r])`` without touching ``log_joint``."""


def _top_rows(log_joint, index):
    n, k_count = log_joint.shape
    n_sel = index.shape[1]
    for r in prange(n):
        values = np.empty(n_sel)
        chosen = np.empty(n_sel, dtype=np.int64)
        for k in range(k_count):
            value = log_joint[r, k]
            if k >= n_sel and not value > values[n_sel - 1]:
                continue  # the common case once the first n_sel are in
            j = min(k, n_sel - 1)
            while j > 0 and value > values[j - 1]:  # strict: a tie keeps the lower index first
                values[j] = values[j - 1]
                chosen[j] = chosen[j - 1]
                j -= 1
            values[j] = value
            chosen[j] = k
        for j in range(n_sel):
            index[r, j] = chosen[j]


top_rows = njit(parallel=True, cache=CACHE)(_top_rows)
top_rows.__doc__ = """``index[r]`` = the columns of the ``index.shape[1]`` largest ``log_joint[r]``, largest first.

Ties keep the lower column first. log_joint : (B, K); index : (B, C) int64, C <= K.
"""


# Serial twins that release the GIL: the E-step can also split a chunk over
# Python threads, each running BLAS single-threaded and these kernels.
fill_diag_design_serial = njit(nogil=True, cache=CACHE)(fill_diag_design.py_func)
fill_full_design_serial = njit(nogil=True, cache=CACHE)(fill_full_design.py_func)
full_log_joint_serial = njit(nogil=True, cache=CACHE)(full_log_joint.py_func)
normalise_rows_serial = njit(nogil=True, cache=CACHE, fastmath=VECTOR_MATH)(_normalise_rows)
row_logsumexp_serial = njit(nogil=True, cache=CACHE, fastmath=VECTOR_MATH)(_row_logsumexp)
top_rows_serial = njit(nogil=True, cache=CACHE)(_top_rows)
