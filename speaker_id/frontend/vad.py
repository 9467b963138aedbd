"""Energy voice activity detection: frame log-energies and the speech mask.

A frame is speech when its raw log-energy is within ``threshold_db`` of the
loudest frame of the utterance and above an absolute floor. The streaming
extractor applies the same rule causally (:mod:`speaker_id.frontend.streaming`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .config import LOG_FLOOR, FeatureConfig
from .mfcc import _check_signal, config_frames


def frame_energy_db(frames: np.ndarray) -> np.ndarray:
    """Raw log-energy of each frame: mean-square power in dB re full scale.

    ``10 * log10(max(mean(x ** 2), LOG_FLOOR))``, computed on the samples as
    read (no pre-emphasis or window). A full-scale sine gives about -3 dB.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, win_length)

    Returns
    -------
    np.ndarray, shape (n_frames,), dtype float64

    Examples
    --------
    >>> frame_energy_db(np.full((2, 100), 0.1))
    array([-20., -20.])
    """
    frames = np.asarray(frames)
    ms = np.einsum("ij,ij->i", frames, frames).astype(np.float64) / frames.shape[1]
    return 10.0 * np.log10(np.maximum(ms, LOG_FLOOR))


def energy_vad(energy_db: np.ndarray, *, threshold_db: float = 30.0, floor_db: float = -60.0) -> np.ndarray:
    """Energy voice-activity decision from per-frame log-energies.

    A frame is speech when its energy is within `threshold_db` of the
    loudest frame **and** above `floor_db`.

    Parameters
    ----------
    energy_db : np.ndarray, shape (n_frames,)
        Frame energies in dB, e.g. from :func:`frame_energy_db`.
    threshold_db : float, default 30.0
        How far below the loudest frame a frame may be.
    floor_db : float, default -60.0
        Absolute floor in dB.

    Returns
    -------
    np.ndarray, shape (n_frames,), dtype bool

    Examples
    --------
    >>> energy_vad(np.array([-90.0, -50.0, -20.0, -10.0]), threshold_db=30.0)
    array([False, False,  True,  True])
    """
    e = np.asarray(energy_db, dtype=np.float64)
    if e.size == 0:
        return np.zeros(0, dtype=bool)
    return (e > e.max() - threshold_db) & (e > floor_db)


def vad_mask(y: np.ndarray, config: Optional[FeatureConfig] = None) -> np.ndarray:
    """Speech/non-speech decision for each frame of a signal.

    The frames are those of :func:`mfcc` (same count and alignment); the
    decision is :func:`energy_vad` of :func:`frame_energy_db` with the
    thresholds of `config` (``vad_threshold_db``, ``vad_floor_db``).

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono float signal in [-1, 1].
    config : FeatureConfig, optional

    Returns
    -------
    np.ndarray, shape (n_frames,), dtype bool

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.concatenate([np.zeros(8000), 0.3 * rng.standard_normal(8000)])
    >>> m = vad_mask(y.astype(np.float32), FeatureConfig())
    >>> bool(m[:40].any()), bool(m[-40:].all())
    (False, True)
    """
    config = config or FeatureConfig()
    y = _check_signal(y)
    frames = config_frames(y, config)
    return energy_vad(frame_energy_db(frames), threshold_db=config.vad_threshold_db, floor_db=config.vad_floor_db)
