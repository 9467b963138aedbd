"""Inter-session variability (ISV) modelling on the UBM's statistics.

A speaker's GMM supervector (its component means stacked, K*D values) is
not fixed: each recording session ``h`` of speaker ``s`` moves it
(Vogt and Sridharan, 2008; the U subspace of Kenny's joint factor
analysis; the ISV of bob.learn.em)::

    M_{s,h} = m + U x_{s,h} + D z_s,    x ~ N(0, I_R),    z ~ N(0, I_{KD}),

with ``U`` of rank ``R`` (the session subspace) and ``D`` diagonal with
``D^2 = Sigma / r`` (``r`` the relevance factor), so that with ``U = 0`` the
speaker offset ``D z_s`` is exactly relevance-MAP's mean offset. Everything is
done in the UBM's normalised space, as in :mod:`speaker_id.models.ivector`:
for component ``k`` with UBM mean ``m_k`` and variances ``v_k``::

    n_k = zeroth_k,    f_k = (first_k + n_k (shift - m_k)) / sqrt(v_k),

where ``U_k`` is the (D x R) block of ``U`` and ``D`` is ``d = 1 / sqrt(r)``
times the identity. Below ``N_h`` is the (KD x KD) diagonal of session ``h``'s
counts (each ``n_k`` repeated D times), ``f_h`` its stacked ``f_k``, and
``L_h = I + U^T N_h U = I + sum_k n_hk U_k^T U_k`` (the ``U_k^T U_k`` packed
and precomputed as for the i-vector extractor).

Training (:meth:`ISV.fit`), per EM iteration and training speaker ``s``
with sessions ``h = 1..H``:

* the speaker factor ``z_s`` is the maximiser of ``J_s(U, z) = log p(f_s |
  z, U) + log N(z; 0, I)`` with the session factors integrated out, i.e.
  the solution of ``(I + d^2 N_s - d^2 sum_h N_h U L_h^{-1} U^T N_h) z =
  d sum_h (f_h - N_h U L_h^{-1} U^T f_h)`` (``N_s = sum_h N_h``). This is
  the fixed point of the alternating (Gauss-Seidel) updates of Vogt's and
  bob's training, ``x_h = L_h^{-1} U^T (f_h - N_h d z)`` and ``z = d sum_h
  (f_h - N_h U x_h) / (1 + d^2 N_s)``; it is reached by preconditioned
  conjugate gradients (``max_inner_iter``, ``inner_tol``), each step costing
  O(K D R + H K R + H R^2), so it is solved to tolerance, not stopped after
  a few sweeps (on arabic-speech-commands, 120 one-second sessions per
  speaker, K=256, R=50-100: 14-23 steps to a relative residual of 1e-8,
  where 5 Gauss-Seidel sweeps leave z 2-3 % off and 20 sweeps 1e-4);
* the session factors' posterior given ``z_s``: ``E[x_h] = L_h^{-1} U^T (f_h
  - N_h d z_s)``, ``E[x_h x_h^T] = L_h^{-1} + E[x_h] E[x_h]^T``;
* accumulate (:class:`ISVStats`, additive) ``A_k = sum_h n_hk E[x_h x_h^T]``
  and ``C_k = sum_h (f_hk - n_hk d z_sk) E[x_h]^T``.

The M-step is ``U_k = C_k A_k^{-1}`` followed, with ``min_divergence``, by
``U <- U chol(sum_h E[x_h x_h^T] / n_sessions)``: the same formulas as the
total-variability M-step, which does them
(:func:`speaker_id.models.ivector.estimate_total_variability`). The training
objective, ``sum_s max_z J_s(U, z)``, never decreases (the z-step maximises
``J`` in ``z``, the M-step is an EM step on ``log p(f_s | z_s, U)``) up to
the tolerance of the inner solve. Speakers with a single session carry no
information on the session subspace (their one session's offset is
indistinguishable from the speaker's): they are skipped and counted; a
caller who wants them used can split their utterances into segments and
pass the segments as sessions.

Enrollment treats the speaker's summed statistics (what the store keeps) as
one session and takes the joint posterior mean of ``(x, z)``, which has a
closed form because ``D`` is diagonal::

    x = (I + U^T N (I + d^2 N)^{-1} U)^{-1} U^T (I + d^2 N)^{-1} f,
    z = d (I + d^2 N)^{-1} (f - N U x),      speaker offset  o_s = d z.

It depends on the statistics only through their sum, so enrolling more audio
later equals enrolling it all at once. (:meth:`ISV.enroll_sessions` keeps
the utterances as separate sessions instead, solving as in training.)

Scoring is linear (Glembek et al., 2009): the test utterance's session factor
is its posterior mean under the UBM, ``x_t = L_t^{-1} U^T f_t``, and::

    score(s, t) = o_s^T (f_t - N_t U x_t) / n_frames_t,

the first-order Taylor expansion of the log-likelihood ratio per frame; one
matrix product over all speakers and tests. With ``U = 0`` (``rank=0``) it is
MAP (offset ``f / (n + r)`` per component) with linear scoring.
``score(..., method="integrated")`` adds the quadratic terms: the exact
log-likelihood ratio of the test's statistics (UBM alignment kept) with the
session factor integrated out. Frame-level scoring against the compensated
models belongs to the scoring stage: :meth:`ISV.session_means` and
:meth:`ISV.speaker_means` give their means.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from streamgmm import SufficientStats

from .ivector import (
    IvectorStats,
    SubspaceModel,
    SubspaceStats,
    _check_int,
    _check_rng,
    _packing,
    estimate_total_variability,
)

ISV_KIND = "speaker_id.ISV"
STATS_KIND = "speaker_id.ISVStats"


# ---------------------------------------------------------------- validation
def _check_relevance(value):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"relevance_factor must be a finite number > 0, got {value!r}.")
    return float(value)


def _check_positive(value, name):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return float(value)


def _speaker_source(speakers):
    """A callable returning a fresh iterable of ``(speaker, sessions)`` pairs for each pass."""
    if isinstance(speakers, SufficientStats):
        raise ValueError(  # noqa: TRY004 (a value problem, as scikit-learn reports it)
            "fit needs the statistics of many speakers' sessions, got one SufficientStats; pass a dict "
            "{speaker: [SufficientStats per session]} or a callable returning fresh (speaker, sessions) pairs."
        )
    if isinstance(speakers, Mapping):
        return lambda: speakers.items()
    if callable(speakers):
        return speakers
    if not hasattr(speakers, "__iter__") or isinstance(speakers, (str, bytes)):
        raise ValueError(
            "speakers must be a dict {speaker: [SufficientStats per session]}, a list of (speaker, sessions) "
            f"pairs or a callable returning a fresh iterable of them, got {type(speakers).__name__}."
        )
    if iter(speakers) is speakers:
        raise ValueError(
            "speakers is a one-shot iterator but EM reads the data once per iteration; pass a dict, a list "
            "or a callable returning a fresh iterable of (speaker, sessions) pairs."
        )
    return lambda: speakers


def _pairs(speakers):
    if isinstance(speakers, Mapping):
        return speakers.items()
    if isinstance(speakers, SufficientStats) or not hasattr(speakers, "__iter__"):
        raise ValueError(
            "expected a dict {speaker: [SufficientStats per session]} or an iterable of (speaker, sessions) "
            f"pairs, got {type(speakers).__name__}."
        )
    return speakers


def _as_list(utterances, what):
    if isinstance(utterances, SufficientStats):
        return [utterances]
    if not hasattr(utterances, "__iter__") or isinstance(utterances, (str, bytes)):
        raise ValueError(f"{what}: expected a SufficientStats or an iterable of them, got {type(utterances).__name__}.")
    return list(utterances)


# -------------------------------------------------------------- accumulators
@dataclass
class ISVStats(SubspaceStats):
    """Additive accumulators of ISV training (the E-step's output).

    Sums over the training sessions ``h`` (of speakers with at least two
    sessions) of quantities of the posterior of the session factors ``x_h``
    given the speaker's factor ``z_s``, under the model that accumulated
    them; statistics of two sets of speakers add, so the E-step streams and
    distributes.

    Parameters
    ----------
    zeroth : ndarray of shape (n_components,)
        ``sum_h n_hk``.
    second : ndarray of shape (n_components, rank * (rank + 1) // 2)
        ``sum_h n_hk E[x_h x_h^T]``, each (R, R) matrix packed as its lower
        triangle in row-major order (``np.tril_indices(rank)``).
    cross : ndarray of shape (n_components, n_features, rank)
        ``sum_h (f_hk - n_hk d z_sk) E[x_h]^T`` (normalised space).
    session_sum : ndarray of shape (rank,)
        ``sum_h E[x_h]``.
    session_scatter : ndarray of shape (rank, rank)
        ``sum_h E[x_h x_h^T]``.
    n_sessions, n_speakers : float
        Sessions and speakers accumulated.
    n_skipped : float
        Speakers skipped because they had fewer than two sessions.
    n_frames : float
        ``sum_h`` of the sessions' ``SufficientStats.n_frames``.
    objective : float
        ``sum_s max_z J_s(U, z)`` (see :meth:`ISV.accumulate`).

    Examples
    --------
    >>> a = ISVStats.zeros(n_components=4, n_features=3, rank=2)
    >>> (a + a).second.shape, a.n_sessions
    ((4, 3), 0.0)
    """

    zeroth: np.ndarray
    second: np.ndarray
    cross: np.ndarray
    session_sum: np.ndarray
    session_scatter: np.ndarray
    n_sessions: float = 0.0
    n_speakers: float = 0.0
    n_skipped: float = 0.0
    n_frames: float = 0.0
    objective: float = 0.0

    _ARRAYS = ("zeroth", "second", "cross", "session_sum", "session_scatter")
    _SCALARS = ("n_sessions", "n_speakers", "n_skipped", "n_frames", "objective")
    _KIND = STATS_KIND
    _WHAT = "ISV"

    def as_ivector_stats(self):
        """The same sums under the names of :class:`~speaker_id.models.ivector.IvectorStats`.

        The U M-step has the total-variability M-step's formulas with
        sessions for utterances; this view lets
        :func:`~speaker_id.models.ivector.estimate_total_variability` do it.
        """
        return IvectorStats(self.zeroth, self.second, self.cross, self.session_sum, self.session_scatter,
                            self.n_sessions, self.n_frames, self.objective)


# --------------------------------------------------------------------- model
class ISV(SubspaceModel):
    """Inter-session variability model ``M = m + U x + D z`` on a diagonal UBM's statistics.

    Parameters
    ----------
    rank : int, default=100
        Dimension ``R`` of the session subspace (typically 50-200). 0 gives
        ``U = 0``: relevance MAP with linear scoring, no training needed.
        At most ``K * D`` and the training sessions minus speakers.
    relevance_factor : float, default=16.0
        ``r > 0``; ``D^2 = Sigma / r`` (``d = 1 / sqrt(r)`` in the
        normalised space), the prior of the speaker offset: with ``U = 0``
        enrollment is relevance MAP with this ``r``.
    max_iter : int, default=10
        EM iterations of :meth:`fit` (passes over the training statistics).
    min_divergence : bool, default=True
        After each M-step, re-estimate the prior of the session factors and
        absorb it into ``U`` so it stays ``N(0, I)``; faster convergence.
    max_inner_iter : int, default=100
        Conjugate-gradient steps at most for each speaker factor.
    inner_tol : float, default=1e-8
        Relative residual at which a speaker factor's solve stops.
    batch_size : int, default=64
        Enrollments or test utterances processed together; the results do
        not depend on it (up to rounding).
    random_state : None, int or numpy Generator, default=None
        Seeds the random initial ``U``.
    verbose : int, default=0
        Print the objective after each iteration when > 0.

    Attributes
    ----------
    U_ : ndarray of shape (n_components, n_features, rank)
        The session subspace in the UBM's normalised space (block ``U_[k]``
        per component; in feature units ``sqrt(ubm_variances_)[:, :, None] *
        U_``). Read-only; replace it, do not modify it in place.
    ubm_means_, ubm_variances_ : ndarray of shape (n_components, n_features)
        The UBM the model belongs to.
    objective_ : list of float
        ``objective_[i]``: the training objective (see :meth:`accumulate`)
        of the model that entered EM iteration ``i``.
    n_iter_ : int
    n_speakers_, n_sessions_, n_skipped_speakers_ : int
        Training speakers and sessions used by the last iteration, and
        speakers skipped for having a single session.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM, accumulate
    >>> rng = np.random.default_rng(0)
    >>> ubm = OnlineGMM(4, covariance_type="diag", random_state=0).fit(rng.normal(size=(2000, 3)))
    >>> def session(centre):
    ...     return accumulate(ubm, rng.normal(centre + rng.normal(size=3), 1.0, size=(60, 3)))
    >>> centres = {f"spk{i}": rng.normal(size=3) for i in range(10)}
    >>> train = {name: [session(c) for _ in range(4)] for name, c in centres.items()}
    >>> isv = ISV(rank=2, max_iter=5, random_state=0).fit(ubm, train)
    >>> bool(np.all(np.diff(isv.objective_) > 0))    # EM never lowers it
    True
    >>> offsets = isv.enroll_many([train["spk0"][0] + train["spk0"][1], train["spk1"][0]])
    >>> offsets.shape
    (2, 4, 3)
    >>> isv.score(offsets, [train["spk0"][2], train["spk1"][3]]).shape    # (tests, speakers)
    (2, 2)
    """

    _MATRIX = "U_"
    _WHAT = "ISV model"
    _FIT = "ISV(...).fit(ubm, speakers)"
    _KIND = ISV_KIND
    _FIELD = "session_variability"
    _SETTINGS = ("relevance_factor",)
    _MIN_RANK = 0

    def __init__(self, rank=100, *, relevance_factor=16.0, max_iter=10, min_divergence=True, max_inner_iter=100,
                 inner_tol=1e-8, batch_size=64, random_state=None, verbose=0):
        self.rank = rank
        self.relevance_factor = relevance_factor
        self.max_iter = max_iter
        self.min_divergence = min_divergence
        self.max_inner_iter = max_inner_iter
        self.inner_tol = inner_tol
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ parameters
    def _validate_params(self):
        _check_int(self.rank, "rank", 0)
        _check_relevance(self.relevance_factor)
        _check_int(self.max_iter, "max_iter", 0)
        _check_int(self.max_inner_iter, "max_inner_iter", 1)
        _check_positive(self.inner_tol, "inner_tol")
        _check_int(self.batch_size, "batch_size", 1)
        if not isinstance(self.min_divergence, (bool, np.bool_)):
            raise ValueError(f"min_divergence must be True or False, got {self.min_divergence!r}.")  # noqa: TRY004
        _check_rng(self.random_state)

    # ----------------------------------------------------------------- state
    @property
    def d_(self):
        """``1 / sqrt(relevance_factor)``: the diagonal of ``D`` in the normalised space."""
        return 1.0 / np.sqrt(_check_relevance(self.relevance_factor))

    def initialise(self, ubm):
        """Start from a random ``U`` (seeded by ``random_state``) for ``ubm``; ``fit`` calls it.

        Use it directly to run the EM steps yourself (e.g. accumulating on
        several workers): ``isv.estimate(sum(accumulate on each part))`` per
        iteration.

        Returns
        -------
        self
        """
        self._validate_params()
        U = self._random_subspace(ubm)
        self._set_model(U, ubm.means_, ubm.covariances_)
        self.objective_ = []
        self.n_iter_ = 0
        self.n_speakers_ = self.n_sessions_ = self.n_skipped_speakers_ = 0
        return self

    # ---------------------------------------------------------- statistics
    def _stack(self, utterances, what):
        """Counts (B, K), normalised first order (B, K*D) and frames (B,) of a list of statistics."""
        parts = [(*self._normalised(stats, f"{what} {i}"), stats.n_frames) for i, stats in enumerate(utterances)]
        k, d = self.ubm_means_.shape
        if not parts:
            return np.empty((0, k)), np.empty((0, k * d)), np.empty(0)
        counts, first, frames = zip(*parts)
        return np.array(counts), np.array(first), np.array(frames, dtype=np.float64)

    def _batches(self, utterances, what):
        size = _check_int(self.batch_size, "batch_size", 1)
        items = _as_list(utterances, what)
        for start in range(0, len(items), size):
            yield self._stack(items[start:start + size], what)

    def _solve(self, weights, linear):
        """Posterior means ``(I + sum_k w_k U_k^T U_k)^{-1} b`` for a batch: weights (B, K), linear (B, R)."""
        _, gram, full = self._prepared()
        r = linear.shape[1]
        if r == 0:
            return np.empty_like(linear)
        precision = (weights @ gram)[:, full]
        precision[:, np.arange(r), np.arange(r)] += 1.0
        chol = np.linalg.cholesky(precision)
        y = np.linalg.solve(chol, linear[:, :, None])
        return np.linalg.solve(chol.transpose(0, 2, 1), y)[:, :, 0]

    def _inverses(self, counts):
        """``L_h^{-1}`` (H, R, R) and ``log|L_h|`` (H,) for sessions' counts (H, K)."""
        _, gram, full = self._prepared()
        r = self.U_.shape[2]
        precision = (counts @ gram)[:, full]
        precision[:, np.arange(r), np.arange(r)] += 1.0
        chol = np.linalg.cholesky(precision)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        inverse = np.linalg.inv(precision)
        return 0.5 * (inverse + inverse.transpose(0, 2, 1)), logdet

    def _speaker_posterior(self, counts, first):
        """Speaker factor and session posteriors of one speaker's sessions (see the module notes).

        Parameters
        ----------
        counts : ndarray of shape (H, K)
        first : ndarray of shape (H, K*D)
            Normalised first-order statistics.

        Returns
        -------
        dict with ``z`` (K, D), ``x`` (H, R), ``inverse`` (H, R, R) the
        ``L_h^{-1}``, ``objective`` (float, ``J_s`` at ``z``) and
        ``iterations`` (conjugate-gradient steps).
        """
        flat, _, _ = self._prepared()
        U = self.U_
        k, dim, _ = U.shape
        d = self.d_
        counts = np.asarray(counts, dtype=np.float64)
        total_counts = counts.sum(axis=0)
        total_first = first.sum(axis=0).reshape(k, dim)
        scale = 1.0 + d * d * total_counts  # diagonal of I + d^2 N_s, per component
        inverse, logdet = self._inverses(counts)
        projected = first @ flat  # U^T f_h, (H, R)

        def apply_inverse(W):  # L_h^{-1} w_h for every session
            return np.matmul(inverse, W[:, :, None])[:, :, 0]

        def ut_n(z):  # U^T N_h z for every session, (H, R)
            return counts @ np.matmul(z[:, None, :], U)[:, 0, :]

        def n_u(W):  # sum_h N_h U w_h, (K, D)
            return np.matmul(U, (counts.T @ W)[:, :, None])[:, :, 0]

        def operator(z):
            return scale[:, None] * z - d * d * n_u(apply_inverse(ut_n(z)))

        x_prior = apply_inverse(projected)  # session factors with z = 0
        rhs = d * (total_first - n_u(x_prior))
        # preconditioned conjugate gradients on the (KD x KD) SPD system, preconditioner diag(I + d^2 N_s)
        z = np.zeros((k, dim))
        residual = rhs.copy()
        target = float(self.inner_tol) * np.sqrt(np.sum(rhs * rhs))
        step = residual / scale[:, None]
        rho = np.sum(residual * step)
        direction = step
        iterations = 0
        max_inner = _check_int(self.max_inner_iter, "max_inner_iter", 1)
        while iterations < max_inner and np.sqrt(np.sum(residual * residual)) > target:
            image = operator(direction)
            alpha = rho / np.sum(direction * image)
            z += alpha * direction
            residual -= alpha * image
            step = residual / scale[:, None]
            rho_next = np.sum(residual * step)
            direction = step + (rho_next / rho) * direction
            rho = rho_next
            iterations += 1
        linear = projected - d * ut_n(z)  # U^T (f_h - N_h d z)
        x = apply_inverse(linear)
        objective = (
            d * np.sum(z * total_first)
            - 0.5 * d * d * np.sum(total_counts[:, None] * z * z)
            + 0.5 * np.einsum("hr,hr->", linear, x)
            - 0.5 * logdet.sum()
            - 0.5 * np.sum(z * z)
        )
        return {"z": z, "x": x, "inverse": inverse, "objective": float(objective), "iterations": iterations}

    # ---------------------------------------------------------------- EM
    def accumulate(self, speakers):
        """The E-step: accumulators of the session factors' posteriors over ``speakers``.

        For each speaker with at least two sessions, the speaker factor
        ``z_s`` maximising ``J_s`` is found, then the session posteriors
        given it are summed (module notes). Also sums the objective,
        ``max_z J_s(U, z)`` per speaker, where (with ``b_h = U^T (f_h - N_h d z)``)::

            J_s(U, z) = sum_h [d z^T f_h - (d^2 / 2) z^T N_h z + b_h^T L_h^{-1} b_h / 2
                               - log|L_h| / 2] - |z|^2 / 2,

        which is ``log p(f_s | z, U) + log N(z; 0, I)`` with the session
        factors integrated out, up to terms that depend on neither ``U`` nor
        ``z``: ``sum_h [log N(f_h; N_h d z, N_h + N_h U U^T N_h) + f_h^T
        N_h^{-1} f_h / 2 + log|N_h| / 2 + (dim_h / 2) log 2 pi] + log N(z; 0,
        I) + (KD / 2) log 2 pi`` over the components with counts.

        Parameters
        ----------
        speakers : dict of speaker to list of SufficientStats, or iterable of (speaker, sessions) pairs
            Read once; one speaker's statistics are in memory at a time.

        Returns
        -------
        ISVStats
        """
        self._prepared()
        k, dim, r = self.U_.shape
        d = self.d_
        rows, cols, _ = _packing(r)
        total = ISVStats.zeros(k, dim, r)
        for name, sessions in _pairs(speakers):
            what = f"speaker {name!r}"
            if isinstance(sessions, SufficientStats):
                raise ValueError(f"{what}: expected a list of SufficientStats (one per session), got one.")  # noqa: TRY004
            counts, first, frames = self._stack(_as_list(sessions, what), f"{what} session")
            if len(counts) < 2:
                total.n_skipped += 1
                continue
            post = self._speaker_posterior(counts, first)
            x, z = post["x"], post["z"]
            seconds = post["inverse"][:, rows, cols] + x[:, rows] * x[:, cols]
            weighted_x = counts.T @ x  # sum_h n_hk x_h, (K, R)
            total.zeroth += counts.sum(axis=0)
            total.second += counts.T @ seconds
            total.cross += (first.T @ x).reshape(k, dim, r) - d * z[:, :, None] * weighted_x[:, None, :]
            total.session_sum += x.sum(axis=0)
            total.session_scatter += post["inverse"].sum(axis=0) + x.T @ x
            total.n_sessions += len(counts)
            total.n_speakers += 1
            total.n_frames += frames.sum()
            total.objective += post["objective"]
        return total

    def estimate(self, isv_stats):
        """The M-step: ``U_k = C_k A_k^{-1}`` (and the minimum-divergence step), from the accumulators.

        Records ``isv_stats.objective`` in ``objective_`` and counts the iteration.

        Parameters
        ----------
        isv_stats : ISVStats
            Accumulated with this model over all the training speakers.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If no speaker had two sessions or more, or the sessions cannot
            support the rank (fewer sessions minus speakers than ``rank``).
        """
        self._check_is_fitted()
        if not isinstance(isv_stats, ISVStats):
            raise TypeError(f"expected ISVStats, got {type(isv_stats).__name__}.")
        if isv_stats.n_speakers == 0:
            raise ValueError(
                f"no training speaker has 2 or more sessions ({isv_stats.n_skipped:g} single-session speakers "
                "skipped), so nothing shows session variability; give several utterances per speaker "
                "(or split each utterance into segments and pass them as sessions)."
            )
        freedom = isv_stats.n_sessions - isv_stats.n_speakers
        if freedom < self.U_.shape[2]:
            raise ValueError(
                f"rank {self.U_.shape[2]} needs at least as many within-speaker degrees of freedom, but the "
                f"training data has {isv_stats.n_sessions:g} sessions of {isv_stats.n_speakers:g} speakers "
                f"({freedom:g}); lower rank or train on more sessions."
            )
        U = estimate_total_variability(isv_stats.as_ivector_stats(), self.U_,
                                       min_divergence=bool(self.min_divergence))
        self._set_model(U, self.ubm_means_, self.ubm_variances_)
        self.objective_.append(isv_stats.objective)
        self.n_iter_ += 1
        self.n_speakers_ = int(isv_stats.n_speakers)
        self.n_sessions_ = int(isv_stats.n_sessions)
        self.n_skipped_speakers_ = int(isv_stats.n_skipped)
        if self.verbose:
            per_frame = isv_stats.objective / max(isv_stats.n_frames, 1.0)
            print(f"ISV EM iteration {self.n_iter_}: objective {per_frame:.6f} per frame over "
                  f"{isv_stats.n_sessions:g} sessions of {isv_stats.n_speakers:g} speakers "
                  f"({isv_stats.n_skipped:g} skipped)")
        return self

    def fit(self, ubm, speakers=None):
        """Train ``U`` by EM on the training speakers' session statistics under ``ubm``.

        Parameters
        ----------
        ubm : OnlineGMM
            Fitted, ``covariance_type="diag"``; the statistics' UBM.
        speakers : dict, list of (speaker, sessions) pairs, or callable returning a fresh iterable of them
            ``sessions`` is a list of ``SufficientStats``, one per session
            (utterance). A callable is called once per iteration, so the
            statistics may be read from disk as needed: memory holds one
            speaker's statistics, the model and the accumulators. Speakers
            with a single session are skipped (counted in
            ``n_skipped_speakers_``). Unused when ``rank=0``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If a parameter is invalid, the UBM is not diagonal, no speaker
            has two sessions, the rank exceeds ``K * D`` or what the sessions
            support, or a statistic is of another UBM or not finite.
        """
        self.initialise(ubm)
        if self.rank == 0:
            return self
        source = _speaker_source(speakers)
        for _ in range(self.max_iter):
            self.estimate(self.accumulate(source()))
        return self

    # ---------------------------------------------------------- enrollment
    def enroll_many(self, enrollments):
        """Speaker offsets ``D z_s`` of many speakers, each from its summed statistics as one session.

        Parameters
        ----------
        enrollments : iterable of SufficientStats
            One per speaker: the sum of its enrollment utterances' statistics.

        Returns
        -------
        ndarray of shape (n_speakers, n_components, n_features)
            ``o_s = d z_s`` in the normalised space, ``z_s`` the joint
            posterior mean (module notes); in feature units
            ``sqrt(ubm_variances_) * o_s`` (:meth:`speaker_means`).
        """
        flat, _, _ = self._prepared()
        k, dim, _ = self.U_.shape
        d = self.d_
        parts = []
        for counts, first, _ in self._batches(enrollments, "enrollment"):
            scale = np.repeat(1.0 + d * d * counts, dim, axis=1)  # (B, K*D)
            x = self._solve(counts / (1.0 + d * d * counts), (first / scale) @ flat)
            offsets = d * d * (first - np.repeat(counts, dim, axis=1) * (x @ flat.T)) / scale
            parts.append(offsets.reshape(-1, k, dim))
        return np.concatenate(parts) if parts else np.empty((0, k, dim))

    def enroll(self, stats):
        """The speaker offset ``D z`` of one speaker from its (summed) statistics.

        Parameters
        ----------
        stats : SufficientStats
            All the speaker's enrollment statistics, summed: enrolling more
            audio later is ``enroll(stats + more)``.

        Returns
        -------
        ndarray of shape (n_components, n_features)
        """
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"expected streamgmm.SufficientStats, got {type(stats).__name__}.")
        return self.enroll_many([stats])[0]

    def enroll_sessions(self, sessions):
        """The speaker offset ``D z`` with each enrollment utterance a separate session.

        Solves for ``z`` jointly with one session factor per utterance, as in
        training. Not additive in the summed statistics: it needs every
        utterance's statistics.

        Parameters
        ----------
        sessions : list of SufficientStats

        Returns
        -------
        ndarray of shape (n_components, n_features)
        """
        counts, first, _ = self._stack(_as_list(sessions, "enrollment session"), "enrollment session")
        if len(counts) == 0:
            raise ValueError("no enrollment sessions given: pass at least one SufficientStats.")
        return self.d_ * self._speaker_posterior(counts, first)["z"]

    def speaker_means(self, offsets):
        """GMM means of speakers from their offsets: ``ubm_means_ + sqrt(ubm_variances_) * o_s``.

        Parameters
        ----------
        offsets : ndarray of shape (n_speakers, n_components, n_features) or (n_components, n_features)

        Returns
        -------
        ndarray of the same shape, in feature units (for frame-level scoring).
        """
        self._check_is_fitted()
        offsets = self._check_offsets(offsets, allow_single=True)
        return self.ubm_means_ + self._ubm_std * offsets

    # ------------------------------------------------------------- scoring
    def session_factors(self, utterances):
        """Posterior means of the session factors under the UBM (``z = 0``): ``x_t = L_t^{-1} U^T f_t``.

        Parameters
        ----------
        utterances : iterable of SufficientStats

        Returns
        -------
        ndarray of shape (n_utterances, rank)
        """
        flat, _, _ = self._prepared()
        parts = [self._solve(counts, first @ flat) for counts, first, _ in self._batches(utterances, "utterance")]
        return np.concatenate(parts) if parts else np.empty((0, flat.shape[1]))

    def session_means(self, utterances):
        """Each utterance's session-compensated UBM means ``m + sqrt(Sigma) U x_t`` (feature units).

        A speaker's compensated model adds its offset:
        ``session_means(...)[t] + sqrt(ubm_variances_) * o_s``; frame-level
        scoring against the compensated models is the log-likelihood ratio
        of those two GMMs (UBM weights and variances).

        Returns
        -------
        ndarray of shape (n_utterances, n_components, n_features)
        """
        x = self.session_factors(utterances)
        k, dim, _ = self.U_.shape
        return self.ubm_means_ + self._ubm_std * (x @ self._prepared()[0].T).reshape(-1, k, dim)

    def _check_offsets(self, offsets, allow_single=False):
        k, dim = self.ubm_means_.shape
        offsets = np.asarray(offsets, dtype=np.float64)
        if allow_single and offsets.shape == (k, dim):
            pass
        elif offsets.ndim != 3 or offsets.shape[1:] != (k, dim):
            raise ValueError(
                f"speaker offsets must have shape (n_speakers, {k}, {dim}) (from enroll_many of this model), "
                f"got {offsets.shape}."
            )
        if not np.isfinite(offsets).all():
            raise ValueError("the speaker offsets hold NaN or infinite values; they are corrupt.")
        return offsets

    def score(self, offsets, utterances, *, method="linear"):
        """Scores of test utterances against speakers, with the test session compensated.

        ``method="linear"`` (Glembek et al., 2009; the first-order Taylor
        expansion of the log-likelihood ratio)::

            score[t, s] = o_s^T (f_t - N_t U x_t) / n_frames_t,

        ``x_t`` from :meth:`session_factors`. ``method="integrated"`` is the
        exact log-likelihood ratio of the test's statistics (the UBM's
        alignment kept) with the session factor integrated out under both
        hypotheses, ``[log N(f_t; N_t o_s, N_t + N_t U U^T N_t) - log N(f_t;
        0, N_t + N_t U U^T N_t)] / n_frames_t``, i.e. the linear score plus
        a quadratic term::

            (- o_s^T N_t o_s / 2 + v_ts^T L_t^{-1} v_ts / 2) / n_frames_t,
            v_ts = U^T N_t o_s,   L_t = I + U^T N_t U.

        Parameters
        ----------
        offsets : ndarray of shape (n_speakers, n_components, n_features)
            From :meth:`enroll_many` (or stacked :meth:`enroll`).
        utterances : iterable of SufficientStats
            The test utterances' statistics under the UBM.
        method : {"linear", "integrated"}, default="linear"

        Returns
        -------
        ndarray of shape (n_utterances, n_speakers)

        Raises
        ------
        ValueError
            If an utterance has no frames, the method is unknown, or the
            offsets or statistics do not belong to this model's UBM.
        """
        if method not in ("linear", "integrated"):
            raise ValueError(f"method must be 'linear' or 'integrated', got {method!r}.")
        flat, gram, full = self._prepared()
        k, dim, r = self.U_.shape
        offsets = self._check_offsets(offsets)
        speakers = offsets.reshape(-1, k * dim)
        if method == "integrated":
            squares = np.sum(offsets * offsets, axis=2).T  # (K, S): o_sk^T o_sk
            projected = np.matmul(offsets[:, :, None, :], self.U_[None])[:, :, 0, :]  # (S, K, R): U_k^T o_sk
        parts = []
        for counts, first, frames in self._batches(utterances, "utterance"):
            if np.any(frames <= 0):
                raise ValueError("a test utterance has no frames (n_frames = 0); it cannot be scored.")
            x = self._solve(counts, first @ flat)
            compensated = first - np.repeat(counts, dim, axis=1) * (x @ flat.T)
            scores = compensated @ speakers.T
            if method == "integrated":
                scores -= 0.5 * counts @ squares
                if r:
                    v = np.einsum("bk,skr->bsr", counts, projected)  # U^T N_t o_s
                    precision = (counts @ gram)[:, full]
                    precision[:, np.arange(r), np.arange(r)] += 1.0
                    whitened = np.linalg.solve(np.linalg.cholesky(precision), v.transpose(0, 2, 1))
                    scores += 0.5 * np.sum(whitened * whitened, axis=1)
            parts.append(scores / frames[:, None])
        return np.concatenate(parts) if parts else np.empty((0, len(speakers)))

    @classmethod
    def from_arrays(cls, arrays, *, source=None):
        """Rebuild a model from :meth:`to_arrays` output (see :meth:`SubspaceModel.from_arrays`)."""
        model = super().from_arrays(arrays, source=source)
        model.n_speakers_ = model.n_sessions_ = model.n_skipped_speakers_ = 0
        return model

