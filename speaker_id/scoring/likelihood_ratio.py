"""The log-likelihood ratio of an utterance against one speaker, with top-C selection.

The score of a test utterance ``X`` (frames ``x_1 .. x_T``) against a speaker
is the average per-frame log-likelihood ratio (Reynolds et al., 2000)::

    LLR = 1/T sum_t [log p(x_t | speaker) - log p(x_t | UBM)]

**Top-C scoring.** An adapted model stays close to its UBM, so the few UBM
components that dominate a frame's likelihood also dominate the speaker's.
Per frame the ``C`` components with the highest weighted UBM log-densities
are selected (by default 5), and both likelihoods are summed over those
components only. ``top_c=None`` scores with all components (exact).
"""

from __future__ import annotations

import numbers

import numpy as np
from numba import njit, prange

from streamgmm import OnlineGMM
from streamgmm.numba_cache import CACHE


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


@njit(parallel=True, cache=CACHE)
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


@njit(parallel=True, cache=CACHE)
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
    >>> from speaker_id.models.adaptation import map_adapt, speaker_stats
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
