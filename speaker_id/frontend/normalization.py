"""Feature normalisation: per-utterance cepstral mean and variance normalisation.

The streaming extractor's sliding-window CMVN lives with it
(:mod:`speaker_id.frontend.streaming`) and reuses :func:`cmvn` for its warm-up.
"""

from __future__ import annotations

import numpy as np


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
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"cmvn expects a non-empty (n_frames, n_features) array, got shape {x.shape}")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    x64 = x.astype(np.float64)
    n = x64.shape[0]
    # np.add.reduce(...) / n is what ndarray.mean computes, without its wrapper's set-up
    mean = np.add.reduce(x64, axis=0) / n
    x64 -= mean
    if variance:
        std = np.sqrt(np.add.reduce(x64 * x64, axis=0) / n)
        std[std < eps] = 1.0
        x64 /= std
    return x64.astype(dtype, copy=False)
