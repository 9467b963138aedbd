"""Decisions from scores: accept or reject a claimed identity, name the best speaker."""

from __future__ import annotations

import numpy as np

from .normalization import _finite_scores


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
