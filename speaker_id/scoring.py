"""Scoring against GMM-UBM speaker models: log-likelihood ratios, decisions, normalisation.

The score of a test utterance ``X`` (frames ``x_1 .. x_T``) against a speaker
is the average per-frame log-likelihood ratio (Reynolds et al., 2000)::

    LLR = 1/T sum_t [log p(x_t | speaker) - log p(x_t | UBM)]

**Top-C scoring.** An adapted model stays close to its UBM, so the few UBM
components that dominate a frame's likelihood also dominate the speaker's.
Per frame the ``C`` components with the highest weighted UBM log-densities
are selected (by default 5), and both likelihoods are summed over those
components only. ``top_c=None`` scores with all components (exact).

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
centred frames ``y`` are small, so nothing cancels. Speakers adapted in
their weights or variances are scored exactly, one by one.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numba
import numpy as np
from numba import njit, prange

from streamgmm import OnlineGMM
from streamgmm.fastexp import EXP_CLAMP, INV_LN2, LN2_HI, LN2_LO, VECTOR_MATH, exp_reduced

__all__ = [
    "llr",
    "top_components",
    "SpeakerScorer",
    "verify",
    "identify",
    "znorm",
    "tnorm",
    "ztnorm",
    "snorm",
]

# Bytes of the (frames x C, speakers) block of speaker-component scores.
_BLOCK_BYTES = 64 << 20


# ---------------------------------------------------------------- checks
def _check_ubm(ubm):
    if not isinstance(ubm, OnlineGMM):
        raise TypeError(f"ubm must be a streamgmm.OnlineGMM, got {type(ubm).__name__}.")
    ubm._check_is_fitted()
    return ubm


def _another_ubm(what, k, d, ubm):
    return ValueError(
        f"{what} has {k} components and {d} features but the UBM has {ubm.n_components} and "
        f"{ubm.n_features_in_}: the model belongs to another UBM; enroll the speaker again "
        "with this UBM."
    )


def _check_speaker(ubm, speaker, what="speaker"):
    """An ``OnlineGMM`` with the UBM's shape; a means array becomes a means-only model."""
    if isinstance(speaker, OnlineGMM):
        speaker._check_is_fitted()
        k, d = speaker.means_.shape
        if k != ubm.n_components or d != ubm.n_features_in_:
            raise _another_ubm(what, k, d, ubm)
        return speaker
    means = _check_means(ubm, speaker, what)
    return _model_from_means(ubm, means)


def _check_means(ubm, means, what):
    try:
        means = np.asarray(means, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{what} must be a streamgmm.OnlineGMM or an array of means of shape "
            f"({ubm.n_components}, {ubm.n_features_in_}), got {type(means).__name__}."
        ) from None
    if means.ndim != 2:
        raise ValueError(
            f"{what} must be an OnlineGMM or means of shape ({ubm.n_components}, "
            f"{ubm.n_features_in_}), got an array of shape {means.shape}."
        )
    if means.shape != ubm.means_.shape:
        raise _another_ubm(f"{what} (means of shape {means.shape})", *means.shape, ubm)
    if not np.isfinite(means).all():
        raise ValueError(f"{what} has non-finite means; the model is corrupt.")
    return means


def _model_from_means(ubm, means):
    model = OnlineGMM(**ubm.get_params())
    model._set_parameters(ubm.weights_.copy(), means, ubm.covariances_.copy(),
                          shift=np.array(ubm.shift_), source="speaker means")
    floor = getattr(ubm, "variance_floor_", None)
    model.variance_floor_ = None if floor is None else np.array(floor)
    model.converged_, model.n_iter_, model.n_updates_ = True, 0, 0
    model.lower_bound_, model.lower_bounds_ = float("nan"), []
    return model


def _is_means_only(ubm, speaker):
    """True if ``speaker`` has exactly the UBM's weights and diagonal variances."""
    return (
        ubm.covariance_type == "diag"
        and speaker.covariance_type == "diag"
        and np.array_equal(speaker.weights_, ubm.weights_)
        and np.array_equal(speaker.covariances_, ubm.covariances_)
    )


