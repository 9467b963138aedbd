"""The i-vector back end: LDA, length normalisation, PLDA and cosine scoring.

Small steps that compose in the order of Kaldi's ``egs/voxceleb/v1``
(``ivector-subtract-global-mean``, ``ivector-compute-lda``,
``ivector-normalize-length``, ``ivector-compute-plda``,
``ivector-plda-scoring``)::

    lda = LDA(n_components=150).fit(X_train, speakers)      # centres, projects
    Z = length_normalize(lda.transform(X_train))             # norms sqrt(dim)
    plda = PLDA().fit(Z, speakers)
    enroll = length_normalize(lda.transform(X_enroll))
    scores = plda.score(enroll.sum(axis=0, keepdims=True), len(enroll),
                        length_normalize(lda.transform(X_test)))

* :func:`length_normalize`: rows scaled to norm ``sqrt(n_features)``
  (Garcia-Romero and Espy-Wilson, 2011; Kaldi's ``ivector-normalize-length``).
* :class:`LDA`: Fisher's linear discriminant analysis, the projection that
  makes the within-class covariance the identity and the between-class one
  diagonal, keeping the most discriminative directions. Its ``transform``
  subtracts the training mean, so it also plays
  ``ivector-subtract-global-mean``.
* :class:`PLDA`: the two-covariance PLDA model (Ioffe, 2006; Prince and
  Elder, 2007; Brümmer and de Villiers, 2010; Sizov et al., 2014) trained by
  EM, and its exact closed-form log-likelihood-ratio scoring.
* :func:`cosine_scores`: the simple alternative.

The PLDA model
--------------
An i-vector ``x`` (a row of ``n_features`` values) of a speaker is::

    x = m + y + e,    y ~ N(0, B)  (the speaker),    e ~ N(0, W)  (the session),

with ``y`` shared by all i-vectors of a speaker and ``e`` drawn afresh for
each. After training, ``W`` and ``B`` are diagonalised simultaneously: the
transform ``A`` (:attr:`PLDA.transform_`) has ``A W A^T = I`` and
``A B A^T = diag(psi)``, so in ``u = A (x - m)`` the dimensions are
independent, each with within-speaker variance 1 and between-speaker
variance ``psi_k``.

Scoring (the LLR)
-----------------
A speaker is enrolled with ``n`` i-vectors; only their sum ``s = sum_i u_i``
(in the diagonalised space) and the count ``n`` matter. Given them, the
speaker variable ``z_k`` (dimension ``k``) has the posterior

    mean  a_k = psi_k s_k / (1 + n psi_k),    variance  c_k = psi_k / (1 + n psi_k),

so a test vector ``t`` of the same speaker is ``N(a_k, 1 + c_k)`` and one of
a different speaker is ``N(0, 1 + psi_k)``. The score is the log ratio::

    LLR = log p(enroll, t | same) - log p(enroll) - log p(t)
        = log p(t | enroll, same) - log p(t)
        = sum_k [ 1/2 log((1 + psi_k) / (1 + c_k))
                  - (t_k - a_k)^2 / (2 (1 + c_k)) + t_k^2 / (2 (1 + psi_k)) ].

Dimensions with ``psi_k = 0`` contribute exactly 0. Because enrollment enters
only through ``(sum, n)``, it is additive: enrolling more i-vectors later,
``(s1 + s2, n1 + n2)``, gives exactly the score of enrolling all at once.
(Kaldi averages the enrollment i-vectors and length-normalises the average
again; that is not additive, and this module does not do it.)

Training (EM)
-------------
Every speaker's i-vectors are jointly Gaussian; their exact marginal
log-likelihood depends on the speaker only through the count ``n_s``, the
mean ``xbar_s`` and the within-speaker scatter. In the diagonalised space,
with ``ubar_s = A (xbar_s - m)``, ``S_w`` the total within-speaker scatter and
``N`` the number of i-vectors::

    log L = sum_s sum_k log N(sqrt(n_s) ubar_sk; 0, 1 + n_s psi_k)
            - (N - S) D/2 log(2 pi) - 1/2 tr(A S_w A^T) + N log|det A|.

EM alternates the exact posterior of each speaker's variable (which depends
on its count, so speakers with different numbers of i-vectors are handled
exactly) with the joint maximisation of ``m``, ``B`` and ``W``. With
``n_components=r < n_features`` the speaker covariance is constrained to
rank ``r`` (``B = V V^T``, ``V`` of shape (n_features, r): the "simplified
PLDA" of Sizov et al.), trained by the factor-analysis EM for ``V``, ``m``
and ``W``. Each EM step is an exact EM step, so the log-likelihood
(:attr:`PLDA.lower_bounds_`) never decreases.

Shrinkage
---------
``B`` is learnt from as many speaker means as there are training speakers;
with few speakers for the dimension its small eigenvalues ``psi_k`` are
underestimated (directions in which new speakers differ but the training
speakers happened not to), and a test speaker differing there scores as if
it were the enrolled one. ``PLDA(shrinkage=a)`` replaces, after EM,

    psi_k  by  (1 - a) psi_k + a mean(psi),

the between-speaker covariance shrunk towards a multiple of ``W`` with the
same trace (in the diagonalised space, towards the identity times the mean
``psi``). ``shrinkage="auto"`` takes ``a`` from the Ledoit-Wolf formula
(Ledoit and Wolf, 2004; :func:`sklearn.covariance.ledoit_wolf_shrinkage`)
applied to the diagonalised speaker means, as scikit-learn's
``LinearDiscriminantAnalysis(shrinkage="auto")`` does for its covariance:
large with few speakers for the dimension, near 0 with many.

With no more speakers than dimensions (``S <= n_features``) a full-rank
``B`` cannot be learnt at all: the speaker means span only ``S - 1``
directions. Without shrinkage that is an error. With it, and
``n_components=None``, EM learns ``B`` at rank ``S - 1`` and the shrinkage,
over all ``n_features`` dimensions, gives the directions the training
speakers do not span the between-speaker variance ``a mean(psi)`` -- the
Ledoit-Wolf estimate of a covariance from fewer samples than dimensions.
New speakers differ from each other in those directions too, and with a
small training set that is where much of what tells them apart lies.

Files
-----
:meth:`LDA.to_arrays` and :meth:`PLDA.to_arrays` return plain numeric arrays
with a :func:`streamgmm.io.header`; ``from_arrays`` validates everything
(kind, version, shapes, finiteness, ``psi >= 0``), and ``save``/``load``
write and read one ``.npz`` file without pickle.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator

from streamgmm import ConvergenceWarning, NotFittedError
from streamgmm.io import array, check_header, header, scalar

from .model_files import NpzModelFile

LDA_KIND = "speaker_id.LDA"
PLDA_KIND = "speaker_id.PLDA"

_LOG_2PI = float(np.log(2.0 * np.pi))
# Smallest initial between-speaker variance (relative to the within-speaker
# variance, which is 1 in the diagonalised space): EM cannot move a variance
# that starts at exactly 0, so the moment estimate is floored here.
_INIT_PSI_FLOOR = 1e-3
# A covariance whose smallest eigenvalue is below this fraction of its largest
# is treated as singular (collinear or constant features).
_SINGULAR = 1e-10


# ----------------------------------------------------------------- checks
def _check_vectors(X, name="X", n_features=None):
    """``X`` as a finite 2-D float64 array of i-vectors (rows), or a one-line ValueError."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} could not be read as a numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {arr.dtype}; pass i-vectors as a float array (n_vectors, n_features).")
    if arr.ndim != 2:
        hint = " (use x.reshape(1, -1) for a single i-vector)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D of shape (n_vectors, n_features), got shape {arr.shape}{hint}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one i-vector with at least one value.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features but the model was fitted on {n_features}; "
            "pass i-vectors that went through the same extractor and transforms as the training data."
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        row, col = (int(v) for v in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(
            f"{name} contains non-finite values (NaN or inf), the first at row {row}, column {col}; "
            "drop or re-extract those i-vectors."
        )
    return arr


def _check_labels(y, n_vectors):
    """``(classes, index of each vector's class, counts)`` for labels ``y``."""
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != n_vectors:
        raise ValueError(
            f"y must be 1-D with one label per i-vector ({n_vectors}), got shape {labels.shape}."
        )
    if labels.dtype == object:
        try:
            labels = labels.astype(str)
        except (TypeError, ValueError):
            raise ValueError(
                "y holds labels that are neither numbers nor strings; pass one label per i-vector."
            ) from None
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError("y contains NaN or inf labels; give every i-vector a speaker label.")
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return classes, index.reshape(-1), counts


def _check_counts(n, n_rows, name="n_enroll"):
    """Enrollment counts as a float array of shape (n_rows,), each an integer >= 1."""
    arr = np.asarray(n)
    if arr.dtype.kind not in "biuf" or arr.dtype.kind == "b":
        raise ValueError(f"{name} must hold integer counts of enrollment i-vectors, got dtype {arr.dtype}.")
    if arr.ndim == 0:
        arr = np.full(n_rows, arr)
    if arr.shape != (n_rows,):
        raise ValueError(
            f"{name} must be a scalar or of shape ({n_rows},) (one count per enrollment sum), got shape {arr.shape}."
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
        raise ValueError(f"{name} must hold whole numbers of i-vectors; got {arr[~(arr == np.round(arr))][:1]}.")
    if (arr < 1).any():
        first = int(np.argmax(arr < 1))
        raise ValueError(
            f"{name}[{first}] = {int(arr[first])}: a speaker enrolled with no i-vector cannot be scored; "
            "enroll at least one i-vector or drop that speaker."
        )
    return arr


def _check_int(value, name, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{extra}, got {value!r}.")
    return int(value)


def _check_tol(value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {value!r}.")
    return float(value)


def _check_shrinkage(value):
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"shrinkage must be None, 'auto' or a number in [0, 1], got {value!r}.")
    return float(value)


def _check_nonsingular(cov, what, fix):
    """Raise ValueError if the symmetric ``cov`` is (numerically) singular."""
    eig = np.linalg.eigvalsh(cov)
    if not eig[-1] > 0 or eig[0] <= _SINGULAR * eig[-1]:
        raise ValueError(f"the {what} is singular (constant or collinear features); {fix}.")


def _sign_fix(rows):
    """Flip rows so that each one's largest-magnitude entry is positive (a deterministic sign)."""
    idx = np.argmax(np.abs(rows), axis=1)
    signs = np.sign(rows[np.arange(len(rows)), idx])
    signs[signs == 0] = 1.0
    return rows * signs[:, None]


def _solve_lower(L, M):
    """``L^{-1} M`` for a lower-triangular ``L`` (numpy.linalg only)."""
    return np.linalg.solve(L, M)


def _group(X, index, n_classes):
    """Per-class counts, means and the total within-class scatter (centred on the class means)."""
    counts = np.bincount(index, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, index, X)
    means = sums / counts[:, None]
    centred = X - means[index]
    return counts, means, centred.T @ centred


def _shrink(psi, shrinkage, speaker_means, r):
    """``psi``'s first ``r`` entries shrunk towards their mean, and the intensity used.

    Parameters
    ----------
    psi : ndarray of shape (n_features,)
        Between-speaker variances in the diagonalised space, descending.
    shrinkage : None, "auto" or float
    speaker_means : ndarray of shape (n_speakers, n_features)
        The training speakers' means in the diagonalised space (for "auto").
    r : int
        The rank of the model: ``n_features`` for full rank (then entries
        EM left at 0 become positive), else ``n_components``.

    Returns
    -------
    psi : ndarray of shape (n_features,)
    intensity : float
    """
    if shrinkage is None:
        return psi, 0.0
    if shrinkage == "auto":
        from sklearn.covariance import ledoit_wolf_shrinkage

        intensity = float(ledoit_wolf_shrinkage(speaker_means[:, :r]))
    else:
        intensity = shrinkage
    shrunk = psi.copy()
    shrunk[:r] = (1.0 - intensity) * psi[:r] + intensity * psi[:r].mean()
    return shrunk, intensity


class _Params(NpzModelFile, BaseEstimator):
    """Parameter conventions, the fitted check and pickle-free files shared by LDA and PLDA."""

    def _check_is_fitted(self):
        if getattr(self, "mean_", None) is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit or from_arrays first.")


def _read_fields(arrays, names, source):
    """The named fields of ``arrays`` as float64 arrays, or a ValueError naming the source."""
    out = {}
    for name in names:
        if name not in arrays:
            raise ValueError(f"{source} is missing the field {name!r}; it is truncated or not this kind of model.")
        value = np.asarray(arrays[name])
        if value.dtype.kind not in "biuf" or value.dtype.kind == "b":
            raise ValueError(f"{source}: field {name!r} has dtype {value.dtype}, not a number; the file is corrupt.")
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            raise ValueError(f"{source}: field {name!r} holds NaN or inf; the file is corrupt.")
        out[name] = value
    return out


def _read_setting(fields, name, source, minimum):
    value = fields[name]
    if value.shape != () or value != np.round(value) or value < minimum:
        raise ValueError(
            f"{source}: setting {name!r} must be an integer >= {minimum}, got {value!r}; the file is corrupt."
        )
    return int(value)


def _read_shrinkage(arrays, source):
    """The ``shrinkage`` setting of a PLDA file: None when absent or "none", "auto", or a number in [0, 1]."""
    if "shrinkage" not in arrays:
        return None
    value = np.asarray(arrays["shrinkage"])
    text = str(value) if value.dtype.kind == "U" and value.shape == () else None
    if text == "none":
        return None
    if text == "auto":
        return text
    try:
        return _check_shrinkage(float(text))
    except (TypeError, ValueError):
        raise ValueError(
            f"{source}: setting 'shrinkage' must be 'none', 'auto' or a number in [0, 1], got {value!r}; "
            "the file is corrupt."
        ) from None


# ------------------------------------------------------------ functions
def length_normalize(X):
    """Scale every row to Euclidean norm ``sqrt(n_features)``.

    Length normalisation (Garcia-Romero and Espy-Wilson, 2011) makes
    i-vectors far more Gaussian, which the PLDA model assumes. The radius is
    ``sqrt(n_features)``, as in Kaldi's ``ivector-normalize-length``: a
    centred, whitened i-vector (e.g. the output of :class:`LDA`) has squared
    norm about ``n_features`` on average, so the normalised vectors keep the
    scale of the whitened data (unit variance per dimension) and a model
    trained on unnormalised whitened vectors sees vectors of the size it
    expects. (PLDA trained and scored on vectors normalised the same way is
    invariant to the radius: scaling every vector by ``c`` scales ``B`` and
    ``W`` by ``c^2`` and leaves every LLR unchanged; the radius matters only
    when normalised and unnormalised data meet.)

    Centre (and preferably whiten, e.g. with :class:`LDA`) before
    normalising: the length of an uncentred vector mostly measures the mean.

    Parameters
    ----------
    X : array-like of shape (n_vectors, n_features)
        I-vectors as rows.

    Returns
    -------
    ndarray of shape (n_vectors, n_features), float64
        ``X[i] * sqrt(n_features) / ||X[i]||``.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D, holds NaN or inf, or has a row of zeros (whose
        direction is undefined).

    Examples
    --------
    >>> Z = length_normalize([[3.0, 4.0], [1.0, 0.0]])
    >>> np.round(np.linalg.norm(Z, axis=1) ** 2, 12)
    array([2., 2.])
    """
    X = _check_vectors(X, "X")
    norms = np.linalg.norm(X, axis=1)
    if not (norms > 0).all():
        row = int(np.argmax(~(norms > 0)))
        raise ValueError(
            f"X row {row} is all zeros and has no direction to normalise; drop it (an empty or failed extraction)."
        )
    return X * (np.sqrt(X.shape[1]) / norms)[:, None]


def cosine_scores(enroll, test):
    """Cosine similarity of every enrollment vector with every test vector.

    Parameters
    ----------
    enroll : array-like of shape (n_speakers, n_features)
        One vector per enrolled speaker. Cosine scoring ignores length, so an
        enrollment can be the sum (or mean) of a speaker's length-normalised
        i-vectors: adding more later is adding to the sum.
    test : array-like of shape (n_tests, n_features)
        Test i-vectors.

    Returns
    -------
    ndarray of shape (n_speakers, n_tests)
        ``<e, t> / (||e|| ||t||)``, in [-1, 1].

    Raises
    ------
    ValueError
        On shape mismatch, NaN/inf, or a row of zeros.

    Examples
    --------
    >>> cosine_scores([[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]).round(4)
    array([[ 1.    ,  0.    , -1.    ],
           [ 0.7071,  0.7071, -0.7071]])
    """
    E = _check_vectors(enroll, "enroll")
    T = _check_vectors(test, "test", n_features=E.shape[1])
    for name, M in (("enroll", E), ("test", T)):
        norms = np.linalg.norm(M, axis=1)
        if not (norms > 0).all():
            raise ValueError(f"{name} row {int(np.argmax(~(norms > 0)))} is all zeros; cosine is undefined, drop it.")
    E = E / np.linalg.norm(E, axis=1)[:, None]
    T = T / np.linalg.norm(T, axis=1)[:, None]
    return np.clip(E @ T.T, -1.0, 1.0)


# ------------------------------------------------------------------ LDA
class LDA(_Params):
    """Fisher's linear discriminant analysis for i-vectors (Kaldi's ``ivector-compute-lda``).

    With the class (speaker) means ``m_c``, counts ``n_c``, the training
    mean ``m`` and ``N`` vectors, the within- and between-class covariances
    are (sample-weighted, divided by ``N``, as in Kaldi)::

        W = 1/N sum_c sum_{i in c} (x_i - m_c)(x_i - m_c)^T,
        B = 1/N sum_c n_c (m_c - m)(m_c - m)^T.

    The projection solves the generalised symmetric eigenproblem
    ``B v = lambda W v``: with the Cholesky factor ``W = L L^T``, the
    eigenvectors ``V`` of ``L^{-1} B L^{-T}`` (``numpy.linalg.eigh``) give
    ``components_ = V^T L^{-1}``, keeping the ``n_components`` largest
    eigenvalues. The transformed training data then has within-class
    covariance exactly the identity and a diagonal between-class covariance
    (``eigenvalues_``).

    Parameters
    ----------
    n_components : int or None, default=None
        Output dimension, at most ``min(n_classes - 1, n_features)`` (the rank
        of ``B``), or ``n_features`` itself: every direction, the
        discriminants first, then a basis of the directions in which the
        training classes do not differ, all with within-class variance 1
        (for a back end, such as a shrunk :class:`PLDA`, that models speaker
        differences the training speakers cannot show). None takes
        ``min(n_classes - 1, n_features)``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        The training mean (or the ``centre`` given to :meth:`fit`),
        subtracted by :meth:`transform`.
    components_ : ndarray of shape (n_components, n_features)
        The projection; rows in order of decreasing ``eigenvalues_``.
    eigenvalues_ : ndarray of shape (n_components,)
        Between-class variance of each output dimension (its within-class
        variance is 1): the Fisher ratio of that direction.
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``.
    n_features_in_ : int

    Notes
    -----
    A class with a single vector is allowed: it contributes to the
    between-class scatter but nothing to the within-class one. Estimating
    ``W`` in ``n_features`` dimensions needs ``N - n_classes >= n_features``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(10), 20)
    >>> centres = np.zeros((10, 5)); centres[:, 0] = 4 * rng.normal(size=10)
    >>> X = centres[y] + rng.normal(size=(200, 5))
    >>> lda = LDA(n_components=1).fit(X, y)
    >>> Z = lda.transform(X)
    >>> Z.shape
    (200, 1)
    >>> bool(abs(lda.components_[0, 0]) > 5 * np.abs(lda.components_[0, 1:]).max())
    True
    """

    def __init__(self, n_components=None):
        self.n_components = n_components

    def fit(self, X, y, centre=None):
        """Estimate the projection from labelled i-vectors.

        Parameters
        ----------
        X : array-like of shape (n_vectors, n_features)
        y : array-like of shape (n_vectors,)
            Class (speaker) labels.
        centre : array-like of shape (n_features,), optional
            The point :meth:`transform` subtracts (``mean_``); by default the
            mean of ``X``. Give the mean of the data the projection will be
            applied to when ``X`` also holds other data, such as augmented
            copies, that shift its mean. The scatters are about the mean of
            ``X`` either way.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On NaN/inf, fewer than 2 classes, ``n_components`` above
            ``min(n_classes - 1, n_features)`` but not ``n_features``, fewer than
            ``n_features + n_classes`` vectors, or a singular within-class
            covariance.
        """
        n_components = _check_int(self.n_components, "n_components", 1, allow_none=True)
        X = _check_vectors(X, "X")
        classes, index, _ = _check_labels(y, len(X))
        n, d = X.shape
        C = len(classes)
        if C < 2:
            raise ValueError(f"LDA needs at least 2 classes, y has {C}; give i-vectors of several speakers.")
        most = min(C - 1, d)
        if n_components is None:
            n_components = most
        elif most < n_components != d:
            raise ValueError(
                f"n_components={n_components} is more than LDA can give: at most min(n_classes - 1, n_features) "
                f"= min({C - 1}, {d}) = {most} discriminants, or n_features = {d} for every direction; "
                "choose one of those or add speakers."
            )
        if n - C < d:
            raise ValueError(
                f"LDA needs at least n_features + n_classes = {d} + {C} = {d + C} i-vectors to estimate the "
                f"{d}x{d} within-class covariance, got {n}; add i-vectors per speaker or reduce the dimension first."
            )
        if centre is not None:
            centre = _check_vectors(np.atleast_2d(centre), "centre", n_features=d)
            if centre.shape[0] != 1:
                raise ValueError(f"centre must be one vector of {d} features, got shape {np.shape(centre)}.")
        counts, means, scatter = _group(X, index, C)
        mean = X.mean(axis=0)
        within = scatter / n
        diff = means - mean
        between = (diff * counts[:, None]).T @ diff / n
        _check_nonsingular(
            within, "within-class covariance",
            "remove constant or duplicated dimensions or add i-vectors per speaker",
        )
        L = np.linalg.cholesky(within)
        M = _solve_lower(L, _solve_lower(L, between).T)
        eigenvalues, V = np.linalg.eigh((M + M.T) / 2)
        order = np.argsort(eigenvalues)[::-1][:n_components]
        components = _sign_fix(_solve_lower(L, np.eye(d)).T.dot(V[:, order]).T)
        self.mean_ = mean if centre is None else centre[0]
        self.components_ = components
        self.eigenvalues_ = np.clip(eigenvalues[order], 0.0, None)
        self.classes_ = classes
        self.n_features_in_ = d
        return self

    def transform(self, X):
        """Project i-vectors: ``(X - mean_) @ components_.T``.

        Parameters
        ----------
        X : array-like of shape (n_vectors, n_features)

        Returns
        -------
        ndarray of shape (n_vectors, n_components)
        """
        self._check_is_fitted()
        X = _check_vectors(X, "X", n_features=self.n_features_in_)
        return (X - self.mean_) @ self.components_.T

    def fit_transform(self, X, y):
        """``fit(X, y).transform(X)``."""
        return self.fit(X, y).transform(X)

    # ------------------------------------------------------------- files
    def to_arrays(self):
        """The fitted model as plain numeric arrays with a header (kind ``speaker_id.LDA``).

        Returns
        -------
        dict of str to ndarray
            ``kind``, ``format_version``, ``mean`` (n_features,), ``components``
            (n_components, n_features), ``eigenvalues`` (n_components,).
        """
        self._check_is_fitted()
        return {
            **header(LDA_KIND),
            "mean": self.mean_,
            "components": self.components_,
            "eigenvalues": self.eigenvalues_,
        }

    _KIND = LDA_KIND

    @classmethod
    def file_fields(cls):
        """The members of an LDA file (see :class:`streamgmm.io.Field`)."""
        return {
            "mean": array("real", "D"),
            "components": array("real", "C", "D"),
            "eigenvalues": array("real", "C"),
        }

    @classmethod
    def from_arrays(cls, arrays, *, source="LDA arrays"):
        """Rebuild a fitted LDA from :meth:`to_arrays` output, validating everything.

        Raises
        ------
        ValueError
            Naming ``source`` and the problem: wrong kind or version, missing
            fields, inconsistent shapes, NaN/inf, negative eigenvalues.
        """
        check_header(arrays, LDA_KIND, source)
        f = _read_fields(arrays, ("mean", "components", "eigenvalues"), source)
        mean, components, eigenvalues = f["mean"], f["components"], f["eigenvalues"]
        if mean.ndim != 1 or mean.size == 0:
            raise ValueError(
                f"{source}: 'mean' must be a non-empty 1-D array, got shape {mean.shape}; the file is corrupt."
            )
        d = mean.size
        if components.ndim != 2 or components.shape[1] != d or not 1 <= components.shape[0] <= d:
            raise ValueError(
                f"{source}: 'components' has shape {components.shape}, expected (n_components <= {d}, {d}) "
                "to match 'mean'; the file is corrupt."
            )
        if eigenvalues.shape != (components.shape[0],):
            raise ValueError(
                f"{source}: 'eigenvalues' has shape {eigenvalues.shape}, "
                f"expected ({components.shape[0]},); the file is corrupt."
            )
        if (eigenvalues < 0).any():
            raise ValueError(
                f"{source}: 'eigenvalues' has negative entries (variances are >= 0); the file is corrupt."
            )
        if np.linalg.matrix_rank(components) < components.shape[0]:
            raise ValueError(f"{source}: 'components' has linearly dependent rows; the file is corrupt.")
        lda = cls(n_components=components.shape[0])
        lda.mean_, lda.components_, lda.eigenvalues_ = mean, components, eigenvalues
        lda.classes_ = None
        lda.n_features_in_ = d
        return lda


# ------------------------------------------------------------------ PLDA
def _diagonalise(W, B=None, V=None):
    """``(A, psi)`` with ``A W A^T = I`` and ``A B A^T = diag(psi)``, psi descending.

    Give either the full ``B`` or a factor ``V`` with ``B = V V^T``; the latter
    yields exact zeros in the ``n_features - rank`` trailing entries of psi.
    """
    d = W.shape[0]
    L = np.linalg.cholesky((W + W.T) / 2)
    if V is None:
        M = _solve_lower(L, _solve_lower(L, B).T)
        psi, Q = np.linalg.eigh((M + M.T) / 2)
        psi, Q = psi[::-1], Q[:, ::-1]
        psi = np.clip(psi, 0.0, None)
    else:
        Q, s, _ = np.linalg.svd(_solve_lower(L, V), full_matrices=True)
        psi = np.zeros(d)
        psi[: len(s)] = s**2
    A = _sign_fix(Q.T @ _solve_lower(L, np.eye(d)))
    return A, psi


class PLDA(_Params):
    """Two-covariance PLDA (``x = m + y + e``, ``y ~ N(0, B)``, ``e ~ N(0, W)``) with exact LLR scoring.

    See the module docstring for the model, the EM and the scoring formula.

    Parameters
    ----------
    max_iter : int, default=10
        EM iterations at most (Kaldi's ``ivector-compute-plda`` runs 10).
    tol : float, default=1e-4
        EM stops when the log-likelihood per i-vector rises by less than this.
    n_components : int or None, default=None
        Rank of the speaker covariance ``B``. None: full rank (the
        two-covariance model). ``r < n_features``: ``B = V V^T`` of rank
        ``r`` (simplified PLDA); the diagonalised space then has ``r``
        dimensions with ``psi > 0`` and the others, with ``psi = 0``, add
        nothing to any score.
    shrinkage : None, "auto" or float in [0, 1], default=None
        Shrink the between-speaker variances towards their mean after EM
        (module docstring): None or 0 none, ``"auto"`` the Ledoit-Wolf
        intensity of the training speaker means, a number that intensity.
        With ``n_components=r`` only the ``r`` positive ``psi`` are shrunk.
        With ``n_components=None`` all are, which lets a full-rank model be
        trained on no more speakers than dimensions (module docstring).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        ``m``.
    transform_ : ndarray of shape (n_features, n_features)
        ``A``, with ``A W A^T = I`` and ``A B A^T = diag(psi_)``.
    psi_ : ndarray of shape (n_features,)
        Between-speaker variances in the diagonalised space, descending, >= 0.
    within_covariance_ : ndarray of shape (n_features, n_features)
        ``W = A^{-1} A^{-T}``.
    between_covariance_ : ndarray of shape (n_features, n_features)
        ``B = A^{-1} diag(psi) A^{-T}``.
    shrinkage_ : float
        The intensity applied (0 for ``shrinkage=None``; after
        ``from_arrays``, NaN for ``"auto"``, whose intensity is not kept).
    lower_bounds_ : ndarray of shape (n_iter_ + 1,)
        Exact log-likelihood of the training data per i-vector, at the
        initial parameters (entry 0) and after each EM iteration (EM's lower
        bound is tight, so this is the likelihood itself). Non-decreasing.
        Of the model before shrinkage.
    n_iter_ : int
    converged_ : bool
    n_features_in_ : int

    Notes
    -----
    Training needs at least 2 speakers, ``N - n_speakers >= n_features``
    (to estimate ``W``) and more speakers than the rank of ``B``
    (``n_features`` for full rank, unless shrunk). A speaker with one i-vector is allowed;
    it informs ``B`` only. EM starts from moment estimates (``m`` the mean of
    the speaker means, ``W`` the pooled within-speaker covariance, ``B`` the
    covariance of the speaker means minus ``W`` times the average ``1/n_s``,
    its eigenvalues floored), which for equal counts per speaker is already
    the maximum-likelihood solution when that difference is positive definite.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y = np.repeat(np.arange(40), 5)
    >>> X = 3 * rng.normal(size=(40, 4))[y] + rng.normal(size=(200, 4))
    >>> plda = PLDA().fit(X, y)
    >>> bool(np.all(np.diff(plda.lower_bounds_) >= -1e-12))
    True
    >>> enroll = 3 * rng.normal(size=(2, 4))       # two new speakers
    >>> E = enroll[:, None, :] + rng.normal(size=(2, 3, 4))
    >>> T = enroll + rng.normal(size=(2, 4))       # one test vector each
    >>> scores = plda.score(E.sum(axis=1), 3, T)
    >>> scores.shape
    (2, 2)
    >>> bool(scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0])
    True
    """

    def __init__(self, max_iter=10, tol=1e-4, n_components=None, shrinkage=None):
        self.max_iter = max_iter
        self.tol = tol
        self.n_components = n_components
        self.shrinkage = shrinkage

    # ------------------------------------------------------------- fitting
    def fit(self, X, y):
        """Train by EM on i-vectors ``X`` with speaker labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_vectors, n_features)
            Training i-vectors, typically LDA-projected and length-normalised.
        y : array-like of shape (n_vectors,)
            Speaker labels; speakers may have different numbers of i-vectors.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On NaN/inf, fewer than 2 speakers, too few i-vectors or speakers
            for the dimension, or ``n_components > n_features``.
        """
        max_iter = _check_int(self.max_iter, "max_iter", 1)
        tol = _check_tol(self.tol)
        rank = _check_int(self.n_components, "n_components", 1, allow_none=True)
        shrinkage = _check_shrinkage(self.shrinkage)
        X = _check_vectors(X, "X")
        classes, index, _ = _check_labels(y, len(X))
        n, d = X.shape
        S = len(classes)
        if S < 2:
            raise ValueError(f"PLDA needs at least 2 speakers, y has {S}; give i-vectors of several speakers.")
        if rank is not None and rank > d:
            raise ValueError(
                f"n_components={rank} exceeds n_features={d}; use n_components <= {d} or None (full rank)."
            )
        if rank == d:
            rank = None
        if n - S < d:
            raise ValueError(
                f"PLDA needs at least n_features + n_speakers = {d} + {S} = {d + S} i-vectors to estimate the "
                f"{d}x{d} within-speaker covariance, got {n}; add sessions per speaker "
                "or reduce the dimension with LDA."
            )
        r = d if rank is None else rank
        if S <= r and (rank is not None or shrinkage is None):
            raise ValueError(
                f"a rank-{r} speaker covariance needs more than {r} speakers, got {S}; reduce the dimension with "
                f"LDA(n_components < {S}), set PLDA(n_components < {S})"
                + (", or shrink it (PLDA(shrinkage='auto')) to fill the directions the speakers do not span."
                   if rank is None else ".")
            )
        # Full rank from too few speakers: EM learns what they span, the shrinkage fills the rest.
        em_rank = S - 1 if rank is None and S <= d else rank
        counts, means, scatter = _group(X, index, S)
        within = scatter / (n - S)
        _check_nonsingular(
            within, "within-speaker covariance",
            "remove constant or duplicated dimensions (e.g. with LDA) or add sessions per speaker",
        )
        # Moment initialisation, then EM.
        mean = means.mean(axis=0)
        centred = means - mean
        between = centred.T @ centred / S - within * np.mean(1.0 / counts)
        A, psi = _diagonalise(within, between)
        psi = np.maximum(psi, _INIT_PSI_FLOOR * max(1.0, psi[0]))
        if em_rank is not None:
            psi[em_rank:] = 0.0
        bounds = [self._log_likelihood(mean, A, psi, counts, means, scatter) / n]
        converged = False
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            mean, A, psi = self._em_step(mean, A, psi, counts, means, scatter, em_rank)
            bounds.append(self._log_likelihood(mean, A, psi, counts, means, scatter) / n)
            if bounds[-1] - bounds[-2] < tol:
                converged = True
                break
        if not converged:
            warnings.warn(
                f"PLDA EM did not converge in {max_iter} iterations (last change {bounds[-1] - bounds[-2]:.3g} "
                f"per i-vector, tol {tol}); raise max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        psi, self.shrinkage_ = _shrink(psi, shrinkage, (means - mean) @ A.T, r)
        self._set_model(mean, A, psi)
        self.lower_bounds_ = np.array(bounds)
        self.n_iter_ = n_iter
        self.converged_ = converged
        return self

    def _set_model(self, mean, A, psi):
        self.mean_ = mean
        self.transform_ = A
        self.psi_ = psi
        A_inv = np.linalg.inv(A)
        self.within_covariance_ = A_inv @ A_inv.T
        self.between_covariance_ = (A_inv * psi) @ A_inv.T
        self.n_features_in_ = len(mean)

    @staticmethod
    def _log_likelihood(mean, A, psi, counts, means, scatter):
        """Exact marginal log-likelihood of the training data (see the module docstring)."""
        n = counts.sum()
        S, d = means.shape
        U = (means - mean) @ A.T
        q = 1.0 + counts[:, None] * psi
        between = -0.5 * (S * d * _LOG_2PI + np.log(q).sum() + (counts[:, None] * U**2 / q).sum())
        within = -0.5 * ((n - S) * d * _LOG_2PI + np.einsum("ij,jk,ik->", A, scatter, A))
        return between + within + n * np.linalg.slogdet(A)[1]

    @staticmethod
    def _em_step(mean, A, psi, counts, means, scatter, rank):
        """One EM iteration, computed in the current diagonalised space ``u = A (x - mean)``."""
        n = counts.sum()
        S = len(means)
        nc = counts[:, None]
        U = (means - mean) @ A.T              # per-speaker mean, diagonalised
        within_u = A @ scatter @ A.T          # total within-speaker scatter, diagonalised
        q = 1.0 + nc * psi
        if rank is None:
            # Two-covariance EM: z_s ~ N(0, diag psi), posterior N(a_s, diag c_s).
            a = nc * psi * U / q
            c = psi / q
            mean_u = a.mean(axis=0)
            between_u = a.T @ a / S + np.diag(c.mean(axis=0)) - np.outer(mean_u, mean_u)
            R = U - a
            within_new = (within_u + (R * nc).T @ R + np.diag((nc * c).sum(axis=0))) / n
            A_u, psi = _diagonalise(within_new, between_u)
        else:
            # Simplified PLDA: z_s = V_u h_s + mean_u, h_s ~ N(0, I_r); V_u = diag(sqrt psi)[:, :r].
            sq = np.sqrt(psi[:rank])
            h = sq * nc * U[:, :rank] / q[:, :rank]                 # E[h_s], (S, r)
            h_var = 1.0 / q[:, :rank]                               # Var[h_s] (diagonal), (S, r)
            g = np.hstack([h, np.ones((S, 1))])                     # E[[h; 1]]
            G = (g * nc).T @ g
            G[:rank, :rank] += np.diag((nc * h_var).sum(axis=0))    # sum_s n_s E[[h;1][h;1]^T]
            F = (U * nc).T @ g                                      # sum_i u_i E[[h;1]]^T
            V_aug = np.linalg.solve(G, F.T).T
            second = within_u + (U * nc).T @ U                      # sum_i u_i u_i^T
            within_new = (second - V_aug @ F.T) / n
            mean_u = V_aug[:, rank]
            A_u, psi = _diagonalise(within_new, V=V_aug[:, :rank])
        return mean + np.linalg.solve(A, mean_u), A_u @ A, psi

    # ------------------------------------------------------------- scoring
    def transform(self, X):
        """I-vectors in the diagonalised space: ``(X - mean_) @ transform_.T``.

        Parameters
        ----------
        X : array-like of shape (n_vectors, n_features)

        Returns
        -------
        ndarray of shape (n_vectors, n_features)
            Within-speaker covariance I, between-speaker ``diag(psi_)``.
        """
        self._check_is_fitted()
        X = _check_vectors(X, "X", n_features=self.n_features_in_)
        return (X - self.mean_) @ self.transform_.T

    def _enrollment(self, enroll_sum, n_enroll, X_test):
        """Validated inputs in the diagonalised space, restricted to dimensions with psi > 0."""
        self._check_is_fitted()
        d = self.n_features_in_
        E = _check_vectors(enroll_sum, "enroll_sum", n_features=d)
        n = _check_counts(n_enroll, len(E))
        T = _check_vectors(X_test, "X_test", n_features=d)
        keep = self.psi_ > 0
        A = self.transform_[keep]
        psi = self.psi_[keep]
        s = E @ A.T - n[:, None] * (A @ self.mean_)   # sum of the enrollment u's
        t = (T - self.mean_) @ A.T
        q = 1.0 + n[:, None] * psi
        a = psi * s / q                                # posterior mean of the speaker variable
        v_same = 1.0 + psi / q                         # predictive variance, same speaker
        v_diff = 1.0 + psi                             # marginal variance, any speaker
        const = 0.5 * (np.log(v_diff) - np.log(v_same)).sum(axis=1) - 0.5 * (a**2 / v_same).sum(axis=1)
        return a / v_same, 0.5 * (1.0 / v_diff - 1.0 / v_same), const, t

    def score(self, enroll_sum, n_enroll, X_test):
        """Log-likelihood ratios of every test i-vector against every enrolled speaker.

        ``LLR = log p(enroll, test | same speaker) - log p(enroll) - log p(test)``
        in closed form (module docstring). Enrollment is additive: a
        speaker's ``(sum, n)`` of i-vectors enrolled in several parts is the
        sum of the parts' sums and counts, and scores exactly as if all were
        enrolled at once.

        Parameters
        ----------
        enroll_sum : array-like of shape (n_speakers, n_features)
            Per speaker, the *sum* of its enrollment i-vectors (transformed
            exactly like the training data). For a mean, pass ``mean * n``.
        n_enroll : int or array-like of shape (n_speakers,)
            Number of i-vectors in each sum, integers >= 1.
        X_test : array-like of shape (n_tests, n_features)
            Test i-vectors, one per trial.

        Returns
        -------
        ndarray of shape (n_speakers, n_tests)
            Natural-log likelihood ratios; > 0 favours "same speaker".
        """
        weight, quad, const, t = self._enrollment(enroll_sum, n_enroll, X_test)
        return const[:, None] + weight @ t.T + quad @ (t**2).T

    def score_pairs(self, enroll_sum, n_enroll, X_test):
        """Log-likelihood ratios of paired trials: row ``i`` of the enrollments against row ``i`` of the tests.

        Parameters
        ----------
        enroll_sum : array-like of shape (n_trials, n_features)
            Sum of each trial's enrollment i-vectors.
        n_enroll : int or array-like of shape (n_trials,)
            Their counts (>= 1); 1 for one-vs-one trials.
        X_test : array-like of shape (n_trials, n_features)

        Returns
        -------
        ndarray of shape (n_trials,)
            ``score(enroll_sum, n_enroll, X_test)`` diagonal, without the
            (n_trials, n_trials) matrix.
        """
        E = np.asarray(enroll_sum)
        T = np.asarray(X_test)
        if E.ndim == 2 and T.ndim == 2 and len(E) != len(T):
            raise ValueError(
                f"score_pairs needs one test i-vector per enrollment, got {len(E)} enrollments and {len(T)} tests; "
                "use score for every combination."
            )
        weight, quad, const, t = self._enrollment(E, n_enroll, T)
        return const + (weight * t).sum(axis=1) + (quad * t**2).sum(axis=1)

    # ------------------------------------------------------------- files
    def to_arrays(self):
        """The fitted model as plain numeric arrays with a header (kind ``speaker_id.PLDA``).

        Returns
        -------
        dict of str to ndarray
            ``kind``, ``format_version``, ``mean`` (n_features,), ``transform``
            (n_features, n_features), ``psi`` (n_features,), and the settings
            ``max_iter``, ``tol``, ``n_components`` (-1 for None) as 0-d arrays
            and ``shrinkage`` as a 0-d string (``"none"``, ``"auto"`` or the
            number; ``psi`` is stored already shrunk).
        """
        self._check_is_fitted()
        return {
            **header(PLDA_KIND),
            "mean": self.mean_,
            "transform": self.transform_,
            "psi": self.psi_,
            "max_iter": np.array(int(self.max_iter)),
            "tol": np.array(float(self.tol)),
            "n_components": np.array(-1 if self.n_components is None else int(self.n_components)),
            "shrinkage": np.array("none" if self.shrinkage is None else str(self.shrinkage)),
        }

    _KIND = PLDA_KIND

    @classmethod
    def file_fields(cls):
        """The members of a PLDA file (see :class:`streamgmm.io.Field`)."""
        return {
            "mean": array("real", "D"),
            "transform": array("real", "D", "D"),
            "psi": array("real", "D"),
            **{name: scalar("real") for name in ("max_iter", "tol", "n_components")},
            "shrinkage": scalar("str", max_chars=32, required=False),  # absent in files before it existed
        }

    @classmethod
    def from_arrays(cls, arrays, *, source="PLDA arrays"):
        """Rebuild a fitted PLDA from :meth:`to_arrays` output, validating everything.

        Raises
        ------
        ValueError
            Naming ``source`` and the problem: wrong kind or version, missing
            fields, inconsistent shapes, NaN/inf, negative psi, a singular
            transform, or more positive psi than ``n_components``.
        """
        check_header(arrays, PLDA_KIND, source)
        f = _read_fields(arrays, ("mean", "transform", "psi", "max_iter", "tol", "n_components"), source)
        mean, A, psi = f["mean"], f["transform"], f["psi"]
        if mean.ndim != 1 or mean.size == 0:
            raise ValueError(
                f"{source}: 'mean' must be a non-empty 1-D array, got shape {mean.shape}; the file is corrupt."
            )
        d = mean.size
        if A.shape != (d, d):
            raise ValueError(
                f"{source}: 'transform' has shape {A.shape}, expected ({d}, {d}) to match 'mean'; "
                "the file is corrupt."
            )
        if psi.shape != (d,):
            raise ValueError(
                f"{source}: 'psi' has shape {psi.shape}, expected ({d},) to match 'mean'; the file is corrupt."
            )
        if (psi < 0).any():
            raise ValueError(f"{source}: 'psi' has negative entries (variances are >= 0); the file is corrupt.")
        singular = np.linalg.svd(A, compute_uv=False)
        if not singular[-1] > _SINGULAR * singular[0]:
            raise ValueError(f"{source}: 'transform' is singular (W would not be invertible); the file is corrupt.")
        max_iter = _read_setting(f, "max_iter", source, 1)
        tol = float(f["tol"])
        if f["tol"].shape != () or tol < 0:
            raise ValueError(f"{source}: setting 'tol' must be a number >= 0, got {f['tol']!r}; the file is corrupt.")
        rank = _read_setting(f, "n_components", source, -1)
        if rank == 0 or rank > d:
            raise ValueError(
                f"{source}: setting 'n_components' is {rank}, expected -1 (None) or 1..{d}; the file is corrupt."
            )
        rank = None if rank == -1 else rank
        if rank is not None and (psi > 0).sum() > rank:
            raise ValueError(
                f"{source}: {(psi > 0).sum()} positive psi entries but n_components={rank}; the file is corrupt."
            )
        plda = cls(max_iter=max_iter, tol=tol, n_components=rank, shrinkage=_read_shrinkage(arrays, source))
        plda._set_model(mean, A, psi)
        plda.shrinkage_ = {None: 0.0, "auto": float("nan")}.get(plda.shrinkage, plda.shrinkage)
        plda.lower_bounds_ = None
        plda.n_iter_ = 0
        plda.converged_ = None
        return plda
