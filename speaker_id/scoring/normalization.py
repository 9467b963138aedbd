"""Score normalisation: Z-norm, T-norm, ZT-norm and S-norm from cohort scores.

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


NORMALISATIONS = ("none", "znorm", "tnorm", "ztnorm", "snorm")


def normalise_scores(raw, enroll_scores, enroll_speakers, model_names, norm):
    """Apply a score normalisation to a (n_test, n_models) score matrix.

    Parameters
    ----------
    raw : ndarray of shape (n_test, n_models)
    enroll_scores : ndarray of shape (n_enroll_utts, n_models) or None
        Every enrollment utterance scored against every model: the impostor
        utterances of model ``m`` (Z-norm) are those of the other speakers.
        Only read by the normalisations with a Z step.
    enroll_speakers : sequence of str, length n_enroll_utts
    model_names : sequence of str, length n_models
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm"}
        T-norm's cohort for the trial (test, m) is the other enrolled models.

    Returns
    -------
    ndarray of shape (n_test, n_models)
    """
    if norm not in NORMALISATIONS:
        raise ValueError(f"norm must be one of {NORMALISATIONS}, got {norm!r}.")
    if norm == "none":
        return raw.copy()
    n_models = raw.shape[1]
    if n_models < 3 and norm != "znorm":
        raise ValueError(f"{norm} needs at least 3 enrolled speakers (a cohort of 2 or more); use --norm none or znorm.")
    if norm in ("znorm", "ztnorm", "snorm"):
        enroll_speakers = np.asarray(enroll_speakers)
        impostors = [enroll_scores[enroll_speakers != name, m] for m, name in enumerate(model_names)]
    out = np.empty_like(raw)
    for m in range(n_models):
        others = [j for j in range(n_models) if j != m]
        if norm == "znorm":
            out[:, m] = znorm(raw[:, m], impostors[m])
        elif norm == "tnorm":
            out[:, m] = tnorm(raw[:, m], raw[:, others])
        elif norm == "snorm":
            out[:, m] = 0.5 * (znorm(raw[:, m], impostors[m]) + tnorm(raw[:, m], raw[:, others]))
        else:  # ztnorm: Z-normalise every model with its own impostors, then T-norm across models
            z = np.column_stack([znorm(raw[:, j], impostors[j]) for j in range(n_models)])
            out[:, m] = tnorm(z[:, m], z[:, others])
    return out