def _check_top_c(top_c, n_components):
    """``None`` (exact) or an int in [1, n_components] (larger values are clipped)."""
    if top_c is None:
        return None
    if not isinstance(top_c, numbers.Integral) or isinstance(top_c, bool) or top_c < 1:
        raise ValueError(f"top_c must be None (exact scoring) or an integer >= 1, got {top_c!r}.")
    return None if top_c >= n_components else int(top_c)


# ------------------------------------------------------------- top-C core
def _logsumexp_rows(a):
    top = np.max(a, axis=1)
    return top + np.log(np.sum(np.exp(a - top[:, None]), axis=1))


@njit(parallel=True, cache=True)
def _select_top(log_joint, index, selected):
    """Per row, the ``C = index.shape[1]`` largest entries in decreasing order (insertion)."""
    n, k_count = log_joint.shape
    n_sel = index.shape[1]
    for t in prange(n):
        for j in range(n_sel):
            selected[t, j] = -np.inf
            index[t, j] = -1
        for k in range(k_count):
            value = log_joint[t, k]
            if value > selected[t, n_sel - 1] or index[t, n_sel - 1] < 0:
                j = n_sel - 1
                while j > 0 and (value > selected[t, j - 1] or index[t, j - 1] < 0):
                    selected[t, j] = selected[t, j - 1]
                    index[t, j] = index[t, j - 1]
                    j -= 1
                selected[t, j] = value
                index[t, j] = k


def top_components(log_joint, top_c):
    """The ``top_c`` components with the highest weighted log-densities, per frame.

    Parameters
    ----------
    log_joint : ndarray of shape (n_frames, n_components)
        ``log w_k + log N(x_t; mu_k, Sigma_k)`` of the UBM, e.g.
        ``ubm._density_plan().log_joint(X)``.
    top_c : int or None
        ``None`` (or ``>= n_components``) selects every component.

    Returns
    -------
    index : ndarray of shape (n_frames, C), int
        Selected components, best first (ties: the lower index first);
        all components in order when every one is selected.
    selected : ndarray of shape (n_frames, C)
        ``log_joint`` at those components.

    Examples
    --------
    >>> joint = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]))
    >>> top_components(joint, 2)[0]
    array([[1, 2],
           [0, 2]])
    """
    log_joint = np.ascontiguousarray(log_joint, dtype=np.float64)
    n, k = log_joint.shape
    if top_c is None or top_c >= k:
        return np.broadcast_to(np.arange(k), (n, k)), log_joint
    index = np.empty((n, top_c), dtype=np.int64)
    selected = np.empty((n, top_c))
    _select_top(log_joint, index, selected)
    return index, selected


@njit(parallel=True, cache=True)
def _pair_offsets(X, means, scaled, bias, index, out):
    """``out[t, j] = bias[k] + sum_d (X[t, d] - means[k, d]) * scaled[k, d]`` with ``k = index[t, j]``."""
    n, n_sel = index.shape
    d_count = X.shape[1]
    for t in prange(n):
        for j in range(n_sel):
            k = index[t, j]
            acc = bias[k]
            for d in range(d_count):
                acc += (np.float64(X[t, d]) - means[k, d]) * scaled[k, d]
            out[t, j] = acc


