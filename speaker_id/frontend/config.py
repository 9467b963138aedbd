"""The front end's configuration: :class:`FeatureConfig` and :class:`FeatureError`.

One frozen, JSON-friendly object holds every parameter of the MFCC front end
(librosa's names: ``sr``, ``n_mfcc``, ``n_mels``, ``n_fft``, ``fmin``,
``fmax``, ``center``); stores keep ``config.to_dict()`` beside every model
trained on the features.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .limits import MAX_DELTA_WIDTH, MAX_FFT_SIZE, MAX_MELS, MAX_TAPERS, LimitError, check_sample_rate

#: The ``window`` that asks for the multitaper power spectrum instead of one named window.
MULTITAPER = "multitaper"

#: The range of ``vtln_warp``: a vocal tract half or twice as long is already far outside human voices.
MIN_VTLN_WARP, MAX_VTLN_WARP = 0.5, 2.0

#: Floor applied to mel energies before the log (as ``amin`` in librosa),
#: so a digital-silence frame gives -100 dB instead of -inf.
LOG_FLOOR = 1e-10


class FeatureError(ValueError):
    """Features cannot be computed from the given audio.

    Raised when the audio is shorter than one frame, when voice activity
    detection keeps no frame, or when the input is not a finite 1-D float
    signal. The message says which limit was hit and how to change it.
    """


def _next_pow2(n: int) -> int:
    return 1 << (int(n) - 1).bit_length()


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the MFCC front end; frozen, hashable and JSON-friendly.

    Store ``config.to_dict()`` next to every model trained on the features,
    and rebuild it with :meth:`from_dict`: features of enrollment and test
    audio must come from the same configuration.

    Parameters
    ----------
    sr : int, default 16000
        Sample rate the audio is loaded (and resampled) at, in Hz, between
        1000 and 384000. Use the corpus' own rate (8000 for telephone speech
        or FSDD) rather than upsampling. Sizes that would cost memory out of
        proportion (FFT points, mel bands, delta width, hop below 1 ms) are
        bounded by :mod:`~speaker_id.frontend.limits`.
    n_mfcc : int, default 20
        Number of cepstral coefficients kept, c0 included (c0 tracks the
        frame's log-energy; CMVN removes its level).
    n_mels : int, default 40
        Number of mel bands.
    frame_length_ms : float, default 25.0
        Analysis window length in milliseconds; ``win_length`` is
        ``round(sr * frame_length_ms / 1000)`` samples (400 at 16 kHz).
    hop_length_ms : float, default 10.0
        Frame shift in milliseconds; ``hop_length`` is
        ``round(sr * hop_length_ms / 1000)`` samples (160 at 16 kHz).
    center : bool, default True
        Pad the signal with ``win_length // 2`` zeros at both ends, so frame
        ``t`` is centred on sample ``t * hop_length`` (librosa's
        ``center=True, pad_mode='constant'``). On FSDD, whose recordings are
        cut tight around the digit, it lifted identification from 99.80 % to
        100 % and lowered the raw EER from 1.03 % to 0.87 % (means over UBM
        seeds 0-4, ``scripts/compare_front_end.py``); on librispeech-mini
        identification (100 %) and T-normalised EER (0 %) stayed, the raw
        EER went from 0.22 % to 0.44 % (one more false alarm of 450).
    n_fft : int or None, default None
        FFT size; ``None`` means the smallest power of two
        ``>= win_length`` (512 at 16 kHz, 256 at 8 kHz). Frames are
        zero-padded to ``n_fft``.
    window : str, default "multitaper"
        ``"multitaper"``: Thomson's multitaper power spectrum, the
        periodograms of `n_tapers` orthogonal DPSS tapers averaged (see
        :mod:`~speaker_id.frontend.spectral`), whose variance is about
        ``1 / n_tapers`` of one window's. Otherwise a window name understood
        by :func:`librosa.filters.get_window` (periodic form), e.g.
        ``"hamming"`` (the default before). Over UBM seeds 0-2 (128
        components, raw EER, FSDD / librispeech-mini /
        arabic-speech-commands) the multitaper gave 0.44 / 0.00 / 2.25 %
        against the Hamming window's 0.67 / 0.00 / 2.81 %
        (``scripts/compare_front_end.py --setting window='hamming'``).
    n_tapers : int, default 4
        Tapers of the multitaper spectrum (time-half-bandwidth
        ``(n_tapers + 1) / 2``, so a resolution of ``(n_tapers + 1)`` over
        the frame length: 200 Hz with 4 tapers and 25 ms frames); unused
        with a named window. Over the same seeds arabic-speech-commands gave 2.45 /
        2.27 / 2.25 / 2.65 / 3.05 % with 2 / 3 / 4 / 6 / 8 tapers: more
        smooth away the harmonics' detail.
    fmin : float, default 20.0
        Lowest mel band edge in Hz; keeps DC and mains hum out.
    fmax : float or None, default None
        Highest mel band edge in Hz; ``None`` means ``sr / 2`` (the whole
        band: 8 kHz for 16 kHz audio, 4 kHz for 8 kHz audio). For
        narrow-band audio stored at a higher rate set it to the true band
        edge (e.g. 3800).
    vtln_warp : float, default 1.0
        Vocal tract length perturbation: the mel bands are laid on a
        frequency axis scaled by this factor (piecewise linear, ``fmax``
        fixed; see :func:`~speaker_id.frontend.spectral.vtln_frequencies`),
        so a voice sounds as if its vocal tract were ``1 / vtln_warp`` as
        long. Between 0.5 and 2. The i-vector back end's training makes
        pseudo-speakers of the training speakers with it (``vtln_warps`` of
        :func:`speaker_id.operations.train_models` and
        :func:`speaker_id.evaluation.protocols.evaluate`); stores keep 1.0,
        the value every enrolled and tested utterance is extracted with.
    preemphasis : float, default 0.97
        Pre-emphasis coefficient applied inside each frame; 0 disables it.
    deltas : bool, default True
        Append delta and delta-delta coefficients (3 * n_mfcc features).
    delta_width : int, default 9
        Number of frames (odd, >= 3) in the delta regression window.
    vad : bool, default True
        Keep only frames whose raw log-energy is within `vad_threshold_db`
        of the utterance's loudest frame and above `vad_floor_db`.
    vad_threshold_db : float, default 30.0
        Relative VAD threshold in dB below the loudest frame. The loudest
        frame always passes it, so only an utterance that is entirely below
        the floor loses all its frames.
    vad_floor_db : float, default -60.0
        Absolute VAD floor: frame mean-square power in dB relative to full
        scale (a full-scale sine is -3 dB; 16-bit digital silence is below
        -90 dB). Frames quieter than this are never speech.
    cmvn : bool, default False
        Normalise each feature to zero mean and unit variance over the kept
        frames of the utterance (the prior fields below are then unused).
    prior_frames : float or None, default 200.0
        With ``cmvn=False``: shrink each utterance's feature mean towards
        the training mean ``prior_mean`` as if that mean came with
        ``prior_frames`` frames of its own, i.e. subtract
        ``n / (n + prior_frames) * (utterance mean - prior_mean)`` from the
        utterance's ``n`` kept frames (Kaldi's online CMVN takes 200 frames
        of global statistics as its prior the same way). A long utterance
        is mean-normalised, so a channel's offset goes; a short one, whose
        mean says more about what was said than about the channel, keeps
        most of its level, which carries the speaker. ``None``: no mean
        normalisation. Over UBM seeds 0-2 (128 components, raw EER,
        FSDD / librispeech-mini / arabic-speech-commands, one Hamming
        window) it gave 0.67 /
        0.00 / 2.81 % against 1.04 / 0.37 / 3.22 % with per-utterance
        ``cmvn`` and 0.80 / 0.00 / 3.20 % with none
        (``scripts/normalisation_experiment.py``).
    prior_mean : tuple of float or None, default None
        The mean of the training features (``n_features`` values) before
        any normalisation. Training a UBM (``speaker-id train-ubm``,
        :func:`~speaker_id.evaluation.protocols.evaluate`) computes it from
        the training speakers' frames and stores the configuration with it
        (:meth:`with_prior`). While it is ``None`` the features are returned
        un-normalised, which is what it is computed from.

    Examples
    --------
    >>> cfg = FeatureConfig(sr=8000)
    >>> cfg.win_length, cfg.hop_length, cfg.fft_size, cfg.n_features
    (200, 80, 256, 60)
    >>> FeatureConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    sr: int = 16000
    n_mfcc: int = 20
    n_mels: int = 40
    frame_length_ms: float = 25.0
    hop_length_ms: float = 10.0
    center: bool = True
    n_fft: Optional[int] = None
    window: str = MULTITAPER
    n_tapers: int = 4
    fmin: float = 20.0
    fmax: Optional[float] = None
    vtln_warp: float = 1.0
    preemphasis: float = 0.97
    deltas: bool = True
    delta_width: int = 9
    vad: bool = True
    vad_threshold_db: float = 30.0
    vad_floor_db: float = -60.0
    cmvn: bool = False
    prior_frames: Optional[float] = 200.0
    prior_mean: Optional[tuple] = None

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ValueError(f"FeatureConfig: {msg}")

        def as_int(name: str, minimum: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                fail(f"{name} must be an integer, got {v!r}")
            if v < minimum:
                fail(f"{name} must be >= {minimum}, got {v!r}")
            object.__setattr__(self, name, int(v))

        def as_float(name: str, optional: bool = False) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                fail(f"{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))

        def as_bool(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_)):
                fail(f"{name} must be True or False, got {v!r}")
            object.__setattr__(self, name, bool(v))

        as_int("sr", 1)
        try:
            check_sample_rate(self.sr, "sr")
        except LimitError as exc:
            fail(str(exc))
        as_int("n_mfcc", 1)
        as_int("n_mels", 1)
        as_int("delta_width", 3)
        for name in ("frame_length_ms", "hop_length_ms", "fmin", "vtln_warp", "preemphasis", "vad_threshold_db",
                     "vad_floor_db"):
            as_float(name)
        as_float("fmax", optional=True)
        for name in ("center", "deltas", "vad", "cmvn"):
            as_bool(name)
        if self.n_fft is not None:
            as_int("n_fft", 2)
        if not isinstance(self.window, str):
            fail(f"window must be 'multitaper' or a window name such as 'hamming' or 'hann', got {self.window!r}")
        as_int("n_tapers", 1)
        if self.n_tapers > MAX_TAPERS:
            fail(f"n_tapers must be at most {MAX_TAPERS} (4 is the default), got {self.n_tapers}")

        if self.n_mfcc > self.n_mels:
            fail(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        if self.frame_length_ms <= 0 or self.hop_length_ms <= 0:
            fail("frame_length_ms and hop_length_ms must be positive")
        if self.win_length < 2:
            fail(f"frame_length_ms={self.frame_length_ms} gives {self.win_length} sample(s) at sr={self.sr}; use a longer frame")
        if self.window == MULTITAPER and self.n_tapers >= self.win_length:
            fail(f"n_tapers ({self.n_tapers}) must be below the frame's {self.win_length} samples; use fewer tapers")
        if self.hop_length < 1:
            fail(f"hop_length_ms={self.hop_length_ms} gives 0 samples at sr={self.sr}; use a longer hop")
        if self.n_fft is not None and self.n_fft < self.win_length:
            fail(f"n_fft ({self.n_fft}) must be >= win_length ({self.win_length} samples); use n_fft=None for the next power of two")
        if self.fft_size > MAX_FFT_SIZE:
            fail(f"the frames take {self.fft_size} FFT points (win_length {self.win_length}), more than the "
                 f"{MAX_FFT_SIZE} allowed; use a shorter frame_length_ms or a smaller n_fft")
        if self.hop_length_ms < 1.0:
            fail(f"hop_length_ms must be at least 1 ms (10 ms is usual), got {self.hop_length_ms}")
        if self.n_mels > MAX_MELS:
            fail(f"n_mels must be at most {MAX_MELS} (40 is usual), got {self.n_mels}")
        nyquist = self.sr / 2
        if self.fmin < 0:
            fail(f"fmin must be >= 0, got {self.fmin}")
        if self.fmax is not None and not (self.fmin < self.fmax <= nyquist):
            fail(f"fmax must lie in (fmin={self.fmin}, sr/2={nyquist}], got {self.fmax}; use None for sr/2")
        if self.fmin >= self.mel_fmax:
            fail(f"fmin ({self.fmin}) must be below fmax ({self.mel_fmax})")
        if not MIN_VTLN_WARP <= self.vtln_warp <= MAX_VTLN_WARP:
            fail(f"vtln_warp must lie in [{MIN_VTLN_WARP}, {MAX_VTLN_WARP}] (1.0 leaves the voice as it is; 0.9 and "
                 f"1.1 are usual for augmentation), got {self.vtln_warp}")
        if not 0.0 <= self.preemphasis < 1.0:
            fail(f"preemphasis must lie in [0, 1), got {self.preemphasis}; use 0 to disable it")
        if self.delta_width % 2 == 0:
            fail(f"delta_width must be odd, got {self.delta_width}")
        if self.delta_width > MAX_DELTA_WIDTH:
            fail(f"delta_width must be at most {MAX_DELTA_WIDTH} frames (9 is usual), got {self.delta_width}")
        if self.vad_threshold_db <= 0:
            fail(f"vad_threshold_db must be positive (dB below the loudest frame), got {self.vad_threshold_db}")
        as_float("prior_frames", optional=True)
        if self.prior_frames is not None and self.prior_frames <= 0:
            fail(f"prior_frames must be positive (frames of weight given to the training mean) or None, "
                 f"got {self.prior_frames}")
        if self.prior_mean is not None:
            if isinstance(self.prior_mean, (str, bytes)) or not hasattr(self.prior_mean, "__len__") \
                    or len(self.prior_mean) != self.n_features:
                fail(f"prior_mean must hold n_features={self.n_features} numbers (the training features' mean); "
                     "train the UBM again to compute it")
            try:
                mean = tuple(float(v) for v in self.prior_mean)
            except (TypeError, ValueError):
                fail("prior_mean must hold numbers (the training features' mean); train the UBM again to compute it")
            if not np.all(np.isfinite(mean)):
                fail("prior_mean holds a non-finite value; train the UBM again to compute it")
            if self.cmvn or self.prior_frames is None:
                fail("prior_mean is set but unused (cmvn=True or prior_frames=None); drop it or set "
                     "cmvn=False and prior_frames")
            object.__setattr__(self, "prior_mean", mean)

    # Derived sizes -------------------------------------------------------

    @property
    def win_length(self) -> int:
        """Window length in samples, ``round(sr * frame_length_ms / 1000)``."""
        return int(round(self.sr * self.frame_length_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Frame shift in samples, ``round(sr * hop_length_ms / 1000)``."""
        return int(round(self.sr * self.hop_length_ms / 1000.0))

    @property
    def fft_size(self) -> int:
        """FFT size in use: `n_fft`, or the next power of two >= `win_length`."""
        return self.n_fft if self.n_fft is not None else _next_pow2(self.win_length)

    @property
    def mel_fmax(self) -> float:
        """Highest mel band edge in Hz in use: `fmax`, or ``sr / 2``."""
        return self.fmax if self.fmax is not None else self.sr / 2.0

    @property
    def n_features(self) -> int:
        """Number of feature columns :func:`extract` returns."""
        return self.n_mfcc * (3 if self.deltas else 1)

    @property
    def needs_prior(self) -> bool:
        """True when the features wait for a training mean (``prior_frames`` set, ``prior_mean`` not yet)."""
        return not self.cmvn and self.prior_frames is not None and self.prior_mean is None

    def with_prior(self, mean) -> "FeatureConfig":
        """This configuration with ``prior_mean`` set to ``mean`` (the training features' mean).

        Parameters
        ----------
        mean : array-like of shape (n_features,)

        Returns
        -------
        FeatureConfig
        """
        return dataclasses.replace(self, prior_mean=tuple(float(v) for v in np.asarray(mean, dtype=np.float64)))

    # Serialisation -------------------------------------------------------

    def to_dict(self) -> dict:
        """Return the configuration as a plain dict (JSON-serialisable).

        Returns
        -------
        dict
            One entry per field, with Python ``int``/``float``/``bool``/
            ``str``/``None`` values.

        Examples
        --------
        >>> import json
        >>> d = FeatureConfig(n_mfcc=13).to_dict()
        >>> d["n_mfcc"], FeatureConfig.from_dict(json.loads(json.dumps(d))).n_mfcc
        (13, 13)
        """
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if d["prior_mean"] is not None:
            d["prior_mean"] = list(d["prior_mean"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        """Build a configuration from a dict such as :meth:`to_dict` returns.

        Missing keys take their defaults, except ``center``, ``cmvn`` and
        ``prior_frames``: a dict without one was written before the option
        (or its default) changed, when frames were not padded, utterances
        were normalised by their own mean and variance and no prior was
        used, so it means ``center=False``, ``cmvn=True`` or
        ``prior_frames=None``. Unknown keys are an error (they
        usually mean a typo or a file written by another version).

        Parameters
        ----------
        d : dict
            Field names to values.

        Returns
        -------
        FeatureConfig

        Raises
        ------
        ValueError
            For an unknown key or an invalid value.

        Examples
        --------
        >>> FeatureConfig.from_dict({"sr": 8000}).hop_length
        80
        >>> FeatureConfig.from_dict({"sr": 8000}).center, FeatureConfig.from_dict({"center": True}).center
        (False, True)
        >>> FeatureConfig.from_dict({"n_mfc": 13})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: FeatureConfig: unknown key(s) ['n_mfc']; known keys: ...
        """
        if not isinstance(d, dict):
            raise ValueError(f"FeatureConfig.from_dict expects a dict, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"FeatureConfig: unknown key(s) {unknown}; known keys: {', '.join(known)}")
        return cls(**{"center": False, "cmvn": True, "prior_frames": None, **d})
