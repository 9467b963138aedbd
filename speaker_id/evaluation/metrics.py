"""Evaluation metrics for speaker verification and identification.

Verification is scored as a list of *trials*: each trial has a score (larger
means "more likely the claimed speaker") and a label, 1 for a *target* trial
(the claim is true) and 0 for a *non-target* (impostor) trial.  A system
accepts a trial when ``score >= threshold``.  Two error rates follow:

* false-acceptance rate ``FAR(t)``: fraction of non-target trials with
  ``score >= t`` (also called false-alarm or false-positive rate);
* false-rejection rate ``FRR(t)``: fraction of target trials with
  ``score < t`` (also called miss rate or false-negative rate).

Sweeping ``t`` from ``+inf`` down past the lowest score traces the empirical
ROC from ``(FAR, FRR) = (0, 1)`` to ``(1, 0)``; every function here works on
those vertices, one per distinct score value, so tied scores are never split
in an arbitrary order.

Functions
---------
det_curve
    The (FAR, FRR, threshold) vertices of the empirical ROC.
eer
    Equal error rate, from the ROC or from its convex hull.
min_dcf
    Minimum of the NIST SRE detection cost function.
identification_accuracy
    Closed-set or open-set identification accuracy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "det_curve",
    "eer",
    "min_dcf",
    "identification_accuracy",
]


# ---------------------------------------------------------------------------
# input checking and the ROC sweep shared by everything below
# ---------------------------------------------------------------------------

def _check_trials(scores, labels):
    """Validate trial scores and labels; return float64 and bool arrays."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            "scores and labels must be 1-D sequences (one entry per trial); "
            f"got shapes {scores.shape} and {labels.shape}"
        )
    if scores.shape[0] != labels.shape[0]:
        raise ValueError(
            f"scores and labels differ in length ({scores.shape[0]} scores, "
            f"{labels.shape[0]} labels); pass one label per score"
        )
    try:
        scores = scores.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores must be numeric, got dtype {scores.dtype}") from exc
    if np.isnan(scores).any():
        n_nan = int(np.isnan(scores).sum())
        raise ValueError(
            f"scores contain {n_nan} NaN value(s); fix or drop those trials "
            "before computing error rates"
        )
    if np.isinf(scores).any():
        raise ValueError(
            "scores contain +/-inf; clip them to finite values (for example "
            "with np.clip) before computing error rates"
        )
    if labels.dtype != np.bool_:
        try:
            as_float = labels.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "labels must be 1 (target) / 0 (non-target) or booleans; "
                f"got dtype {labels.dtype}"
            ) from exc
        bad = ~((as_float == 0) | (as_float == 1))
        if bad.any():
            raise ValueError(
                "labels must be 1 (target) or 0 (non-target); found "
                f"{labels[bad][:5].tolist()}"
            )
        labels = as_float == 1
    n_tar = int(labels.sum())
    n_non = labels.shape[0] - n_tar
    if n_tar == 0:
        raise ValueError(
            "no target trials (label 1): the miss rate is undefined; "
            "include at least one target trial"
        )
    if n_non == 0:
        raise ValueError(
            "no non-target trials (label 0): the false-acceptance rate is "
            "undefined; include at least one non-target trial"
        )
    return scores, labels


def _roc(scores, labels):
    """ROC vertices for validated trials, thresholds decreasing from +inf.

    Returns far, frr, thresholds, each of length n_unique_scores + 1.
    """
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    lab = labels[order]
    # last index of each run of equal scores: accepting at threshold s[i]
    # accepts every trial with a score >= s[i], i.e. the whole run.
    last = np.flatnonzero(np.diff(s) != 0)
    last = np.append(last, s.size - 1)
    n_tar = int(lab.sum())
    n_non = lab.size - n_tar
    tp = np.cumsum(lab)[last]
    fp = (last + 1) - tp
    far = np.concatenate(([0.0], fp / n_non))
    frr = np.concatenate(([1.0], (n_tar - tp) / n_tar))
    thresholds = np.concatenate(([np.inf], s[last]))
    return far, frr, thresholds