def llr(ubm, speaker, X, top_c=5):
    """Average per-frame log-likelihood ratio of frames ``X``: speaker against UBM.

    Parameters
    ----------
    ubm : OnlineGMM
        The fitted UBM the speaker was adapted from.
    speaker : OnlineGMM or ndarray of shape (n_components, n_features)
        The speaker model (any adaptation), or the means of a speaker adapted
        in its means only.
    X : array-like of shape (n_frames, n_features)
        Features of the test utterance.
    top_c : int or None, default=5
        ``None``: exact, ``log p(x | speaker) - log p(x | UBM)`` over all
        components. ``C``: per frame, the ``C`` UBM components with the
        highest weighted log-densities are selected and both likelihoods are
        summed over them only (``C >= n_components`` is exact).

    Returns
    -------
    float
        ``mean_t [log p(x_t | speaker) - log p(x_t | UBM)]``.

    Raises
    ------
    ValueError
        If ``X`` has another number of features than the UBM, or the speaker
        has another number of components or features (a model of another UBM).

    Notes
    -----
    With ``top_c`` set and a speaker adapted in its means only, the speaker's
    log-densities are computed for the selected components only (the offset
    form of the module notes), about twice as fast as evaluating all of them.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM
    >>> from speaker_id.enroll import map_adapt, speaker_stats
    >>> rng = np.random.default_rng(0)
    >>> ubm = OnlineGMM(8, covariance_type="diag", random_state=0).fit(rng.normal(size=(4000, 3)))
    >>> alice = map_adapt(ubm, speaker_stats(ubm, [rng.normal(0.7, 1.0, size=(800, 3))]))
    >>> llr(ubm, alice, rng.normal(0.7, 1.0, size=(300, 3))) > llr(ubm, alice, rng.normal(size=(300, 3)))
    True
    """
    _check_ubm(ubm)
    speaker = _check_speaker(ubm, speaker)
    X = ubm._check_X(X)
    c = _check_top_c(top_c, ubm.n_components)
    if c is None:
        return float(np.mean(speaker._density_plan().score_samples(X) - ubm._density_plan().score_samples(X)))
    index, selected = top_components(ubm._density_plan().log_joint(X), c)
    if _is_means_only(ubm, speaker):
        # only the selected components' offsets are needed (see the module notes)
        delta = speaker.means_ - ubm.means_
        scaled = ubm.precisions_ * delta
        offsets = np.empty(selected.shape)
        _pair_offsets(X, ubm.means_, scaled, -0.5 * np.sum(scaled * delta, axis=1), index, offsets)
        speaker_selected = selected + offsets
    else:
        speaker_selected = np.take_along_axis(speaker._density_plan().log_joint(X), index, axis=1)
    return float(np.mean(_logsumexp_rows(speaker_selected) - _logsumexp_rows(selected)))


# ------------------------------------------------------ many speakers at once
@njit(cache=True, fastmath=VECTOR_MATH)
def _frame_llr(G, rows, log_post, t, top, total, scale_bits, poly):
    """Leave ``log sum_c exp(log_post[t, c] + G[rows[t, c], s])`` for every speaker s in ``top``.

    ``total``, ``scale_bits`` and ``poly`` are (S,) scratch arrays. ``exp`` is
    computed as ``2**m * poly(r)`` with ``2**m`` built from its IEEE bits, so
    the loops over speakers vectorise (no SVML needed).
    """
    n_sel = rows.shape[1]
    n_speakers = G.shape[1]
    scale = scale_bits.view(np.float64)
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
        row = rows[t, c]
        lp = log_post[t, c]
        for s in range(n_speakers):
            x = max(G[row, s] + lp - top[s], EXP_CLAMP)
            m = np.floor(x * INV_LN2 + 0.5)
            poly[s] = exp_reduced((x - m * LN2_HI) - m * LN2_LO)
            scale_bits[s] = (np.int64(m) + 1023) << 52
        for s in range(n_speakers):
            total[s] += poly[s] * scale[s]
    for s in range(n_speakers):
        top[s] += np.log(total[s])


@njit(parallel=True, cache=True, fastmath=VECTOR_MATH)
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


@njit(cache=True, fastmath=VECTOR_MATH)
def _each_frame_llr(G, rows, log_post, out):
    """``out[t]`` = the per-frame log-likelihood ratios of :func:`_frame_llr`; out : (T, S).

    Serial: it serves short stream updates, where a parallel launch costs
    more than the work.
    """
    n = rows.shape[0]
    n_speakers = G.shape[1]
    total = np.empty(n_speakers)
    scale_bits = np.empty(n_speakers, dtype=np.int64)
    poly = np.empty(n_speakers)
    for t in range(n):
        _frame_llr(G, rows, log_post, t, out[t], total, scale_bits, poly)


