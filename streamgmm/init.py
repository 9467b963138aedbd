"""Initialisation: a sample of the stream, and starting parameters from it.

Kaldi's recipe is the model: initialise from a reservoir sample of the data
(one cheap pass), then let EM over all the data do the rest. Methods:

``"k-means++"``
    k-means++ seeding on the sample, each sample frame assigned to its
    nearest seed; parameters are the statistics of those hard assignments.
``"kmeans"``
    As ``"k-means++"`` followed by Lloyd iterations on the sample.
``"random_from_data"``
    Seeds are sample frames drawn uniformly, then nearest-seed assignment.
``"random"``
    Random soft responsibilities, as scikit-learn's ``"random"``.
``"split"``
    Binary splitting as in HTK/Kaldi mixture growing: start from one
    Gaussian, split every component along its largest variance, run a few
    EM iterations on the sample, repeat until ``n_components``.
"""

from __future__ import annotations

import numpy as np

from .estep import DensityPlan, stats_from_responsibilities
from .mstep import estimate_parameters
from .parameters import precisions_cholesky_from_covariances

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "split")


class ReservoirSample:
    """A uniform sample of ``size`` rows from a stream of chunks (algorithm R).

    The draws depend only on the row order, not on how the rows are cut
    into chunks, so the same data give the same sample in one array or many.

    Parameters
    ----------
    size : int
    rng : numpy.random.Generator
    """

    def __init__(self, size, rng):
        self.size = int(size)
        self.rng = rng
        self.rows = None
        self.seen = 0

    def add(self, chunk):
        chunk = np.asarray(chunk, dtype=np.float64)
        n = chunk.shape[0]
        if self.rows is None:
            self.rows = np.empty((self.size, chunk.shape[1]))
        fill = max(0, min(self.size - self.seen, n))
        if fill:
            self.rows[self.seen : self.seen + fill] = chunk[:fill]
        if fill < n:
            positions = np.arange(self.seen + fill, self.seen + n)
            slots = self.rng.integers(0, positions + 1)
            kept = np.flatnonzero(slots < self.size)
            # where one slot is drawn twice in a chunk, the later row wins
            _, last_reversed = np.unique(slots[kept][::-1], return_index=True)
            kept = kept[len(kept) - 1 - last_reversed]
            self.rows[slots[kept]] = chunk[fill + kept]
        self.seen += n

    def sample(self):
        """The sampled rows, shape (min(size, rows seen), n_features)."""
        return self.rows[: min(self.size, self.seen)]


class RunningMoments:
    """Mean and variance per feature over a stream, in float64 (Chan's update)."""

    def __init__(self):
        self.count = 0
        self.mean = None
        self.m2 = None

    def add(self, chunk):
        chunk = np.asarray(chunk, dtype=np.float64)
        n = chunk.shape[0]
        mean = chunk.mean(axis=0)
        m2 = ((chunk - mean) ** 2).sum(axis=0)
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def variance(self):
        return self.m2 / max(self.count, 1)


def kmeans_plusplus(X, n_clusters, rng, n_local_trials=None):
    """k-means++ seeds (greedy variant with local trials).

    Parameters
    ----------
    X : ndarray of shape (n_frames, n_features), float64
    n_clusters : int
    rng : numpy.random.Generator

    Returns
    -------
    centres : ndarray of shape (n_clusters, n_features)
    """
    n = X.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    sq_norms = np.einsum("ij,ij->i", X, X)
    centres = np.empty((n_clusters, X.shape[1]))
    first = rng.integers(n)
    centres[0] = X[first]
    closest = _sq_distances(X, sq_norms, X[first : first + 1])[:, 0]
    potential = closest.sum()
    for c in range(1, n_clusters):
        if potential <= 0:  # fewer distinct points than clusters: take any
            centres[c] = X[rng.integers(n)]
            continue
        draws = rng.random(n_local_trials) * potential
        candidates = np.searchsorted(np.cumsum(closest), draws)
        candidates = np.minimum(candidates, n - 1)
        dist = _sq_distances(X, sq_norms, X[candidates])
        new_closest = np.minimum(closest[:, None], dist)
        best = int(np.argmin(new_closest.sum(axis=0)))
        centres[c] = X[candidates[best]]
        closest = new_closest[:, best]
        potential = closest.sum()
    return centres