def _lower_hull(far, frr):
    """Indices of the ROC convex hull (the lower-left one, toward the origin).

    The points are sorted by increasing far (and decreasing frr); a monotone
    chain keeps the vertices where the chain turns counter-clockwise.
    """
    hull: list[int] = []
    for i in range(far.size):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (far[b] - far[a]) * (frr[i] - frr[a]) - (frr[b] - frr[a]) * (
                far[i] - far[a]
            )
            if cross <= 0:  # b is on or above the chord a-i: not on the hull
                hull.pop()
            else:
                break
        hull.append(i)
    return np.asarray(hull, dtype=np.intp)


def _crossing(far, frr, thresholds):
    """Where the piecewise-linear curve through (far, frr) meets far == frr.

    ``frr - far`` strictly decreases from +1 to -1 along the sweep, so there
    is exactly one crossing.  Returns (eer, threshold) with the threshold
    interpolated linearly between the segment's two end thresholds (the first
    segment starts at +inf; there the finite end is returned).
    """
    d = frr - far
    i = int(np.flatnonzero(d > 0)[-1])  # last vertex still above the diagonal
    j = i + 1
    alpha = d[i] / (d[i] - d[j])
    rate = far[i] + alpha * (far[j] - far[i])
    if alpha >= 1.0:  # the crossing is vertex j itself
        return float(far[j]), float(thresholds[j])
    if np.isinf(thresholds[i]):
        thr = thresholds[j]
    else:
        thr = thresholds[i] + alpha * (thresholds[j] - thresholds[i])
    return float(rate), float(thr)


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------

def det_curve(scores, labels):
    """False-acceptance and false-rejection rates at every distinct threshold.

    Parameters
    ----------
    scores : array-like of shape (n_trials,)
        Trial scores; larger means more likely a target trial. Must be finite.
    labels : array-like of shape (n_trials,)
        1 (or True) for target trials, 0 (or False) for non-target trials.

    Returns
    -------
    far : ndarray of shape (n_thresholds,)
        False-acceptance rate, the fraction of non-target scores
        ``>= thresholds[i]``; non-decreasing.
    frr : ndarray of shape (n_thresholds,)
        False-rejection rate, the fraction of target scores
        ``< thresholds[i]``; non-increasing.
    thresholds : ndarray of shape (n_thresholds,)
        ``+inf`` (accept nothing: far 0, frr 1) followed by the distinct
        scores in decreasing order; ``n_thresholds = n_unique_scores + 1``.
        The last one is the lowest score (accept everything: far 1, frr 0).

    Raises
    ------
    ValueError
        If the lengths differ, a score is NaN or infinite, a label is not 0/1,
        or there are no target or no non-target trials.

    See Also
    --------
    eer, min_dcf, plot_det

    Examples
    --------
    >>> far, frr, thr = det_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> far.tolist()
    [0.0, 0.0, 0.5, 0.5, 1.0]
    >>> frr.tolist()
    [1.0, 0.5, 0.5, 0.0, 0.0]
    >>> thr.tolist()
    [inf, 0.8, 0.4, 0.35, 0.1]
    """
    scores, labels = _check_trials(scores, labels)
    return _roc(scores, labels)


