"""Synthetic speech-like audio for distinct synthetic speakers.

A small source-filter voice model, fast enough to build a test corpus in
memory (about 150-200 times real time at 16 kHz), so that ``speaker-id demo`` and the
tests run on a machine with no speech corpus. It is not meant to sound
natural; it is meant to have the properties a GMM-UBM system relies on:

* every utterance of a speaker shares a *voice*: mean F0 and intonation
  range, vocal-tract length (all formants scaled together), per-formant
  offsets, a personal vowel system (idiolect), glottal pulse shape,
  spectral tilt, breathiness, jitter, shimmer and speaking rate
  (`SyntheticSpeaker`);
* every utterance has different *content*: a random sequence of syllables
  (vowels, sonorant and fricative onsets), pauses and an intonation contour
  drawn from its own seed (`synthesize`).

Signal model (per utterance)
----------------------------
1. A timeline of segments: phrases of words of 1-3 syllables; a syllable is
   an optional onset (fricative /s/, /sh/, /f/, /h/ or sonorant /m n l r w j/)
   and a vowel nucleus (one of eleven vowels, schwa the most frequent);
   short pauses between some words and longer ones between phrases.
2. F0 contour, in semitones about the speaker's mean F0: phrase declination,
   pitch accents on stressed vowels, an occasional final rise and a slow
   random wander, all scaled by the speaker's ``f0_range``; its mean over
   voiced time is exactly zero, so the mean log-F0 is ``log(f0_mean)``.
3. Glottal source: Rosenberg pulses (raised-cosine opening, quarter-cosine
   closing, open quotient per speaker) placed at pitch epochs that carry
   jitter, with per-period amplitudes carrying shimmer, differentiated
   (the glottal flow derivative, which includes lip radiation); plus
   pitch-synchronous aspiration noise (breathiness); then a one-pole
   low-pass for the speaker's spectral tilt.
4. Vocal tract: a cascade of second-order all-pole resonators with unity
   gain at DC. F1-F3 follow the vowel and sonorant targets with linear
   transitions between them; above them sit the fixed formants of a
   neutral tube (3500, 4500, 5500, ... Hz), as many as fit below
   0.45 * sr, and a short FIR adds the gain of the ones left out (Klatt's
   "higher-pole correction"), so the spectrum does not collapse above the
   last resonator. All formants are scaled by the speaker's
   ``vocal_tract_scale``, F1-F4 also by ``1 + formant_offsets[i]``. The
   fixed part runs first (one ``scipy.signal.sosfilt`` call), then F3, F2,
   F1 (``scipy.signal.lfilter``, coefficients updated every 5 ms, the
   state carried over so that ringing keeps its amplitude and phase: no
   clicks).
5. Fricatives: band-limited noise bursts (/s/, /sh/, /f/); /h/ is noise fed
   through the vocal tract instead of the voice source.
6. Level: the voiced parts are scaled to an RMS of -26 dBFS (the
   occasional utterance whose peaks would pass -1 dBFS is turned down), and a faint
   white noise floor (-75 dBFS) is added, so the signal never contains
   digital silence (log energies stay finite). A fixed level, rather than
   peak normalisation, keeps the floor at the same distance below the
   speech in every utterance.

Formant targets are the classic adult-male averages of American English
vowels (Peterson and Barney, 1952), rounded.

Examples
--------
>>> spk = SyntheticSpeaker.random(seed=3)
>>> audio = synthesize(spk, duration=1.0, sr=16000, seed=0)
>>> audio.shape, audio.dtype
((16000,), dtype('float32'))
>>> corpus = make_corpus(n_speakers=2, n_utterances=3, duration=0.5, seed=0)
>>> [(s, u) for s, u, _ in corpus][:2]
[('spk000', 'spk000_utt000'), ('spk000', 'spk000_utt001')]
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import signal

__all__ = [
    "SyntheticSpeaker",
    "Segment",
    "Utterance",
    "synthesize",
    "make_speakers",
    "make_corpus",
]

# (F1, F2, F3) in Hz: adult male vowel averages (Peterson & Barney 1952),
# rounded; keys are ASCII stand-ins for the IPA symbols.
_VOWELS = {
    "i": (270, 2290, 3010),   # heed
    "I": (390, 1990, 2550),   # hid
    "E": (530, 1840, 2480),   # head
    "ae": (660, 1720, 2410),  # had
    "a": (730, 1090, 2440),   # hod
    "O": (570, 840, 2410),    # hawed
    "U": (440, 1020, 2240),   # hood
    "u": (300, 870, 2240),    # who'd
    "V": (640, 1190, 2390),   # hud
    "3": (490, 1350, 1690),   # heard
    "@": (500, 1500, 2500),   # schwa (neutral tube)
}
# How often each vowel is drawn: a rough stand-in for running English, where
# reduced central vowels dominate; steadier long-term spectra than uniform.
_VOWEL_P = dict(i=0.08, I=0.13, E=0.08, ae=0.06, a=0.06, O=0.04, U=0.03,
                u=0.06, V=0.07, **{"3": 0.04, "@": 0.35})
# Rough formant targets for sonorant consonants (voiced, weak).
_SONORANTS = {
    "m": (280, 1000, 2200),
    "n": (280, 1600, 2600),
    "l": (360, 1000, 2700),
    "r": (350, 1150, 1600),
    "w": (300, 700, 2200),
    "j": (270, 2100, 3000),
}
# Above F3 the formants are those of a neutral (uniform) tube, odd
# multiples of 500 Hz before scaling: F4 = 3500, F5 = 4500, ... Every one
# below 0.45 * sr gets a resonator; the effect of the rest on the band (a
# rising gain toward Nyquist, Klatt's "higher-pole correction") is added by
# a short linear-phase FIR, so the spectrum does not collapse above the last
# resonator.
_TUBE_F1 = 500.0
_BANDWIDTHS_123 = np.array([70.0, 95.0, 140.0])  # Hz; higher ones 6 % of F
_MAX_CORRECTION_DB = 24.0
_FRICATIVES = ("s", "sh", "f", "h")
_FRICATIVE_P = (0.35, 0.2, 0.2, 0.25)
_FRICATIVE_LEVEL = {"s": 0.22, "sh": 0.25, "f": 0.08}  # RMS re voiced RMS
_H_LEVEL = 0.6  # /h/ noise RMS re voiced source RMS, before the vocal tract

_HOP_SECONDS = 0.005  # formant / F0 update interval
_LEVEL_DB = -26.0  # RMS of the voiced parts, dB re full scale
_PEAK = 0.89  # -1 dBFS, ceiling for the occasional loud utterance


class Segment(NamedTuple):
    """One planned segment of a synthetic utterance (times in seconds)."""

    start: float
    end: float
    kind: str  # "pause", "vowel", "sonorant" or "fricative"
    label: str  # vowel / consonant symbol, "" for pauses


class Utterance(NamedTuple):
    """One item of `make_corpus`; unpacks as ``(speaker_id, utt_id, audio)``."""

    speaker_id: str
    utt_id: str
    audio: np.ndarray


@dataclass(frozen=True)
class SyntheticSpeaker:
    """The voice of one synthetic speaker.

    All utterances synthesised for a speaker share these parameters; the
    content (syllables, pauses, intonation) varies with the utterance seed.
    The defaults are an average adult-male-like voice.

    Parameters
    ----------
    f0_mean : float, default=120.0
        Mean fundamental frequency in Hz (geometric mean over voiced time),
        in [50, 400].
    f0_range : float, default=2.0
        Scale of the intonation in semitones, in [0, 12]: declination and
        pitch accents are multiples of it; the F0 contour's standard
        deviation over voiced time comes out at about 0.6 of it.
    vocal_tract_scale : float, default=1.0
        Factor applied to all formant frequencies; inversely proportional to
        vocal-tract length. About 1.0 for an adult male, 1.15-1.2 for an
        adult female; allowed range [0.7, 1.5].
    spectral_tilt : float, default=4.0
        Extra attenuation of the glottal source at 3 kHz, in dB, from a
        one-pole low-pass; larger is a darker, softer voice. In [0, 30].
    breathiness : float, default=0.1
        RMS of the aspiration noise relative to the voiced source, in
        [0, 2]; it also widens the first formant bandwidth.
    formant_offsets : tuple of 4 floats, default=(0, 0, 0, 0)
        Relative offsets of F1..F4 on top of `vocal_tract_scale`
        (0.05 = 5 % higher), each in [-0.3, 0.3].
    jitter : float, default=0.01
        Relative standard deviation of the pitch-period perturbation,
        in [0, 0.1].
    shimmer : float, default=0.05
        Relative standard deviation of the per-period pulse amplitude,
        in [0, 0.5].
    open_quotient : float, default=0.6
        Fraction of each pitch period the glottis is open, in [0.3, 0.9];
        smaller gives a brighter, pressed voice.
    speaking_rate : float, default=4.5
        Syllables per second (pauses excluded), in [1, 10].
    idiolect : float, default=0.0
        How far the speaker's own vowel system departs from the textbook
        targets: every vowel's (and sonorant's) F1-F3 are multiplied by
        factors drawn once per speaker, with this relative standard
        deviation (clipped at 2.5 of them), in [0, 0.2]. 0 gives the
        textbook targets.
    idiolect_seed : int, default=0
        Seed (>= 0) for those per-vowel factors.

    Examples
    --------
    >>> SyntheticSpeaker(f0_mean=210.0, vocal_tract_scale=1.18).f0_mean
    210.0
    >>> SyntheticSpeaker.random(seed=7) == SyntheticSpeaker.random(seed=7)
    True
    """

    f0_mean: float = 120.0
    f0_range: float = 2.0
    vocal_tract_scale: float = 1.0
    spectral_tilt: float = 4.0
    breathiness: float = 0.1
    formant_offsets: tuple = (0.0, 0.0, 0.0, 0.0)
    jitter: float = 0.01
    shimmer: float = 0.05
    open_quotient: float = 0.6
    speaking_rate: float = 4.5
    idiolect: float = 0.0
    idiolect_seed: int = 0

    def __post_init__(self):
        offsets = tuple(float(v) for v in self.formant_offsets)
        if len(offsets) != 4:
            raise ValueError(
                f"formant_offsets needs 4 values (F1..F4), got {len(offsets)}"
            )
        object.__setattr__(self, "formant_offsets", offsets)
        bounds = {
            "f0_mean": (50.0, 400.0),
            "f0_range": (0.0, 12.0),
            "vocal_tract_scale": (0.7, 1.5),
            "spectral_tilt": (0.0, 30.0),
            "breathiness": (0.0, 2.0),
            "jitter": (0.0, 0.1),
            "shimmer": (0.0, 0.5),
            "open_quotient": (0.3, 0.9),
            "speaking_rate": (1.0, 10.0),
            "idiolect": (0.0, 0.2),
        }
        for name, (lo, hi) in bounds.items():
            value = float(getattr(self, name))
            if not lo <= value <= hi:  # also rejects NaN
                raise ValueError(
                    f"SyntheticSpeaker.{name}={value} is outside [{lo}, {hi}]"
                )
            object.__setattr__(self, name, value)
        seed = self.idiolect_seed
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(
                f"SyntheticSpeaker.idiolect_seed={seed!r} must be a non-negative integer"
            )
        object.__setattr__(self, "idiolect_seed", int(seed))
        for i, v in enumerate(offsets):
            if not -0.3 <= v <= 0.3:
                raise ValueError(
                    f"SyntheticSpeaker.formant_offsets[{i}]={v} is outside [-0.3, 0.3]"
                )

    @classmethod
    def random(cls, seed=None) -> "SyntheticSpeaker":
        """Draw a random speaker.

        Half the speakers are drawn with a low voice (F0 85-150 Hz, vocal
        tract scale 0.88-1.04, adult-male-like), half with a high one
        (F0 165-250 Hz, scale 1.08-1.25); the other parameters are drawn
        independently over their typical ranges, including an idiolect
        (per-vowel formant factors) of 4-10 %. Values are rounded to four
        significant digits so that the repr is readable.

        Parameters
        ----------
        seed : int, numpy.random.SeedSequence or numpy.random.Generator, optional
            Anything `numpy.random.default_rng` accepts; the same seed gives
            the same speaker. None draws fresh entropy.

        Returns
        -------
        speaker : SyntheticSpeaker

        Examples
        --------
        >>> spk = SyntheticSpeaker.random(seed=1)
        >>> 85 <= spk.f0_mean <= 250
        True
        """
        rng = np.random.default_rng(seed)
        if rng.random() < 0.5:
            f0 = rng.uniform(85.0, 150.0)
            scale = rng.uniform(0.88, 1.04)
        else:
            f0 = rng.uniform(165.0, 250.0)
            scale = rng.uniform(1.08, 1.25)
        values = dict(
            f0_mean=f0,
            f0_range=rng.uniform(1.0, 3.5),
            vocal_tract_scale=scale,
            spectral_tilt=rng.uniform(0.0, 8.0),
            breathiness=rng.uniform(0.02, 0.35),
            jitter=rng.uniform(0.003, 0.015),
            shimmer=rng.uniform(0.02, 0.08),
            open_quotient=rng.uniform(0.45, 0.75),
            speaking_rate=rng.uniform(3.5, 6.0),
            idiolect=rng.uniform(0.04, 0.10),
        )
        offsets = np.clip(rng.normal(0.0, 0.05, 4), -0.12, 0.12)
        values = {k: _round_sig(v) for k, v in values.items()}
        return cls(formant_offsets=tuple(_round_sig(v) for v in offsets),
                   idiolect_seed=int(rng.integers(0, 2**31)), **values)


def _round_sig(x, digits=4):
    x = float(x)
    if x == 0.0:
        return 0.0
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


# ---------------------------------------------------------------------------
# planning: the segment timeline, envelopes and targets
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _speaker_targets(idiolect, idiolect_seed):
    """F1-F3 targets (unscaled) of every vowel and sonorant for one speaker."""
    names = list(_VOWELS) + list(_SONORANTS)
    base = np.array([(_VOWELS | _SONORANTS)[v] for v in names], dtype=np.float64)
    if idiolect > 0.0:
        dev = np.random.default_rng(idiolect_seed).standard_normal(base.shape)
        base = base * (1.0 + idiolect * np.clip(dev, -2.5, 2.5))
    return dict(zip(names, base))


def _plan(speaker, duration, rng):
    """Random segment timeline with the keypoints needed for rendering.

    Returns a dict of lists: segments, voiced envelope keypoints, formant
    keypoints, pitch accents and phrases.
    """
    syl = 1.0 / speaker.speaking_rate
    segments: list[Segment] = []
    env_t, env_a = [0.0], [0.0]           # voiced amplitude keypoints
    fmt_t, fmt_f = [], []                 # formant keypoints (F1..F3 unscaled)
    accents = []                          # (centre, width, height in units of f0_range)
    phrases = []                          # (start, end)
    vowel_names = list(_VOWELS)
    vowel_p = np.array([_VOWEL_P[v] for v in vowel_names])
    vowel_p /= vowel_p.sum()
    sonorant_names = list(_SONORANTS)
    targets = _speaker_targets(speaker.idiolect, speaker.idiolect_seed)

    def pause(t, length):
        segments.append(Segment(t, t + length, "pause", ""))
        return t + length

    t = pause(0.0, rng.uniform(0.05, 0.2))
    while t < duration:
        phrase_start = t
        n_words = int(rng.integers(2, 6))
        for w in range(n_words):
            n_syl = int(rng.integers(1, 4))
            stress = int(rng.integers(0, n_syl))
            prev_voiced = False
            for s in range(n_syl):
                onset = rng.random()
                if onset < 0.35:
                    kind = rng.choice(_FRICATIVES, p=_FRICATIVE_P)
                    length = rng.uniform(0.06, 0.13) * 4.5 * syl
                    segments.append(Segment(t, t + length, "fricative", str(kind)))
                    # voicing of a preceding vowel dies out over 15 ms
                    env_t += [t + min(0.015, length / 3), t + length]
                    env_a += [0.0, 0.0]
                    t += length
                    prev_voiced = False
                elif onset < 0.7:
                    label = str(rng.choice(sonorant_names))
                    length = rng.uniform(0.04, 0.08) * 4.5 * syl
                    segments.append(Segment(t, t + length, "sonorant", label))
                    ramp = min(0.015, length / 3)
                    start_amp = 0.25 if prev_voiced else 0.0
                    env_t += [t, t + ramp, t + length]
                    env_a += [start_amp, 0.3, 0.3]
                    target = targets[label] * (1 + rng.normal(0, 0.03, 3))
                    fmt_t += [t + 0.3 * length, t + 0.7 * length]
                    fmt_f += [target, target]
                    t += length
                    prev_voiced = True
                # vowel nucleus
                label = str(rng.choice(vowel_names, p=vowel_p))
                stressed = s == stress
                length = syl * rng.uniform(0.45, 0.8) * (1.35 if stressed else 1.0)
                amp = (1.0 if stressed else rng.uniform(0.55, 0.8))
                segments.append(Segment(t, t + length, "vowel", label))
                attack = min(0.025, 0.3 * length)
                decay = min(0.04, 0.35 * length)
                last_in_word = s == n_syl - 1
                start_amp = 0.3 if prev_voiced else 0.0
                end_amp = 0.0 if last_in_word else 0.3
                env_t += [t, t + attack, t + length - decay, t + length]
                env_a += [start_amp, amp, 0.85 * amp, end_amp]
                target = targets[label] * (1 + rng.normal(0, 0.03, 3))
                trans = min(0.04, 0.35 * length)
                fmt_t += [t + trans, t + length - min(0.02, 0.2 * length)]
                fmt_f += [target, target]
                if stressed:
                    accents.append((t + 0.4 * length, 0.35 * length,
                                    rng.uniform(0.6, 1.4)))
                else:
                    accents.append((t + 0.5 * length, 0.3 * length,
                                    rng.normal(0.0, 0.2)))
                t += length
                prev_voiced = not last_in_word
            if w < n_words - 1 and rng.random() < 0.4:
                t = pause(t, rng.uniform(0.04, 0.15))
                env_t += [t]
                env_a += [0.0]
        if rng.random() < 0.2 and accents:  # question-like final rise
            c, width, _ = accents[-1]
            accents.append((c + width, width, rng.uniform(1.0, 2.0)))
        phrases.append((phrase_start, t))
        t = pause(t, rng.uniform(0.2, 0.5))
        env_t += [t]
        env_a += [0.0]
    return dict(segments=segments, env_t=env_t, env_a=env_a, fmt_t=fmt_t,
                fmt_f=fmt_f, accents=accents, phrases=phrases)


def _f0_contour(speaker, plan, tb, voiced_b, rng):
    """F0 in Hz at block times `tb`; mean log-F0 over voiced blocks is exact."""
    c = np.zeros_like(tb)
    for start, end in plan["phrases"]:
        inside = (tb >= start) & (tb < end)
        frac = (tb[inside] - start) / max(end - start, 1e-9)
        c[inside] += 0.7 - 1.4 * frac  # declination
    for centre, width, height in plan["accents"]:
        lo, hi = np.searchsorted(tb, [centre - 4 * width, centre + 4 * width])
        c[lo:hi] += height * np.exp(-0.5 * ((tb[lo:hi] - centre) / width) ** 2)
    # slow wander: smoothed random walk, about 0.3 in contour units
    steps = rng.normal(0.0, 1.0, tb.size)
    wander = signal.lfilter([0.02], [1.0, -0.98], steps)
    c += 0.3 * wander / max(np.std(wander), 1e-9) if tb.size > 1 else 0.0
    c *= speaker.f0_range
    if voiced_b.any():
        c -= c[voiced_b].mean()
    return speaker.f0_mean * 2.0 ** (c / 12.0)


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------

def _tilt_pole(tilt_db, sr, f_ref=3000.0):
    """Pole a of (1 - a) / (1 - a z^-1) attenuating f_ref by tilt_db."""
    if tilt_db <= 0.0:
        return 0.0
    f_ref = min(f_ref, 0.45 * sr)
    g = 10.0 ** (-tilt_db / 10.0)  # power gain at f_ref
    c = math.cos(2.0 * math.pi * f_ref / sr)
    beta = (1.0 - g * c) / (1.0 - g)
    return beta - math.sqrt(beta * beta - 1.0)


@functools.lru_cache(maxsize=64)
def _fricative_sos(kind, sr, scale):
    nyq = 0.5 * sr
    if kind == "s":
        c = min(5000.0 * scale, 0.36 * sr)
        band = (0.75 * c, min(1.45 * c, 0.95 * nyq))
        return signal.butter(2, band, btype="bandpass", fs=sr, output="sos")
    if kind == "sh":
        c = min(2800.0 * scale, 0.3 * sr)
        band = (0.75 * c, min(1.5 * c, 0.95 * nyq))
        return signal.butter(2, band, btype="bandpass", fs=sr, output="sos")
    return signal.butter(2, min(1200.0, 0.3 * sr), btype="highpass", fs=sr,
                         output="sos")


def _glottal_flow(speaker, f0, sr, rng):
    """Rosenberg pulse train per sample.

    Returns the glottal flow with shimmer, shape (n,), and the bare pulse
    shape (values in [0, 1], no shimmer) used to gate aspiration noise.
    """
    n = f0.size
    inc = f0 / sr
    phase = np.cumsum(inc)
    k = np.floor(phase)
    idx = np.flatnonzero(np.diff(k)) + 1
    # fractional sample time of each epoch (phase crossing an integer)
    epochs = idx - (phase[idx] - k[idx]) / inc[idx]
    epochs = np.concatenate(([-1.0 / inc[0] if n else 0.0], epochs))
    periods = sr / f0[np.clip(epochs.astype(int), 0, n - 1)]
    epochs = epochs + rng.normal(0.0, speaker.jitter / math.sqrt(2.0),
                                 epochs.size) * periods
    epochs.sort()
    epochs = np.concatenate((epochs, [epochs[-1] + periods[-1]]))
    amps = np.clip(1.0 + rng.normal(0.0, speaker.shimmer, epochs.size), 0.3, 2.0)
    t = np.arange(n, dtype=np.float64)
    kk = np.searchsorted(epochs, t, side="right") - 1
    kk = np.clip(kk, 0, epochs.size - 2)
    pos = (t - epochs[kk]) / (epochs[kk + 1] - epochs[kk])
    pos = np.clip(pos, 0.0, 1.0)
    oq = speaker.open_quotient
    tp = oq * 0.75  # opening phase (speed quotient 3)
    tn = oq * 0.25  # closing phase
    g = np.zeros(n)
    opening = pos < tp
    closing = ~opening & (pos < tp + tn)
    g[opening] = 0.5 * (1.0 - np.cos((np.pi / tp) * pos[opening]))
    g[closing] = np.cos((0.5 * np.pi / tn) * (pos[closing] - tp))
    return amps[kk] * g, g


def _tube_formants(scale, sr):
    """Fixed formants F4, F5, ... (scaled) that get a resonator: those below
    0.45 * sr."""
    k = np.arange(4, 400)
    f = (2 * k - 1) * _TUBE_F1 * scale
    return f[: int(np.searchsorted(f, 0.45 * sr))]


def _resonator_response(freq, formants, bandwidths, sr):
    """|H| at `freq` of a cascade of unity-DC-gain digital resonators."""
    z = np.exp(-2j * np.pi * np.asarray(freq) / sr)
    h = np.ones(z.shape, dtype=complex)
    for f, b in zip(formants, bandwidths):
        r = math.exp(-math.pi * b / sr)
        a1, a2 = -2.0 * r * math.cos(2.0 * math.pi * f / sr), r * r
        h *= (1.0 + a1 + a2) / (1.0 + a1 * z + a2 * z * z)
    return np.abs(h)


@functools.lru_cache(maxsize=64)
def _higher_pole_fir(sr, scale):
    """Linear-phase FIR restoring the gain of the formants above the cascade.

    The target is a lossy uniform tube with formants at odd multiples of
    ``500 * scale`` Hz, all of them (analog, unity gain at DC); the cascade
    only has those below 0.45 * sr, and digital resonators roll off
    differently from analog ones. The FIR's gain is the ratio of the two
    responses for the neutral vowel (capped at +24 dB), fitted with 31 taps
    (``scipy.signal.firwin2``), which smooths away the ripple at the formant
    peaks that both share.
    """
    freq = np.linspace(0.0, 0.5 * sr, 129)
    k = np.arange(1, 400)
    fk = (2 * k - 1) * _TUBE_F1 * scale
    bk = np.r_[_BANDWIDTHS_123, 0.06 * (2 * k[3:] - 1) * _TUBE_F1] * math.sqrt(scale)
    ideal = np.ones(freq.shape, dtype=complex)
    for f, b in zip(fk, bk):
        ideal *= 1.0 / (1.0 - (freq / f) ** 2 + 1j * freq * b / f ** 2)
    n_cascade = 3 + _tube_formants(scale, sr).size
    cascade = _resonator_response(freq, fk[:n_cascade], bk[:n_cascade], sr)
    gain_db = 20.0 * np.log10(np.abs(ideal) / cascade)
    gain_db = np.clip(gain_db - gain_db[0], -_MAX_CORRECTION_DB, _MAX_CORRECTION_DB)
    return signal.firwin2(31, freq, 10.0 ** (gain_db / 20.0), fs=sr)


def _resonator_coeffs(freqs, bws, sr):
    """(b0, a1, a2) of unity-DC-gain resonators; arrays of any equal shape."""
    r = np.exp(-np.pi * bws / sr)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sr)
    a2 = np.broadcast_to(r * r, a1.shape)
    return 1.0 + a1 + a2, a1, a2


def _vocal_tract_coeffs(speaker, plan, tb, sr):
    """Coefficients of the fixed and the moving part of the cascade.

    Returns
    -------
    fixed : ndarray of shape (n_fixed, 6)
        Second-order sections of the fixed higher formants (F4, F5, ...).
    moving : list of (b0, a1, a2) tuples of arrays of shape (n_blocks,)
        F3, F2, F1 per block, in that (cascade) order; a formant that would
        ever come within 10 % of Nyquist (only for extreme scales at low
        sample rates) is left out for the whole utterance.
    """
    scale = speaker.vocal_tract_scale
    if plan["fmt_t"]:
        ft = np.asarray(plan["fmt_t"])
        ff = np.asarray(plan["fmt_f"], dtype=np.float64)
        f123 = np.stack([np.interp(tb, ft, ff[:, i]) for i in range(3)], axis=1)
    else:
        f123 = np.tile([500.0, 1500.0, 2500.0], (tb.size, 1))
    f123 = f123 * scale * (1.0 + np.asarray(speaker.formant_offsets[:3]))
    bw123 = _BANDWIDTHS_123 * np.r_[1.0 + speaker.breathiness, 1.0, 1.0] * math.sqrt(scale)
    high = _tube_formants(scale, sr)
    bw_high = 0.06 * high / scale * math.sqrt(scale)
    if high.size:
        high = high.copy()
        high[0] *= 1.0 + speaker.formant_offsets[3]
    b0, a1, a2 = _resonator_coeffs(high, bw_high, sr)
    fixed = np.zeros((high.size, 6))
    fixed[:, 0], fixed[:, 3], fixed[:, 4], fixed[:, 5] = b0, 1.0, a1, a2
    moving = []
    for i in (2, 1, 0):
        if f123[:, i].max() < 0.45 * sr:
            moving.append(_resonator_coeffs(f123[:, i], np.full(tb.size, bw123[i]), sr))
    return fixed, moving


def _moving_resonator(x, b0, a1, a2, hop):
    """One all-pole resonator whose coefficients change every `hop` samples.

    Switching a resonator's coefficients while it rings must not make a
    click. ``lfilter`` keeps a transposed direct-form II state; for an
    all-pole section it is fixed by the last two outputs
    (``z1 = -a1 y[-1] - a2 y[-2]``, ``z2 = -a2 y[-1]``), and those are
    samples of a decaying oscillation ``y[n] = 2 Re(u p^n)`` with pole
    ``p = r exp(i theta)``. At each update the complex amplitude ``u`` is
    recovered with the old pole and the state rebuilt from the same ``u``
    with the new pole: the ringing keeps its amplitude and phase and only
    changes frequency and decay, as in a coupled-form resonator. Keeping the
    two samples instead (direct form I) makes amplitude and phase jump, a
    click. Runs of equal coefficients and silent stretches take one call.
    """
    n = x.size
    out = np.zeros(n)
    change = np.flatnonzero((a1[1:] != a1[:-1]) | (a2[1:] != a2[:-1])) + 1
    starts = np.r_[0, change].tolist()
    ends = starts[1:] + [a1.size]
    r_all = np.sqrt(a2)
    c_all = np.clip(-a1 / (2.0 * r_all), -1.0, 1.0)
    s_all = np.maximum(np.sqrt(1.0 - c_all * c_all), 1e-6)
    b0l, a1l, a2l = b0.tolist(), a1.tolist(), a2.tolist()
    rl, cl, sl = r_all.tolist(), c_all.tolist(), s_all.tolist()
    z1 = z2 = 0.0
    prev = 0
    for g0, g1 in zip(starts, ends):
        lo, hi = g0 * hop, min(n, g1 * hop)
        if lo >= hi:
            break
        if z1 != 0.0 or z2 != 0.0:
            r0, c0, s0 = rl[prev], cl[prev], sl[prev]
            y1 = -z2 / (r0 * r0)                         # y[-1]
            y2 = (-z1 + 2.0 * r0 * c0 * y1) / (r0 * r0)  # y[-2]
            re = 0.5 * y1                                # u = re + i im
            im = (0.5 * r0 * y2 - re * c0) / s0
            y2 = 2.0 * (re * cl[g0] + im * sl[g0]) / rl[g0]
            z1 = -a1l[g0] * y1 - a2l[g0] * y2
            z2 = -a2l[g0] * y1
        prev = g0
        seg = x[lo:hi]
        if z1 == 0.0 and z2 == 0.0 and not seg.any():
            continue
        y, zf = signal.lfilter([b0l[g0]], [1.0, a1l[g0], a2l[g0]], seg, zi=[z1, z2])
        out[lo:hi] = y
        z1, z2 = float(zf[0]), float(zf[1])
        if abs(z1) < 1e-12 and abs(z2) < 1e-12 and not seg[-hop:].any():
            z1 = z2 = 0.0
    return out


def _vocal_tract(excitation, fixed, moving, hop):
    """The resonator cascade: fixed higher formants, then F3, F2, F1.

    The fixed part is time-invariant and filtered in one ``sosfilt`` call.
    F1-F3 come last because each coefficient update still leaves a slight
    kink in a section's output; placed last, the kinks are low-passed by
    the moving resonators themselves instead of being amplified by the
    high-frequency ones.
    """
    y = signal.sosfilt(fixed, excitation) if fixed.size else excitation
    for b0, a1, a2 in moving:
        y = _moving_resonator(y, b0, a1, a2, hop)
    return y


def synthesize(speaker, duration, sr=16000, seed=None, *, noise_floor_db=-75.0,
               return_alignment=False):
    """Synthesise one utterance of speech-like audio for a speaker.

    Parameters
    ----------
    speaker : SyntheticSpeaker
        The voice.
    duration : float
        Length in seconds (> 0); the output has ``round(duration * sr)``
        samples. The content runs to the end (it may stop mid-syllable).
    sr : int, default=16000
        Sample rate in Hz, at least 8000. Formants that would come within
        10 % of the Nyquist frequency are left out.
    seed : int, numpy.random.SeedSequence or numpy.random.Generator, optional
        Seeds the content (syllables, pauses, intonation, noise). The same
        speaker, duration, sr and seed give bit-identical audio; None draws
        fresh entropy.
    noise_floor_db : float or None, default=-75.0
        Level of an added white noise floor relative to full scale; None
        for none (then pauses are exact zeros).
    return_alignment : bool, default=False
        Also return the planned segments.

    Returns
    -------
    audio : ndarray of shape (max(1, round(duration * sr)),), dtype float32
        Voiced parts at an RMS of about -26 dBFS, peaks at most -1 dBFS;
        always within [-1, 1].
    segments : list of Segment
        Only with ``return_alignment=True``: ``(start, end, kind, label)``
        in seconds, kind one of "pause", "vowel", "sonorant", "fricative";
        contiguous from 0 to the end of the audio (the last one cut there).

    Raises
    ------
    TypeError
        If `speaker` is not a SyntheticSpeaker.
    ValueError
        If `duration` is not positive and finite or `sr` < 8000.

    Examples
    --------
    >>> spk = SyntheticSpeaker(f0_mean=200.0, vocal_tract_scale=1.18)
    >>> y, segs = synthesize(spk, 2.0, sr=16000, seed=1, return_alignment=True)
    >>> y.shape, float(abs(y).max()) <= 1.0
    ((32000,), True)
    >>> sorted({s.kind for s in segs})
    ['fricative', 'pause', 'sonorant', 'vowel']
    """
    if not isinstance(speaker, SyntheticSpeaker):
        raise TypeError(
            f"speaker must be a SyntheticSpeaker, got {type(speaker).__name__}; "
            "use SyntheticSpeaker.random(seed) to make one"
        )
    duration = float(duration)
    if not (duration > 0.0 and math.isfinite(duration)):
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")
    if int(sr) != sr or sr < 8000:
        raise ValueError(f"sr must be an integer sample rate >= 8000 Hz, got {sr}")
    sr = int(sr)
    rng = np.random.default_rng(seed)
    n = max(1, int(round(duration * sr)))
    plan = _plan(speaker, duration, rng)

    hop = max(1, int(round(_HOP_SECONDS * sr)))
    n_blocks = -(-n // hop)
    tb = (np.arange(n_blocks) + 0.5) * hop / sr
    t = np.arange(n) / sr

    env_v = np.interp(t, plan["env_t"], plan["env_a"])
    voiced_b = np.interp(tb, plan["env_t"], plan["env_a"]) > 0.05
    f0_b = _f0_contour(speaker, plan, tb, voiced_b, rng)
    f0 = np.clip(np.interp(t, tb, f0_b), 30.0, 1000.0)

    # --- source ----------------------------------------------------------
    flow, shape = _glottal_flow(speaker, f0, sr, rng)
    src = np.diff(flow, prepend=0.0)  # flow derivative (incl. lip radiation)
    voiced = env_v > 0.0
    rms = np.sqrt(np.mean(src[voiced] ** 2)) if voiced.any() else 1.0
    src /= max(rms, 1e-12)
    aspiration = rng.standard_normal(n) * (0.3 + 0.7 * shape)
    aspiration *= speaker.breathiness / math.sqrt(np.mean((0.3 + 0.7 * shape) ** 2))
    excitation = (src + aspiration) * env_v

    noise = rng.standard_normal(n)
    fric = np.zeros(n)
    for seg in plan["segments"]:
        if seg.kind != "fricative":
            continue
        lo, hi = int(seg.start * sr), min(n, int(round(seg.end * sr)))
        if lo >= hi:
            continue
        m = hi - lo
        ramp = max(1, min(int(0.02 * sr), m // 3))
        env = np.ones(m)
        env[:ramp] = np.linspace(0.0, 1.0, ramp)
        env[m - ramp:] = np.minimum(env[m - ramp:], np.linspace(1.0, 0.0, ramp))
        if seg.label == "h":
            excitation[lo:hi] += _H_LEVEL * noise[lo:hi] * env
        else:
            sos = _fricative_sos(seg.label, sr, round(speaker.vocal_tract_scale, 3))
            burst = signal.sosfilt(sos, noise[lo:hi])
            burst /= max(np.sqrt(np.mean(burst ** 2)), 1e-12)
            fric[lo:hi] += _FRICATIVE_LEVEL[seg.label] * burst * env

    a = _tilt_pole(speaker.spectral_tilt, sr)
    if a > 0.0:
        excitation = signal.lfilter([1.0 - a], [1.0, -a], excitation)

    # --- vocal tract -----------------------------------------------------
    fir = _higher_pole_fir(sr, round(speaker.vocal_tract_scale, 4))
    delay = (fir.size - 1) // 2  # linear phase: centre the output
    excitation = np.convolve(excitation, fir)[delay:delay + n]
    fixed, moving = _vocal_tract_coeffs(speaker, plan, tb, sr)
    speech = _vocal_tract(excitation, fixed, moving, hop)
    speech_rms = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 0.0
    if speech_rms > 0.0:
        speech /= speech_rms
    speech += fric

    # fixed speech level (so the noise floor sits at a fixed distance below
    # it); a rare utterance whose peaks would exceed -1 dBFS is turned down
    speech *= 10.0 ** (_LEVEL_DB / 20.0)
    peak = np.abs(speech).max()
    if peak > _PEAK:
        speech *= _PEAK / peak
    if noise_floor_db is not None:
        speech += 10.0 ** (noise_floor_db / 20.0) * rng.standard_normal(n)
    audio = np.clip(speech, -1.0, 1.0).astype(np.float32)
    if return_alignment:
        end = n / sr
        segments = [seg._replace(end=min(seg.end, end))
                    for seg in plan["segments"] if seg.start < end]
        return audio, segments
    return audio


# ---------------------------------------------------------------------------
# corpora
# ---------------------------------------------------------------------------

def make_speakers(n_speakers, seed=0):
    """The speakers of ``make_corpus(n_speakers, ..., seed=seed)``.

    Speaker ``i`` depends only on `seed` and ``i``, so a larger corpus
    starts with the speakers of a smaller one.

    Parameters
    ----------
    n_speakers : int
        Number of speakers (>= 1).
    seed : int, default=0
        Corpus seed (non-negative).

    Returns
    -------
    speakers : dict of str to SyntheticSpeaker
        Speaker id (``"spk000"``, ``"spk001"``, ...) to voice, in order.

    Examples
    --------
    >>> list(make_speakers(3, seed=0))
    ['spk000', 'spk001', 'spk002']
    """
    n_speakers = _positive_int(n_speakers, "n_speakers")
    width = max(3, len(str(n_speakers - 1)))
    return {
        f"spk{i:0{width}d}": SyntheticSpeaker.random(
            np.random.SeedSequence(seed, spawn_key=(i, 0))
        )
        for i in range(n_speakers)
    }


def make_corpus(n_speakers, n_utterances, duration, sr=16000, seed=0):
    """A deterministic in-memory corpus of synthetic speakers.

    Parameters
    ----------
    n_speakers : int
        Number of speakers (>= 1); their voices are `make_speakers`.
    n_utterances : int
        Utterances per speaker (>= 1), each with different content.
    duration : float or (float, float)
        Utterance length in seconds, or a (min, max) range from which each
        utterance's length is drawn uniformly.
    sr : int, default=16000
        Sample rate in Hz.
    seed : int, default=0
        Corpus seed (non-negative). Utterance ``j`` of speaker ``i`` depends
        only on (seed, i, j, duration, sr), so a corpus with more speakers or
        utterances extends a smaller one with identical audio.

    Returns
    -------
    corpus : list of Utterance
        ``n_speakers * n_utterances`` named tuples
        ``(speaker_id, utt_id, audio)``, speaker-major, with ids like
        ``"spk003"`` and ``"spk003_utt012"`` and audio float32 of shape
        (n_samples,) in [-1, 1].

    Examples
    --------
    >>> corpus = make_corpus(3, 2, duration=(0.5, 1.0), sr=8000, seed=4)
    >>> len(corpus), corpus[0].speaker_id, corpus[-1].utt_id
    (6, 'spk000', 'spk002_utt001')
    >>> all(4000 <= u.audio.size <= 8000 for u in corpus)
    True
    """
    n_utterances = _positive_int(n_utterances, "n_utterances")
    if np.ndim(duration) == 0:
        d_lo = d_hi = float(duration)
    else:
        try:
            d_lo, d_hi = (float(v) for v in duration)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"duration must be seconds or a (min, max) pair, got {duration!r}"
            ) from exc
    if not (0.0 < d_lo <= d_hi and math.isfinite(d_hi)):
        raise ValueError(f"duration must be positive with min <= max, got {duration!r}")
    speakers = make_speakers(n_speakers, seed)
    corpus = []
    for i, (spk_id, spk) in enumerate(speakers.items()):
        for j in range(n_utterances):
            if d_lo == d_hi:
                dur = d_lo
            else:
                dur_rng = np.random.default_rng(
                    np.random.SeedSequence(seed, spawn_key=(i, 2, j)))
                dur = dur_rng.uniform(d_lo, d_hi)
            audio = synthesize(
                spk, dur, sr=sr,
                seed=np.random.SeedSequence(seed, spawn_key=(i, 1, j)),
            )
            corpus.append(Utterance(spk_id, f"{spk_id}_utt{j:03d}", audio))
    return corpus


def _positive_int(value, name):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