def _sq_distances(X, sq_norms, centres):
    dist = sq_norms[:, None] - 2.0 * X @ centres.T + np.einsum("ij,ij->i", centres, centres)
    return np.maximum(dist, 0.0)


def nearest_centre(X, centres):
    """Index of the nearest centre for each row, shape (n_frames,)."""
    sq_norms = np.einsum("ij,ij->i", X, X)
    return np.argmin(_sq_distances(X, sq_norms, centres), axis=1)


def lloyd(X, centres, n_iter=10, tol=1e-6):
    """Refine ``centres`` by Lloyd iterations; empty clusters keep their centre."""
    centres = centres.copy()
    for _ in range(n_iter):
        labels = nearest_centre(X, centres)
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, X)
        moved = counts > 0
        new = centres.copy()
        new[moved] = sums[moved] / counts[moved, None]
        shift = np.max(np.abs(new - centres))
        centres = new
        if shift <= tol * (np.abs(centres).max() + 1e-300):
            break
    return centres


def one_hot(labels, n_components):
    resp = np.zeros((len(labels), n_components))
    resp[np.arange(len(labels)), labels] = 1.0
    return resp


def initial_responsibilities(sample, n_components, method, rng):
    """Responsibilities of the sample frames for the non-splitting methods.

    Parameters
    ----------
    sample : ndarray of shape (n_frames, n_features), float64
    n_components : int
    method : {"kmeans", "k-means++", "random", "random_from_data"}
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_frames, n_components)
    """
    if method == "random":
        resp = rng.uniform(size=(len(sample), n_components))
        return resp / resp.sum(axis=1, keepdims=True)
    if method == "random_from_data":
        centres = sample[rng.choice(len(sample), n_components, replace=False)]
    else:
        centres = kmeans_plusplus(sample, n_components, rng)
        if method == "kmeans":
            centres = lloyd(sample, centres)
    return one_hot(nearest_centre(sample, centres), n_components)


def split_initialisation(sample, n_components, covariance_type, reg_covar, variance_floor, shift, rng,
                         n_iter_per_split=5, perturbation=0.2):
    """Grow a mixture on ``sample`` by binary splitting (HTK/Kaldi style).

    Parameters
    ----------
    sample : ndarray of shape (n_frames, n_features), float64
    n_components : int
    covariance_type : str
    reg_covar : float
    variance_floor : ndarray of shape (n_features,) or None
    shift : ndarray of shape (n_features,)
    rng : numpy.random.Generator
    n_iter_per_split : int
        EM iterations on the sample after each split.
    perturbation : float
        Means of the two halves move by this many standard deviations.

    Returns
    -------
    weights, means, covariances
    """
    layout = "diag" if covariance_type in ("diag", "spherical") else "full"
    stats = stats_from_responsibilities(sample, np.ones((len(sample), 1)), shift, layout)
    params = estimate_parameters(stats, "full" if layout == "full" else "diag", reg_covar, variance_floor)
    weights, means, cov = params
    while len(weights) < n_components:
        n_split = min(len(weights), n_components - len(weights))
        order = np.argsort(-weights)[:n_split]
        if layout == "diag":
            spread = np.sqrt(cov[order])
        else:
            spread = np.sqrt(np.diagonal(cov[order], axis1=1, axis2=2))
        signs = rng.choice([-1.0, 1.0], size=spread.shape)
        offset = perturbation * signs * spread
        new_means = means[order] + offset
        means = means.copy()
        means[order] -= offset
        means = np.concatenate([means, new_means])
        weights = weights.copy()
        weights[order] *= 0.5
        weights = np.concatenate([weights, weights[order]])
        cov = np.concatenate([cov, cov[order]])
        for _ in range(n_iter_per_split):
            chol = precisions_cholesky_from_covariances(cov, "full" if layout == "full" else "diag")
            plan = DensityPlan(weights, means, chol, "full" if layout == "full" else "diag", shift)
            stats = plan.accumulate(sample)
            weights, means, cov = estimate_parameters(
                stats, "full" if layout == "full" else "diag", reg_covar, variance_floor
            )
    if covariance_type == "spherical":
        cov = cov.mean(axis=1)
    elif covariance_type == "tied":
        counts = weights[:, None, None]
        cov = np.sum(counts * cov, axis=0)
    return weights, means, cov