def eer(scores, labels, method="linear"):
    """Equal error rate: the operating point where FAR equals FRR.

    The empirical ROC only takes the values at its vertices (one per distinct
    score), so FAR == FRR rarely happens at a real threshold. The EER is read
    where the straight line ``FAR = FRR`` crosses a piecewise-linear curve
    through the vertices:

    * ``method="linear"`` (default): the curve joins consecutive ROC vertices
      by straight segments. A segment joins two vertices whose thresholds are
      adjacent distinct scores; a run of tied target and non-target scores
      therefore yields one diagonal segment, which is exactly the expected
      error of breaking those ties at random. This matches the usual
      ``sklearn.metrics.roc_curve`` recipe with linear interpolation.
    * ``method="rocch"``: the curve is the convex hull of the ROC (ROCCH),
      as in the NIST/BOSARIS tools. Every hull point is reachable by a
      randomised mix of two thresholds, so this is the lowest EER that the
      scores' ranking supports; it is never above the linear EER.

    Parameters
    ----------
    scores : array-like of shape (n_trials,)
        Trial scores; larger means more likely a target trial. Must be finite.
    labels : array-like of shape (n_trials,)
        1 (or True) for target trials, 0 (or False) for non-target trials.
    method : {"linear", "rocch"}, default="linear"
        How the crossing is interpolated, see above.

    Returns
    -------
    eer : float
        Equal error rate in [0, 1] (a fraction, not a percentage).
    threshold : float
        Score threshold (accept if ``score >= threshold``) at the crossing,
        interpolated linearly between the two thresholds of the crossed
        segment. When the crossing lies on a vertex it is that vertex's
        threshold; for perfectly separated scores it is the lowest target
        score.

    Raises
    ------
    ValueError
        If the lengths differ, a score is NaN or infinite, a label is not 0/1,
        there are no target or no non-target trials, or `method` is unknown.

    See Also
    --------
    det_curve, min_dcf

    Examples
    --------
    Perfect separation gives 0, with the lowest target score as threshold:

    >>> eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    (0.0, 0.8)

    One target (0.5) scored below one non-target (0.6). The ROC vertices are
    (FAR, FRR) = (0, 1), (0, .5), (.5, .5), (.5, 0), (1, 0); the vertex at
    threshold 0.6 lies on the diagonal, so the linear EER is 0.5. The convex
    hull skips that vertex and crosses the diagonal half-way along the chord
    from (0, .5) to (.5, 0), at 0.25:

    >>> eer([0.1, 0.6, 0.5, 0.9], [0, 0, 1, 1])
    (0.5, 0.6)
    >>> eer([0.1, 0.6, 0.5, 0.9], [0, 0, 1, 1], method="rocch")[0]
    0.25
    """
    if method not in ("linear", "rocch"):
        raise ValueError(f"method must be 'linear' or 'rocch', got {method!r}")
    scores, labels = _check_trials(scores, labels)
    far, frr, thr = _roc(scores, labels)
    if method == "rocch":
        keep = _lower_hull(far, frr)
        far, frr, thr = far[keep], frr[keep], thr[keep]
    return _crossing(far, frr, thr)


