"""Framing and spectra: frames, power spectra, the mel filterbank, the DCT.

Pure functions of arrays, frames as rows. A named window comes from librosa
(:func:`librosa.filters.get_window`), the multitaper's tapers from SciPy
(:func:`scipy.signal.windows.dpss`) and the mel filterbank from librosa
(:func:`librosa.filters.mel`, or its triangles on a warped frequency axis for
vocal tract length perturbation); each is computed once per parameter tuple and
cached in ``_TABLES``, which :func:`speaker_id.frontend.extraction.extract_files`
hands to its worker processes.

The multitaper power spectrum (``window="multitaper"``) is Thomson's: the
frame is multiplied by each of ``K`` discrete prolate spheroidal sequences
(time-half-bandwidth ``NW = (K + 1) / 2``) and their periodograms are
averaged, weighted by the tapers' spectral concentrations. The tapers are
orthogonal, so the ``K`` estimates are nearly independent and the average's
variance is about ``1/K`` of one window's, at the cost of a bandwidth of
``2 NW / frame length`` (200 Hz with 4 tapers and 25 ms frames). Kinnunen
et al., "Low-variance multitaper MFCC features: a case study in robust
speaker verification" (IEEE TASLP, 2012) measured the same for MFCCs.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft

from .config import LOG_FLOOR, MULTITAPER


def frame_count(n_samples: int, win_length: int, hop_length: int) -> int:
    """Number of whole frames in a signal, with no padding.

    ``1 + (n_samples - win_length) // hop_length`` when
    ``n_samples >= win_length``, else 0.

    Parameters
    ----------
    n_samples : int
        Signal length in samples.
    win_length : int
        Frame length in samples.
    hop_length : int
        Frame shift in samples.

    Returns
    -------
    int

    Examples
    --------
    >>> frame_count(16000, 400, 160)
    98
    >>> frame_count(399, 400, 160)
    0
    """
    if n_samples < win_length:
        return 0
    return 1 + (n_samples - win_length) // hop_length


def frame_signal(y: np.ndarray, *, win_length: int, hop_length: int) -> np.ndarray:
    """Cut a signal into overlapping frames (a read-only view, no copy).

    Frame ``t`` is ``y[t * hop_length : t * hop_length + win_length]``;
    samples after the last whole frame are not used.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Signal.
    win_length : int
        Frame length in samples.
    hop_length : int
        Frame shift in samples.

    Returns
    -------
    frames : np.ndarray, shape (n_frames, win_length)
        ``n_frames = frame_count(len(y), win_length, hop_length)``.

    Examples
    --------
    >>> frame_signal(np.arange(10.0), win_length=4, hop_length=3)
    array([[0., 1., 2., 3.],
           [3., 4., 5., 6.],
           [6., 7., 8., 9.]])
    """
    y = np.ascontiguousarray(y)
    if y.ndim != 1:
        raise ValueError(f"frame_signal expects a 1-D signal, got shape {y.shape}")
    n = frame_count(y.shape[0], win_length, hop_length)
    step = y.strides[0]
    # a view of y's memory (what as_strided makes, for a fifth of its cost)
    frames = np.ndarray((n, win_length), dtype=y.dtype, buffer=y, strides=(hop_length * step, step))
    frames.flags.writeable = False
    return frames


# Window and mel filterbank per parameter tuple, computed once per process.
# A plain dict rather than functools.lru_cache so that extract_files can hand
# the parent's tables to its workers (which then never import librosa).
_TABLES: dict = {}


# Frames transformed at once by power_spectrum (with 4 tapers of 512 points, 0.5 MB of spectra),
# fewer when their tapered copies would take more than _BLOCK_BYTES (long frames, many tapers).
_BLOCK_FRAMES = 64
_BLOCK_BYTES = 2**20


def _window(window: str, win_length: int, n_tapers: int = 1) -> np.ndarray:
    """The tapers whose periodograms sum to the power spectrum, shape (n_tapers or 1, win_length).

    One row for a named window (periodic). For ``"multitaper"``, ``n_tapers``
    DPSS tapers (symmetric: the periodic form, cut from one sample longer,
    loses their concentration), each scaled by the square root of its weight (its
    concentration over the sum of them) and all by the energy of the Hamming
    window of the same length, so that white noise has the same expected
    power either way.
    """
    key = ("window", window, win_length, n_tapers if window == MULTITAPER else 1)
    w = _TABLES.get(key)
    if w is None:
        if window == MULTITAPER:
            import scipy.signal

            # (n_tapers, win_length), each of unit energy
            tapers, concentration = scipy.signal.windows.dpss(
                win_length, (n_tapers + 1) / 2, Kmax=n_tapers, return_ratios=True)
            hamming = scipy.signal.get_window("hamming", win_length, fftbins=True)
            scale = np.sqrt(np.sum(hamming ** 2) * concentration / concentration.sum())
            w = (tapers * scale[:, None]).astype(np.float32)
        else:
            import librosa

            w = librosa.filters.get_window(window, win_length, fftbins=True).astype(np.float32)[None, :]
        w.flags.writeable = False
        _TABLES[key] = w
    return w


def power_spectrum(
    frames: np.ndarray,
    *,
    n_fft: int,
    window: str = "hamming",
    preemphasis: float = 0.0,
    n_tapers: int = 4,
) -> np.ndarray:
    """Power spectrum of each frame after pre-emphasis and windowing.

    Parameters
    ----------
    frames : np.ndarray, shape (n_frames, win_length)
        Frames as rows, e.g. from :func:`frame_signal`.
    n_fft : int
        FFT size, ``>= win_length``; frames are zero-padded at the end.
    window : str, default "hamming"
        ``"multitaper"`` for Thomson's multitaper estimate (see the module),
        or a window name for :func:`librosa.filters.get_window` (periodic).
    preemphasis : float, default 0.0
        Coefficient ``a`` of the in-frame pre-emphasis ``x[i] - a x[i-1]``
        (the first sample becomes ``(1 - a) x[0]``); 0 disables it.
    n_tapers : int, default 4
        Tapers of the multitaper estimate; unused with a named window.

    Returns
    -------
    power : np.ndarray, shape (n_frames, 1 + n_fft // 2), dtype float32
        ``|rfft(window * x)|**2`` per frame; with ``"multitaper"`` the
        weighted sum of the tapers' ``|rfft(taper_k * x)|**2``.

    Examples
    --------
    >>> sr, n = 8000, 256
    >>> t = np.arange(n) / sr
    >>> tone = np.sin(2 * np.pi * 1000 * t)[None, :]
    >>> int(np.argmax(power_spectrum(tone, n_fft=n, window="hann")[0]))  # 1000 Hz bin
    32
    """
    frames = np.asarray(frames)
    if frames.ndim != 2:
        raise ValueError(f"power_spectrum expects frames of shape (n_frames, win_length), got {frames.shape}")
    n_frames, win_length = frames.shape
    if n_fft < win_length:
        raise ValueError(f"n_fft ({n_fft}) must be >= the frame length ({win_length})")
    if window == MULTITAPER and not (isinstance(n_tapers, (int, np.integer)) and 1 <= n_tapers < win_length):
        raise ValueError(f"n_tapers must be an integer from 1 to the frame length - 1 ({win_length - 1}), got {n_tapers!r}")
    tapers = _window(window, win_length, n_tapers)
    n_bins = n_fft // 2 + 1
    power = np.empty((n_frames, n_bins), dtype=np.float32)
    # blocks of frames small enough that their tapered copies, spectra and squares stay in cache
    block = max(1, min(_BLOCK_FRAMES, n_frames, _BLOCK_BYTES // (4 * len(tapers) * n_fft)))
    emphasised = np.empty((block, win_length), dtype=np.float32)
    padded = np.zeros((len(tapers), block, n_fft), dtype=np.float32)  # the zero tail is the FFT's padding
    squares = np.empty((len(tapers), block, n_bins), dtype=np.float32)
    for start in range(0, n_frames, block):
        rows = frames[start:start + block]
        b = len(rows)
        e = emphasised[:b]
        if preemphasis:
            np.multiply(rows[:, :-1], -preemphasis, out=e[:, 1:], casting="unsafe")
            e[:, 1:] += rows[:, 1:]
            np.multiply(rows[:, 0], 1.0 - preemphasis, out=e[:, 0], casting="unsafe")
        else:
            e[...] = rows
        np.multiply(e[None], tapers[:, None, :], out=padded[:, :b, :win_length])
        spec = scipy.fft.rfft(padded[:, :b], axis=2)
        out, q = power[start:start + b], squares[:, :b]
        np.square(spec.real, out=q)  # |z|^2 without the square root of np.abs
        np.sum(q, axis=0, out=out)
        np.square(spec.imag, out=q)
        out += q.sum(axis=0)
    return power


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, vtln_warp: float = 1.0) -> np.ndarray:
    """Slaney-style mel filterbank, transposed so frames-as-rows multiply it.

    Computed once per argument tuple and cached; the returned array is
    read-only. Unwarped, it is :func:`librosa.filters.mel` (``htk=False,
    norm='slaney'``). With ``vtln_warp`` the same triangles are laid on a
    warped frequency axis (:func:`vtln_frequencies`): a component at ``f``
    Hz falls in the bands an unwarped filterbank gives a component at
    ``vtln_warp * f`` (vocal tract length perturbation).

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    n_fft : int
        FFT size.
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Lowest and highest band edges in Hz.
    vtln_warp : float, default 1.0
        Frequency scale factor (> 1: a shorter vocal tract, formants higher).

    Returns
    -------
    basis : np.ndarray, shape (1 + n_fft // 2, n_mels), dtype float32
        ``power @ basis`` gives mel energies.

    Examples
    --------
    >>> mel_filterbank(16000, 512, 40, 20.0, 8000.0).shape
    (257, 40)
    """
    key = ("mel", int(sr), int(n_fft), int(n_mels), float(fmin), float(fmax), float(vtln_warp))
    basis = _TABLES.get(key)
    if basis is None:
        import librosa

        if vtln_warp == 1.0:
            basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float32)
        else:
            edges = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)
            heard = vtln_frequencies(np.linspace(0.0, sr / 2.0, 1 + n_fft // 2), vtln_warp, fmax)
            basis = _triangles(heard, edges).astype(np.float32)
        basis = np.ascontiguousarray(basis.T)
        basis.flags.writeable = False
        _TABLES[key] = basis
    return basis


#: Where the warp of :func:`vtln_frequencies` stops being a pure scaling, as a fraction of ``fmax``.
VTLN_KNEE = 0.8


def vtln_frequencies(freqs: np.ndarray, vtln_warp: float, fmax: float) -> np.ndarray:
    """The frequencies an unwarped filterbank would put ``freqs`` at, for a warp factor.

    Piecewise linear, so the band stays whole: ``vtln_warp * f`` up to a
    knee, then a straight line to ``fmax``, which maps to itself; above
    ``fmax`` nothing moves. The knee is at ``VTLN_KNEE * fmax /
    max(1, vtln_warp)``, so the scaled part never passes ``VTLN_KNEE * fmax``.

    Parameters
    ----------
    freqs : np.ndarray, shape (n,)
        Frequencies in Hz, ascending.
    vtln_warp : float
        Scale factor of the frequencies below the knee.
    fmax : float
        The filterbank's top edge in Hz.

    Returns
    -------
    np.ndarray, shape (n,)
        Ascending, with ``0 -> 0`` and ``fmax -> fmax``.

    Examples
    --------
    >>> vtln_frequencies(np.array([0.0, 1000.0, 8000.0]), 1.1, 8000.0)
    array([   0., 1100., 8000.])
    """
    knee = VTLN_KNEE * fmax / max(1.0, vtln_warp)
    return np.interp(freqs, [0.0, knee, fmax, max(fmax, float(freqs[-1])) + 1.0],
                     [0.0, vtln_warp * knee, fmax, max(fmax, float(freqs[-1])) + 1.0])


def _triangles(freqs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Slaney-normalised triangular bands with corners ``edges`` (Hz), sampled at ``freqs``: shape (n_bands, n)."""
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lo) / (mid - lo)
    falling = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))


