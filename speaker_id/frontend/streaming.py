"""Features of an audio stream, frame by frame as the audio arrives.

:class:`StreamingFeatureExtractor` runs the chain of
:mod:`speaker_id.frontend` on chunks of any length (one sample to minutes)
and emits each frame as soon as it can be computed. What it gives, against
:func:`speaker_id.frontend.extraction.extract` on the whole recording:

* **MFCCs, deltas and delta-deltas are the offline numbers** (to float
  rounding, whatever the chunking): with ``config.center`` the stream is
  padded with ``win_length // 2`` zeros when it starts and when it is
  flushed, exactly as a whole recording is; each frame's MFCCs depend on
  its own samples only, and the deltas need
  ``delta_width // 2`` frames of look-ahead (4 frames, 40 ms by default),
  with the first frame repeated before the stream and the last one after it
  (:meth:`~StreamingFeatureExtractor.flush`). A frame is therefore emitted
  ``delta_width // 2`` hops after its last sample arrives.
* **VAD becomes causal.** Offline, a frame is speech when its energy is within
  ``vad_threshold_db`` of the loudest frame *of the utterance*. Here the
  first ``vad_warmup_frames`` frames (1 s) are held and judged against the
  loudest of them; later frames against the loudest frame so far
  (``vad_memory_s=None``), or the loudest of the last ``vad_memory_s``
  seconds, so levels can change over a long stream. Frames after the
  utterance's loudest frame get the offline decision exactly, and so does
  every frame of an utterance of at most 1 s; earlier frames of a longer
  one may pass that offline would drop.
* **Normalisation becomes causal.** Offline, each utterance is normalised
  with the statistics of all its speech frames (its mean shrunk towards
  the training mean, or with ``cmvn`` its mean and variance). Here a frame
  is normalised with the statistics of the last ``cmvn_window_s`` seconds
  of speech frames, itself included (``None``: every speech frame so far). So that
  the first frames are not normalised with almost no statistics, the first
  ``cmvn_min_frames`` speech frames are held back and normalised together
  with their own statistics: a one-off start-up delay. An utterance of at
  most 1 s (``vad_warmup_frames`` frames, so at most ``cmvn_min_frames``
  speech frames), pushed and flushed, gives exactly the offline features.

The extractor keeps a bounded state (a frame of samples, ``delta_width``
frames of context, the CMVN window), and splits very large pushes into
blocks, so memory does not grow with the stream. Samples that are NaN or
infinite or absurdly large are replaced by silence and counted, and samples
at or beyond full scale (clipping) are counted; see
:attr:`~StreamingFeatureExtractor.n_nonfinite_`,
:attr:`~StreamingFeatureExtractor.n_out_of_range_` and
:attr:`~StreamingFeatureExtractor.n_clipped_`. Audio at another sample
rate than the configuration's is resampled on the fly (soxr, the resampler
:func:`speaker_id.frontend.audio.load_audio` uses) or refused.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from numba import njit
from scipy.ndimage import maximum_filter1d

from streamgmm.numba_cache import CACHE

from .config import FeatureConfig, FeatureError
from .deltas import acceleration_weights, delta_weights, filter_valid
from .limits import MAX_SAMPLE_MAGNITUDE, check_resampling, check_sample_rate
from .mfcc import mfcc_from_frames
from .normalization import cmvn, prior_cmn
from .spectral import frame_count, frame_signal
from .vad import frame_energy_db

__all__ = ["FrameBlock", "StreamingFeatureExtractor"]

#: Samples analysed per step of a large push (about 10 s at 16 kHz).
_BLOCK_SAMPLES = 160_000

#: Samples at or above this magnitude count as clipped (0.999 is -0.01 dB re full scale).
CLIP_LEVEL = 0.999


class FrameBlock(NamedTuple):
    """Frames emitted by one push.

    Attributes
    ----------
    features : np.ndarray, shape (n_frames, n_features), dtype float32
        The frames' features (speech frames only when the VAD is on).
    frame_index : np.ndarray, shape (n_frames,), dtype int64
        Index of each frame in the stream; frame ``i`` covers samples
        ``i * hop_length - pad .. i * hop_length - pad + win_length`` at
        ``config.sr``, with ``pad = win_length // 2`` when ``config.center``
        (frame ``i`` is centred on sample ``i * hop_length``), else 0.
    """

    features: np.ndarray
    frame_index: np.ndarray


def _check_seconds(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds{' or None' if allow_none else ''}, got {value!r}")
    return float(value)


class StreamingFeatureExtractor:
    """MFCC features of an audio stream pushed in chunks of any length.

    Parameters
    ----------
    config : FeatureConfig, optional
        The front end of the models the features are for (a store's
        ``feature_config``). Defaults to ``FeatureConfig()``.
    sr : int, optional
        Sample rate of the pushed audio in Hz; defaults to ``config.sr``.
    resample : bool, default True
        When ``sr`` differs from ``config.sr``: resample on the fly (True)
        or refuse with a :class:`FeatureError` (False).
    vad_memory_s : float or None, default None
        The VAD compares each frame with the loudest frame of the last
        ``vad_memory_s`` seconds; ``None``: the loudest frame so far (the
        causal form of the offline rule).
    cmvn_window_s : float or None, default 3.0
        Seconds of speech frames whose mean and variance normalise a frame;
        ``None``: all speech frames so far.
    cmvn_min_frames : int, default 100
        Speech frames held back at the start and normalised with their own
        statistics (1 s at the default 10 ms hop).
    vad_warmup_frames : int, default 100
        Frames held back at the start and judged by the VAD against the
        loudest of them (1 s); 0 judges every frame against the running peak
        from the first frame on.

    Attributes
    ----------
    n_samples_in_ : int
        Samples pushed so far, at the pushed rate.
    n_frames_ : int
        Frames analysed so far (speech or not).
    n_emitted_ : int
        Frames emitted so far.
    n_nonfinite_ : int
        NaN or infinite samples replaced by zeros.
    n_out_of_range_ : int
        Samples beyond ``limits.MAX_SAMPLE_MAGNITUDE`` (invalid floats, whose
        squares would overflow) replaced by zeros.
    n_clipped_ : int
        Samples with ``|x| >= CLIP_LEVEL`` (0.999): the input is likely clipping.

    Examples
    --------
    >>> from speaker_id.frontend import extract
    >>> cfg = FeatureConfig(sr=8000, vad=False, cmvn=False)
    >>> y = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    >>> stream = StreamingFeatureExtractor(cfg)
    >>> blocks = [stream.push(y[i:i + 333]) for i in range(0, len(y), 333)] + [stream.flush()]
    >>> X = np.concatenate([b.features for b in blocks])
    >>> X.shape, bool(np.allclose(X, extract(y, cfg), atol=1e-4))
    ((101, 60), True)
    """

    def __init__(
        self,
        config: Optional[FeatureConfig] = None,
        *,
        sr: Optional[int] = None,
        resample: bool = True,
        vad_memory_s: Optional[float] = None,
        cmvn_window_s: Optional[float] = 3.0,
        cmvn_min_frames: int = 100,
        vad_warmup_frames: int = 100,
    ):
        self.config = config or FeatureConfig()
        if not isinstance(self.config, FeatureConfig):
            raise TypeError(f"config must be a FeatureConfig, got {type(self.config).__name__}")
        cfg = self.config
        sr = cfg.sr if sr is None else sr
        self.sr = check_sample_rate(sr, "the stream's sample rate", error=FeatureError)
        self.resample = bool(resample)
        if self.sr != cfg.sr and not self.resample:
            raise FeatureError(
                f"the stream is at {self.sr} Hz but the models' features are at {cfg.sr} Hz; "
                f"resample the stream (leave out --no-resample) or send audio at {cfg.sr} Hz"
            )
        if self.sr != cfg.sr:
            check_resampling(self.sr, cfg.sr, error=FeatureError)
        self.vad_memory_s = _check_seconds("vad_memory_s", vad_memory_s)
        self.cmvn_window_s = _check_seconds("cmvn_window_s", cmvn_window_s)
        if isinstance(cmvn_min_frames, bool) or not isinstance(cmvn_min_frames, (int, np.integer)) or cmvn_min_frames < 1:
            raise ValueError(f"cmvn_min_frames must be a positive integer, got {cmvn_min_frames!r}")
        self.cmvn_min_frames = int(cmvn_min_frames)
        if isinstance(vad_warmup_frames, bool) or not isinstance(vad_warmup_frames, (int, np.integer)) \
                or vad_warmup_frames < 0:
            raise ValueError(f"vad_warmup_frames must be a non-negative integer, got {vad_warmup_frames!r}")
        self.vad_warmup_frames = int(vad_warmup_frames)
        hop_s = cfg.hop_length / cfg.sr
        self._vad_memory = None if self.vad_memory_s is None else max(1, int(round(self.vad_memory_s / hop_s)))
        window = None if self.cmvn_window_s is None else max(1, int(round(self.cmvn_window_s / hop_s)))
        self._cmvn_window = window
        # (prior mean, prior frames) of the mean normalisation towards the training mean; frames 0: CMVN
        self._prior = ((np.asarray(cfg.prior_mean, dtype=np.float64), float(cfg.prior_frames))
                       if not cfg.cmvn and cfg.prior_mean is not None else (np.zeros(cfg.n_features), 0.0))
        self._half = cfg.delta_width // 2
        self._pad = cfg.win_length // 2 if cfg.center else 0
        self._weights = np.stack([delta_weights(cfg.delta_width), acceleration_weights(cfg.delta_width)])
        self.reset()

    # ------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the stream: the next push starts a new one at time 0."""
        cfg = self.config
        self._resampler = None
        if self.sr != cfg.sr:
            import soxr

            self._resampler = soxr.ResampleStream(self.sr, cfg.sr, 1, dtype="float32", quality="HQ")
        # from (padded) sample n_frames_ * hop_length on; a centred stream starts with its padding
        self._samples = np.zeros(self._pad, dtype=np.float32)
        self._context = None  # static MFCCs: deltas' look-back and pending frames
        self._pending_from = 0  # stream index of the first frame not yet through the deltas
        self._vad_queue = np.zeros(0)  # energies of frames waiting for their deltas
        self._energies = np.zeros(0)  # the last vad_memory - 1 energies decided
        self._peak = -np.inf
        self._vad_held = [] if self.vad_warmup_frames else None  # warm-up: (features, index, energy)
        width = self.config.n_features
        self._held = []  # CMVN warm-up: (features, frame index) blocks
        self._n_held = 0
        ring = self._cmvn_window or 1
        self._ring = np.zeros((ring, width))
        self._sums = np.zeros((2, width))  # sum and sum of squares over the CMVN window
        self._counts = np.zeros(2, dtype=np.int64)  # frames in the window, frames seen
        self._finished = False
        self.n_samples_in_ = 0
        self.n_frames_ = 0
        self.n_emitted_ = 0
        self.n_nonfinite_ = 0
        self.n_out_of_range_ = 0
        self.n_clipped_ = 0

    @property
    def latency_frames(self) -> int:
        """Hops between a frame's last sample arriving and the frame's emission (delta look-ahead)."""
        return self._half if self.config.deltas else 0

    @property
    def time_s(self) -> float:
        """Seconds of audio pushed so far."""
        return self.n_samples_in_ / self.sr

    def frame_time(self, frame_index) -> np.ndarray:
        """End time in seconds of frames given by their stream index.

        Parameters
        ----------
        frame_index : int or np.ndarray of int, shape (n,)

        Returns
        -------
        float or np.ndarray, shape (n,)
        """
        cfg = self.config
        return (np.asarray(frame_index) * cfg.hop_length + cfg.win_length - self._pad) / cfg.sr

    # ------------------------------------------------------------ input
    def _clean(self, samples) -> np.ndarray:
        y = np.asarray(samples)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise FeatureError(
                f"push expects mono samples of shape (n_samples,), got shape {y.shape}; "
                f"mix the channels first, e.g. samples.mean(axis=1)"
            )
        if not np.issubdtype(y.dtype, np.floating):
            raise FeatureError(
                f"push expects float samples in [-1, 1], got dtype {y.dtype}; convert PCM integers "
                f"first (e.g. samples / 32768 for int16)"
            )
        y = np.array(y, dtype=np.float32)  # a copy: the caller's buffer is not changed
        bad = ~np.isfinite(y)
        if bad.any():
            self.n_nonfinite_ += int(np.count_nonzero(bad))
            y[bad] = 0.0
        huge = np.abs(y) > MAX_SAMPLE_MAGNITUDE
        if huge.any():  # their squares would overflow the front end's sums
            self.n_out_of_range_ += int(np.count_nonzero(huge))
            y[huge] = 0.0
        self.n_clipped_ += int(np.count_nonzero(np.abs(y) >= CLIP_LEVEL))
        return y

    def push(self, samples) -> FrameBlock:
        """Add audio to the stream; return the frames it completes.

        Parameters
        ----------
        samples : array-like, shape (n_samples,)
            Mono float samples in [-1, 1] at :attr:`sr`; any length, also 0.

        Returns
        -------
        FrameBlock
            ``features`` of shape (n_new, n_features), float32, and their
            ``frame_index``; frames come out in stream order, each once.

        Raises
        ------
        FeatureError
            For samples that are not a 1-D float array, or a push after
            :meth:`flush`.
        """
        if self._finished:
            raise FeatureError("the stream was flushed; call reset() to start a new stream")
        y = self._clean(samples)
        self.n_samples_in_ += y.size
        if self._resampler is not None:
            y = self._resampler.resample_chunk(y, last=False)
        return self._concatenate([self._analyse(y[i:i + _BLOCK_SAMPLES]) for i in range(0, y.size, _BLOCK_SAMPLES)])

    def flush(self) -> FrameBlock:
        """End the stream: emit the frames still waiting for look-ahead.

        Trailing samples that do not fill a frame are dropped, as offline.
        After a flush, :meth:`push` raises until :meth:`reset`.

        Returns
        -------
        FrameBlock
        """
        if self._finished:
            return self._empty()
        blocks = []
        if self._resampler is not None:
            blocks.append(self._analyse(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)))
        if self._pad:
            blocks.append(self._analyse(np.zeros(self._pad, np.float32)))
        self._finished = True
        static = np.zeros((0, self.config.n_mfcc), dtype=np.float32)
        blocks.append(self._deltas_and_after(static, np.zeros(0), final=True))
        blocks.append(self._release_held())
        return self._concatenate(blocks)

    @property
    def n_decided_(self) -> int:
        """Frames through the deltas and the VAD: emitted, dropped as non-speech, or held for CMVN."""
        return self._pending_from

    @property
    def n_pending_samples(self) -> int:
        """Samples (the start padding included) not yet part of a whole frame."""
        return int(self._samples.size)

    # ------------------------------------------------------------ stages
    def _empty(self) -> FrameBlock:
        return FrameBlock(np.zeros((0, self.config.n_features), np.float32), np.zeros(0, np.int64))

    def _concatenate(self, blocks) -> FrameBlock:
        blocks = [b for b in blocks if b is not None]
        if not blocks:
            return self._empty()
        if len(blocks) == 1:
            return blocks[0]
        return FrameBlock(np.concatenate([b.features for b in blocks]),
                          np.concatenate([b.frame_index for b in blocks]))

    def _analyse(self, y) -> FrameBlock:
        cfg = self.config
        buf = np.concatenate([self._samples, y]) if self._samples.size else y
        n = frame_count(buf.size, cfg.win_length, cfg.hop_length)
        if n == 0:
            self._samples = buf
            return self._empty()
        frames = frame_signal(buf, win_length=cfg.win_length, hop_length=cfg.hop_length)
        static = mfcc_from_frames(frames, cfg)
        energy = frame_energy_db(frames) if cfg.vad else np.zeros(n)
        self._samples = buf[n * cfg.hop_length:].copy()
        self.n_frames_ += n
        return self._deltas_and_after(static, energy, final=False)

    def _deltas_and_after(self, static, energy, final) -> FrameBlock:
        """Deltas need ``half`` frames either side; emit what has them, keep the rest."""
        cfg = self.config
        first = self._pending_from
        if not cfg.deltas:
            feats = static
        else:
            half = self._half
            if self._context is None:
                if static.shape[0] == 0:
                    return self._empty()
                self._context = np.repeat(static[:1], half, axis=0)  # frame 0 repeated before the stream
            context = np.concatenate([self._context, static])
            if final:
                context = np.concatenate([context, np.repeat(context[-1:], half, axis=0)])
            n_ready = max(context.shape[0] - 2 * half, 0)
            feats = np.concatenate(
                [context[half:half + n_ready], *filter_valid(context, self._weights)], axis=1
            )
            self._context = context[n_ready:]
        n_ready = feats.shape[0]
        self._pending_from = first + n_ready
        index = np.arange(first, first + n_ready, dtype=np.int64)
        if cfg.vad:
            feats, index = self._speech(feats, index, energy, final)
        if cfg.cmvn or cfg.prior_mean is not None:
            return self._normalise(feats, index)
        return self._emit(feats, index)

    def _speech(self, feats, index, energy, final):
        """Keep the speech frames among ``feats`` (their energies arrive ahead of the deltas).

        The first ``vad_warmup_frames`` frames are held and decided together
        against the loudest of them; later frames against the running peak.
        """
        n_ready = feats.shape[0]
        self._vad_queue = np.concatenate([self._vad_queue, energy])
        e, self._vad_queue = self._vad_queue[:n_ready], self._vad_queue[n_ready:]
        if self._vad_held is None:
            return self._running_vad(feats, index, e)
        self._vad_held.append((feats, index, e))
        if sum(len(h[2]) for h in self._vad_held) < self.vad_warmup_frames and not final:
            return feats[:0], index[:0]
        feats, index, e = (np.concatenate(parts) for parts in zip(*self._vad_held))
        self._vad_held = None
        w = self.vad_warmup_frames
        if e.size:
            self._peak = e[:w].max()
        if self._vad_memory is not None:
            self._energies = e[:w][-(self._vad_memory - 1):] if self._vad_memory > 1 else np.zeros(0)
        first = self._decide(feats[:w], index[:w], e[:w], np.full(e[:w].shape, self._peak))
        rest = self._running_vad(feats[w:], index[w:], e[w:])
        return np.concatenate([first[0], rest[0]]), np.concatenate([first[1], rest[1]])

    def _running_vad(self, feats, index, e):
        """Decide frames against the loudest so far, or of the last ``vad_memory_s``."""
        if self._vad_memory is None:
            peak = np.maximum.accumulate(np.concatenate([[self._peak], e]))[1:]
            if e.size:
                self._peak = peak[-1]
        else:
            m = self._vad_memory
            history = np.concatenate([self._energies, e])
            peak = maximum_filter1d(history, size=m, origin=(m - 1) // 2, mode="nearest")[self._energies.size:] \
                if history.size else history
            self._energies = history[-(m - 1):] if m > 1 else np.zeros(0)
        return self._decide(feats, index, e, peak)

    def _decide(self, feats, index, e, peak):
        cfg = self.config
        keep = (e > peak - cfg.vad_threshold_db) & (e > cfg.vad_floor_db)
        return feats[keep], index[keep]

    def _normalise(self, feats, index) -> FrameBlock:
        if self._counts[1] < self.cmvn_min_frames and feats.shape[0]:
            take = min(self.cmvn_min_frames - int(self._counts[1]) - self._n_held, feats.shape[0])
            self._held.append((feats[:take], index[:take]))
            self._n_held += take
            feats, index = feats[take:], index[take:]
            if self._n_held < self.cmvn_min_frames:
                return self._empty()
            return self._concatenate([self._release_held(), self._normalise(feats, index)])
        out = np.empty(feats.shape, dtype=np.float32)
        window = self._cmvn_window or 0
        _sliding_cmvn(np.ascontiguousarray(feats), self._ring, self._sums, self._counts, window, out,
                      *self._prior)
        return self._emit(out, index)

    def _release_held(self):
        """Normalise the start-up frames with their own statistics (the offline CMVN over them)."""
        if not self._n_held:
            return None
        feats = np.concatenate([f for f, _ in self._held])
        index = np.concatenate([i for _, i in self._held])
        self._held, self._n_held = [], 0
        # the frames enter the sliding window (its output is not used) ...
        _sliding_cmvn(feats, self._ring, self._sums, self._counts, self._cmvn_window or 0, np.empty_like(feats),
                      *self._prior)
        # ... and are normalised as offline, with their own statistics
        cfg = self.config
        return self._emit(cmvn(feats) if cfg.cmvn else prior_cmn(feats, cfg.prior_mean, cfg.prior_frames), index)

    def _emit(self, feats, index) -> FrameBlock:
        self.n_emitted_ += feats.shape[0]
        return FrameBlock(np.ascontiguousarray(feats, dtype=np.float32), index)


@njit(cache=CACHE)
def _sliding_cmvn(x, ring, sums, counts, window, out, prior, prior_frames):
    """Normalise each row with the mean and deviation of the last ``window`` rows, itself included.

    With ``prior_frames > 0`` only the mean is removed, shrunk towards
    ``prior`` (D,) as :func:`~speaker_id.frontend.normalization.prior_cmn`
    does: ``x - (sum - m * prior) / (m + prior_frames)`` over the ``m`` rows.

    ``window == 0`` means every row so far. ``ring`` (window, D) holds the
    rows in the window, ``sums`` (2, D) their sum and sum of squares,
    ``counts`` = [rows in the window, rows seen]. The sums are recomputed
    from the ring once per ``window`` rows so rounding cannot accumulate.
    """
    n, d = x.shape
    for t in range(n):
        seen = counts[1]
        if window > 0:
            slot = seen % window
            if counts[0] == window:
                for j in range(d):
                    old = ring[slot, j]
                    sums[0, j] -= old
                    sums[1, j] -= old * old
            else:
                counts[0] += 1
            for j in range(d):
                v = np.float64(x[t, j])
                ring[slot, j] = v
                sums[0, j] += v
                sums[1, j] += v * v
            if slot == window - 1:
                for j in range(d):
                    s0 = 0.0
                    s1 = 0.0
                    for r in range(counts[0]):
                        s0 += ring[r, j]
                        s1 += ring[r, j] * ring[r, j]
                    sums[0, j] = s0
                    sums[1, j] = s1
        else:
            counts[0] += 1
            for j in range(d):
                v = np.float64(x[t, j])
                sums[0, j] += v
                sums[1, j] += v * v
        counts[1] = seen + 1
        m = counts[0]
        for j in range(d):
            if prior_frames > 0:
                out[t, j] = np.float64(x[t, j]) - (sums[0, j] - m * prior[j]) / (m + prior_frames)
                continue
            mean = sums[0, j] / m
            var = sums[1, j] / m - mean * mean
            std = np.sqrt(var) if var > 1e-16 else 1.0
            out[t, j] = (np.float64(x[t, j]) - mean) / std
