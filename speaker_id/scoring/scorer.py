"""Scoring one utterance against many speakers of one UBM at once.

**Many speakers at once.** A speaker adapted in its means only shares the
UBM's weights and variances, and then, with ``y = x - mu_k``,
``delta_sk = m_sk - mu_k`` and the UBM precisions ``p_k``::

    log w_k N(x; m_sk, p_k) = log w_k N(x; mu_k, p_k) + sum_d p_kd delta_skd y_d
                              - 1/2 sum_d p_kd delta_skd^2

so the per-frame ratio is ``log sum_{k in top C} P(k | x) exp(g_sk(x))`` with
``P(k | x)`` the UBM posterior renormalised over the selected components and
``g_sk`` the bracket above. :class:`SpeakerScorer` stacks
``[p_k delta_sk, -1/2 p_k . delta_sk^2]`` for all speakers into a
(D + 1, n_speakers) matrix per component and, per component ``k``, computes
``g`` for every speaker and every frame whose top C contains ``k`` in one
BLAS product; a Numba pass then does the log-sum-exp over the C components
of each frame and the average over frames. The offsets ``delta`` and the
centred frames ``y`` are small, so nothing cancels. Up to
``_FEW_SPEAKERS`` speakers skip the products: one Numba pass per frame
(:mod:`~speaker_id.scoring.few_speakers`) is faster there. Speakers adapted
in their weights or variances are scored exactly, one by one.

**Many utterances at once.** :meth:`SpeakerScorer.score_utterances` scores
a whole list of utterances (every test of an evaluation) in blocks of
concatenated frames, so the cost per utterance is its frames' and not a
round of calls.
"""

from __future__ import annotations

from collections.abc import Mapping

import numba
import numpy as np
from numba import njit, prange

from streamgmm import OnlineGMM
from streamgmm.fastexp import (
    EXP_CLAMP,
    INV_LN2,
    LN2_HI,
    LN2_LO,
    VECTOR_MATH,
    add_exp_terms,
    exp_reduced,
)
from streamgmm.estep import DensityPlan
from streamgmm.numba_cache import CACHE

from . import few_speakers
from .likelihood_ratio import (
    _check_means,
    _check_speaker,
    _check_top_c,
    _check_ubm,
    _is_means_only,
    _logsumexp_rows,
    _model_from_means,
    top_components,
)

# Bytes of the (frames x C, speakers) block of speaker-component scores.
_BLOCK_BYTES = 64 << 20
# Up to this many stacked speakers, one Numba pass per frame beats the per-component products
# (measured with 256 components and 60 features: 3x faster at 16 speakers, even at 64, slower at 256).
_FEW_SPEAKERS = 64
# Frames concatenated per block by score_utterances.
_UTTERANCE_BLOCK_FRAMES = 1 << 16


@njit(cache=CACHE, fastmath=VECTOR_MATH)
def _frame_llr(G, rows, log_post, t, top, total, scale_bits, poly):
    """Leave ``log sum_c exp(log_post[t, c] + G[rows[t, c], s])`` for every speaker s in ``top``.

    ``total``, ``scale_bits`` and ``poly`` are (S,) scratch arrays. ``exp`` is
    :func:`streamgmm.fastexp.add_exp_terms`, so the loops over speakers
    vectorise (no SVML needed).
    """
    n_sel = rows.shape[1]
    n_speakers = G.shape[1]
    row = rows[t, 0]
    lp = log_post[t, 0]
    for s in range(n_speakers):
        top[s] = G[row, s] + lp
    for c in range(1, n_sel):
        row = rows[t, c]
        lp = log_post[t, c]
        for s in range(n_speakers):
            top[s] = max(top[s], G[row, s] + lp)
    for s in range(n_speakers):
        total[s] = 0.0
    for c in range(n_sel):
        add_exp_terms(G[rows[t, c]], log_post[t, c], top, total, poly, scale_bits)
    for s in range(n_speakers):
        top[s] += np.log(total[s])


