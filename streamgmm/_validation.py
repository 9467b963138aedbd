"""Input checks shared by the estimators: every error names the problem and the fix.

The scale limit
---------------
Frames are refused when an entry exceeds :data:`MAX_ABS_VALUE` (``1e100``) in
magnitude. The E-step squares deviations from the statistics' shift (up to
``(2e100)**2 = 4e200``), weighs them by precisions and sums them over
features and frames; float64 overflows at ``1.8e308``, so the limit leaves a
factor of ``1e108`` for precisions, feature counts and frame counts: with
variances above ``1e-50`` (``reg_covar`` alone keeps them above ``1e-6``) no
statistic, squared distance or log-likelihood of accepted frames overflows.
(``1e150`` would leave only ``1e8``: the second-order sums of 1e8 such frames
overflow.) No real feature comes near the limit; data that do are in
unsuited units and should be scaled. Should a model's own parameters make a
log-density overflow anyway, the E-step refuses the frames with a message
(:meth:`streamgmm.estep.DensityPlan`), so no NaN or infinity comes out.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_array

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MAX_ABS_VALUE = 1e100


def check_frames(X, *, n_features=None, name="X", owner="the model"):
    """Return ``X`` as a 2-D float array of frames (rows), or raise ``ValueError``.

    Messages contain scikit-learn's standard phrases ("Reshape your data",
    "0 feature(s)", "is expecting 3 features as input", ...) so that code and
    users who know scikit-learn recognise them.

    Parameters
    ----------
    X : array-like of shape (n_frames, n_features)
        Frames as rows: an ndarray, a nested list, a DataFrame, an object
        array of numbers. A 1-D array is refused (reshape it explicitly), and
        so are sparse matrices and complex or string data.
    n_features : int, optional
        The number of columns a fitted model expects.
    name : str
        How the array is called in error messages ("chunk 3", "X", ...).
    owner : str
        How the model is called in error messages ("OnlineGMM", ...).

    Returns
    -------
    X : ndarray of shape (n_frames, n_features), dtype float32 or float64
        float32 and float64 arrays are returned as they are (no copy); any
        other numeric input is converted to float64.

    Raises
    ------
    ValueError
        Naming the problem and the fix: ``X`` is not a non-empty 2-D
        numeric array (of ``n_features`` columns), holds NaN or inf, or an
        entry beyond :data:`MAX_ABS_VALUE` in magnitude (see the module
        notes). ``TypeError`` for entries that are not numbers (e.g. a dict
        in an object array).
    """
    arr = _as_array(X, name)
    if arr.ndim != 2:
        hint = (
            "; Reshape your data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single frame"
            if arr.ndim == 1 else ""
        )
        raise ValueError(
            f"{name} must be 2-D of shape (n_frames, n_features), got shape {arr.shape}{hint}."
        )
    if arr.shape[0] == 0:
        raise ValueError(
            f"{name} is empty: 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required; "
            "drop empty chunks before passing them."
        )
    if arr.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required; "
            "frames need at least one column."
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but {owner} is expecting {n_features} features as input "
            "(the number it was fitted with); pass frames with the same feature layout as the training data."
        )
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    check_magnitude(arr, name=name)
    return arr


def _as_array(X, name):
    """``X`` as an ndarray of real numbers (any shape), converted by scikit-learn's ``check_array``.

    float32 and float64 ndarrays pass through untouched. Other input goes
    through ``check_array``, which reads DataFrames and array-likes, converts
    object arrays of numbers and refuses sparse matrices; complex and string
    data are refused here first, with a one-line message.
    """
    if isinstance(X, np.ndarray):
        if X.dtype in (np.float32, np.float64):
            return X
        if X.dtype.kind == "c":
            raise ValueError(
                f"Complex data not supported: {name} has dtype {X.dtype}; pass real frames "
                "(e.g. the magnitude or the real and imaginary parts as separate features)."
            )
        if X.dtype.kind not in "biufO":
            raise ValueError(
                f"{name} has dtype {X.dtype}, not a real numeric type; "
                "pass frames as a float array of shape (n_frames, n_features)."
            )
    try:
        arr = check_array(
            X, accept_sparse=False, dtype="numeric", ensure_2d=False, allow_nd=True,
            ensure_min_samples=0, ensure_min_features=0, ensure_all_finite=False, input_name=name,
        )
    except TypeError as exc:
        raise TypeError(f"{name} could not be read as an array of numbers: {_one_line(exc)}") from None
    except ValueError as exc:
        raise ValueError(
            f"{name} could not be read as an array of numbers: {_one_line(exc)}; "
            "pass frames as a float array of shape (n_frames, n_features)."
        ) from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} has dtype {arr.dtype}, not a real numeric type; "
            "pass frames as a float array of shape (n_frames, n_features)."
        )
    return arr


def _one_line(exc, limit=300):
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def check_magnitude(arr, *, name="X"):
    """Raise ``ValueError`` unless every entry of ``arr`` is finite and within :data:`MAX_ABS_VALUE`.

    One pass for the minimum and one for the maximum (NaN propagates through
    both); the offending entries are looked up only when the check fails.

    Parameters
    ----------
    arr : ndarray of shape (n_frames, n_features), real, not empty
    name : str
        How the array is called in error messages.
    """
    # as Python floats: compared in float32, the limit itself would round to inf
    low, high = float(arr.min()), float(arr.max())
    if -MAX_ABS_VALUE <= low and high <= MAX_ABS_VALUE:
        return
    check_finite(arr, name=name)
    bad = np.argwhere(np.abs(arr) > MAX_ABS_VALUE)
    row, col = _position(arr, bad[0])
    raise ValueError(
        f"{name} holds {len(bad)} value(s) beyond +-{MAX_ABS_VALUE:.0e}, the first at row {row}, "
        f"column {col} (value {arr[tuple(bad[0])]:.3e}); streamgmm refuses them because their squares "
        "would overflow float64 in the E-step. Scale the features (standardise them or change their "
        f"units) so that magnitudes stay below {MAX_ABS_VALUE:.0e}."
    )


def check_finite(arr, *, name="X"):
    """Raise ``ValueError`` naming the first non-finite entry of ``arr``."""
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        row, col = _position(arr, bad[0])
        value = arr[tuple(bad[0])]
        raise ValueError(
            f"{name} contains {len(bad)} non-finite value(s) (NaN or inf), the first at "
            f"row {row}, column {col} (value {value}); remove or impute them before fitting or scoring."
        )


def _position(arr, index):
    """(row, column) of an ``np.argwhere`` entry; column 0 for 1-D arrays."""
    return (int(index[0]), int(index[1])) if arr.ndim == 2 else (int(index[0]), 0)


def check_positive_int(value, name, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_nonnegative_float(value, name, *, strictly_positive=False):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if value < 0 or (strictly_positive and value == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}.")
    return float(value)


def check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
        )
    return covariance_type


def coalesced_chunks(chunks, n_features, min_rows):
    """Validate chunks and join consecutive small ones into blocks of at least ``min_rows``.

    Statistics add, so accumulating the joined block equals accumulating its
    parts; joining only saves the per-call overhead of many tiny chunks (for
    example one short utterance each). Large chunks pass through uncopied.
    """
    pending, pending_rows = [], 0
    for i, chunk in enumerate(chunks):
        chunk = check_frames(chunk, n_features=n_features, name=f"chunk {i}")
        if not pending and chunk.shape[0] >= min_rows:
            yield chunk
            continue
        pending.append(chunk)
        pending_rows += chunk.shape[0]
        if pending_rows >= min_rows:
            yield pending[0] if len(pending) == 1 else np.concatenate(pending)
            pending, pending_rows = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)