def log_mel(power: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Log mel energies in dB with a fixed floor.

    ``10 * log10(max(power @ basis, LOG_FLOOR))``. The floor is a constant,
    not relative to the utterance, so each frame's value depends only on
    that frame.

    Parameters
    ----------
    power : np.ndarray, shape (n_frames, 1 + n_fft // 2)
        Power spectra, e.g. from :func:`power_spectrum`.
    basis : np.ndarray, shape (1 + n_fft // 2, n_mels)
        Filterbank from :func:`mel_filterbank`.

    Returns
    -------
    np.ndarray, shape (n_frames, n_mels), dtype float32

    Examples
    --------
    >>> basis = mel_filterbank(8000, 256, 40, 20.0, 4000.0)
    >>> round(float(log_mel(np.zeros((3, 129), np.float32), basis)[0, 0]), 3)  # silence -> floor
    -100.0
    """
    mel = np.asarray(power, dtype=np.float32) @ basis
    np.maximum(mel, LOG_FLOOR, out=mel)
    np.log10(mel, out=mel)
    mel *= 10.0
    return mel


@functools.lru_cache(maxsize=32)
def dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """Orthonormal DCT-II matrix keeping the first `n_mfcc` coefficients.

    ``C[m, k] = s_k cos(pi k (2 m + 1) / (2 n_mels))`` with
    ``s_0 = sqrt(1 / n_mels)`` and ``s_k = sqrt(2 / n_mels)`` otherwise, so
    ``log_mel @ C`` equals ``scipy.fft.dct(log_mel, norm='ortho')[:, :n_mfcc]``
    (what :func:`librosa.feature.mfcc` computes).

    Parameters
    ----------
    n_mels : int
        Number of mel bands (input size).
    n_mfcc : int
        Number of coefficients kept, ``<= n_mels``.

    Returns
    -------
    np.ndarray, shape (n_mels, n_mfcc), dtype float32, read-only

    Examples
    --------
    >>> C = dct_matrix(40, 40).astype(np.float64)
    >>> bool(np.allclose(C.T @ C, np.eye(40), atol=1e-6))
    True
    """
    m = np.arange(n_mels)[:, None]
    k = np.arange(n_mfcc)[None, :]
    c = np.cos(np.pi * k * (2 * m + 1) / (2.0 * n_mels)) * np.sqrt(2.0 / n_mels)
    c[:, 0] = np.sqrt(1.0 / n_mels)
    c = np.ascontiguousarray(c, dtype=np.float32)
    c.flags.writeable = False
    return c
