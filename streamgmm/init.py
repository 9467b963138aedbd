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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def row_keys(seed, first_row, n_rows):
    """Pseudo-random 64-bit keys of rows ``first_row .. first_row + n_rows - 1`` (splitmix64 of the index).

    A bijection of the row index for a given seed, so no two rows share a key.

    Parameters
    ----------
    seed : int in [0, 2**64)
    first_row, n_rows : int

    Returns
    -------
    ndarray of shape (n_rows,), uint64
    """
    index = np.arange(first_row, first_row + n_rows, dtype=np.uint64)
    z = index * _GOLDEN + np.uint64(seed)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


class UniformSample:
    """A uniform sample of ``size`` rows of a stream: the rows with the smallest hashed keys.

    Each row's key depends only on the seed and the row's index in the whole
    stream (:func:`row_keys`), so the sample is the same however the rows
    are cut into chunks, in whatever order the chunks are added, and however
    partial samples are merged: workers of a cluster can each sample their
    own chunks (given each chunk's first row index) and the merged sample
    equals one process's.

    Parameters
    ----------
    size : int
    seed : int in [0, 2**64)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> whole = UniformSample(4, seed=7); whole.add(X)
    >>> a, b = UniformSample(4, seed=7), UniformSample(4, seed=7)
    >>> a.add(X[:3]); b.add(X[3:], first_row=3)
    >>> bool(np.array_equal(a.merge(b).sample(), whole.sample()))
    True
    """

    def __init__(self, size, seed):
        self.size = int(size)
        self.seed = int(seed)
        self.rows = None
        self.keys = np.empty(0, dtype=np.uint64)
        self.index = np.empty(0, dtype=np.int64)
        self.seen = 0
        self._pending = []  # (rows, keys, index) not yet merged into the kept sample
        self._n_pending = 0
        self._threshold = None  # once `size` rows are kept: the largest kept key; no larger key can enter

    def add(self, chunk, first_row=None):
        """Offer the rows of ``chunk``, whose first row has index ``first_row`` (default: rows seen so far)."""
        chunk = np.asarray(chunk)
        first = self.seen if first_row is None else int(first_row)
        n = chunk.shape[0]
        keys = row_keys(self.seed, first, n)
        take = np.arange(n) if self._threshold is None else np.flatnonzero(keys < self._threshold)
        if len(take) > self.size:
            take = take[np.argpartition(keys[take], self.size - 1)[: self.size]]
        if len(take):
            self._pending.append((np.asarray(chunk[take], dtype=np.float64), keys[take], first + take))
            self._n_pending += len(take)
            if self._n_pending >= self.size:  # amortised: each compaction at least halves what is held
                self._compact()
        self.seen += n

    def merge(self, other):
        """The sample of both streams' rows (each row index must belong to one of them); returns self."""
        other._compact()
        if other.rows is not None:
            self._pending.append((other.rows, other.keys, other.index))
            self._n_pending += len(other.keys)
            self._compact()
        self.seen += other.seen
        return self

    def _compact(self):
        if not self._pending:
            return
        parts = self._pending if self.rows is None else [(self.rows, self.keys, self.index)] + self._pending
        rows = np.concatenate([p[0] for p in parts])
        keys = np.concatenate([p[1] for p in parts])
        index = np.concatenate([p[2] for p in parts])
        self._pending, self._n_pending = [], 0
        if len(keys) > self.size:
            take = np.argpartition(keys, self.size - 1)[: self.size]
            rows, keys, index = rows[take], keys[take], index[take]
        if len(keys) == self.size:
            self._threshold = keys.max()
        order = np.argsort(index, kind="stable")  # stream order, whatever the merge order
        self.rows, self.keys, self.index = rows[order], keys[order], index[order]

    def sample(self):
        """The sampled rows in stream order, shape (min(size, rows seen), n_features)."""
        self._compact()
        return self.rows


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

    def merge(self, other):
        """The moments of both streams (Chan's pairwise update); returns self."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean, other.m2
            return self
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / total)
        self.count = total
        return self

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
