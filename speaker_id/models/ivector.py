"""The total-variability model: i-vectors from the UBM's statistics.

An utterance's GMM supervector (its component means stacked, K*D values)
is modelled as the UBM's plus a low-rank offset (Dehak et al., 2011)::

    M = m + T w,    w ~ N(0, I_R),

with ``T`` of rank ``R`` (the total-variability subspace). The i-vector is
the posterior mean of ``w`` given the utterance's zeroth- and first-order
statistics under the UBM. Everything is done in the UBM's normalised space:
for component ``k`` with UBM mean ``m_k`` and variances ``v_k``,

    n_k = zeroth_k,    f_k = (first_k + n_k (shift - m_k)) / sqrt(v_k),

(the first-order statistics centred exactly on the UBM mean, then whitened),
and ``T_k`` (D x R) is the block of ``T`` for component ``k`` in that space.
The posterior of ``w`` is Gaussian with

    precision  L = I + sum_k n_k T_k^T T_k,
    mean       E[w] = L^{-1} b,    b = sum_k T_k^T f_k.

The terms ``T_k^T T_k`` are precomputed (packed lower triangles, shape
(K, R(R+1)/2)), so an utterance costs one (K) x (K, R(R+1)/2) product, one
Cholesky factorisation and one (K*D) x R product; utterances are processed
in batches so that these are matrix-matrix products.

Training is EM over utterances' statistics with Kaldi's split into
accumulate (E-step, :meth:`IvectorExtractor.accumulate`), sum
(:class:`IvectorStats` add) and estimate (M-step,
:meth:`IvectorExtractor.estimate`), so it streams and distributes the way
UBM training does. The M-step is followed by the minimum-divergence
re-estimation of joint factor analysis (Kenny et al.; Brümmer): the prior
is re-estimated and the model reparametrised so that it stays ``N(0, I)``,
which leaves the likelihood unchanged and speeds EM up considerably.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack
from sklearn.base import BaseEstimator

from streamgmm import NotFittedError, OnlineGMM, SufficientStats
from streamgmm.estep import over_ranges
from streamgmm.io import array, check_header, header, scalar

from .model_files import NpzModelFile

EXTRACTOR_KIND = "speaker_id.IvectorExtractor"
STATS_KIND = "speaker_id.IvectorStats"

# Between-utterance variance of each normalised supervector value under the
# initial random T (the within-component variance is 1 in that space).
_INIT_VARIANCE = 0.1
# Components with less total training count (in frames) than this keep their
# block of T in the M-step: they carry no information, and solving with
# near-denormal accumulators would only produce noise or overflow.
_MIN_COUNT = 1e-6
# Upper bound on the (chunk, R, R) temporaries unpacked at once.
_UNPACK_BYTES = 64 * 2**20
# Utterances per thread below which their posteriors are solved in one thread.
_SOLVES_PER_THREAD = 8


# --------------------------------------------------------------------- packing
def _packing(rank):
    """Row, column and full-matrix index of the packed lower triangle of an (R, R) matrix."""
    rows, cols = np.tril_indices(rank)
    full = np.empty((rank, rank), dtype=np.intp)
    full[rows, cols] = np.arange(rows.size)
    full[cols, rows] = np.arange(rows.size)
    return rows, cols, full


def _chunks(n_components, rank):
    step = max(1, _UNPACK_BYTES // (8 * rank * rank))
    return [slice(start, min(start + step, n_components)) for start in range(0, n_components, step)]


def _packed_gram(T):
    """``T_k^T T_k`` for every component, packed: shape (K, R(R+1)/2)."""
    k, _, r = T.shape
    rows, cols, _ = _packing(r)
    out = np.empty((k, rows.size))
    for part in _chunks(k, r):
        block = T[part]
        out[part] = np.matmul(block.transpose(0, 2, 1), block)[:, rows, cols]
    return out


# ---------------------------------------------------------------- validation
def _check_ubm_model(ubm, what="the i-vector extractor"):
    if not isinstance(ubm, OnlineGMM):
        raise TypeError(f"ubm must be a streamgmm.OnlineGMM, got {type(ubm).__name__}.")
    ubm._check_is_fitted()
    if ubm.covariance_type != "diag":
        raise ValueError(
            f"{what} needs a diagonal-covariance UBM, got covariance_type="
            f"{ubm.covariance_type!r}; train the UBM with covariance_type='diag'."
        )
    return ubm


def _check_rng(random_state):
    if random_state is None or (isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}.")


def _check_int(value, name, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _utterance_source(utterances):
    """A callable returning a fresh iterable of the utterances' statistics for each pass."""
    if isinstance(utterances, SufficientStats):
        raise ValueError(
            "fit needs the statistics of many utterances, got one SufficientStats; "
            "pass a list of them (one per utterance) or a callable returning a fresh iterable."
        )
    if callable(utterances):
        return utterances
    if not hasattr(utterances, "__iter__") or isinstance(utterances, (str, bytes)):
        raise ValueError(
            "utterances must be a list of SufficientStats or a callable returning a fresh "
            f"iterable of them, got {type(utterances).__name__}."
        )
    if iter(utterances) is utterances:
        raise ValueError(
            "utterances is a one-shot iterator but EM reads the data once per iteration; "
            "pass a list or a callable returning a fresh iterable (e.g. lambda: stats_files())."
        )
    return lambda: utterances


