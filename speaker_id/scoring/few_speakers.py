"""Frame log-likelihood ratios of a few mean-adapted speakers, one pass per frame.

:class:`~speaker_id.scoring.SpeakerScorer` scores many speakers with one
BLAS product per UBM component over the frames that selected it. With a few
speakers (a verification, the enrolled speakers of one evaluation, a live
stream) that product is a thin (pairs, D + 1) x (D + 1, S) one, and
gathering the centred frames for it costs more than the arithmetic. Here
one Numba pass per frame does it all in registers: for each of the frame's
``C`` selected components ``k``, the centred frame ``y = x - mu_k``, the
UBM's exact log joint density ``log w_k N(x; mu_k, p_k)`` from it, and for
every speaker ``s`` the offset ``g_sk = W_k[s] . [y, 1]``; then the
log-sum-exp over the selection of the UBM and of each speaker.

The selection itself (the ``C`` best components of all ``K``) is the UBM
density plan's :meth:`~streamgmm.estep.DensityPlan.top_components`, block
by block of its density product, so no (frames, K) array is kept. A large
input is cut into one part per core, each selected and scored in its own
thread with serial kernels (:meth:`~streamgmm.estep.DensityPlan.over_rows`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from streamgmm.fastexp import VECTOR_MATH, add_exp_terms
from streamgmm.numba_cache import CACHE

# Frames below which one thread scores them (a parallel launch costs more than the work).
SERIAL_FRAMES = 256


@njit(nogil=True, cache=CACHE, fastmath=VECTOR_MATH)
def _score_rows(X, means, precisions, log_const, weights, index, out, start, stop, y, log_post, g, scratch):
    """``out[t, s]`` for ``t`` in ``[start, stop)``: the frame LLR of speaker ``s`` over ``index[t]``.

    X : (T, D); means, precisions : (K, D) of the UBM; log_const : (K,)
    ``log w_k + 1/2 sum_d log p_kd - D/2 log 2 pi``; weights : (K, S, D + 1)
    ``[p_k delta_sk, -1/2 p_k . delta_sk^2]``; index : (T, C); out : (T, S).
    y : (D,), log_post : (C,), g : (C, S), scratch : (4, S) scratch. ``exp``
    over the speakers is :func:`streamgmm.fastexp.add_exp_terms`, whose loops vectorise.
    """
    n_sel = index.shape[1]
    n_speakers = weights.shape[1]
    d_count = X.shape[1]
    top, total, poly = scratch[0], scratch[1], scratch[2]
    scale_bits = scratch[3].view(np.int64)
    for t in range(start, stop):
        for c in range(n_sel):
            k = index[t, c]
            quad = 0.0
            for d in range(d_count):
                v = np.float64(X[t, d]) - means[k, d]
                y[d] = v
                quad += precisions[k, d] * v * v
            log_post[c] = log_const[k] - 0.5 * quad
            for s in range(n_speakers):
                acc = np.float64(weights[k, s, d_count])
                for d in range(d_count):
                    acc += y[d] * weights[k, s, d]
                g[c, s] = acc
        best = log_post[0]
        for c in range(1, n_sel):
            best = max(best, log_post[c])
        ubm_total = 0.0
        for c in range(n_sel):
            ubm_total += np.exp(log_post[c] - best)
        ubm_ll = best + np.log(ubm_total)
        for c in range(n_sel):
            log_post[c] -= ubm_ll
        for s in range(n_speakers):
            top[s] = log_post[0] + g[0, s]
            total[s] = 0.0
        for c in range(1, n_sel):
            for s in range(n_speakers):
                top[s] = max(top[s], log_post[c] + g[c, s])
        for c in range(n_sel):
            add_exp_terms(g[c], log_post[c], top, total, poly, scale_bits)
        for s in range(n_speakers):
            out[t, s] = top[s] + np.log(total[s])


@njit(nogil=True, cache=CACHE, fastmath=VECTOR_MATH)
def _score_serial(X, means, precisions, log_const, weights, index, out):
    y = np.empty(X.shape[1])
    log_post = np.empty(index.shape[1])
    g = np.empty((index.shape[1], weights.shape[1]))
    scratch = np.empty((4, weights.shape[1]))
    _score_rows(X, means, precisions, log_const, weights, index, out, 0, index.shape[0], y, log_post, g, scratch)


@njit(parallel=True, cache=CACHE, fastmath=VECTOR_MATH)
def _score_parallel(X, means, precisions, log_const, weights, index, out, n_tasks):
    n = index.shape[0]
    per_task = (n + n_tasks - 1) // n_tasks
    for task in prange(n_tasks):
        y = np.empty(X.shape[1])
        log_post = np.empty(index.shape[1])
        g = np.empty((index.shape[1], weights.shape[1]))
        scratch = np.empty((4, weights.shape[1]))
        _score_rows(X, means, precisions, log_const, weights, index, out, task * per_task,
                    min(n, (task + 1) * per_task), y, log_post, g, scratch)


def frame_llrs(plan, X, top_c, means, precisions, log_const, weights):
    """Per-frame log-likelihood ratios of every speaker over each frame's top-C components.

    Parameters
    ----------
    plan : streamgmm.estep.DensityPlan
        The UBM's, in the precision the top C are selected in.
    X : ndarray of shape (n_frames, n_features)
    top_c : int
    means, precisions : ndarray of shape (n_components, n_features)
        The UBM's (diagonal precisions).
    log_const : ndarray of shape (n_components,)
        ``log w_k + 1/2 sum_d log p_kd - n_features/2 log(2 pi)``.
    weights : ndarray of shape (n_components, n_speakers, n_features + 1)
        Per component and speaker ``[p_k * delta_sk, -1/2 sum_d p_kd delta_skd^2]``
        with ``delta_sk`` the speaker's mean offset from the UBM's.

    Returns
    -------
    ndarray of shape (n_frames, n_speakers)
        ``log sum_c P(k_c | x) exp(g_s,k_c(x))``, the posteriors renormalised over the selection.
    """
    def part_llrs(part, serial):
        index = plan.top_components(part, top_c, serial=serial)
        out = np.empty((part.shape[0], weights.shape[1]))
        if serial or part.shape[0] < SERIAL_FRAMES:
            _score_serial(part, means, precisions, log_const, weights, index, out)
        else:
            _score_parallel(part, means, precisions, log_const, weights, index, out,
                            min(part.shape[0], 4 * numba.get_num_threads()))
        return out

    parts = plan.over_rows(part_llrs, X)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