@njit(parallel=True, cache=True, fastmath=VECTOR_MATH)
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
    the UBM's, as :func:`speaker_id.enroll.map_adapt` leaves them by default,
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
        Precision of the stacked products. ``float32`` halves memory and is
        faster; scores then differ from :func:`llr` slightly (1e-8 measured
        on 60-dimensional MFCCs, 1e-4 at worst in the tests).

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
    >>> from speaker_id.enroll import map_adapt, speaker_stats
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
        self._weights = self._stack(stacked_means) if stacked else None

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

    def _score(self, X, per_frame):
        ubm = self.ubm
        X = ubm._check_X(X)
        shape = (X.shape[0], len(self.names)) if per_frame else (len(self.names),)
        scores = np.empty(shape)

        def put(column, frame_llrs):
            scores[..., column] = frame_llrs if per_frame else np.mean(frame_llrs, axis=0)

        if self.top_c is None and not self.n_stacked_:
            ubm_ll = ubm._density_plan().score_samples(X)
            for i, model in self._others:
                put(i, model._density_plan().score_samples(X) - ubm_ll)
            return scores
        index, selected = top_components(ubm._density_plan().log_joint(X), self.top_c)
        ubm_ll = _logsumexp_rows(selected)
        if self.n_stacked_:
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
                _each_frame_llr(G, rows, block_post, frame_llrs[start:stop])
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


# ---------------------------------------------------------------- decisions
def _finite_scores(scores, what="score"):
    arr = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite values; score valid features.")
    return arr


def verify(score, threshold):
    """Accept the claimed identity when ``score >= threshold``.

    Parameters
    ----------
    score : float or ndarray
        Log-likelihood ratio(s), possibly normalised.
    threshold : float

    Returns
    -------
    bool, or ndarray of bool of the shape of ``score``

    Examples
    --------
    >>> verify(0.4, 0.25), verify(0.1, 0.25)
    (True, False)
    """
    arr = _finite_scores(score)
    threshold = float(_finite_scores(threshold, "threshold"))
    accepted = arr >= threshold
    return bool(accepted) if accepted.ndim == 0 else accepted


def identify(scores, names, threshold=None):
    """The best-scoring speaker, or ``None`` when open-set and below the threshold.

    Parameters
    ----------
    scores : array-like of shape (n_speakers,)
    names : sequence of length n_speakers
    threshold : float, optional
        ``None``: closed set, the best speaker is always returned. Otherwise
        open set: ``None`` (unknown speaker) when the best score is below it.

    Returns
    -------
    name : object or None
    score : float
        The best score (also when the speaker is unknown).

    Examples
    --------
    >>> identify([0.1, 0.7, 0.3], ["ann", "bob", "cid"])
    ('bob', 0.7)
    >>> identify([0.1, 0.7, 0.3], ["ann", "bob", "cid"], threshold=1.0)
    (None, 0.7)
    """
    arr = _finite_scores(scores, "scores")
    names = list(names)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {arr.shape}.")
    if len(names) != arr.size:
        raise ValueError(f"got {arr.size} scores but {len(names)} names; pass one name per score.")
    best = int(np.argmax(arr))
    score = float(arr[best])
    if threshold is not None and score < float(_finite_scores(threshold, "threshold")):
        return None, score
    return names[best], score