@njit(parallel=True, cache=CACHE, fastmath=VECTOR_MATH)
def _sum_frame_llrs(G, rows, log_post, partial):
    """Add the per-frame log-likelihood ratios of :func:`_frame_llr` over frames into ``partial``.

    G : (R, S) per (frame, component) pair and speaker; rows : (T, C) row of G
    of each frame's c-th selected component; log_post : (T, C) log UBM
    posteriors renormalised over the selection; partial : (n_tasks, S), each
    task adds its frames into its own row.
    """
    n = rows.shape[0]
    n_speakers = G.shape[1]
    n_tasks = partial.shape[0]
    per_task = (n + n_tasks - 1) // n_tasks
    for task in prange(n_tasks):
        acc = partial[task]
        value = np.empty(n_speakers)
        total = np.empty(n_speakers)
        scale_bits = np.empty(n_speakers, dtype=np.int64)
        poly = np.empty(n_speakers)
        for t in range(task * per_task, min(n, (task + 1) * per_task)):
            _frame_llr(G, rows, log_post, t, value, total, scale_bits, poly)
            for s in range(n_speakers):
                acc[s] += value[s]


def _each_frame_llr_rows(G, rows, log_post, out):
    n = rows.shape[0]
    n_speakers = G.shape[1]
    n_tasks = min(n, _FRAME_TASKS)
    per_task = (n + n_tasks - 1) // max(n_tasks, 1)
    for task in prange(n_tasks):
        total = np.empty(n_speakers)
        scale_bits = np.empty(n_speakers, dtype=np.int64)
        poly = np.empty(n_speakers)
        for t in range(task * per_task, min(n, (task + 1) * per_task)):
            _frame_llr(G, rows, log_post, t, out[t], total, scale_bits, poly)


# Tasks of the per-frame pass (a few per core, so uneven cores even out).
_FRAME_TASKS = 16
_each_frame_llr = njit(cache=CACHE, fastmath=VECTOR_MATH)(_each_frame_llr_rows)
_each_frame_llr.__doc__ = """``out[t]`` = the per-frame log-likelihood ratios of :func:`_frame_llr`; out : (T, S).

Serial: it serves short stream updates, where a parallel launch costs more than the work.
"""
_each_frame_llr_parallel = njit(parallel=True, cache=CACHE, fastmath=VECTOR_MATH)(_each_frame_llr_rows)
_each_frame_llr_parallel.__doc__ = """:func:`_each_frame_llr` over the cores, for many frames."""


@njit(parallel=True, cache=CACHE, fastmath=VECTOR_MATH)
def _logaddexp_into(G, log_post, top, total):
    """Fold ``v = log_post[t] + G[t, s]`` into a running log-sum-exp ``top + log(total)``.

    G, top, total : (T, S); log_post : (T,). Branch-free so the loop over
    speakers vectorises: ``total <- total * exp(top - new_top) + exp(v - new_top)``.
    """
    n, n_speakers = G.shape
    for t in prange(n):
        lp = log_post[t]
        scale_bits = np.empty(n_speakers, dtype=np.int64)
        scale = scale_bits.view(np.float64)
        poly = np.empty(n_speakers)
        for s in range(n_speakers):
            v = G[t, s] + lp
            x = max(-abs(v - top[t, s]), EXP_CLAMP)  # exp of (smaller - larger)
            m = np.floor(x * INV_LN2 + 0.5)
            poly[s] = exp_reduced((x - m * LN2_HI) - m * LN2_LO)
            scale_bits[s] = (np.int64(m) + 1023) << 52
        for s in range(n_speakers):
            v = G[t, s] + lp
            e = poly[s] * scale[s]
            if v > top[t, s]:
                total[t, s] = total[t, s] * e + 1.0
                top[t, s] = v
            else:
                total[t, s] = total[t, s] + e


