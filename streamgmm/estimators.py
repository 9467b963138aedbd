"""``OnlineGMM``: a Gaussian mixture that learns from chunks.

Two ways to learn, both thin loops around ``accumulate`` (E-step into
additive statistics) and ``estimate_parameters`` (M-step):

* ``fit(X)``: exact batch EM. ``X`` may be an array, a re-iterable of
  chunks, or a callable returning a fresh iterable of chunks; each EM
  iteration is one pass over the chunks, so memory is one chunk plus the
  model. The result equals in-memory EM on the concatenated chunks.
* ``partial_fit(chunk)``: online (stepwise) EM. The running per-frame
  statistics move toward each chunk's, ``s <- (1 - g) s + g s(chunk)``, and
  the parameters are re-estimated after every chunk. ``g = (t + step_offset)
  ** -step_exponent`` for a stationary stream; a constant ``forgetting``
  for a drifting one (an exponential window of about ``1 / forgetting``
  chunks).

Parameter and attribute names are scikit-learn's ``GaussianMixture``'s.
A model's file (settings, parameters and running statistics, in the format
of :mod:`streamgmm.io`) is written by ``OnlineGMM.save`` and read by
:func:`load`.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import sys
import time
import warnings

import numpy as np
from scipy import sparse
from sklearn import exceptions as sklearn_exceptions
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import validate_data

from ._validation import (
    check_covariance_type,
    check_frames,
    coalesced_chunks,
    check_nonnegative_float,
    check_positive_int,
)
from .estep import DensityPlan, stats_from_responsibilities
from .init import (
    INIT_METHODS,
    RunningMoments,
    UniformSample,
    initial_responsibilities,
    split_initialisation,
)
from .io import MODEL_KIND, STATS_KIND, NpzReader, array, header, one_of, parse_json, scalar, write_npz_atomic
from .mstep import estimate_parameters, reseed_starved
from .parameters import (
    covariances_from_precisions,
    expected_covariance_shape,
    n_parameters,
    precisions_cholesky_from_covariances,
    precisions_from_cholesky,
)
from .sklearn_compat import arrays_to_gaussian_mixture, gaussian_mixture_to_arrays
from .stats import SufficientStats
from .stats import file_fields as stats_file_fields

ESTEP_DTYPES = ("float64", "float32")


class ConvergenceWarning(sklearn_exceptions.ConvergenceWarning):
    """EM stopped at ``max_iter`` before the lower bound changed by less than ``tol``.

    A scikit-learn ``ConvergenceWarning``: filters set for scikit-learn's apply.
    """


class NotFittedError(sklearn_exceptions.NotFittedError):
    """The model was used before it was fitted; a scikit-learn ``NotFittedError``."""


def _as_rng(random_state):
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}.")


def chunk_source(X):
    """A callable returning a fresh iterable of chunks for each pass over ``X``.

    Parameters
    ----------
    X : array-like of shape (n_frames, n_features), iterable of such arrays,
        or a callable returning a fresh iterable of them

    Returns
    -------
    callable
    """
    if callable(X) and not hasattr(X, "__array__"):
        def fresh():
            chunks = X()
            if chunks is None or not hasattr(chunks, "__iter__"):
                raise ValueError("the callable passed as X must return an iterable of chunks.")
            return chunks
        return fresh
    if isinstance(X, np.ndarray) or hasattr(X, "__array__") or sparse.issparse(X):
        return lambda: (X,)  # one array (a sparse one is refused, as one, by check_frames)
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X is an empty list: pass at least one chunk of frames.")
        if isinstance(X[0], np.ndarray) and X[0].ndim == 2:
            return lambda: X
        return lambda: (X,)  # nested lists: one array-like
    if hasattr(X, "__iter__"):
        if iter(X) is X:
            raise ValueError(
                "X is a one-shot iterator (e.g. a generator): batch EM needs one pass per "
                "iteration. Pass a list of chunks, a callable returning a fresh iterator, "
                "or use partial_fit for a single online pass."
            )
        return lambda: X
    raise ValueError(f"X must be an array, an iterable of chunks or a callable, got {type(X).__name__}.")


class LocalPasses:
    """Passes over the chunks of a source in this process (batch EM's data access).

    Parameters
    ----------
    source : callable
        Returns a fresh iterable of chunks (see :func:`chunk_source`).
    """

    def __init__(self, source):
        self.source = source

    def scan(self, size, seed):
        """One pass: a :class:`UniformSample` of ``size`` rows and the rows' :class:`RunningMoments`."""
        moments = RunningMoments()
        sample = UniformSample(size, seed)
        n_features = None
        for i, chunk in enumerate(self.source()):
            chunk = check_frames(chunk, n_features=n_features, name=f"chunk {i}")
            n_features = chunk.shape[1]
            moments.add(chunk)
            sample.add(chunk)
        if moments.count == 0:
            raise ValueError("X holds no chunks; pass at least one chunk of frames.")
        return sample.sample(), moments

    def close(self):
        pass

    def accumulate(self, model):
        """The statistics of every row under ``model``'s current parameters (one E-step)."""
        plan = model._density_plan()
        total = None
        for block in coalesced_chunks(self.source(), model.n_features_in_, plan.block_size):
            stats = plan.accumulate(block)
            total = stats if total is None else total + stats
        if total is None:
            raise ValueError("X holds no chunks; pass at least one chunk of frames.")
        return total


class OnlineGMM(DensityMixin, BaseEstimator):
    """Gaussian mixture learnt by out-of-core batch EM (``fit``) or online EM (``partial_fit``).

    A scikit-learn density estimator (it passes ``check_estimator``): ``clone``,
    ``Pipeline`` and ``GridSearchCV`` work, the latter scoring candidates by
    :meth:`score`, the mean log-likelihood per frame, by default.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    tol : float, default=1e-3
        EM stops when the mean log-likelihood per frame changes by less.
    reg_covar : float, default=1e-6
        Added to the variances.
    max_iter : int, default=100
        EM iterations (passes over the data) of ``fit``.
    n_init : int, default=1
        Initialisations tried by ``fit``; the best lower bound wins.
    init_params : {"k-means++", "kmeans", "random", "random_from_data", "split"}, default="k-means++"
        See :mod:`streamgmm.init`. All work on a sample of ``init_size`` frames.
    weights_init : ndarray of shape (n_components,), optional
    means_init : ndarray of shape (n_components, n_features), optional
    precisions_init : ndarray, optional
        Shape per ``covariance_type`` as scikit-learn's.
    random_state : int, numpy Generator or None
    warm_start : bool, default=False
        ``fit`` starts from the current parameters instead of initialising.
    verbose : int, default=0
    verbose_interval : int, default=10
    init_size : int, optional
        Frames the initialisation uses. ``fit`` draws a uniform reservoir
        sample of this many frames in a first pass (default ``max(50 K,
        10000)``); ``partial_fit`` buffers the first frames of the stream
        until it has this many (default ``max(20 K, 200)``), then initialises.
    init_max_iter : int, default=1
        ``partial_fit`` only: EM iterations run on the buffered
        initialisation frames (in memory) before online learning starts,
        stopping early when the lower bound gains less than ``tol``. One
        pass over a stream still reads every frame once; more iterations
        start the stream from a better model. On FSDD (128 components,
        20,000 initialisation frames, one pass over 94,000 MFCC frames) 20
        iterations took the held-out log-likelihood from 0.52 to 0.29 nats
        per frame below batch EM's, but did not lower the speaker
        verification EER (raw 1.31 % against 1.24 %, and with centred frames
        1.04 % against 1.00 %, over 20 seeds each).
    covariance_floor : float, default=1e-3
        Variances may not fall below this fraction of the data's global
        variance per feature (0 disables the floor).
    min_weight : float, default=1e-5
        Components lighter than this are re-seeded by splitting the heaviest
        (0 disables).
    step_offset : float, default=1.0
    step_exponent : float, default=0.6
        Online step ``g_t = (t + step_offset) ** -step_exponent`` for the
        ``t``-th update; ``step_exponent`` in (0.5, 1] gives convergence on a
        stationary stream.
    forgetting : float in (0, 1], optional
        A constant online step instead: exponential forgetting for a drifting
        stream; the model remembers about ``1 / forgetting`` chunks.
    block_size : int, optional
        Rows per E-step block (default: about 4 MiB of block buffer).
    estep_dtype : {"float64", "float32"}, default="float64"
        Precision of the E-step's per-block products: the design matrix,
        the BLAS products, the log joint densities and the responsibilities
        (scoring uses the same). ``"float32"`` keeps the centring on
        ``shift_``, the log-sum-exp and the statistics' sums in float64, as
        Kaldi does: on 200,000 frames of 39 features its statistics differ by
        about 1e-6 relative and its log-likelihoods by under 1e-6 relative
        from the float64 path, and one EM pass is 1.6x faster (diag, 256
        components) and 1.5x (full, 64); ``scripts/bench_em.py`` measures it.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray, shape per ``covariance_type``
    precisions_ : ndarray, shape per ``covariance_type``
    precisions_cholesky_ : ndarray, shape per ``covariance_type``
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood per frame of the last E-step (of ``fit``), or of
        the last chunk before the model learnt from it (``partial_fit``).
    lower_bounds_ : list of float
        ``lower_bound_`` after each iteration of the best initialisation.
    n_features_in_ : int
        Set by ``fit``, or by the first chunk given to ``partial_fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of ``X`` when ``fit`` was given one DataFrame with
        string column names; scoring compares them as scikit-learn does.
    n_updates_ : int
        Online updates since the running statistics were (re)started.
    shift_ : ndarray of shape (n_features,)
        Point the statistics are taken about (the data mean at initialisation).
    variance_floor_ : ndarray of shape (n_features,) or None
        Absolute variance floor.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (500, 2)), rng.normal(3, 1, (500, 2))])
    >>> gmm = OnlineGMM(n_components=2, covariance_type="diag", random_state=0)
    >>> gmm = gmm.fit([X[:300], X[300:700], X[700:]])      # out of core
    >>> np.round(np.sort(gmm.means_[:, 0]))
    array([-3.,  3.])
    >>> online = OnlineGMM(n_components=2, covariance_type="diag", random_state=0)
    >>> for chunk in np.array_split(rng.permutation(X), 10):
    ...     online = online.partial_fit(chunk)
    >>> np.round(np.sort(online.means_[:, 0]))
    array([-3.,  3.])
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="k-means++",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        init_size=None,
        init_max_iter=1,
        covariance_floor=1e-3,
        min_weight=1e-5,
        step_offset=1.0,
        step_exponent=0.6,
        forgetting=None,
        block_size=None,
        estep_dtype="float64",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.init_size = init_size
        self.init_max_iter = init_max_iter
        self.covariance_floor = covariance_floor
        self.min_weight = min_weight
        self.step_offset = step_offset
        self.step_exponent = step_exponent
        self.forgetting = forgetting
        self.block_size = block_size
        self.estep_dtype = estep_dtype

    # ------------------------------------------------------------ parameters
    def _json_params(self):
        """Constructor parameters that a file can hold (the inits are not kept)."""
        params = self.get_params()
        for name in ("weights_init", "means_init", "precisions_init"):
            params[name] = None
        if not (params["random_state"] is None or isinstance(params["random_state"], numbers.Integral)):
            params["random_state"] = None
        for name, value in params.items():
            if isinstance(value, np.generic):
                params[name] = value.item()
        return params

    def _validate_params(self):
        """Check the settings, each error naming it (replaces BaseEstimator's, which we do not use)."""
        check_positive_int(self.n_components, "n_components")
        check_covariance_type(self.covariance_type)
        check_nonnegative_float(self.tol, "tol")
        check_nonnegative_float(self.reg_covar, "reg_covar")
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        if self.init_params not in INIT_METHODS:
            raise ValueError(f"init_params must be one of {INIT_METHODS}, got {self.init_params!r}.")
        if self.init_size is not None:
            check_positive_int(self.init_size, "init_size")
        check_positive_int(self.init_max_iter, "init_max_iter")
        check_nonnegative_float(self.covariance_floor, "covariance_floor")
        check_nonnegative_float(self.min_weight, "min_weight")
        if self.min_weight * self.n_components >= 1.0:
            raise ValueError(
                f"min_weight={self.min_weight} is too large for {self.n_components} components "
                "(min_weight * n_components must be < 1)."
            )
        check_nonnegative_float(self.step_offset, "step_offset")
        exponent = check_nonnegative_float(self.step_exponent, "step_exponent")
        if not 0.5 < exponent <= 1.0:
            raise ValueError(f"step_exponent must be in (0.5, 1] for online EM to converge, got {exponent}.")
        if self.forgetting is not None:
            forgetting = check_nonnegative_float(self.forgetting, "forgetting", strictly_positive=True)
            if forgetting > 1.0:
                raise ValueError(f"forgetting must be in (0, 1], got {forgetting}.")
        if self.block_size is not None:
            check_positive_int(self.block_size, "block_size")
        if self.estep_dtype not in ESTEP_DTYPES:
            raise ValueError(f"estep_dtype must be one of {ESTEP_DTYPES}, got {self.estep_dtype!r}.")

    # --------------------------------------------------------------- state
    def _is_fitted(self):
        return getattr(self, "means_", None) is not None

    def __sklearn_is_fitted__(self):
        # what sklearn.utils.validation.check_is_fitted asks (Pipeline, ...)
        return self._is_fitted()

    def _check_is_fitted(self):
        if not self._is_fitted():
            buffered = sum(len(c) for c in getattr(self, "_init_buffer", []))
            extra = (
                f" (partial_fit has buffered {buffered} of the {self._online_init_size()} frames "
                "it initialises from)" if buffered else ""
            )
            raise NotFittedError(
                f"this OnlineGMM is not fitted yet{extra}; call fit or partial_fit first."
            )

    @property
    def _layout(self):
        return "diag" if self.covariance_type in ("diag", "spherical") else "full"

    def _density_plan(self):
        if self._plan is None or self._plan.dtype != np.dtype(self.estep_dtype):  # (set_params may change it)
            self._plan = DensityPlan(
                self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type,
                self.shift_, self.block_size, dtype=np.dtype(self.estep_dtype),
            )
        return self._plan

    _plan = None
    _running_stats = None
    _init_buffer = ()
    _rng = None
    variance_floor_ = None

    def _set_parameters(self, weights, means, covariances, *, shift=None, variance_floor=None, source="parameters"):
        """Install new parameters after checking shapes, finiteness and positive definiteness.

        Everything is checked before anything is assigned: on ``ValueError``
        the model is unchanged.
        """
        parameters = self._checked_parameters(weights, means, covariances, source)
        d = parameters[1].shape[1]
        if shift is not None:
            shift = np.asarray(shift, dtype=np.float64)
            if shift.size != d or not np.isfinite(shift).all():
                raise ValueError(f"{source}: shift must be {d} finite values, got shape {shift.shape}.")
        if variance_floor is not None:
            floor = np.asarray(variance_floor, dtype=np.float64)
            if floor.ndim and floor.size != d:
                raise ValueError(f"{source}: variance_floor must hold {d} values, got shape {floor.shape}.")
        if shift is not None:
            self.shift_ = shift.reshape(d)
        if variance_floor is not None:
            self.variance_floor_ = None if floor.ndim == 0 else floor.reshape(d)
        self._install_parameters(*parameters)  # builds the density plan, which needs the shift

    def _checked_parameters(self, weights, means, covariances, source):
        """Parameters as float64 arrays with their precision Cholesky factors, or ``ValueError``.

        Parameters
        ----------
        weights : array-like of shape (n_components,)
        means : array-like of shape (n_components, n_features)
        covariances : array-like, shape per ``covariance_type``
        source : str
            What produced them, for the messages.

        Returns
        -------
        weights, means, covariances, precisions_cholesky : ndarray
            Finite, weights positive and summing to 1, covariances positive
            definite. Nothing on the model changes.
        """
        k = self.n_components
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        covariances = np.asarray(covariances, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] != k:
            raise ValueError(f"{source}: means must have shape ({k}, n_features), got {means.shape}.")
        d = means.shape[1]
        if d == 0:
            raise ValueError(f"{source}: means have 0 features; a model needs at least one.")
        expected = expected_covariance_shape(k, d, self.covariance_type)
        if weights.shape != (k,) or covariances.shape != expected:
            raise ValueError(
                f"{source}: weights shape {weights.shape} and covariances shape {covariances.shape} "
                f"do not match ({k},) and {expected} for covariance_type={self.covariance_type!r}."
            )
        for name, value in (("weights", weights), ("means", means), ("covariances", covariances)):
            if not np.isfinite(value).all():
                raise ValueError(
                    f"{source}: {name} are not finite; the data or the settings drove EM to a "
                    "degenerate solution (raise reg_covar or covariance_floor)."
                )
        if np.any(weights <= 0) or not np.isclose(weights.sum(), 1.0, rtol=1e-6):
            raise ValueError(f"{source}: weights must be positive and sum to 1 (sum {weights.sum():.6g}).")
        chol = precisions_cholesky_from_covariances(covariances, self.covariance_type)
        if not np.isfinite(chol).all():
            raise ValueError(
                f"{source}: the precisions overflow float64 (a variance is too close to 0); "
                "raise reg_covar or covariance_floor."
            )
        return weights, means, covariances, chol

    def _install_parameters(self, weights, means, covariances, precisions_cholesky):
        """Assign parameters checked by :meth:`_checked_parameters` (the commit of an update)."""
        self.weights_, self.means_, self.covariances_ = weights, means, covariances
        self.precisions_cholesky_ = precisions_cholesky
        self.precisions_ = precisions_from_cholesky(precisions_cholesky, self.covariance_type)
        self.n_features_in_ = means.shape[1]
        self._plan = None
        self._density_plan()  # built now, so that scoring never changes the model's state

    def _keep_feature_names(self, X):
        """Record the column names of a DataFrame ``X`` as ``feature_names_in_`` (scikit-learn convention).

        Only a single array-like ``X`` has names; after learning from chunks
        or a callable the model has none (earlier ones are dropped).
        """
        if hasattr(X, "__array__") and not callable(X):
            validate_data(self, X, reset=True, skip_check_array=True)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    @contextlib.contextmanager
    def _unchanged_on_error(self, action):
        """Run an update as a transaction: if it raises, the model is restored bit for bit.

        Updates bind new objects to the attributes and never write into the
        arrays they held, so a shallow copy of the attributes plus the state
        of the random generator restore the model exactly. A ``LinAlgError``
        from the numerics is raised as a ``ValueError``.

        Parameters
        ----------
        action : str
            The update, for messages ("fit", "partial_fit").
        """
        saved = dict(vars(self))
        rng_state = None if self._rng is None else self._rng.bit_generator.state
        try:
            yield
        except BaseException as exc:
            vars(self).clear()
            vars(self).update(saved)
            if rng_state is not None:
                self._rng.bit_generator.state = rng_state
            if isinstance(exc, np.linalg.LinAlgError):
                raise ValueError(
                    f"{action} failed in linear algebra ({exc}): the data are numerically degenerate for "
                    "this model; scale the features, raise reg_covar or covariance_floor, or use fewer "
                    "components. The model is unchanged."
                ) from None
            raise

    def _rng_state(self):
        if self._rng is None:
            self._rng = _as_rng(self.random_state)
        return self._rng

    # ------------------------------------------------------------ initialise
    def _fit_init_size(self):
        return self.init_size or max(50 * self.n_components, 10000)

    def _online_init_size(self):
        return self.init_size or max(20 * self.n_components, 200)

    def _initialise(self, sample, mean, variance, rng):
        """Set ``shift_``, ``variance_floor_`` and starting parameters from a data sample."""
        n, d = sample.shape
        if n < self.n_components:
            raise ValueError(
                f"initialisation needs at least n_components={self.n_components} frames, "
                f"got {n}; pass more data or use fewer components."
            )
        positive = variance[variance > 0]
        fallback = positive.mean() if positive.size else 1.0
        floor = self.covariance_floor * np.where(variance > 0, variance, fallback)
        self.shift_ = np.asarray(mean, dtype=np.float64)
        self.variance_floor_ = floor if self.covariance_floor > 0 else None
        user = (self.weights_init, self.means_init, self.precisions_init)
        if all(v is not None for v in user):
            weights, means = np.asarray(user[0], float), np.asarray(user[1], float)
            covariances = covariances_from_precisions(user[2], self.covariance_type)
        else:
            if self.init_params == "split":
                weights, means, covariances = split_initialisation(
                    sample, self.n_components, self.covariance_type, self.reg_covar,
                    self.variance_floor_, self.shift_, rng,
                )
            else:
                resp = initial_responsibilities(sample, self.n_components, self.init_params, rng)
                stats = stats_from_responsibilities(sample, resp, self.shift_, self._layout)
                weights, means, covariances = estimate_parameters(
                    stats, self.covariance_type, self.reg_covar, self.variance_floor_
                )
            if user[0] is not None:
                weights = np.asarray(user[0], dtype=np.float64)
            if user[1] is not None:
                means = np.asarray(user[1], dtype=np.float64)
            if user[2] is not None:
                covariances = covariances_from_precisions(user[2], self.covariance_type)
        if means.shape != (self.n_components, d):
            raise ValueError(f"means_init must have shape ({self.n_components}, {d}), got {means.shape}.")
        self._set_parameters(weights, means, covariances, source="initial parameters")
        self._running_stats = None

    # -------------------------------------------------------------- M-step
    def _m_step(self, stats, source="M-step"):
        """Estimate parameters from ``stats`` and install them (see :meth:`_estimate`)."""
        self._install_parameters(*self._estimate(stats, source))

    def _estimate(self, stats, source):
        """The M-step's parameters from ``stats``, checked, without installing them.

        Only the random generator may advance (re-seeding starved components).

        Parameters
        ----------
        stats : SufficientStats
        source : str
            The update, for messages.

        Returns
        -------
        weights, means, covariances, precisions_cholesky : ndarray
            As :meth:`_checked_parameters`.

        Raises
        ------
        ValueError
            If the statistics are not finite, or the parameters would not be
            (or a covariance would not be positive definite).
        """
        bad = stats.non_finite_fields()
        if bad:
            raise ValueError(
                f"{source}: the statistics hold non-finite values in {bad[0]!r} (float64 overflowed): "
                "the frames are too large or too far from the model for its scale; scale the features "
                "(standardise them or change their units)."
            )
        try:
            weights, means, covariances = estimate_parameters(
                stats, self.covariance_type, self.reg_covar, self.variance_floor_
            )
            if self.min_weight > 0 and np.any(weights < self.min_weight):
                weights, means, covariances, reseeded = reseed_starved(
                    weights, means, covariances, self.covariance_type, self.min_weight, self._rng_state()
                )
                if reseeded and self.verbose:
                    print(f"re-seeded starved components {reseeded}", file=sys.stderr)
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                f"{source}: the covariances could not be estimated ({exc}); raise reg_covar or "
                "covariance_floor, or scale the features."
            ) from None
        return self._checked_parameters(weights, means, covariances, source)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, client=None):
        """Batch EM over ``X``, one pass over the chunks per iteration.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features), a re-iterable of such
            chunks (list, tuple, dataset object), or a callable returning a
            fresh iterable of chunks on each call. With ``client``: a list of
            chunk sources (see :func:`streamgmm.distributed.fit`).
        y : ignored
        client : dask.distributed.Client, optional
            Run the E-step on the workers of a Dask cluster: each source is
            loaded once and kept on a worker, each iteration maps the E-step
            over them and sums the statistics in a tree, the M-step runs
            here. The result equals ``fit`` in one process on the same rows
            (to rounding). Needs the ``dask`` extra.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If a chunk is not valid frames (see :meth:`partial_fit`) or EM
            fails numerically. The model is then as it was before ``fit``.
        """
        self._validate_params()
        if client is not None:
            from .distributed import ClusterPasses

            self._fit_passes(lambda: ClusterPasses(client, X), X)
        else:
            self._fit_passes(lambda: LocalPasses(chunk_source(X)), X)
        self._warn_if_not_converged()
        return self

    def _fit_passes(self, make_passes, X):
        """Run :meth:`_fit` over ``make_passes()`` as a transaction; the passes are closed after."""
        with self._unchanged_on_error("fit"):
            passes = make_passes()
            try:
                self._fit(passes)
            finally:
                passes.close()
            self._keep_feature_names(X)

    def _warn_if_not_converged(self):
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (last change of the "
                f"lower bound above tol={self.tol}); increase max_iter or tol, or check the data.",
                ConvergenceWarning,
                stacklevel=3,  # the caller of the public fit
            )

    def _fit(self, passes):
        """The body of :meth:`fit`: initialisations, EM passes, the best result kept.

        Parameters
        ----------
        passes : LocalPasses or streamgmm.distributed.ClusterPasses
            Runs the passes over the data: ``scan(size, seed)`` returns a
            uniform sample of the rows and their moments, ``accumulate(model)``
            one E-step's statistics.
        """
        do_init = not (self.warm_start and self._is_fitted())
        n_init = self.n_init if do_init else 1
        rng = self._rng_state()
        best = None
        for init in range(n_init):
            if do_init:
                seed = int(rng.integers(0, 2**64, dtype=np.uint64))
                sample, moments = passes.scan(self._fit_init_size(), seed)
                self._initialise(sample, moments.mean, moments.variance, rng)
            lower_bound = -np.inf if do_init else self.lower_bound_
            history, converged, last_stats = [], False, None
            started = time.perf_counter()
            for n_iter in range(1, self.max_iter + 1):
                previous = lower_bound
                last_stats = passes.accumulate(self)
                lower_bound = last_stats.log_likelihood / last_stats.n_frames
                self._m_step(last_stats)
                history.append(lower_bound)
                change = lower_bound - previous
                if self.verbose >= 2 and n_iter % self.verbose_interval == 0:
                    print(
                        f"  iteration {n_iter}: lower bound {lower_bound:.6f}, change {change:.3e}, "
                        f"{time.perf_counter() - started:.2f}s", file=sys.stderr,
                    )
                if abs(change) < self.tol:
                    converged = True
                    break
            if self.verbose:
                state = "converged" if converged else "did not converge"
                print(f"initialisation {init}: {state}, lower bound {lower_bound:.6f}", file=sys.stderr)
            if best is None or lower_bound > best["lower_bound"]:
                best = dict(
                    params=(self.weights_, self.means_, self.covariances_),
                    lower_bound=lower_bound, history=history, converged=converged,
                    n_iter=len(history), stats=last_stats, shift=self.shift_,
                    floor=self.variance_floor_,
                )
        self.shift_, self.variance_floor_ = best["shift"], best["floor"]
        self._set_parameters(*best["params"], source="fit")
        self.converged_ = best["converged"]
        self.n_iter_ = best["n_iter"]
        self.lower_bound_ = best["lower_bound"]
        self.lower_bounds_ = best["history"]
        stats = best["stats"]
        self._running_stats = None if stats is None else stats * (1.0 / stats.n_frames)
        self.n_updates_ = 1

    def fit_predict(self, X, y=None):
        """``fit(X)`` then ``predict(X)`` (``X`` must be an array here)."""
        return self.fit(X).predict(X)

    # -------------------------------------------------------------- online
    def _step_size(self):
        if self.forgetting is not None:
            return float(self.forgetting)
        return float((self.n_updates_ + self.step_offset) ** (-self.step_exponent))

    def partial_fit(self, X, y=None):
        """One step of online EM on the chunk ``X``.

        Until the model is initialised, chunks are buffered (at most
        ``init_size`` frames); the first step initialises from them.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features)
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If the chunk is not valid frames (wrong shape, NaN or inf, values
            beyond ``1e100`` in magnitude; see :mod:`streamgmm._validation`)
            or the update would give non-finite statistics or parameters. The
            model is then unchanged, bit for bit, and learns the next chunk.
        """
        self._validate_params()
        expected = self.n_features_in_ if self._is_fitted() else None
        if expected is None and self._init_buffer:
            expected = self._init_buffer[0].shape[1]
        X = check_frames(X, n_features=expected, owner=type(self).__name__)
        with self._unchanged_on_error("partial_fit"):
            if self._is_fitted():
                self._online_step(X)
            else:
                self._buffer_or_initialise(X)
        return self

    def _buffer_or_initialise(self, X):
        """Buffer the chunk; once ``init_size`` frames are in, initialise from them."""
        buffer = list(self._init_buffer) + [np.array(X, dtype=np.float64)]
        self.n_features_in_ = X.shape[1]  # known from the first chunk on (scikit-learn convention)
        if sum(len(c) for c in buffer) < self._online_init_size():
            self._init_buffer = buffer
            return
        data = np.concatenate(buffer)
        self._init_buffer = ()
        moments = RunningMoments()
        moments.add(data)
        self._initialise(data, moments.mean, moments.variance, self._rng_state())
        previous = -np.inf
        for i in range(self.init_max_iter):
            stats = self._density_plan().accumulate(data)
            self._running_stats = stats * (1.0 / stats.n_frames)
            if i == 0:  # the chunk's likelihood before learning, as for every later chunk
                self.lower_bound_ = self._running_stats.log_likelihood
            self._m_step(self._running_stats, "initialisation")
            if self._running_stats.log_likelihood - previous < self.tol:
                break
            previous = self._running_stats.log_likelihood
        self.n_updates_ = 1
        self.converged_, self.n_iter_, self.lower_bounds_ = False, 1, [self.lower_bound_]

    def _online_step(self, X):
        """One stepwise-EM update: new statistics and parameters, committed once both are valid."""
        chunk = self._density_plan().accumulate(X)
        chunk = chunk * (1.0 / chunk.n_frames)
        previous = self._running_stats if self._running_stats is not None else self.stats_from_parameters()
        step = self._step_size()
        running = previous * (1.0 - step)
        running += chunk * step
        parameters = self._estimate(running, "partial_fit")
        self._running_stats = running
        self._install_parameters(*parameters)
        self.n_updates_ += 1
        self.n_iter_ = getattr(self, "n_iter_", 0) + 1
        self.lower_bound_ = chunk.log_likelihood

    def stats_from_parameters(self):
        """Per-frame statistics whose M-step gives the current parameters back.

        Used to start online learning from a model fitted elsewhere (e.g. a
        converted scikit-learn model). ``reg_covar`` is taken out again.

        Returns
        -------
        SufficientStats
            With ``n_frames == 1`` (per-frame scale).
        """
        self._check_is_fitted()
        k, d = self.means_.shape
        weights = self.weights_
        centred = self.means_ - self.shift_
        cov = self.covariances_
        if self.covariance_type == "spherical":
            cov = np.repeat(cov[:, None], d, axis=1)
        elif self.covariance_type == "tied":
            cov = np.broadcast_to(cov, (k, d, d))
        if self._layout == "diag":
            second = weights[:, None] * (cov - self.reg_covar + centred**2)
        else:
            cov = cov - self.reg_covar * np.eye(d)
            second = weights[:, None, None] * (cov + centred[:, :, None] * centred[:, None, :])
        return SufficientStats(weights.copy(), weights[:, None] * centred, second, self.shift_.copy(), 0.0, 1.0)

    @property
    def running_stats_(self):
        """The per-frame statistics the current parameters were estimated from (a copy)."""
        self._check_is_fitted()
        stats = self._running_stats if self._running_stats is not None else self.stats_from_parameters()
        return stats.copy()

    # ------------------------------------------------------------- scoring
    def _check_X(self, X):
        """``X`` as frames the fitted model can score; column names are compared as scikit-learn does."""
        self._check_is_fitted()
        frames = check_frames(X, n_features=self.n_features_in_, owner=type(self).__name__)
        if hasattr(self, "feature_names_in_") or not isinstance(X, np.ndarray):  # else nothing to compare
            validate_data(self, X, reset=False, skip_check_array=True)
        return frames

    def score_samples(self, X):
        """Log-likelihood of each frame, shape (n_frames,)."""
        X = self._check_X(X)
        return self._density_plan().score_samples(X)

    def score(self, X, y=None):
        """Mean log-likelihood per frame of ``X``."""
        return float(np.mean(self.score_samples(X)))

    def predict(self, X):
        """Most probable component of each frame, shape (n_frames,)."""
        X = self._check_X(X)
        return self._density_plan().predict(X)

    def predict_proba(self, X):
        """Responsibilities, shape (n_frames, n_components)."""
        X = self._check_X(X)
        return self._density_plan().predict_proba(X)

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        X = self._check_X(X)
        n = X.shape[0]
        return -2.0 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        X = self._check_X(X)
        return -2.0 * self.score(X) * X.shape[0] + 2.0 * self._n_parameters()

    def _n_parameters(self):
        return n_parameters(self.n_components, self.n_features_in_, self.covariance_type)

    def sample(self, n_samples=1):
        """Draw frames from the mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each frame.
        """
        self._check_is_fitted()
        check_positive_int(n_samples, "n_samples")
        rng = _as_rng(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        d = self.n_features_in_
        parts = []
        for k, count in enumerate(counts):
            noise = rng.standard_normal((count, d))
            if self.covariance_type == "diag":
                draw = noise * np.sqrt(self.covariances_[k])
            elif self.covariance_type == "spherical":
                draw = noise * np.sqrt(self.covariances_[k])
            else:
                cov = self.covariances_ if self.covariance_type == "tied" else self.covariances_[k]
                draw = noise @ np.linalg.cholesky(cov).T
            parts.append(draw + self.means_[k])
        labels = np.repeat(np.arange(self.n_components), counts)
        return np.concatenate(parts), labels

    # --------------------------------------------------------- persistence
    def save(self, path):
        """Write the fitted model to one ``.npz`` file (atomically); read it back with :func:`streamgmm.load`.

        The file holds the settings (as JSON; the ``*_init`` arrays are not
        kept), the parameters, the fit results and the running statistics
        (as ``stats_*`` members), so a loaded model can go on learning.

        Parameters
        ----------
        path : str or Path
            Destination; no ``.npz`` suffix is appended.
        """
        self._check_is_fitted()
        arrays = {
            **header(MODEL_KIND),
            "params_json": np.array(json.dumps(self._json_params())),
            "weights": self.weights_,
            "means": self.means_,
            "covariances": self.covariances_,
            "shift": self.shift_,
            # a 0-d NaN stands for "no floor" (None cannot be stored without pickle)
            "variance_floor": np.array(np.nan) if self.variance_floor_ is None else self.variance_floor_,
            "n_updates": np.array(getattr(self, "n_updates_", 0)),
            "converged": np.array(bool(getattr(self, "converged_", False))),
            "n_iter": np.array(getattr(self, "n_iter_", 0)),
            "lower_bound": np.array(getattr(self, "lower_bound_", np.nan)),
        }
        if self._running_stats is not None:
            for name, value in self._running_stats.to_arrays().items():
                if name not in ("kind", "format_version"):
                    arrays["stats_" + name] = value
        write_npz_atomic(path, arrays)

    @classmethod
    def from_sklearn(cls, gaussian_mixture, **params):
        """An ``OnlineGMM`` with the parameters of a fitted ``sklearn.mixture.GaussianMixture``.

        The statistics' shift is the mixture mean and the variance floor is
        disabled (the training data are unknown).

        Parameters
        ----------
        gaussian_mixture : sklearn.mixture.GaussianMixture, fitted
        **params
            Settings overriding the mixture's (e.g. ``covariance_floor``) for
            further learning.

        Returns
        -------
        OnlineGMM
            Fitted, with ``n_updates_ = 0``.
        """
        settings, weights, means, covariances, fit_results = gaussian_mixture_to_arrays(gaussian_mixture)
        settings.update(params)
        model = cls(**settings)
        model._set_parameters(
            weights / weights.sum(), means, covariances,
            shift=weights @ means, variance_floor=np.array(np.nan), source="GaussianMixture",
        )
        model.variance_floor_ = None
        for name, value in fit_results.items():
            setattr(model, name, value)
        model.n_updates_ = 0
        return model

    def to_sklearn(self):
        """A fitted ``sklearn.mixture.GaussianMixture`` with these parameters.

        Returns
        -------
        sklearn.mixture.GaussianMixture
            Holding copies of ``weights_``, ``means_``, ``covariances_``,
            ``precisions_cholesky_``, ``precisions_`` and the fit results.
        """
        self._check_is_fitted()
        fit_results = {
            "converged_": self.converged_,
            "n_iter_": self.n_iter_,
            "lower_bound_": self.lower_bound_,
            "lower_bounds_": getattr(self, "lower_bounds_", []),
        }
        return arrays_to_gaussian_mixture(
            self.get_params(), self.weights_, self.means_, self.covariances_,
            self.precisions_cholesky_, self.precisions_, fit_results,
        )

def accumulate(model, X):
    """Sufficient statistics of frames ``X`` under a fitted ``model`` (the E-step).

    Parameters
    ----------
    model : OnlineGMM, fitted
    X : array-like of shape (n_frames, n_features)

    Returns
    -------
    SufficientStats
        Additive: ``accumulate(m, A) + accumulate(m, B)`` equals
        ``accumulate(m, concatenate([A, B]))`` up to rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from streamgmm import OnlineGMM, accumulate
    >>> X = np.random.default_rng(1).normal(size=(400, 3))
    >>> gmm = OnlineGMM(n_components=2, covariance_type="diag", random_state=0).fit(X)
    >>> stats = accumulate(gmm, X)
    >>> stats.zeroth.shape, stats.first.shape
    ((2,), (2, 3))
    """
    X = model._check_X(X)
    return model._density_plan().accumulate(X)


def load(path):
    """Read a model written by :meth:`OnlineGMM.save`; never unpickles.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    OnlineGMM
        Fitted, ready to score or to go on learning with ``partial_fit``.

    Raises
    ------
    ValueError
        If the file is missing, not a streamgmm model file, of another format
        version, truncated or corrupt: a member of the wrong dtype or shape
        (checked in its header before its data are read; members not listed
        in :func:`model_file_fields` are never read), settings that are not a
        flat JSON object of valid settings, or invalid parameters.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from streamgmm import OnlineGMM, load
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> gmm = OnlineGMM(n_components=2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> gmm.save(path)
    >>> bool(np.allclose(load(path).score_samples(X), gmm.score_samples(X)))
    True
    """
    source = f"model file {path}"
    with NpzReader(path, source) as reader:
        reader.check_kind(MODEL_KIND)
        settings = reader.read({"params_json": scalar("str", max_chars=MAX_SETTINGS_CHARS)})["params_json"]
        params = parse_json(str(settings), source, what="member 'params_json'", max_depth=1)
        model = _model_from_settings(params, source)
        fields = model_file_fields(model.covariance_type, with_stats="stats_zeroth" in reader)
        arrays = reader.read(fields, dims={"K": model.n_components})
    model._set_parameters(
        arrays["weights"], arrays["means"], arrays["covariances"],
        shift=arrays["shift"], variance_floor=arrays["variance_floor"], source=source,
    )
    model.n_updates_, model.converged_ = int(arrays["n_updates"]), bool(arrays["converged"])
    model.n_iter_, model.lower_bound_ = int(arrays["n_iter"]), float(arrays["lower_bound"])
    if "stats_zeroth" in arrays:
        stats_arrays = {name[len("stats_"):]: value for name, value in arrays.items() if name.startswith("stats_")}
        stats_arrays.update(header(STATS_KIND))
        model._running_stats = SufficientStats.from_arrays(stats_arrays, source=source)
    return model


# The settings of a model file are about 600 characters of JSON.
MAX_SETTINGS_CHARS = 65536
_COVARIANCE_DIMS = {"full": ("K", "D", "D"), "tied": ("D", "D"), "diag": ("K", "D"), "spherical": ("K",)}


def model_file_fields(covariance_type, *, with_stats=True):
    """The members of a model file after its settings (see :class:`streamgmm.io.Field`).

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    with_stats : bool
        Whether the running statistics (``stats_*`` members) are expected.

    Returns
    -------
    dict of str to Field
        With the dimensions ``K`` (components) and ``D`` (features), shared
        by the parameters and the statistics.
    """
    fields = {
        "weights": array("real", "K"),
        "means": array("real", "K", "D"),
        "covariances": array("real", *_COVARIANCE_DIMS[covariance_type]),
        "shift": array("real", "D"),
        "variance_floor": one_of("real", (), ("D",)),  # a 0-d NaN: no floor
        "n_updates": scalar("int"),
        "converged": scalar("bool"),
        "n_iter": scalar("int"),
        "lower_bound": scalar("real"),
    }
    if with_stats:
        layout = "diag" if covariance_type in ("diag", "spherical") else "full"
        # the same dimension names: the statistics have the model's components and features
        fields.update({"stats_" + name: field for name, field in stats_file_fields(layout).items()})
    return fields


def _model_from_settings(params, source):
    """An unfitted ``OnlineGMM`` with the settings of a model file, all validated."""
    if not isinstance(params, dict):
        raise ValueError(f"{source}: member 'params_json' is not a JSON object of settings; the file is corrupt.")
    kept = [name for name in ("weights_init", "means_init", "precisions_init") if params.get(name) is not None]
    if kept:
        raise ValueError(f"{source}: member 'params_json' sets {kept[0]}, which files never keep; the file is corrupt.")
    try:
        model = OnlineGMM(**params)
        model._validate_params()
        _as_rng(model.random_state)
        # settings fit does not validate, whose wrong type would only fail later
        check_positive_int(model.verbose, "verbose", minimum=0)
        check_positive_int(model.verbose_interval, "verbose_interval")
        if not isinstance(model.warm_start, bool):
            raise ValueError(f"warm_start must be true or false, got {model.warm_start!r}.")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source} has invalid settings in member 'params_json' ({exc}); the file is corrupt.") from None
    return model
