"""Score normalisation: Z-, T-, ZT-, S- and adaptive S-norm from cohort scores.

Each function takes raw scores and the cohort scores that normalise them
(the cohort along the last axis) and returns ``(score - mean) / std`` or a
combination; :func:`normalise_scores` applies one of them to a whole
(tests x models) score matrix.
"""

from __future__ import annotations

import numpy as np


def _finite_scores(scores, what="score"):
    arr = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite values; score valid features.")
    return arr


def _cohort_moments(cohort, what):
    arr = np.asarray(cohort, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{what} must be an array of scores (last axis: the cohort), got a scalar.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite scores.")
    return _moments(arr, what)


def _moments(arr, what, top_n=None):
    """Mean and sample standard deviation along the last axis, NaN entries left out.

    With ``top_n``, only the ``top_n`` largest entries of each cohort count
    (adaptive normalisation: the cohort members closest to the trial's side).
    """
    if top_n is not None:
        ranked = np.sort(np.where(np.isnan(arr), -np.inf, arr), axis=-1)[..., ::-1][..., :top_n]
        arr = np.where(np.isneginf(ranked), np.nan, ranked)
    counts = np.sum(~np.isnan(arr), axis=-1)
    if arr.shape[-1] < 2 or np.any(counts < 2):
        raise ValueError(
            f"{what} has {int(np.min(counts, initial=arr.shape[-1]))} score(s) in a cohort; at least 2 are "
            "needed to estimate a mean and a spread (use a larger cohort)."
        )
    mean = np.nanmean(arr, axis=-1)
    std = np.sqrt(np.nansum((arr - mean[..., None]) ** 2, axis=-1) / (counts - 1))
    scale = np.nanmax(np.abs(arr), axis=-1)
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


NORMALISATIONS = ("none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm")


def _score_matrix(scores, shape, what):
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2 or (shape[0] is not None and arr.shape[0] != shape[0]) or (
            shape[1] is not None and arr.shape[1] != shape[1]):
        want = tuple("any" if n is None else n for n in shape)
        raise ValueError(f"{what} must be a matrix of shape {want}, got shape {arr.shape}.")
    if np.isinf(arr).any():
        raise ValueError(f"{what} holds infinite scores.")
    return arr


def normalise_scores(raw, norm, *, impostor_scores=None, cohort_scores=None, cohort_impostor_scores=None,
                     cohort_exclude=None, top_n=None):
    """Normalise a (tests x models) score matrix with cohort scores.

    The Z side of a model is its scores against impostor utterances; the T
    side of a test is its scores against cohort models. An honest evaluation
    takes both from speakers who are not under test (training speakers).

    Parameters
    ----------
    raw : ndarray of shape (n_tests, n_models)
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"}
        ``snorm`` averages the Z- and T-normalised scores; ``asnorm``
        (adaptive S-norm) does the same with each side's statistics taken
        over its ``top_n`` highest cohort scores only.
    impostor_scores : ndarray of shape (n_impostors, n_models), optional
        Every model against every impostor utterance; NaN leaves a pair out
        (e.g. a model's own speaker). Needed by all but ``tnorm``.
    cohort_scores : ndarray of shape (n_tests, n_cohort), optional
        Every test against every cohort model. Needed by all but ``znorm``.
    cohort_impostor_scores : ndarray of shape (n_impostors, n_cohort), optional
        Every cohort model against the impostor utterances (``ztnorm``:
        the cohort scores are Z-normalised before the T step).
    cohort_exclude : ndarray of bool, shape (n_models, n_cohort), optional
        Cohort models to leave out of the T statistics of each model's
        trials (a model must not be its own cohort when the cohort is the
        enrolled models themselves).
    top_n : int, optional
        Cohort size of ``asnorm`` (default 200, at most the cohort).

    Returns
    -------
    ndarray of shape (n_tests, n_models)

    Examples
    --------
    >>> raw = np.array([[2.0, 0.0]])
    >>> impostors = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]])   # model a: mean 1, std 1
    >>> float(normalise_scores(raw, "znorm", impostor_scores=impostors)[0, 0])
    1.0
    """
    if norm not in NORMALISATIONS:
        raise ValueError(f"norm must be one of {NORMALISATIONS}, got {norm!r}.")
    raw = _score_matrix(raw, (None, None), "raw scores")
    if np.isnan(raw).any():
        raise ValueError("raw scores hold NaN; score valid features.")
    if norm == "none":
        return raw.copy()
    n_tests, n_models = raw.shape
    top = None
    if norm == "asnorm":
        top = 200 if top_n is None else int(top_n)
        if top < 2:
            raise ValueError(f"top_n must be at least 2 (a mean and a spread), got {top_n!r}.")
    z = t = None
    if norm != "tnorm":
        if impostor_scores is None:
            raise ValueError(f"{norm} needs impostor_scores (every model against impostor utterances).")
        imp = _score_matrix(impostor_scores, (None, n_models), "impostor scores")
        mean, std = _moments(imp.T, "impostor scores of a model", top)
        z = (raw - mean) / std
    if norm != "znorm":
        if cohort_scores is None:
            raise ValueError(f"{norm} needs cohort_scores (every test against cohort models).")
        coh = _score_matrix(cohort_scores, (n_tests, None), "cohort scores")
        if norm == "ztnorm":
            if cohort_impostor_scores is None:
                raise ValueError("ztnorm needs cohort_impostor_scores (cohort models against impostor utterances).")
            cimp = _score_matrix(cohort_impostor_scores, (imp.shape[0], coh.shape[1]), "cohort impostor scores")
            cmean, cstd = _moments(cimp.T, "impostor scores of a cohort model")
            coh = (coh - cmean) / cstd
            target = z
        else:
            target = raw
        if cohort_exclude is None:
            mean, std = _moments(coh, "cohort scores of a test", top)
            t = (target - mean[:, None]) / std[:, None]
        else:
            exclude = np.asarray(cohort_exclude, dtype=bool)
            if exclude.shape != (n_models, coh.shape[1]):
                raise ValueError(f"cohort_exclude must have shape {(n_models, coh.shape[1])}, got {exclude.shape}.")
            per_model = np.where(exclude[None, :, :], np.nan, coh[:, None, :])  # (n_tests, n_models, n_cohort)
            mean, std = _moments(per_model, "cohort scores of a test", top)
            t = (target - mean) / std
    if norm in ("znorm",):
        return z
    if norm in ("tnorm", "ztnorm"):
        return t
    return 0.5 * (z + t)