class SpeakerScorer:
    """Score one utterance against many speakers of one UBM at once.

    Speakers adapted in their means only (weights and variances bit-for-bit
    the UBM's, as :func:`speaker_id.models.adaptation.map_adapt` leaves them by default,
    or given as means arrays) are scored together with stacked BLAS products
    (see the module notes); the others one by one with their own densities.
    Both give the same numbers as :func:`llr` with the same ``top_c``.

    Parameters
    ----------
    ubm : OnlineGMM
        Fitted UBM; the stacked path needs ``covariance_type="diag"``.
    speakers : mapping of name to OnlineGMM or ndarray of shape (n_components, n_features)
        The enrolled speakers; scores come in the mapping's order.
    top_c : int or None, default=5
        As in :func:`llr`.
    fast : bool, default=True
        ``False`` scores every speaker one by one (a reference for checks).
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Precision of the stacked speaker matrices and of the UBM densities
        that select each frame's top C. ``float32`` halves memory and is
        faster; a near tie for the C-th place may then select another
        component, and scores differ from :func:`llr` slightly (1e-8
        measured on 60-dimensional MFCCs, 1e-4 at worst in the tests).

    Notes
    -----
    The stacked matrices take ``K (D + 1) S`` numbers: 125 MB for 1,000
    speakers of a 256-component UBM on 60 features in float64. Building the
    scorer costs about as much as scoring one utterance; keep it while the
    set of speakers does not change.

    Attributes
    ----------
    names : list
        Speaker names, in score order.
    n_stacked_ : int
        Speakers scored on the stacked path.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM
    >>> from speaker_id.models.adaptation import map_adapt, speaker_stats
    >>> from speaker_id.scoring import identify, llr
    >>> rng = np.random.default_rng(0)
    >>> ubm = OnlineGMM(8, covariance_type="diag", random_state=0).fit(rng.normal(size=(4000, 3)))
    >>> centres = {"ann": -0.8, "bob": 0.0, "cid": 0.8}
    >>> speakers = {name: map_adapt(ubm, speaker_stats(ubm, [rng.normal(c, 1.0, size=(600, 3))]))
    ...             for name, c in centres.items()}
    >>> scorer = SpeakerScorer(ubm, speakers, top_c=3)
    >>> X = rng.normal(0.8, 1.0, size=(400, 3))
    >>> scores = scorer.score(X)
    >>> scores.shape, identify(scores, scorer.names)[0]
    ((3,), 'cid')
    >>> bool(np.isclose(scores[2], llr(ubm, speakers["cid"], X, top_c=3), rtol=0, atol=1e-9))
    True
    """

    def __init__(self, ubm, speakers, top_c=5, *, fast=True, dtype=np.float64):
        self.ubm = _check_ubm(ubm)
        if not isinstance(speakers, Mapping):
            raise TypeError(f"speakers must be a mapping of name to model, got {type(speakers).__name__}.")
        if len(speakers) == 0:
            raise ValueError("no speakers given: pass at least one enrolled speaker.")
        self.top_c = _check_top_c(top_c, ubm.n_components)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float64, np.float32):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype}.")
        self.names = list(speakers)
        stacked, stacked_means, others = [], [], []
        can_stack = fast and ubm.covariance_type == "diag"
        for i, name in enumerate(self.names):
            value = speakers[name]
            what = f"speaker {name!r}"
            if isinstance(value, OnlineGMM):
                model = _check_speaker(ubm, value, what)
                if can_stack and _is_means_only(ubm, model):
                    stacked.append(i)
                    stacked_means.append(model.means_)
                else:
                    others.append((i, model))
            else:
                means = _check_means(ubm, value, what)
                if can_stack:
                    stacked.append(i)
                    stacked_means.append(means)
                else:
                    others.append((i, _model_from_means(ubm, means)))
        self._stacked = np.array(stacked, dtype=np.int64)
        self._others = others
        self.n_stacked_ = len(stacked)
        # few speakers under top-C selection: one Numba pass per frame (see few_speakers)
        self._few = 0 < len(stacked) <= _FEW_SPEAKERS and self.top_c is not None
        self._weights = self._stack(stacked_means) if stacked else None
        if self._few:
            self._weights = np.ascontiguousarray(self._weights.transpose(0, 2, 1))  # (K, S, D + 1)
            self._selection = DensityPlan(ubm.weights_, ubm.means_, ubm.precisions_cholesky_, "diag", ubm.shift_,
                                          dtype=self.dtype)
            self._log_const = (np.log(ubm.weights_) + np.sum(np.log(ubm.precisions_cholesky_), axis=1)
                               - 0.5 * ubm.n_features_in_ * np.log(2 * np.pi))

    def __len__(self):
        return len(self.names)

    def _stack(self, means_list):
        """Per component k, the (D + 1, S) matrix ``[p_k * delta_sk ; -1/2 sum p_k delta_sk^2]``."""
        ubm = self.ubm
        k, d = ubm.means_.shape
        s_count = len(means_list)
        precisions = ubm.precisions_  # (K, D) for diag
        weights = np.empty((k, d + 1, s_count), dtype=self.dtype)
        for s, means in enumerate(means_list):
            delta = means - ubm.means_
            scaled = precisions * delta
            weights[:, :d, s] = scaled
            weights[:, d, s] = -0.5 * np.sum(scaled * delta, axis=1)
        return weights

    def score(self, X):
        """Average log-likelihood ratio of frames ``X`` against every speaker.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features)

        Returns
        -------
        ndarray of shape (n_speakers,)
            In the order of :attr:`names`.
        """
        return self._score(X, per_frame=False)

    def score_frames(self, X):
        """Log-likelihood ratio of each frame of ``X`` against every speaker.

        What a stream scorer needs to keep sliding-window and running sums;
        the mean over the frames is :meth:`score` (to rounding).

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features)

        Returns
        -------
        ndarray of shape (n_frames, n_speakers)
            Columns in the order of :attr:`names`.

        Examples
        --------
        >>> import numpy as np
        >>> from streamgmm import OnlineGMM
        >>> rng = np.random.default_rng(0)
        >>> ubm = OnlineGMM(4, covariance_type="diag", random_state=0).fit(rng.normal(size=(2000, 2)))
        >>> scorer = SpeakerScorer(ubm, {"a": ubm.means_ + 0.3, "b": ubm.means_ - 0.3}, top_c=2)
        >>> X = rng.normal(0.3, 1.0, size=(50, 2))
        >>> frames = scorer.score_frames(X)
        >>> frames.shape, bool(np.allclose(frames.mean(axis=0), scorer.score(X)))
        ((50, 2), True)
        """
        return self._score(X, per_frame=True)

    def score_utterances(self, utterances):
        """Average log-likelihood ratio of each utterance against every speaker.

        The same numbers as ``[score(X) for X in utterances]`` (to rounding).
        Means-adapted speakers under top-C selection (an evaluation's
        enrolled speakers) are scored on blocks of the utterances' frames
        joined together, which is much faster for many short utterances;
        with exact scoring, or speakers adapted in more than their means,
        one utterance at a time.

        Parameters
        ----------
        utterances : sequence of array-like of shape (n_frames_i, n_features)

        Returns
        -------
        ndarray of shape (n_utterances, n_speakers)
            Columns in the order of :attr:`names`.

        Examples
        --------
        >>> import numpy as np
        >>> from streamgmm import OnlineGMM
        >>> rng = np.random.default_rng(0)
        >>> ubm = OnlineGMM(4, covariance_type="diag", random_state=0).fit(rng.normal(size=(2000, 2)))
        >>> scorer = SpeakerScorer(ubm, {"a": ubm.means_ + 0.3, "b": ubm.means_ - 0.3}, top_c=2)
        >>> tests = [rng.normal(0.3, 1.0, size=(n, 2)) for n in (40, 7, 90)]
        >>> scores = scorer.score_utterances(tests)
        >>> scores.shape, bool(np.allclose(scores[1], scorer.score(tests[1])))
        ((3, 2), True)
        """
        frames = [self.ubm._check_X(X) for X in utterances]
        out = np.empty((len(frames), len(self.names)))
        if self.top_c is None or not self.n_stacked_ or self._others:
            for i, X in enumerate(frames):
                out[i] = self._score(X, per_frame=False, checked=True)
            return out
        # whole utterances up to a block of frames (at least one), whose (frames, speakers) LLRs stay small
        block_frames = max(1, min(_UTTERANCE_BLOCK_FRAMES, _BLOCK_BYTES // (8 * len(self.names))))
        lengths = np.array([len(X) for X in frames])
        ends = np.cumsum(lengths)
        first = 0
        while first < len(frames):
            done = ends[first] - lengths[first]
            last = max(first + 1, int(np.searchsorted(ends, done + block_frames, side="right")))
            block = frames[first] if last == first + 1 else np.concatenate(frames[first:last])
            frame_llrs = self._score(block, per_frame=True, checked=True)
            out[first:last] = np.add.reduceat(frame_llrs, ends[first:last] - lengths[first:last] - done, axis=0)
            out[first:last] /= lengths[first:last, None]
            first = last
        return out

    def _few_llrs(self, X):
        """(n_frames, n_speakers) frame LLRs of the stacked speakers, when they are few."""
        ubm = self.ubm
        return few_speakers.frame_llrs(self._selection, X, self.top_c, ubm.means_, ubm.precisions_, self._log_const,
                                       self._weights)

    def _score(self, X, per_frame, checked=False):
        ubm = self.ubm
        if not checked:
            X = ubm._check_X(X)
        shape = (X.shape[0], len(self.names)) if per_frame else (len(self.names),)
        scores = np.empty(shape)

        def put(column, frame_llrs):
            scores[..., column] = frame_llrs if per_frame else np.mean(frame_llrs, axis=0)

        if self._few:
            put(self._stacked, self._few_llrs(X))
            if not self._others:
                return scores
        if self.top_c is None and not self.n_stacked_:
            ubm_ll = ubm._density_plan().score_samples(X)
            for i, model in self._others:
                put(i, model._density_plan().score_samples(X) - ubm_ll)
            return scores
        index, selected = top_components(ubm._density_plan().log_joint(X), self.top_c)
        ubm_ll = _logsumexp_rows(selected)
        if self.n_stacked_ and not self._few:
            log_post = selected - ubm_ll[:, None]
            if self.top_c is None:
                scores[..., self._stacked] = self._stacked_scores_all(X, log_post, per_frame)
            else:
                scores[..., self._stacked] = self._stacked_scores(X, index, log_post, per_frame)
        for i, model in self._others:
            if self.top_c is None:
                put(i, model._density_plan().score_samples(X) - ubm._density_plan().score_samples(X))
            else:
                spk = np.take_along_axis(model._density_plan().log_joint(X), index, axis=1)
                put(i, _logsumexp_rows(spk) - ubm_ll)
        return scores

    def _stacked_scores(self, X, index, log_post, per_frame):
        weights = self._weights
        k_count, width, s_count = weights.shape
        d = width - 1
        n, n_sel = index.shape
        means = self.ubm.means_
        rows_per_block = max(1, _BLOCK_BYTES // (n_sel * s_count * self.dtype.itemsize))
        if per_frame:
            frame_llrs = np.empty((n, s_count))
        else:
            partial = np.zeros((max(1, numba.get_num_threads()), s_count))
        for start in range(0, n, rows_per_block):
            stop = min(n, start + rows_per_block)
            idx = np.ascontiguousarray(index[start:stop]).ravel()  # pair p = t * C + c
            order = np.argsort(idx, kind="stable")
            comp = idx[order]
            bounds = np.searchsorted(comp, np.arange(k_count + 1))
            frames = start + order // n_sel
            design = np.empty((len(idx), width), dtype=self.dtype)
            design[:, :d] = X[frames] - means[comp]
            design[:, d] = 1.0
            G = np.empty((len(idx), s_count), dtype=self.dtype)
            for k in np.flatnonzero(np.diff(bounds)):
                lo, hi = bounds[k], bounds[k + 1]
                np.dot(design[lo:hi], weights[k], out=G[lo:hi])
            rows = np.empty(len(idx), dtype=np.int64)
            rows[order] = np.arange(len(idx))
            rows = rows.reshape(stop - start, n_sel)
            block_post = np.ascontiguousarray(log_post[start:stop])
            if per_frame:
                each = _each_frame_llr if stop - start < few_speakers.SERIAL_FRAMES else _each_frame_llr_parallel
                each(G, rows, block_post, frame_llrs[start:stop])
            else:
                _sum_frame_llrs(G, rows, block_post, partial)
        return frame_llrs if per_frame else partial.sum(axis=0) / n

    def _stacked_scores_all(self, X, log_post, per_frame):
        """Exact scores (every component): a running log-sum-exp over the components.

        Per component one product ``[X - mu_k, 1] @ W_k`` for all frames of a
        block gives ``g`` for every frame and speaker; a Numba pass folds
        ``log_post[:, k] + g`` into the running maximum and sum.
        """
        weights = self._weights
        k_count, width, s_count = weights.shape
        d = width - 1
        n = X.shape[0]
        means = self.ubm.means_
        rows_per_block = max(1, _BLOCK_BYTES // (3 * s_count * 8))
        post_by_component = np.ascontiguousarray(log_post.T)
        out = np.empty((n, s_count)) if per_frame else np.zeros(s_count)
        for start in range(0, n, rows_per_block):
            stop = min(n, start + rows_per_block)
            block = np.asarray(X[start:stop], dtype=np.float64)
            design = np.empty((stop - start, width), dtype=self.dtype)
            design[:, d] = 1.0
            G = np.empty((stop - start, s_count), dtype=self.dtype)
            top = np.full((stop - start, s_count), -np.inf)
            total = np.zeros((stop - start, s_count))
            for k in range(k_count):
                design[:, :d] = block - means[k]
                np.dot(design, weights[k], out=G)
                _logaddexp_into(G, post_by_component[k, start:stop], top, total)
            if per_frame:
                out[start:stop] = top + np.log(total)
            else:
                out += np.sum(top + np.log(total), axis=0)
        return out if per_frame else out / n
