"""The E-step: frames in, log-likelihoods, responsibilities and statistics out.

Work is done one block of rows at a time so that no (n_frames, n_components)
array is ever built for the whole input. Per block:

* diagonal and spherical models: one BLAS product of the design matrix
  ``A = [(x - c)**2, x - c, 1]`` with a (2D + 1, K) parameter matrix gives
  the log joint densities; one more, ``R^T A``, gives all three statistics;
* full and tied models: one BLAS product ``(x - c) @ [U_1 ... U_K]`` gives the
  whitened frames, a Numba pass their squared distances to the whitened
  means, and ``R^T [x - c, 1]`` and ``R^T [upper-triangle outer products]``
  the statistics.

Log-sum-exp and the responsibilities are one parallel Numba pass in between.
Everything is taken about the model's ``shift`` so second moments of offset
data do not cancel. By default every product is float64 whatever the input
dtype; a plan built with ``dtype=np.float32`` computes the log joint
densities (their BLAS product) and holds the responsibilities in float32,
while the design matrix (the frames centred on the shift), the
log-sum-exp and the statistics' product stay float64, as Kaldi keeps its
GMM accumulators in double: a float32 sum of second moments, less the
squared mean in the M-step, would lose up to 1e-4 of a variance and can
make a collapsed component's variance negative.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numba
import numpy as np

from . import _kernels
from .parameters import log_det_cholesky
from .stats import SufficientStats

_LOG_2PI = np.log(2.0 * np.pi)
# Elements of the (rows, K) block buffer: about 4 MiB of float64.
_BLOCK_ELEMENTS = 1 << 19

# Two ways to use the cores. One block at a time with multi-threaded BLAS and
# parallel Numba loops; or, for large inputs, the rows split over Python
# threads, each with single-threaded BLAS and serial GIL-free kernels, whose
# statistics are then added. The second keeps every core busy in the
# elementwise passes too, which the first cannot (the parallel loops hand
# over between BLAS's and OpenMP's threads at every block).
_PARALLEL = SimpleNamespace(
    fill_diag=_kernels.fill_diag_design, fill_full=_kernels.fill_full_design,
    full_joint=_kernels.full_log_joint, normalise=_kernels.normalise_rows,
    logsumexp=_kernels.row_logsumexp, top=_kernels.top_rows,
)
_SERIAL = SimpleNamespace(
    fill_diag=_kernels.fill_diag_design_serial, fill_full=_kernels.fill_full_design_serial,
    full_joint=_kernels.full_log_joint_serial, normalise=_kernels.normalise_rows_serial,
    logsumexp=_kernels.row_logsumexp_serial, top=_kernels.top_rows_serial,
)


@functools.lru_cache(maxsize=None)
def _thread_pool(n_threads):
    return ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="streamgmm-estep")


@functools.lru_cache(maxsize=None)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a declared dependency; without it, stay on the one-block path
        return None
    return ThreadpoolController()


def over_ranges(function, n_items, min_per_part=1):
    """``[function(start, stop, serial)]`` over ``range(n_items)``, one part per core when it pays.

    With one Numba thread, or fewer than ``min_per_part`` items per thread,
    one call ``function(0, n_items, False)``: it may use parallel kernels and
    multi-threaded BLAS. Otherwise consecutive ranges, one per Numba thread,
    run in Python threads with ``serial=True`` while BLAS is held to one
    thread: ``function`` must then use serial kernels that release the GIL
    (BLAS and LAPACK calls do). Many small products (one per block, or one
    small matrix per item) run faster this way than on BLAS's own threads.

    Returns
    -------
    list
        The results, in item order.
    """
    n_threads = numba.get_num_threads()
    controller = _blas_controller()
    if n_threads < 2 or controller is None or n_items < n_threads * max(1, min_per_part):
        return [function(0, n_items, False)]
    bounds = np.linspace(0, n_items, n_threads + 1).astype(int)
    with controller.limit(limits=1, user_api="blas"):
        pool = _thread_pool(n_threads)
        parts = [pool.submit(function, a, b, True) for a, b in zip(bounds, bounds[1:])]
        return [part.result() for part in parts]


class DensityPlan:
    """Matrices derived from a mixture's parameters for blockwise evaluation.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    precisions_cholesky : ndarray
        As ``OnlineGMM.precisions_cholesky_`` for ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}
    shift : ndarray of shape (n_features,)
        Point the statistics are taken about.
    block_size : int, optional
        Rows per block; by default about 4 MiB of (rows, K) buffer.
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the per-block products (see the module notes).
    """

    def __init__(self, weights, means, precisions_cholesky, covariance_type, shift, block_size=None,
                 dtype=np.float64):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        means = np.asarray(means, dtype=np.float64)
        self.n_components, self.n_features = k, d = means.shape
        self.covariance_type = covariance_type
        self.shift = np.ascontiguousarray(shift, dtype=np.float64)
        centred_means = means - self.shift
        log_weights = np.log(np.asarray(weights, dtype=np.float64))
        log_det = np.broadcast_to(log_det_cholesky(precisions_cholesky, covariance_type, d), (k,))
        pc = np.asarray(precisions_cholesky, dtype=np.float64)
        if covariance_type in ("diag", "spherical"):
            self.layout = "diag"
            precisions = pc**2 if covariance_type == "diag" else np.repeat((pc**2)[:, None], d, axis=1)
            weight_matrix = np.empty((2 * d + 1, k))
            weight_matrix[:d] = -0.5 * precisions.T
            weight_matrix[d : 2 * d] = (precisions * centred_means).T
            weight_matrix[2 * d] = (
                log_weights + log_det - 0.5 * d * _LOG_2PI
                - 0.5 * np.sum(precisions * centred_means**2, axis=1)
            )
            self.weight_matrix = weight_matrix.astype(self.dtype)
            self.design_width = 2 * d + 1
            per_row = k
        else:
            self.layout = "full"
            factors = np.broadcast_to(pc, (k, d, d)) if covariance_type == "tied" else pc
            # column k*D + j of the concatenation is column j of U_k
            self.factors_concat = np.ascontiguousarray(factors.transpose(1, 0, 2).reshape(d, k * d), dtype=self.dtype)
            self.centres = np.einsum("kd,kdj->kj", centred_means, factors)
            self.bias = np.ascontiguousarray(log_weights + log_det - 0.5 * d * _LOG_2PI)
            self.design_width = d + 1 + d * (d + 1) // 2
            per_row = k * (d + 1)
        if block_size is None:
            block_size = int(np.clip(_BLOCK_ELEMENTS // per_row, 64, 16384))
        self.block_size = int(block_size)

    # ------------------------------------------------------------------ core
    def _blocks(self, X, output, kernels=_PARALLEL, offset=0):
        """Yield ``(start, stop, block, log_norm, design)`` for consecutive row blocks.

        ``output`` is ``"responsibilities"`` (``block`` holds them and
        ``log_norm`` the frame log-likelihoods), ``"log_norm"`` (``block``
        holds the log joint densities, ``log_norm`` is filled) or ``"joint"``
        (only the log joint densities; ``log_norm`` is not computed).
        Buffers are reused: consume each item before asking for the next.
        ``offset`` is the index of ``X[0]`` in the caller's input (for messages).

        Raises
        ------
        ValueError
            If a frame has no finite log-density (see :func:`_check_log_densities`).
        """
        n, d = X.shape
        k = self.n_components
        rows = min(self.block_size, n)
        design_buf = np.empty((rows, self.design_width))
        # the design's columns the density product reads, in the plan's dtype when it is not float64
        low = self.design_width if self.layout == "diag" else d
        low_buf = None if self.dtype == np.float64 else np.empty((rows, low), dtype=self.dtype)
        joint_buf = np.empty((rows, k), dtype=self.dtype)
        norm_buf = np.empty(rows)
        whitened_buf = np.empty((rows, k * d), dtype=self.dtype) if self.layout == "full" else None
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            b = stop - start
            xb = X[start:stop]
            design, joint, log_norm = design_buf[:b], joint_buf[:b], norm_buf[:b]
            # an overflow is refused below, with the frame it happened to, not warned about
            with np.errstate(over="ignore", invalid="ignore"):
                if self.layout == "diag" and output == "joint" and low_buf is not None:
                    design = low_buf[:b]  # no statistics follow: the design is only the product's operand
                    kernels.fill_diag(xb, self.shift, design)
                    np.dot(design, self.weight_matrix, out=joint)
                elif self.layout == "diag":
                    kernels.fill_diag(xb, self.shift, design)
                    np.dot(_lowered(design, low_buf), self.weight_matrix, out=joint)
                else:
                    kernels.fill_full(xb, self.shift, design)
                    whitened = whitened_buf[:b]
                    np.dot(_lowered(design[:, :d], low_buf), self.factors_concat, out=whitened)
                    kernels.full_joint(whitened, self.centres, self.bias, joint)
            if output == "responsibilities":
                kernels.normalise(joint, log_norm)
            elif output == "log_norm":
                kernels.logsumexp(joint, log_norm)
            # A NaN or an infinity anywhere in a row's log joint densities
            # (from an overflowing squared distance) reaches its log-sum-exp.
            _check_log_densities(log_norm if output != "joint" else joint.max(axis=1), offset + start)
            yield start, stop, joint, log_norm, design

    def accumulate(self, X):
        """Sufficient statistics of frames ``X`` under this mixture.

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_features), float32 or float64, finite

        Returns
        -------
        SufficientStats
        """
        results = self._over_rows(self._accumulate_rows, X)
        total = results[0]
        for result in results[1:]:
            total += result
        return total

    def over_rows(self, function, X):
        """``function(part, serial)`` over consecutive parts of ``X``'s rows, the way the E-step uses the cores.

        A small ``X`` is one part with ``serial=False``: the function may
        use parallel kernels and multi-threaded BLAS. A large one is cut
        into one part per Numba thread, run in Python threads with BLAS
        single-threaded meanwhile and ``serial=True``: the function must
        then use serial kernels that release the GIL.

        Returns
        -------
        list
            The results, in row order.
        """
        return self._over_rows(lambda part, kernels, offset=0: function(part, kernels is _SERIAL), X)

    def top_components(self, X, n_top, *, serial=None):
        """The ``n_top`` components of highest weighted log-density of each frame (Gaussian selection).

        Parameters
        ----------
        X : ndarray of shape (n_frames, n_features), float32 or float64, finite
        n_top : int
            ``1 <= n_top <= n_components``.
        serial : bool or None, default=None
            ``None`` uses the cores as :meth:`over_rows` does; ``True`` or
            ``False`` is the ``serial`` of a part when called from :meth:`over_rows`.

        Returns
        -------
        ndarray of shape (n_frames, n_top), int64
            Component indices, highest ``log w_k + log N(x | k)`` first
            (computed in the plan's ``dtype``); a tie keeps the lower index first.
        """
        if not 1 <= n_top <= self.n_components:
            raise ValueError(f"n_top must be between 1 and n_components={self.n_components}, got {n_top!r}")
        if serial is not None:
            return self._top_rows(X, _SERIAL if serial else _PARALLEL, n_top=n_top)
        return np.concatenate(self._over_rows(functools.partial(self._top_rows, n_top=n_top), X))

    def _top_rows(self, X, kernels, offset=0, *, n_top):
        index = np.empty((X.shape[0], n_top), dtype=np.int64)
        for start, stop, joint, _, _ in self._blocks(X, "joint", kernels, offset):
            kernels.top(joint, index[start:stop])
        return index

    def _over_rows(self, rows_function, X):
        """``[rows_function(part, kernels, offset)]`` over ``X``: one part with parallel kernels,
        or, for a large ``X``, one part per thread with serial kernels and single-threaded BLAS."""
        def part(start, stop, serial):
            return rows_function(X[start:stop], _SERIAL if serial else _PARALLEL, start)

        return over_ranges(part, X.shape[0], 4 * self.block_size)

    def _accumulate_rows(self, X, kernels, offset=0):
        k, d = self.n_components, self.n_features
        acc = np.zeros((k, self.design_width))
        partial = np.empty_like(acc)
        log_likelihood = 0.0
        for _, _, resp, log_norm, design in self._blocks(X, "responsibilities", kernels, offset):
            if resp.dtype != np.float64:  # the statistics' product is float64 (see the module notes)
                resp = resp.astype(np.float64)
            np.dot(resp.T, design, out=partial)
            acc += partial
            log_likelihood += float(np.sum(log_norm))
        if self.layout == "diag":
            second, first, zeroth = acc[:, :d], acc[:, d : 2 * d], acc[:, 2 * d]
        else:
            first, zeroth = acc[:, :d], acc[:, d]
            second = unpack_upper(acc[:, d + 1 :], d)
        return SufficientStats(
            zeroth.copy(), first.copy(), np.ascontiguousarray(second), self.shift.copy(),
            log_likelihood, float(X.shape[0]),
        )

    def score_samples(self, X):
        """Per-frame log-likelihood ``log p(x)``, shape (n_frames,)."""
        out = np.empty(X.shape[0])
        for start, stop, _, log_norm, _ in self._blocks(X, "log_norm"):
            out[start:stop] = log_norm
        return out

    def predict_proba(self, X):
        """Responsibilities, shape (n_frames, n_components)."""
        out = np.empty((X.shape[0], self.n_components))
        for start, stop, resp, _, _ in self._blocks(X, "responsibilities"):
            out[start:stop] = resp
        return out

    def log_joint(self, X):
        """``log w_k + log N(x | k)``, shape (n_frames, n_components)."""
        out = np.empty((X.shape[0], self.n_components))
        for start, stop, joint, _, _ in self._blocks(X, "joint"):
            out[start:stop] = joint
        return out

    def predict(self, X):
        """Most probable component per frame, shape (n_frames,)."""
        out = np.empty(X.shape[0], dtype=np.int64)
        for start, stop, joint, _, _ in self._blocks(X, "joint"):
            out[start:stop] = np.argmax(joint, axis=1)
        return out


def _lowered(values, buffer):
    """``values`` copied into the front of ``buffer`` (another dtype), or ``values`` itself without one."""
    if buffer is None:
        return values
    out = buffer[: values.shape[0]]
    np.copyto(out, values, casting="same_kind")
    return out


def _check_log_densities(log_density, start):
    """Refuse a block in which some frame's log-density is not finite.

    Frames within the scale limit of :mod:`streamgmm._validation` fail only
    under extreme parameters (tiny variances, huge means) that make a
    squared distance overflow.

    Parameters
    ----------
    log_density : ndarray of shape (n_rows,)
        Per frame of a block: its log-likelihood, or its largest log joint density.
    start : int
        Index of the block's first frame in the input.
    """
    if np.isfinite(log_density).all():
        return
    row = int(np.flatnonzero(~np.isfinite(log_density))[0])
    raise ValueError(
        f"frame {start + row} has no finite log-density under the model (its squared distance to "
        f"the components, in the model's standard deviations, overflows float64; got {log_density[row]}). "
        "Pass frames on the scale of the training data (scaled the same way), or refit with a "
        "larger reg_covar if the model's variances are tiny."
    )


def unpack_upper(packed, n_features):
    """Symmetric matrices from row-major packed upper triangles.

    Parameters
    ----------
    packed : ndarray of shape (K, D(D+1)/2)

    Returns
    -------
    ndarray of shape (K, D, D)
    """
    k = packed.shape[0]
    rows, cols = np.triu_indices(n_features)
    out = np.empty((k, n_features, n_features))
    out[:, rows, cols] = packed
    out[:, cols, rows] = packed
    return out


def stats_from_responsibilities(X, resp, shift, layout):
    """Statistics of ``X`` for given responsibilities (plain numpy; used at initialisation).

    Parameters
    ----------
    X : ndarray of shape (n_frames, n_features)
    resp : ndarray of shape (n_frames, n_components)
    shift : ndarray of shape (n_features,)
    layout : {"diag", "full"}

    Returns
    -------
    SufficientStats
        ``log_likelihood`` is 0: no model produced these responsibilities.
    """
    centred = np.asarray(X, dtype=np.float64) - shift
    resp = np.asarray(resp, dtype=np.float64)
    first = resp.T @ centred
    if layout == "diag":
        second = resp.T @ centred**2
    else:
        second = np.einsum("nk,ni,nj->kij", resp, centred, centred, optimize=True)
    return SufficientStats(resp.sum(axis=0), first, second, np.asarray(shift, dtype=np.float64), 0.0, float(len(X)))
