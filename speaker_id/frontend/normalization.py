"""Feature normalisation: per-utterance cepstral mean and variance normalisation.

The streaming extractor's sliding-window CMVN lives with it
(:mod:`speaker_id.frontend.streaming`) and reuses :func:`cmvn` for its warm-up.
"""

from __future__ import annotations

import numpy as np


def _float64_frames(features, caller):
    """A float64 copy of a non-empty (n_frames, n_features) array, and the float dtype to return."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{caller} expects a non-empty (n_frames, n_features) array, got shape {x.shape}")
    return x.astype(np.float64), (x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


def cmvn(features: np.ndarray, *, variance: bool = True, eps: float = 1e-8) -> np.ndarray:
    """Per-utterance cepstral mean (and variance) normalisation.

    Subtracts each column's mean and, when `variance` is true, divides by
    its standard deviation, both over the frames given. A column whose
    standard deviation is below `eps` (constant) is only centred, to zeros.
    Statistics are accumulated in float64.

    Parameters
    ----------
    features : np.ndarray, shape (n_frames, n_features)
    variance : bool, default True
        Also scale to unit variance.
    eps : float, default 1e-8
        Standard deviations below this are treated as zero.

    Returns
    -------
    np.ndarray, shape (n_frames, n_features), same float dtype as the input

    Examples
    --------
    >>> x = np.array([[1.0, 10.0], [3.0, 10.0]])
    >>> cmvn(x)
    array([[-1.,  0.],
           [ 1.,  0.]])
    """
    x64, dtype = _float64_frames(features, "cmvn")
    n = x64.shape[0]
    # np.add.reduce(...) / n is what ndarray.mean computes, without its wrapper's set-up
    mean = np.add.reduce(x64, axis=0) / n
    x64 -= mean
    if variance:
        std = np.sqrt(np.add.reduce(x64 * x64, axis=0) / n)
        std[std < eps] = 1.0
        x64 /= std
    return x64.astype(dtype, copy=False)


def prior_cmn(features: np.ndarray, prior_mean, prior_frames: float) -> np.ndarray:
    """Mean normalisation shrunk towards a prior mean: ``x - n / (n + prior_frames) * (mean(x) - prior_mean)``.

    The utterance's mean is estimated as if ``prior_frames`` frames at
    ``prior_mean`` came before its ``n`` frames; that estimate's offset
    from the prior is removed. See ``FeatureConfig.prior_frames``.

    Parameters
    ----------
    features : np.ndarray, shape (n_frames, n_features)
    prior_mean : array-like, shape (n_features,)
    prior_frames : float
        Positive.

    Returns
    -------
    np.ndarray, shape (n_frames, n_features), same float dtype as the input

    Examples
    --------
    >>> x = np.array([[1.0, 10.0], [3.0, 10.0]])
    >>> prior_cmn(x, [0.0, 0.0], 2.0)   # half way: n / (n + 2) = 0.5
    array([[0., 5.],
           [2., 5.]])
    """
    x64, dtype = _float64_frames(features, "prior_cmn")
    n = x64.shape[0]
    offset = n / (n + float(prior_frames)) * (np.add.reduce(x64, axis=0) / n - np.asarray(prior_mean, dtype=np.float64))
    x64 -= offset
    return x64.astype(dtype, copy=False)


def apply_prior(features: np.ndarray, config) -> np.ndarray:
    """:func:`prior_cmn` of features extracted while ``config`` still waited for its prior (float32).

    Parameters
    ----------
    features : np.ndarray, shape (n_frames, n_features)
        Un-normalised, from :func:`~speaker_id.frontend.extraction.extract`
        with ``config`` before :meth:`FeatureConfig.with_prior`.
    config : FeatureConfig
        With ``prior_mean`` set.
    """
    return np.ascontiguousarray(prior_cmn(features, config.prior_mean, config.prior_frames), dtype=np.float32)


def fit_prior(config, training):
    """``config`` with the mean of the training utterances' frames as its prior.

    Parameters
    ----------
    config : FeatureConfig
        One that :attr:`~speaker_id.frontend.config.FeatureConfig.needs_prior`.
    training : sequence of np.ndarray, each of shape (n_frames_i, n_features)
        Features of the training speakers' utterances, extracted with ``config``.

    Returns
    -------
    FeatureConfig
        Normalise every utterance (training, enrollment, test) with
        :func:`apply_prior` and it.
    """
    if not config.needs_prior:
        raise ValueError("this configuration does not wait for a training mean; nothing to fit.")
    total = np.zeros(config.n_features)
    n_frames = 0
    for X in training:
        total += np.add.reduce(np.asarray(X), axis=0, dtype=np.float64)
        n_frames += len(X)
    if n_frames == 0:
        raise ValueError("no training frames to compute the features' mean from.")
    return config.with_prior(total / n_frames)