def min_dcf(scores, labels, p_target=0.01, c_miss=1.0, c_fa=1.0, normalize=True):
    """Minimum detection cost (NIST SRE DCF) over all score thresholds.

    The detection cost at threshold ``t`` is::

        DCF(t) = c_miss * p_target * FRR(t) + c_fa * (1 - p_target) * FAR(t)

    and the minimum is taken over every ROC vertex, including "accept
    nothing" (``t = +inf``) and "accept everything" (``t`` = lowest score).
    With ``normalize=True`` it is divided by
    ``min(c_miss * p_target, c_fa * (1 - p_target))``, the cost of the better
    of those two trivial systems, so a useless system scores 1 and a perfect
    one 0.

    Parameters
    ----------
    scores : array-like of shape (n_trials,)
        Trial scores; larger means more likely a target trial. Must be finite.
    labels : array-like of shape (n_trials,)
        1 (or True) for target trials, 0 (or False) for non-target trials.
    p_target : float, default=0.01
        Prior probability of a target trial, in (0, 1). NIST SRE 2008-2010
        used 0.01 (with c_miss=10, c_fa=1); SRE 2012+ also 0.001.
    c_miss : float, default=1.0
        Cost of a false rejection (miss); must be > 0.
    c_fa : float, default=1.0
        Cost of a false acceptance (false alarm); must be > 0.
    normalize : bool, default=True
        Divide by the cost of the best trivial system (see above).

    Returns
    -------
    min_dcf : float
        The minimum (normalised) detection cost.
    threshold : float
        A threshold achieving it (accept if ``score >= threshold``): the
        vertex's score, or ``+inf`` when rejecting everything is optimal.
        When several vertices tie, the highest threshold is returned.

    Raises
    ------
    ValueError
        For the input errors listed in `eer`, or parameters out of range.

    See Also
    --------
    eer, det_curve

    Examples
    --------
    >>> scores = [0.1, 0.2, 0.6, 0.5, 0.8, 0.9]
    >>> labels = [0, 0, 0, 1, 1, 1]
    >>> dcf, thr = min_dcf(scores, labels, p_target=0.5)
    >>> round(dcf, 6), thr     # FAR 0, FRR 1/3 at t=0.8: (0.5/3) / 0.5
    (0.333333, 0.8)
    """
    p_target = float(p_target)
    c_miss = float(c_miss)
    c_fa = float(c_fa)
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    if not (c_miss > 0 and c_fa > 0 and np.isfinite(c_miss) and np.isfinite(c_fa)):
        raise ValueError(
            f"c_miss and c_fa must be positive and finite, got {c_miss}, {c_fa}"
        )
    scores, labels = _check_trials(scores, labels)
    far, frr, thr = _roc(scores, labels)
    cost = c_miss * p_target * frr + c_fa * (1.0 - p_target) * far
    i = int(np.argmin(cost))  # first minimum = highest threshold
    best = float(cost[i])
    if normalize:
        best /= min(c_miss * p_target, c_fa * (1.0 - p_target))
    return best, float(thr[i])


def identification_accuracy(predicted, truth, enrolled=None, unknown="unknown"):
    """Fraction of identification trials answered correctly.

    Closed-set (``enrolled=None``): a trial is correct when the predicted
    speaker equals the true speaker.

    Open-set (``enrolled`` given): the system may answer `unknown` to reject
    a trial. A trial whose true speaker is enrolled is correct when the
    prediction equals that speaker (answering `unknown` is an error, a false
    rejection). A trial whose true speaker is *not* enrolled is correct only
    when the prediction is `unknown` (naming any enrolled speaker is a false
    acceptance). The result is the fraction of all trials correct, both kinds
    pooled.

    Parameters
    ----------
    predicted : sequence of hashable, length n_trials
        Predicted speaker ids (or `unknown`).
    truth : sequence of hashable, length n_trials
        True speaker ids.
    enrolled : iterable of hashable, optional
        Ids of the enrolled speakers. Giving it selects the open-set rule.
    unknown : hashable, default="unknown"
        The prediction meaning "not an enrolled speaker" (open set only; in
        the closed-set rule it is just a wrong answer).

    Returns
    -------
    accuracy : float
        In [0, 1].

    Raises
    ------
    ValueError
        If the sequences are empty or differ in length.

    Examples
    --------
    >>> identification_accuracy(["a", "b", "b"], ["a", "b", "c"])
    0.6666666666666666

    Speaker "c" is not enrolled; rejecting it counts as correct:

    >>> identification_accuracy(["a", "unknown", "unknown"], ["a", "b", "c"],
    ...                         enrolled={"a", "b"})
    0.6666666666666666
    """
    predicted = list(predicted)
    truth = list(truth)
    if len(predicted) != len(truth):
        raise ValueError(
            f"predicted and truth differ in length ({len(predicted)} vs "
            f"{len(truth)}); pass one prediction per trial"
        )
    if not truth:
        raise ValueError("no trials: predicted and truth are empty")
    if enrolled is None:
        correct = sum(p == t for p, t in zip(predicted, truth))
    else:
        enrolled = set(enrolled)
        correct = sum(
            (p == t) if t in enrolled else (p == unknown)
            for p, t in zip(predicted, truth)
        )
    return correct / len(truth)
