"""Conversions between covariances, precisions and their Cholesky factors.

The conventions are scikit-learn's, so parameters move between the two
libraries unchanged:

=============  =====================  ==================================
type           covariances_ shape     precisions_cholesky_
=============  =====================  ==================================
``full``       (K, D, D)              upper-triangular U_k, U_k U_k^T = inv(C_k)
``tied``       (D, D)                 one such U
``diag``       (K, D)                 1 / sqrt(C_k)
``spherical``  (K,)                   1 / sqrt(c_k)
=============  =====================  ==================================
"""

from __future__ import annotations

import numpy as np

# numpy.linalg only: scipy.linalg calls a second OpenBLAS copy whose threads
# contend with numpy's right after the E-step's products (100x slower calls).

_ILL_DEFINED = (
    "a covariance matrix is not positive definite (component {k}); the data may have "
    "duplicate or constant columns, or a component collapsed onto few frames: increase "
    "reg_covar or covariance_floor, or use fewer components."
)


def precisions_cholesky_from_covariances(covariances, covariance_type):
    """Cholesky factors of the precision matrices (see the module table).

    Parameters
    ----------
    covariances : ndarray, shape per the module table
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray of the same shape as ``covariances``
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        if np.any(covariances <= 0.0):
            k = int(np.argwhere(covariances <= 0.0)[0][0])
            raise ValueError(_ILL_DEFINED.format(k=k))
        return 1.0 / np.sqrt(covariances)
    stack = covariances[None] if covariance_type == "tied" else covariances
    try:
        cov_chol = np.linalg.cholesky(stack)
    except np.linalg.LinAlgError:
        k = next(i for i, c in enumerate(stack) if not _is_positive_definite(c))
        raise ValueError(_ILL_DEFINED.format(k=k)) from None
    # inv(L)^T is upper triangular and inv(L)^T inv(L) = inv(C); zero the
    # round-off below the diagonal so the factor is exactly triangular.
    factors = np.triu(np.swapaxes(np.linalg.inv(cov_chol), -1, -2))
    return factors[0] if covariance_type == "tied" else factors


def _is_positive_definite(matrix):
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def covariances_from_precisions(precisions, covariance_type):
    """Invert precisions given as matrices (``full``/``tied``) or variances' inverses."""
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0):
            raise ValueError("precisions must be strictly positive.")
        return 1.0 / precisions
    stack = precisions[None] if covariance_type == "tied" else precisions
    try:
        inv_chol = np.linalg.inv(np.linalg.cholesky(stack))
    except np.linalg.LinAlgError:
        raise ValueError("precisions_init holds a matrix that is not positive definite.") from None
    out = np.swapaxes(inv_chol, -1, -2) @ inv_chol
    return out[0] if covariance_type == "tied" else out


def precisions_from_cholesky(precisions_cholesky, covariance_type):
    """``U U^T`` for matrix types, ``u**2`` otherwise."""
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return pc**2
    if covariance_type == "tied":
        return pc @ pc.T
    return np.einsum("kij,klj->kil", pc, pc)


def log_det_cholesky(precisions_cholesky, covariance_type, n_features):
    """``log det`` of each precision Cholesky factor, shape (K,) (a scalar for ``tied``)."""
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type == "full":
        return np.sum(np.log(np.diagonal(pc, axis1=1, axis2=2)), axis=1)
    if covariance_type == "tied":
        return np.sum(np.log(np.diag(pc)))
    if covariance_type == "diag":
        return np.sum(np.log(pc), axis=1)
    return n_features * np.log(pc)


def n_parameters(n_components, n_features, covariance_type):
    """Number of free parameters of a mixture (for BIC/AIC)."""
    k, d = n_components, n_features
    cov = {
        "full": k * d * (d + 1) / 2.0,
        "tied": d * (d + 1) / 2.0,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return int(cov + k * d + k - 1)


def expected_covariance_shape(n_components, n_features, covariance_type):
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]