# ------------------------------------------------------------ normalisation
def _cohort_moments(cohort, what):
    arr = np.asarray(cohort, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{what} must be an array of scores (last axis: the cohort), got a scalar.")
    if arr.shape[-1] < 2:
        raise ValueError(
            f"{what} has {arr.shape[-1]} score(s) per cohort; at least 2 are needed to estimate "
            "a mean and a spread (use a larger cohort)."
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite scores.")
    mean = arr.mean(axis=-1)
    std = arr.std(axis=-1, ddof=1)
    scale = np.max(np.abs(arr), axis=-1)
    if np.any(std <= 1e-12 * scale) or np.any(std == 0):
        raise ValueError(
            f"{what} has zero spread (all scores equal) in at least one cohort; normalisation "
            "would divide by zero: use a larger or more varied cohort."
        )
    return mean, std


def _normalise(score, cohort, what):
    mean, std = _cohort_moments(cohort, what)
    arr = _finite_scores(score)
    try:
        out = (arr - mean) / std
    except ValueError:
        raise ValueError(
            f"score of shape {arr.shape} does not match {what} of shape {np.shape(cohort)} "
            "(one cohort, along the last axis, per score)."
        ) from None
    return float(out) if out.ndim == 0 else out


def znorm(score, impostor_scores):
    """Zero normalisation (model side): ``(score - mean) / std`` of the model's impostor scores.

    Parameters
    ----------
    score : float or ndarray of shape (...)
        Raw score(s) of trials against a model.
    impostor_scores : ndarray of shape (..., n_impostors)
        Scores of the same model against impostor utterances (computed offline,
        at enrollment); the last axis is the cohort. ``std`` is the sample
        standard deviation (``ddof=1``).

    Returns
    -------
    float or ndarray of shape (...)

    Raises
    ------
    ValueError
        Fewer than 2 impostor scores, zero spread, non-finite values or
        shapes that do not broadcast.

    Examples
    --------
    >>> znorm(3.0, [0.0, 2.0])           # mean 1, sample std sqrt(2)
    1.414213562373095
    >>> znorm([3.0, 1.0], [[0.0, 2.0], [1.0, 3.0]])
    array([ 1.41421356, -0.70710678])
    """
    return _normalise(score, impostor_scores, "impostor_scores")


def tnorm(score, cohort_scores):
    """Test normalisation (test side): ``(score - mean) / std`` of the test against cohort models.

    Parameters
    ----------
    score : float or ndarray of shape (...)
    cohort_scores : ndarray of shape (..., n_cohort)
        Scores of the same test utterance against the cohort models (computed
        at test time, e.g. with :class:`SpeakerScorer`); last axis the cohort.

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> tnorm(0.5, [0.0, 0.5, 1.0])      # mean 0.5
    0.0
    """
    return _normalise(score, cohort_scores, "cohort_scores")


def ztnorm(score, impostor_scores, cohort_scores, cohort_impostor_scores):
    """Z-norm followed by T-norm with Z-normalised cohort scores.

    The test score is Z-normalised with the model's impostor scores; each
    cohort model's score on the test is Z-normalised with that cohort model's
    own impostor scores; then the first is T-normalised by the second.

    Parameters
    ----------
    score : float or ndarray of shape (...)
    impostor_scores : ndarray of shape (..., n_impostors)
        The target model against impostor utterances.
    cohort_scores : ndarray of shape (..., n_cohort)
        The test utterance against the cohort models.
    cohort_impostor_scores : ndarray of shape (..., n_cohort, n_impostors)
        Each cohort model against impostor utterances.

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> imp = [0.0, 2.0]                               # target model: mean 1, std sqrt 2
    >>> cohort_imp = [[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]]
    >>> # z = sqrt 2; z-normed cohort 0, 1/sqrt 2, sqrt 2 (mean and std 1/sqrt 2)
    >>> round(ztnorm(3.0, imp, [1.0, 2.0, 3.0], cohort_imp), 12)
    1.0
    """
    z = znorm(score, impostor_scores)
    cohort_z = _normalise(cohort_scores, cohort_impostor_scores, "cohort_impostor_scores")
    return _normalise(z, cohort_z, "cohort_scores (Z-normalised)")


def snorm(score, impostor_scores, cohort_scores):
    """Symmetric normalisation: ``0.5 * (znorm(score, impostor_scores) + tnorm(score, cohort_scores))``.

    Parameters
    ----------
    score : float or ndarray of shape (...)
    impostor_scores : ndarray of shape (..., n_impostors)
    cohort_scores : ndarray of shape (..., n_cohort)

    Returns
    -------
    float or ndarray of shape (...)

    Examples
    --------
    >>> round(snorm(3.0, [0.0, 2.0], [1.0, 3.0]), 6)   # z = sqrt 2, t = 1 / sqrt 2
    1.06066
    """
    z = np.asarray(znorm(score, impostor_scores))
    t = np.asarray(tnorm(score, cohort_scores))
    out = 0.5 * (z + t)
    return float(out) if out.ndim == 0 else out
