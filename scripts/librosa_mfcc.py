"""The peer's MFCCs: librosa and SciPy only, with the spectrum estimate a FeatureConfig names.

The speed benchmarks time our front end against what a user builds from the
usual libraries for the same features. librosa has no multitaper spectrum,
so for ``window="multitaper"`` the peer sums the power of one
``librosa.stft`` per DPSS taper (``scipy.signal.windows.dpss``, weighted by
their concentrations); a named window is one ``librosa.stft``.
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.signal


def librosa_mfcc(y, cfg, center=True):
    """Static MFCCs of ``y`` as librosa computes them, shape (n_mfcc, n_frames).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    cfg : speaker_id.frontend.config.FeatureConfig
    center : bool, default=True
    """
    stft = dict(n_fft=cfg.fft_size, hop_length=cfg.hop_length, win_length=cfg.win_length, center=center)
    if cfg.window == "multitaper":
        tapers, weights = scipy.signal.windows.dpss(cfg.win_length, (cfg.n_tapers + 1) / 2, Kmax=cfg.n_tapers,
                                                    return_ratios=True)
        power = sum(w * np.abs(librosa.stft(y, window=t, **stft)) ** 2
                    for t, w in zip(np.atleast_2d(tapers), np.atleast_1d(weights)))
    else:
        power = np.abs(librosa.stft(y, window=cfg.window, **stft)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=cfg.sr, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.mel_fmax)
    return librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=cfg.n_mfcc)
