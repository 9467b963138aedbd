"""Static MFCCs of a signal: framing (centred or not), spectra, log mel, DCT.

The per-frame part of the chain (:func:`mfcc_from_frames`) is separate from
the framing (:func:`config_frames`) so that a streaming extractor can frame
chunks itself and get the same numbers.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .blas_threads import one_blas_thread
from .config import FeatureConfig, FeatureError
from .spectral import dct_matrix, frame_signal, log_mel, mel_filterbank, power_spectrum


def _check_signal(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise FeatureError(f"expected a mono 1-D signal of shape (n_samples,), got shape {y.shape}; mix channels first (see speaker_id.frontend.audio.load_audio)")
    if not np.issubdtype(y.dtype, np.floating):
        raise FeatureError(f"expected float samples in [-1, 1], got dtype {y.dtype}; convert PCM integers first (e.g. y / 32768 for int16)")
    if not np.isfinite(y).all():
        raise FeatureError("the signal contains NaN or infinite samples; clean or re-decode the audio")
    return np.ascontiguousarray(y, dtype=np.float32)


def config_frames(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The frames of a whole signal as `config` frames it (centred or not).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
    config : FeatureConfig

    Returns
    -------
    np.ndarray, shape (n_frames, config.win_length)
        With ``config.center``, ``y`` padded with ``win_length // 2`` zeros at
        both ends, then :func:`frame_signal`.

    Examples
    --------
    >>> config_frames(np.ones(400, np.float32), FeatureConfig()).shape  # 1 + 400 // 160
    (3, 400)
    >>> config_frames(np.ones(400, np.float32), FeatureConfig(center=False)).shape
    (1, 400)
    """
    if config.center:
        pad = config.win_length // 2
        padded = np.zeros(y.shape[0] + 2 * pad, dtype=y.dtype)  # np.pad(y, pad), without its 15 us of set-up
        padded[pad : pad + y.shape[0]] = y
        y = padded
    return frame_signal(y, win_length=config.win_length, hop_length=config.hop_length)


def _check_length(y: np.ndarray, config: FeatureConfig) -> None:
    if y.shape[0] < config.win_length:
        raise FeatureError(
            f"audio too short: {y.shape[0]} samples ({y.shape[0] / config.sr * 1000:.1f} ms at "
            f"sr={config.sr}) is less than one frame of {config.win_length} samples "
            f"({config.frame_length_ms:g} ms); use a longer recording (a FeatureConfig with a smaller "
            f"frame_length_ms accepts shorter ones)"
        )


def mfcc_from_frames(frames: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """MFCCs of already-framed samples.

    The per-frame part of the chain, for callers (such as a streaming
    extractor) that do their own framing.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, config.win_length)
        Frames as rows, samples in [-1, 1].
    config : FeatureConfig

    Returns
    -------
    np.ndarray, shape (n_frames, config.n_mfcc), dtype float32

    Examples
    --------
    >>> cfg = FeatureConfig(sr=8000)
    >>> y = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    >>> frames = config_frames(y, cfg)
    >>> bool(np.array_equal(mfcc_from_frames(frames, cfg), mfcc(y, cfg)))
    True
    """
    if frames.ndim != 2 or frames.shape[1] != config.win_length:
        raise ValueError(f"frames must have shape (n_frames, {config.win_length}), got {frames.shape}")
    power = power_spectrum(frames, n_fft=config.fft_size, window=config.window, preemphasis=config.preemphasis,
                           n_tapers=config.n_tapers)
    basis = mel_filterbank(config.sr, config.fft_size, config.n_mels, config.fmin, config.mel_fmax, config.vtln_warp)
    with one_blas_thread():
        return log_mel(power, basis) @ dct_matrix(config.n_mels, config.n_mfcc)


def mfcc(y: np.ndarray, config: Optional[FeatureConfig] = None) -> np.ndarray:
    """Static MFCCs of a signal, one row per frame (no deltas, VAD or CMVN).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono float signal in [-1, 1] at ``config.sr``.
    config : FeatureConfig, optional
        Defaults to ``FeatureConfig()``.

    Returns
    -------
    np.ndarray, shape (n_frames, config.n_mfcc), dtype float32
        ``n_frames = 1 + n_samples // hop_length`` with ``config.center`` (and an even
        ``win_length``), else ``1 + (n_samples - win_length) // hop_length``.

    Raises
    ------
    FeatureError
        If `y` is not a finite 1-D float signal or is shorter than one frame.

    Examples
    --------
    >>> y = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    >>> mfcc(y).shape  # 1 + 16000 // 160 centred frames
    (101, 20)
    """
    config = config or FeatureConfig()
    y = _check_signal(y)
    _check_length(y, config)
    return mfcc_from_frames(config_frames(y, config), config)