def _as_utterances(utterances):
    if isinstance(utterances, SufficientStats):
        return (utterances,)
    if not hasattr(utterances, "__iter__") or isinstance(utterances, (str, bytes)):
        raise ValueError(
            "expected a SufficientStats or an iterable of them (one per utterance), "
            f"got {type(utterances).__name__}."
        )
    return utterances


# -------------------------------------------------------------- accumulators
class SubspaceStats:
    """The arithmetic and files of the additive accumulators of a low-rank subspace EM.

    Shared by :class:`IvectorStats` (total variability) and
    :class:`~speaker_id.models.isv.ISVStats` (session variability): both hold
    ``zeroth`` (K,), ``second`` (K, R(R+1)/2, packed), ``cross`` (K, D, R),
    a latent sum (R,) and scatter (R, R), and scalar counts. A subclass is a
    dataclass naming them in ``_ARRAYS`` (that order) and ``_SCALARS``, with
    its file kind in ``_KIND`` and a name for messages in ``_WHAT``.
    """

    _ARRAYS: tuple = ()
    _SCALARS: tuple = ()
    _KIND = ""
    _WHAT = ""

    def __post_init__(self):
        for name in self._ARRAYS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        for name in self._SCALARS:
            setattr(self, name, float(getattr(self, name)))
        k, _, r = self.cross.shape if self.cross.ndim == 3 else (-1, -1, -1)
        latent_sum, latent_scatter = self._ARRAYS[3:5]
        expected = {"zeroth": (k,), "second": (k, r * (r + 1) // 2), latent_sum: (r,), latent_scatter: (r, r)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"inconsistent {self._WHAT} statistics: cross has shape {self.cross.shape} (K, D, R) "
                    f"but {name} has shape {getattr(self, name).shape}, expected {shape}."
                )

    @property
    def n_components(self):
        return self.cross.shape[0]

    @property
    def n_features(self):
        return self.cross.shape[1]

    @property
    def rank(self):
        return self.cross.shape[2]

    @classmethod
    def zeros(cls, n_components, n_features, rank):
        """Empty accumulators (the identity of ``+``)."""
        k, d, r = n_components, n_features, rank
        return cls(np.zeros(k), np.zeros((k, r * (r + 1) // 2)), np.zeros((k, d, r)), np.zeros(r), np.zeros((r, r)))

    def copy(self):
        return type(self)(
            *(getattr(self, name).copy() for name in self._ARRAYS),
            *(getattr(self, name) for name in self._SCALARS),
        )

    def second_full(self):
        """``second`` unpacked to shape (n_components, rank, rank)."""
        return self.second[:, _packing(self.rank)[2]]

    def __iadd__(self, other):
        if not isinstance(other, type(self)):
            return NotImplemented
        if other.cross.shape != self.cross.shape:
            raise ValueError(
                f"cannot add {self._WHAT} statistics of shapes {self.cross.shape} and {other.cross.shape} "
                "(K, D, R): they were accumulated by different models."
            )
        for name in self._ARRAYS:
            getattr(self, name).__iadd__(getattr(other, name))
        for name in self._SCALARS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def __add__(self, other):
        if not isinstance(other, type(self)):
            return NotImplemented
        result = self.copy()
        result += other
        return result

    def __radd__(self, other):
        # lets ``sum(list_of_stats)`` work: sum starts from the integer 0.
        if isinstance(other, numbers.Number) and other == 0:
            return self.copy()
        return NotImplemented

    @classmethod
    def file_fields(cls):
        """The members of the accumulators' files (see :class:`streamgmm.io.Field`).

        Dimensions ``K``, ``D``, ``R`` and ``P = R (R + 1) / 2`` (packed).
        """
        latent_sum, latent_scatter = cls._ARRAYS[3:5]
        return {
            "zeroth": array("real", "K"),
            "second": array("real", "K", "P"),
            "cross": array("real", "K", "D", "R"),
            latent_sum: array("real", "R"),
            latent_scatter: array("real", "R", "R"),
            **{name: scalar("real") for name in cls._SCALARS},
        }

    def to_arrays(self):
        """The accumulators as a dict of plain arrays (for ``np.savez``)."""
        return {
            **header(self._KIND),
            **{name: getattr(self, name) for name in self._ARRAYS},
            **{name: np.array(getattr(self, name)) for name in self._SCALARS},
        }

    @classmethod
    def from_arrays(cls, arrays, *, source=None):
        """Rebuild accumulators from :meth:`to_arrays` output; validate everything.

        Raises
        ------
        ValueError
            Naming ``source`` if the kind or version is wrong, a field is
            missing, the shapes are inconsistent or a value is not finite.
        """
        source = source or f"{cls._WHAT} statistics"
        check_header(arrays, cls._KIND, source)
        try:
            fields = [arrays[name] for name in cls._ARRAYS] + [float(arrays[name]) for name in cls._SCALARS]
        except KeyError as exc:
            raise ValueError(f"{source} is missing the field {exc.args[0]!r}; it is truncated or foreign.") from None
        except (TypeError, ValueError):
            raise ValueError(f"{source} holds a non-scalar count or objective; it is corrupt.") from None
        try:
            stats = cls(*fields)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        for name in cls._ARRAYS + cls._SCALARS:
            if not np.isfinite(getattr(stats, name)).all():
                raise ValueError(f"{source} holds non-finite values in {name!r}; it is corrupt.")
        return stats


@dataclass
class IvectorStats(SubspaceStats):
    """Additive accumulators of the total-variability EM (the E-step's output).

    Sums over utterances ``u`` of quantities of the posterior of ``w_u``
    under the model that accumulated them; statistics of two sets of
    utterances add, so the E-step streams and distributes.

    Parameters
    ----------
    zeroth : ndarray of shape (n_components,)
        ``sum_u n_uk``.
    second : ndarray of shape (n_components, rank * (rank + 1) // 2)
        ``sum_u n_uk E[w_u w_u^T]``, each (R, R) matrix packed as its lower
        triangle in row-major order (``np.tril_indices(rank)``): half the
        memory of (K, R, R), which matters at K=2048, R=400 (1.3 GB).
    cross : ndarray of shape (n_components, n_features, rank)
        ``sum_u f_uk E[w_u]^T`` with ``f_uk`` the centred, whitened first-order
        statistics.
    ivector_sum : ndarray of shape (rank,)
        ``sum_u E[w_u]``.
    ivector_scatter : ndarray of shape (rank, rank)
        ``sum_u E[w_u w_u^T]``.
    n_utterances : float
    n_frames : float
        ``sum_u`` of the utterances' ``SufficientStats.n_frames``.
    objective : float
        ``sum_u`` of the per-utterance objective (see
        :meth:`IvectorExtractor.accumulate`).

    Examples
    --------
    >>> a = IvectorStats.zeros(n_components=4, n_features=3, rank=2)
    >>> (a + a).second.shape, a.n_utterances
    ((4, 3), 0.0)
    """

    zeroth: np.ndarray
    second: np.ndarray
    cross: np.ndarray
    ivector_sum: np.ndarray
    ivector_scatter: np.ndarray
    n_utterances: float = 0.0
    n_frames: float = 0.0
    objective: float = 0.0

    _ARRAYS = ("zeroth", "second", "cross", "ivector_sum", "ivector_scatter")
    _SCALARS = ("n_utterances", "n_frames", "objective")
    _KIND = STATS_KIND
    _WHAT = "i-vector"


# ------------------------------------------------------------------- M-step
def estimate_total_variability(ivector_stats, previous, *, min_divergence=True):
    """The M-step: the total-variability matrix maximising the EM auxiliary function.

    For each component ``T_k = C_k A_k^{-1}`` with ``A_k = sum_u n_uk
    E[w_u w_u^T]`` and ``C_k = sum_u f_uk E[w_u]^T``. With
    ``min_divergence``, the prior of ``w`` is then re-estimated as
    ``S = sum_u E[w_u w_u^T] / U`` and absorbed into ``T``: ``T <- T G``
    with ``S = G G^T`` (Cholesky), so that the prior is ``N(0, I)`` again.

    The prior mean is kept at zero (the offset of the supervectors is the
    UBM's means, fixed), and the maximum-likelihood covariance of a
    zero-mean prior is the second moment ``S`` about zero, not the centred
    covariance ``S - mu mu^T``: the average i-vector ``mu`` is modelled by
    one direction of ``T`` rather than silently dropped. Both steps
    maximise the auxiliary function jointly in ``(T, prior)`` and the
    reparametrisation leaves the likelihood unchanged, so EM stays monotone.

    Parameters
    ----------
    ivector_stats : IvectorStats
        Accumulated over the training utterances with ``previous``.
    previous : ndarray of shape (n_components, n_features, rank)
        The matrix the statistics were accumulated with; components whose
        total count is below 1e-6 frames keep their block from it (before
        the minimum-divergence transform, which applies to all).
    min_divergence : bool, default=True

    Returns
    -------
    ndarray of shape (n_components, n_features, rank)
    """
    acc = ivector_stats
    previous = np.asarray(previous, dtype=np.float64)
    if previous.shape != acc.cross.shape:
        raise ValueError(
            f"the i-vector statistics have shape {acc.cross.shape} (K, D, R) but the model "
            f"{previous.shape}: they were accumulated by another extractor."
        )
    k, _, r = previous.shape
    if acc.n_utterances < r:
        raise ValueError(
            f"rank {r} is larger than the number of training utterances ({acc.n_utterances:g}), "
            "which cannot support it; lower rank or train on more utterances."
        )
    _, _, full = _packing(r)
    T = previous.copy()
    for part in _chunks(k, r):
        seen = np.flatnonzero(acc.zeroth[part] > _MIN_COUNT) + part.start
        if seen.size == 0:
            continue
        A = acc.second[seen][:, full]
        # A_k is symmetric, so T_k^T = A_k^{-1} C_k^T
        T[seen] = np.linalg.solve(A, acc.cross[seen].transpose(0, 2, 1)).transpose(0, 2, 1)
    if min_divergence:
        prior = acc.ivector_scatter / acc.n_utterances
        T = T @ np.linalg.cholesky(prior)
    if not np.isfinite(T).all():
        raise ValueError(
            "the M-step produced non-finite values in T; the statistics are degenerate "
            "(check the training statistics for tiny or huge counts)."
        )
    return T


# ------------------------------------------------------------- subspace model
class SubspaceModel(NpzModelFile, BaseEstimator):
    """What the i-vector extractor and ISV share: a (K, D, R) subspace in a diagonal UBM's normalised space.

    A subclass names the attribute holding the subspace (``_MATRIX``), itself
    in messages (``_WHAT``), how to retrain it (``_FIT``), and its file's kind
    (``_KIND``), subspace field (``_FIELD``) and kept settings (``_SETTINGS``).
    """

    _MATRIX = ""
    _WHAT = ""
    _FIT = ""
    _KIND = ""
    _FIELD = ""  # the subspace's name in files
    _SETTINGS: tuple = ()  # positive scalar constructor parameters kept in files
    _MIN_RANK = 1

    def _check_is_fitted(self):
        if getattr(self, self._MATRIX, None) is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit (or initialise) first.")

    @property
    def n_components_(self):
        self._check_is_fitted()
        return getattr(self, self._MATRIX).shape[0]

    @property
    def n_features_(self):
        self._check_is_fitted()
        return getattr(self, self._MATRIX).shape[1]

    def _set_model(self, matrix, ubm_means, ubm_variances):
        matrix = np.array(matrix, dtype=np.float64)
        matrix.flags.writeable = False
        setattr(self, self._MATRIX, matrix)
        self.ubm_means_ = np.array(ubm_means, dtype=np.float64)
        self.ubm_variances_ = np.array(ubm_variances, dtype=np.float64)
        self._ubm_std = np.sqrt(self.ubm_variances_)

    def _prepared(self):
        """The subspace flattened to (K*D, R), its packed ``M_k^T M_k`` and the unpacking index.

        Recomputed when the subspace is replaced.
        """
        self._check_is_fitted()
        matrix = getattr(self, self._MATRIX)
        if getattr(self, "_prepared_for", None) is not matrix:
            k, d, r = matrix.shape
            self._flat = np.ascontiguousarray(matrix.reshape(k * d, r))
            self._gram = _packed_gram(matrix) if r else np.zeros((k, 0))
            self._full_index = _packing(r)[2]
            self._prepared_for = matrix
        return self._flat, self._gram, self._full_index

    def _random_subspace(self, ubm):
        """A seeded random (K, D, rank) start for ``ubm``, after checking the rank fits it."""
        _check_ubm_model(ubm, f"the {self._WHAT}")
        k, d = ubm.means_.shape
        if self.rank > k * d:
            raise ValueError(
                f"rank {self.rank} is larger than the supervector dimension K*D = {k}*{d} = {k * d} "
                "of this UBM; choose rank <= K*D."
            )
        rng = _check_rng(self.random_state)
        return rng.standard_normal((k, d, self.rank)) * np.sqrt(_INIT_VARIANCE / max(self.rank, 1))

    def check_ubm(self, ubm):
        """Raise ``ValueError`` unless ``ubm`` is the UBM this model was trained on."""
        self._check_is_fitted()
        _check_ubm_model(ubm, f"the {self._WHAT}")
        if not (
            ubm.means_.shape == self.ubm_means_.shape
            and np.array_equal(ubm.means_, self.ubm_means_)
            and np.array_equal(ubm.covariances_, self.ubm_variances_)
        ):
            raise ValueError(
                f"the {self._WHAT} belongs to another UBM; retrain it with this UBM ({self._FIT}) "
                "or load the UBM it was trained with."
            )

    def _normalised(self, stats, what):
        """``(n (K,), f (K*D,))``: counts and centred, whitened first-order statistics."""
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"{what}: expected streamgmm.SufficientStats, got {type(stats).__name__}.")
        k, d = self.ubm_means_.shape
        if stats.n_components != k or stats.n_features != d or stats.layout != "diag":
            found = f"{stats.n_components} components and {stats.n_features} features ({stats.layout} layout)"
            raise ValueError(
                f"{what}: the statistics have {found} but the {self._WHAT}'s UBM has {k} and {d} (diag): "
                "they belong to another UBM; accumulate them with this model's UBM."
            )
        n = stats.zeroth
        if not (np.isfinite(n).all() and np.isfinite(stats.first).all() and np.isfinite(stats.shift).all()
                and np.isfinite(stats.n_frames)):
            raise ValueError(f"{what}: the statistics hold NaN or infinite values; they are corrupt.")
        if np.any(n < 0):
            raise ValueError(f"{what}: the statistics have negative counts (zeroth); they are corrupt.")
        f = (stats.first + n[:, None] * (stats.shift - self.ubm_means_)) / self._ubm_std
        return n, f.reshape(-1)

    # ----------------------------------------------------------------- files
    def to_arrays(self):
        """The fitted model as a dict of plain arrays (for ``np.savez``; no pickle).

        Returns
        -------
        dict of str to ndarray
            ``kind``, ``format_version``, the subspace under ``_FIELD``
            (K, D, R), the settings named in ``_SETTINGS`` (each ()),
            ``ubm_means`` (K, D), ``ubm_variances`` (K, D), ``objective``
            (n_iter,) and ``n_iter`` (). Other constructor parameters only
            matter to ``fit`` and are not kept.
        """
        self._check_is_fitted()
        return {
            **header(self._KIND),
            self._FIELD: np.array(getattr(self, self._MATRIX)),
            **{name: np.array(float(getattr(self, name))) for name in self._SETTINGS},
            "ubm_means": self.ubm_means_.copy(),
            "ubm_variances": self.ubm_variances_.copy(),
            "objective": np.array(self.objective_, dtype=np.float64),
            "n_iter": np.array(int(self.n_iter_)),
        }

    @classmethod
    def from_arrays(cls, arrays, *, source=None):
        """Rebuild a model from :meth:`to_arrays` output, validating everything.

        Parameters
        ----------
        arrays : mapping of str to ndarray
        source : str, optional
            What the arrays came from (e.g. ``"extractor file x.npz"``), for the messages.

        Raises
        ------
        ValueError
            Naming ``source`` if the kind or version is wrong, a field is
            missing, shapes are inconsistent, or a value is not finite (or a
            variance or a setting not positive).
        """
        source = source or cls._WHAT
        check_header(arrays, cls._KIND, source)
        field = cls._FIELD
        names = (field, *cls._SETTINGS, "ubm_means", "ubm_variances", "objective", "n_iter")
        missing = [name for name in names if name not in arrays]
        if missing:
            raise ValueError(f"{source} is missing the field {missing[0]!r}; it is truncated or foreign.")
        values = {name: np.asarray(arrays[name]) for name in names}
        matrix, means, variances = values[field], values["ubm_means"], values["ubm_variances"]
        if matrix.ndim != 3 or min(matrix.shape[:2], default=0) < 1 or matrix.shape[2] < cls._MIN_RANK:
            raise ValueError(f"{source}: {field} must have shape (K, D, R), got {matrix.shape}; the file is corrupt.")
        k, d, r = matrix.shape
        expected = {"ubm_means": (k, d), "ubm_variances": (k, d), "n_iter": (), **{s: () for s in cls._SETTINGS}}
        for name, shape in expected.items():
            if values[name].shape != shape:
                raise ValueError(
                    f"{source}: {name} has shape {values[name].shape} but {field} {matrix.shape} needs {shape}; "
                    "the file is corrupt."
                )
        if values["objective"].ndim != 1:
            raise ValueError(
                f"{source}: objective must be 1-D, got shape {values['objective'].shape}; the file is corrupt."
            )
        for name, value in values.items():
            if not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
                raise ValueError(f"{source} holds non-numeric or non-finite values in {name!r}; the file is corrupt.")
        for name in ("ubm_variances", *cls._SETTINGS):
            if np.any(values[name] <= 0):
                raise ValueError(f"{source}: {name} must be positive; the file is corrupt.")
        n_iter = values["n_iter"]
        if not np.issubdtype(n_iter.dtype, np.integer) or n_iter < 0:
            raise ValueError(f"{source}: n_iter must be a non-negative integer; the file is corrupt.")
        model = cls(rank=r, **{name: float(values[name]) for name in cls._SETTINGS})
        model._set_model(matrix, means, variances)
        model.objective_ = [float(v) for v in values["objective"]]
        model.n_iter_ = int(n_iter)
        return model

    @classmethod
    def file_fields(cls):
        """The members of the model's files (see :class:`streamgmm.io.Field`), dimensions ``K``, ``D``, ``R``."""
        return {
            cls._FIELD: array("real", "K", "D", "R"),
            **{name: scalar("real") for name in cls._SETTINGS},
            "ubm_means": array("real", "K", "D"),
            "ubm_variances": array("real", "K", "D"),
            "objective": array("real", "n_iterations"),
            "n_iter": scalar("real"),
        }


# ---------------------------------------------------------------- extractor
class IvectorExtractor(SubspaceModel):
    """Total-variability model ``M = m + T w``, ``w ~ N(0, I)``, on a diagonal UBM's statistics.

    Parameters
    ----------
    rank : int, default=100
        Dimension ``R`` of the i-vectors (typically 100-400). At most the
        number of training utterances and ``K * D``.
    max_iter : int, default=10
        EM iterations of :meth:`fit` (passes over the training statistics).
    min_divergence : bool, default=True
        After each M-step, re-estimate the prior of ``w`` and absorb it into
        ``T`` so the prior stays ``N(0, I)`` (see
        :func:`estimate_total_variability`). Faster convergence; off gives
        plain EM.
    batch_size : int, default=64
        Utterances processed together (matrix-matrix products). Memory
        grows with it (about ``batch_size * (K * D + R * (R + 1) / 2)``
        floats); the results do not, up to rounding.
    random_state : None, int or numpy Generator, default=None
        Seeds the random initial ``T``.
    verbose : int, default=0
        Print the objective per frame after each iteration when > 0.

    Attributes
    ----------
    T_ : ndarray of shape (n_components, n_features, rank)
        The total-variability matrix in the UBM's normalised space, block
        ``T_[k]`` per component: the supervector offset in feature units is
        ``sqrt(ubm_variances_)[:, :, None] * T_``. Read-only; replace it, do
        not modify it in place.
    ubm_means_ : ndarray of shape (n_components, n_features)
    ubm_variances_ : ndarray of shape (n_components, n_features)
        The UBM the extractor belongs to (its fingerprint, and what the
        statistics are centred and whitened with).
    objective_ : list of float
        ``objective_[i]``: the objective (see :meth:`accumulate`) of the model
        that entered EM iteration ``i``, summed over the training utterances.
    n_iter_ : int
        EM iterations run.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM, accumulate
    >>> rng = np.random.default_rng(0)
    >>> ubm = OnlineGMM(4, covariance_type="diag", random_state=0).fit(rng.normal(size=(2000, 3)))
    >>> utterances = [accumulate(ubm, rng.normal(rng.normal(size=3), 1.0, size=(50, 3)))
    ...               for _ in range(40)]
    >>> extractor = IvectorExtractor(rank=2, max_iter=5, random_state=0).fit(ubm, utterances)
    >>> extractor.transform(utterances).shape
    (40, 2)
    >>> extractor.extract(utterances[0]).shape
    (2,)
    >>> bool(np.all(np.diff(extractor.objective_) > 0))    # EM never lowers it
    True
    """

    _MATRIX = "T_"
    _WHAT = "extractor"
    _FIT = "IvectorExtractor(...).fit(ubm, utterances)"
    _KIND = EXTRACTOR_KIND
    _FIELD = "total_variability"

    def __init__(self, rank=100, *, max_iter=10, min_divergence=True, batch_size=64, random_state=None, verbose=0):
        self.rank = rank
        self.max_iter = max_iter
        self.min_divergence = min_divergence
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ parameters
    def _validate_params(self):
        _check_int(self.rank, "rank", 1)
        _check_int(self.max_iter, "max_iter", 0)
        _check_int(self.batch_size, "batch_size", 1)
        if not isinstance(self.min_divergence, (bool, np.bool_)):
            raise ValueError(f"min_divergence must be True or False, got {self.min_divergence!r}.")
        _check_rng(self.random_state)

    # ----------------------------------------------------------------- state
    def initialise(self, ubm):
        """Start from a random ``T`` (seeded by ``random_state``) for ``ubm``; ``fit`` calls it.

        Use it directly to run the EM steps yourself (e.g. accumulating on
        several workers): ``extractor.estimate(sum(accumulate on each
        part))`` per iteration.

        Returns
        -------
        self
        """
        self._validate_params()
        T = self._random_subspace(ubm)
        self._set_model(T, ubm.means_, ubm.covariances_)
        self.objective_ = []
        self.n_iter_ = 0
        return self

    # ---------------------------------------------------------- statistics
    def _batches(self, utterances):
        """Yield ``(counts (B, K), normalised first order (B, K*D), n_frames)`` per batch."""
        k, d = self.ubm_means_.shape
        size = _check_int(self.batch_size, "batch_size", 1)
        counts, first, frames = np.empty((size, k)), np.empty((size, k * d)), 0.0
        filled = 0
        for index, stats in enumerate(_as_utterances(utterances)):
            counts[filled], first[filled] = self._normalised(stats, f"utterance {index}")
            frames += stats.n_frames
            filled += 1
            if filled == size:
                yield counts, first, frames
                counts, first, frames = np.empty((size, k)), np.empty((size, k * d)), 0.0
                filled = 0
        if filled:
            yield counts[:filled], first[:filled], frames

    def _posteriors(self, counts, first, *, training):
        """Posterior means (B, R) and, when training, second moments packed (B, P) and log|L| (B,)."""
        flat, gram, full = self._prepared()
        r = flat.shape[1]
        precision_packed = counts @ gram
        linear = first @ flat
        means = np.empty_like(linear)
        if training:
            rows, cols, _ = _packing(r)
            seconds = np.empty_like(precision_packed)
            logdets = np.empty(len(counts))

        def solve(start, stop, serial):
            for i in range(start, stop):
                precision = precision_packed[i][full]
                precision.flat[:: r + 1] += 1.0
                # precision is symmetric, so its transpose is the same matrix in Fortran order (no copy)
                chol, info = lapack.dpotrf(precision.T, lower=1, clean=1, overwrite_a=1)
                if info != 0:
                    raise ValueError(
                        "a posterior precision is not positive definite; T_ holds huge values "
                        "(the extractor is corrupt)."
                    )
                means[i] = lapack.dpotrs(chol, linear[i], lower=1)[0]
                if training:
                    covariance = lapack.dpotri(chol, lower=1)[0]  # lower triangle of L^{-1}
                    seconds[i] = covariance[rows, cols] + means[i][rows] * means[i][cols]
                    logdets[i] = 2.0 * np.log(np.diagonal(chol)).sum()

        # one (R, R) factorisation per utterance: faster on single-threaded LAPACK, one thread per core
        over_ranges(solve, len(counts), _SOLVES_PER_THREAD)
        if training:
            return means, linear, seconds, logdets
        return means

    # ---------------------------------------------------------------- EM
    def accumulate(self, utterances):
        """The E-step: accumulators of the posteriors of ``w`` for ``utterances``.

        Also sums the objective, for each utterance (with ``n_k``, ``f_k`` as
        in the module docstring, ``b = sum_k T_k^T f_k`` and ``L = I + sum_k
        n_k T_k^T T_k``)::

            0.5 b^T L^{-1} b - 0.5 log|L|

        This is the log-likelihood of the utterance's (normalised) frames
        given their alignment to the components, with ``w`` integrated out,
        minus terms that do not depend on ``T``; equivalently, with ``F``
        the stacked ``f_k`` and ``N`` the (K*D, K*D) diagonal matrix of the
        counts (components with ``n_k > 0``)::

            log N(F; 0, N + N T T^T N) + 0.5 F^T N^{-1} F + 0.5 log|N| + (K*D/2) log(2 pi).

        Parameters
        ----------
        utterances : SufficientStats or iterable of SufficientStats
            One utterance's statistics under the UBM, or many; read once,
            ``batch_size`` at a time.

        Returns
        -------
        IvectorStats
        """
        self._prepared()
        k, d, r = self.T_.shape
        total = IvectorStats.zeros(k, d, r)
        _, _, full = _packing(r)
        for counts, first, frames in self._batches(utterances):
            means, linear, seconds, logdets = self._posteriors(counts, first, training=True)
            total.zeroth += counts.sum(axis=0)
            total.second += counts.T @ seconds
            total.cross += (first.T @ means).reshape(k, d, r)
            total.ivector_sum += means.sum(axis=0)
            total.ivector_scatter += seconds.sum(axis=0)[full]
            total.n_utterances += len(counts)
            total.n_frames += frames
            total.objective += 0.5 * np.einsum("ij,ij->", linear, means) - 0.5 * logdets.sum()
        return total

    def estimate(self, ivector_stats):
        """The M-step: replace ``T_`` by :func:`estimate_total_variability` of the statistics.

        Records ``ivector_stats.objective`` (the objective of the model that
        accumulated them) in ``objective_`` and counts the iteration.

        Parameters
        ----------
        ivector_stats : IvectorStats
            Accumulated with this extractor (summed over all the training data).

        Returns
        -------
        self
        """
        self._check_is_fitted()
        if not isinstance(ivector_stats, IvectorStats):
            raise TypeError(f"expected IvectorStats, got {type(ivector_stats).__name__}.")
        T = estimate_total_variability(ivector_stats, self.T_, min_divergence=bool(self.min_divergence))
        self._set_model(T, self.ubm_means_, self.ubm_variances_)
        self.objective_.append(ivector_stats.objective)
        self.n_iter_ += 1
        if self.verbose:
            per_frame = ivector_stats.objective / max(ivector_stats.n_frames, 1.0)
            print(f"i-vector EM iteration {self.n_iter_}: objective {per_frame:.6f} per frame "
                  f"over {ivector_stats.n_utterances:g} utterances")
        return self

    def fit(self, ubm, utterances, client=None):
        """Train ``T`` by EM on the training utterances' statistics under ``ubm``.

        Parameters
        ----------
        ubm : OnlineGMM
            Fitted, ``covariance_type="diag"``; the statistics' UBM.
        utterances : list of SufficientStats, or callable returning a fresh iterable of them
            One ``SufficientStats`` per utterance (or per speaker session). A
            callable is called once per iteration, so the statistics may be
            read from disk as they are needed: memory holds one batch of
            utterances' statistics, the model and the accumulators. With
            ``client``: a list of futures of the cluster, each a list of
            ``SufficientStats`` (the utterances in list order).
        client : dask.distributed.Client, optional
            Run the E-step where the statistics are: each iteration maps
            :meth:`accumulate` over the futures and sums the
            :class:`IvectorStats` in a tree (they add); the M-step runs here.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If a parameter is invalid, the UBM is not diagonal, ``rank``
            exceeds ``K * D`` or the number of training utterances, or a
            statistic is of another UBM or not finite.
        """
        self._validate_params()
        if client is not None:
            return self._fit_on_cluster(ubm, utterances, client)
        source = _utterance_source(utterances)
        if hasattr(utterances, "__len__") and len(utterances) < self.rank:
            raise ValueError(
                f"rank {self.rank} is larger than the number of training utterances ({len(utterances)}), "
                "which cannot support it; lower rank or train on more utterances."
            )
        self.initialise(ubm)
        for _ in range(self.max_iter):
            self.estimate(self.accumulate(source()))
        return self

    def _fit_on_cluster(self, ubm, parts, client):
        from streamgmm.distributed import broadcast, tree_sum

        n_utterances = sum(client.gather([client.submit(len, part, pure=False) for part in parts]))
        if n_utterances < self.rank:
            raise ValueError(
                f"rank {self.rank} is larger than the number of training utterances ({n_utterances}), "
                "which cannot support it; lower rank or train on more utterances."
            )
        self.initialise(ubm)
        for _ in range(self.max_iter):
            model = broadcast(client, self)
            total = tree_sum(client, [client.submit(_accumulate_part, model, part, pure=False) for part in parts])
            self.estimate(total.result())
        return self

    def transform_on_cluster(self, parts, client):
        """:meth:`transform` of the statistics in futures (lists of SufficientStats), computed on the workers.

        Returns
        -------
        ndarray of shape (n_utterances, rank)
            The parts' utterances in order.
        """
        from streamgmm.distributed import broadcast

        model = broadcast(client, self)
        vectors = client.gather([client.submit(_transform_part, model, part, pure=False) for part in parts])
        return np.concatenate(vectors) if vectors else np.empty((0, self.rank))

    # ---------------------------------------------------------- extraction
    def transform(self, utterances):
        """The i-vectors (posterior means of ``w``) of many utterances.

        Parameters
        ----------
        utterances : iterable of SufficientStats
            Statistics under the extractor's UBM, one per utterance.

        Returns
        -------
        ndarray of shape (n_utterances, rank)
        """
        flat, _, _ = self._prepared()
        parts = [self._posteriors(counts, first, training=False) for counts, first, _ in self._batches(utterances)]
        return np.concatenate(parts) if parts else np.empty((0, flat.shape[1]))

    def extract(self, stats):
        """The i-vector of one utterance: ``E[w] = L^{-1} sum_k T_k^T f_k``.

        Parameters
        ----------
        stats : SufficientStats
            The utterance's statistics under the extractor's UBM (they add:
            more audio of the same session is just ``stats + more``).

        Returns
        -------
        ndarray of shape (rank,)
        """
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"expected streamgmm.SufficientStats, got {type(stats).__name__}.")
        return self.transform([stats])[0]

    def posterior(self, stats):
        """Mean and covariance of the posterior of ``w`` for one utterance.

        Parameters
        ----------
        stats : SufficientStats

        Returns
        -------
        mean : ndarray of shape (rank,)
        covariance : ndarray of shape (rank, rank)
            ``L^{-1}``.
        """
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"expected streamgmm.SufficientStats, got {type(stats).__name__}.")
        self._prepared()
        (counts, first, _), = self._batches([stats])
        means, _, seconds, _ = self._posteriors(counts, first, training=True)
        mean = means[0]
        second = seconds[0][_packing(mean.size)[2]]
        return mean, second - np.outer(mean, mean)


def _accumulate_part(extractor, utterances):
    return extractor.accumulate(utterances)


def _transform_part(extractor, utterances):
    return extractor.transform(utterances)
