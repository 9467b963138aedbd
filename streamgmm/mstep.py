"""The M-step: statistics in, mixture parameters out, always finite.

Robustness measures, each a named option of :class:`~streamgmm.OnlineGMM`:

* ``reg_covar`` is added to every variance, as in scikit-learn;
* ``covariance_floor``: variances may not fall below a fraction of the
  global (data) variance. Diagonal models clip per feature; full models clip
  the eigenvalues of the covariance whitened by the floor, so the result
  stays positive definite (the floor matrix is diagonal);
* ``min_weight``: a component whose weight falls below it is starved; it is
  re-seeded by splitting the heaviest component in two along its largest
  variance, so the model keeps its size and no NaN appears.
"""

from __future__ import annotations

import numpy as np

from .stats import SufficientStats

_TINY = 10.0 * np.finfo(np.float64).eps


def estimate_parameters(stats: SufficientStats, covariance_type, reg_covar, variance_floor=None):
    """Maximum-likelihood parameters from statistics.

    Parameters
    ----------
    stats : SufficientStats
        Layout ``"diag"`` for diag/spherical, ``"full"`` for full/tied.
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float
        Added to the variances.
    variance_floor : ndarray of shape (n_features,), optional
        Absolute lower bound of the variances (see the module notes).

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray, shape per ``covariance_type``
    """
    counts = stats.zeroth + _TINY
    weights = counts / counts.sum()
    centred_means = stats.first / counts[:, None]
    means = centred_means + stats.shift
    d = stats.n_features
    if covariance_type in ("diag", "spherical"):
        cov = stats.second / counts[:, None] - centred_means**2 + reg_covar
        if variance_floor is not None:
            cov = np.maximum(cov, variance_floor)
        if covariance_type == "spherical":
            cov = cov.mean(axis=1)
        return weights, means, cov
    outer = centred_means[:, :, None] * centred_means[:, None, :]
    if covariance_type == "tied":
        scatter = stats.second.sum(axis=0) - np.sum(counts[:, None, None] * outer, axis=0)
        cov = scatter / counts.sum()
        cov.flat[:: d + 1] += reg_covar
        if variance_floor is not None:
            cov = floor_full_covariance(cov, variance_floor)
        return weights, means, cov
    cov = stats.second / counts[:, None, None] - outer
    idx = np.arange(d)
    cov[:, idx, idx] += reg_covar
    if variance_floor is not None:
        cov = floor_full_covariance(cov, variance_floor)
    return weights, means, cov


def floor_full_covariance(cov, variance_floor):
    """Raise the eigenvalues of ``cov`` whitened by ``diag(variance_floor)`` to at least 1.

    Parameters
    ----------
    cov : ndarray of shape (D, D) or (K, D, D)
    variance_floor : ndarray of shape (D,), strictly positive

    Returns
    -------
    ndarray of the shape of ``cov``, symmetric, with ``cov - diag(floor)``
    positive semi-definite. Matrices that already satisfy it come back as they are.
    """
    cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
    outer_scale = np.outer(np.sqrt(variance_floor), np.sqrt(variance_floor))
    values, vectors = np.linalg.eigh(cov / outer_scale)
    low = values.min(axis=-1) < 1.0
    if not np.any(low):
        return cov
    values = np.maximum(values, 1.0)
    floored = (vectors * values[..., None, :]) @ np.swapaxes(vectors, -1, -2) * outer_scale
    return np.where(low[..., None, None], floored, cov)


def reseed_starved(weights, means, covariances, covariance_type, min_weight, rng, perturbation=0.5):
    """Replace components lighter than ``min_weight`` by halves of the heaviest.

    The heaviest component is split in two: both halves keep its covariance and
    half its weight, and their means move by ``+-perturbation`` standard
    deviations along its direction of largest variance.

    Returns
    -------
    weights, means, covariances : new arrays
    reseeded : list of int
        Indices of the components that were re-seeded.
    """
    weights, means = weights.copy(), means.copy()
    covariances = covariances.copy()
    reseeded = []
    if len(weights) < 2:
        return weights, means, covariances, reseeded
    for starved in np.flatnonzero(weights < min_weight):
        heavy = int(np.argmax(weights))
        if weights[heavy] < 2 * min_weight:
            break
        direction = _principal_direction(covariances, covariance_type, heavy, means.shape[1], rng)
        means[starved] = means[heavy] + perturbation * direction
        means[heavy] = means[heavy] - perturbation * direction
        weights[starved] = weights[heavy] = 0.5 * weights[heavy]
        if covariance_type != "tied":
            covariances[starved] = covariances[heavy]
        reseeded.append(int(starved))
    weights /= weights.sum()
    return weights, means, covariances, reseeded


def _principal_direction(covariances, covariance_type, k, n_features, rng):
    """One standard deviation along the largest-variance axis of component ``k`` (random sign)."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if covariance_type == "spherical":
        vec = np.zeros(n_features)
        vec[rng.integers(n_features)] = np.sqrt(covariances[k])
        return sign * vec
    if covariance_type == "diag":
        vec = np.zeros(n_features)
        j = int(np.argmax(covariances[k]))
        vec[j] = np.sqrt(covariances[k][j])
        return sign * vec
    cov = covariances if covariance_type == "tied" else covariances[k]
    values, vectors = np.linalg.eigh(cov)
    return sign * np.sqrt(max(values[-1], 0.0)) * vectors[:, -1]
