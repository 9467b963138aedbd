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


@njit(parallel=True, cache=True, fastmath=False)
def normalise_rows(log_joint, log_norm):
    """Turn log joint densities into responsibilities, in place.

    log_joint : (B, K), overwritten with ``exp(log_joint - logsumexp(row))``;
    log_norm : (B,), receives ``logsumexp`` of each row (the frame log-likelihood).
    """
    n, k_count = log_joint.shape
    for r in prange(n):
        top = log_joint[r, 0]
        for k in range(1, k_count):
            if log_joint[r, k] > top:
                top = log_joint[r, k]
        total = 0.0
        for k in range(k_count):
            e = np.exp(log_joint[r, k] - top)
            log_joint[r, k] = e
            total += e
        lse = top + np.log(total)
        log_norm[r] = lse
        inv = 1.0 / total
        for k in range(k_count):
            log_joint[r, k] *= inv


@njit(parallel=True, cache=True, fastmath=False)
def row_logsumexp(log_joint, log_norm):
    """``log_norm[r] = logsumexp(log_joint[r])`` without touching ``log_joint``."""
    n, k_count = log_joint.shape
    for r in prange(n):
        top = log_joint[r, 0]
        for k in range(1, k_count):
            if log_joint[r, k] > top:
                top = log_joint[r, k]
        total = 0.0
        for k in range(k_count):
            total += np.exp(log_joint[r, k] - top)
        log_norm[r] = top + np.log(total)
