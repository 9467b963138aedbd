"""Tests for speaker_id.demo.synth."""

import dataclasses

import numpy as np
import pytest
from scipy import signal

from speaker_id.demo.synth import (
    Segment,
    SyntheticSpeaker,
    make_corpus,
    make_speakers,
    synthesize,
)

SR = 16000


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _band_spectrum(y, sr=SR, lo=2500.0, hi=7000.0, width=250.0):
    """Average log power (dB) in `width`-Hz bands over the active frames.

    Log power is averaged over frames within 30 dB of the loudest (so the
    measure is not dominated by a few loud vowels), then the mean over bands
    is removed (overall level does not count).
    """
    f, _, z = signal.stft(y, fs=sr, nperseg=512, noverlap=352)
    p = np.abs(z) ** 2
    e = 10 * np.log10(p.sum(axis=0) + 1e-20)
    p = p[:, e > e.max() - 30]
    edges = np.arange(lo, hi + 1, width)
    idx = np.digitize(f, edges)
    bands = np.array([p[idx == k].mean(axis=0) for k in range(1, len(edges))])
    spec = (10 * np.log10(bands + 1e-20)).mean(axis=1)
    return spec - spec.mean()


def _dist(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _lpc_formants(y, segs, sr=SR):
    """Median (F1, F2, F3) per vowel label, by LPC at each vowel's midpoint.

    A 30 ms pre-emphasised Hamming frame, LPC order 18; formants are the
    angles of the complex roots with bandwidth < 500 Hz, above 200 Hz.
    """
    librosa = pytest.importorskip("librosa")
    half = int(0.015 * sr)
    found = {}
    for s in segs:
        if s.kind != "vowel" or s.end * sr > y.size or s.end - s.start < 0.06:
            continue
        mid = int((s.start + s.end) / 2 * sr)
        frame = y[mid - half:mid + half].astype(np.float64)
        frame = np.append(frame[0], frame[1:] - 0.97 * frame[:-1]) * np.hamming(frame.size)
        roots = np.roots(librosa.lpc(frame, order=18))
        roots = roots[roots.imag > 0]
        freqs = np.angle(roots) * sr / (2 * np.pi)
        bws = -np.log(np.abs(roots)) * sr / np.pi
        freqs = np.sort(freqs[(freqs > 200) & (bws < 500)])
        if freqs.size >= 3:
            found.setdefault(s.label, []).append(freqs[:3])
    return {label: np.median(v, axis=0) for label, v in found.items()}


# ---------------------------------------------------------------------------
# speakers
# ---------------------------------------------------------------------------

def test_random_speaker_is_deterministic_and_varied():
    a = SyntheticSpeaker.random(5)
    assert a == SyntheticSpeaker.random(5)
    assert hash(a) == hash(SyntheticSpeaker.random(5))
    others = {SyntheticSpeaker.random(s) for s in range(20)}
    assert len(others) == 20
    f0s = [s.f0_mean for s in others]
    assert min(f0s) < 150 < 165 < max(f0s)  # both low and high voices occur


def test_speaker_is_frozen_and_validated():
    spk = SyntheticSpeaker()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spk.f0_mean = 200.0
    with pytest.raises(ValueError, match="f0_mean"):
        SyntheticSpeaker(f0_mean=10.0)
    with pytest.raises(ValueError, match="vocal_tract_scale"):
        SyntheticSpeaker(vocal_tract_scale=float("nan"))
    with pytest.raises(ValueError, match="formant_offsets"):
        SyntheticSpeaker(formant_offsets=(0.0, 0.1))
    with pytest.raises(ValueError, match=r"formant_offsets\[2\]"):
        SyntheticSpeaker(formant_offsets=(0.0, 0.1, 0.5, 0.0))
    assert SyntheticSpeaker(formant_offsets=[0, 0, 0, 0.1]).formant_offsets == (0.0, 0.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="idiolect_seed"):
        SyntheticSpeaker(idiolect_seed=-1)
    with pytest.raises(ValueError, match="idiolect"):
        SyntheticSpeaker(idiolect=0.5)


def test_idiolect_changes_vowels_not_voice():
    # same voice, different personal vowel systems: same F0, different
    # formants for the same vowel
    a = SyntheticSpeaker(idiolect=0.08, idiolect_seed=1)
    b = SyntheticSpeaker(idiolect=0.08, idiolect_seed=2)
    fa = _lpc_formants(*synthesize(a, 4.0, seed=5, return_alignment=True))
    fb = _lpc_formants(*synthesize(b, 4.0, seed=5, return_alignment=True))
    # seed 5 gives both the same content, so every vowel can be compared
    assert set(fa) == set(fb)
    rel = np.array([np.abs(fa[v] / fb[v] - 1) for v in fa])
    assert rel.mean() > 0.03
    # with no idiolect and the same content seed the vowels coincide
    c = _lpc_formants(*synthesize(SyntheticSpeaker(), 4.0, seed=5, return_alignment=True))
    d = _lpc_formants(*synthesize(SyntheticSpeaker(idiolect_seed=9), 4.0, seed=5,
                                  return_alignment=True))
    assert all(np.allclose(c[v], d[v]) for v in c)


# ---------------------------------------------------------------------------
# synthesize
# ---------------------------------------------------------------------------

def test_synthesize_deterministic_for_seed():
    spk = SyntheticSpeaker.random(1)
    a = synthesize(spk, 1.5, sr=SR, seed=42)
    b = synthesize(spk, 1.5, sr=SR, seed=42)
    c = synthesize(spk, 1.5, sr=SR, seed=43)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("sr", [8000, 16000, 22050])
def test_synthesize_shape_dtype_bounds(sr):
    for i in range(4):
        y = synthesize(SyntheticSpeaker.random(i), 1.25, sr=sr, seed=i)
        assert y.dtype == np.float32
        assert y.shape == (round(1.25 * sr),)
        assert np.all(np.isfinite(y))
        assert np.abs(y).max() <= 1.0
        assert np.abs(y).max() > 0.05  # not silent
        # no digital silence: the noise floor keeps every frame's energy > 0
        frames = y[: y.size // 256 * 256].reshape(-1, 256)
        assert np.all(np.mean(frames.astype(np.float64) ** 2, axis=1) > 0)


@pytest.mark.parametrize("audio_seconds", [0.0005, 0.002, 0.03])
def test_synthesize_very_short(audio_seconds):
    y = synthesize(SyntheticSpeaker.random(0), audio_seconds, sr=SR, seed=0)
    # the length of the audio in samples, not a timing
    assert y.shape == (max(1, round(audio_seconds * SR)),)
    assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0


def test_synthesize_alignment_and_silence():
    spk = SyntheticSpeaker.random(2)
    y, segs = synthesize(spk, 3.0, seed=0, return_alignment=True, noise_floor_db=None)
    assert all(isinstance(s, Segment) for s in segs)
    assert segs[0].kind == "pause" and segs[0].start == 0.0
    assert {s.kind for s in segs} <= {"pause", "vowel", "sonorant", "fricative"}
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segs, segs[1:]))
    assert segs[-1].end == pytest.approx(3.0)
    # pauses really are quiet compared with vowels
    def rms(kind):
        parts = [y[int(s.start * SR) + 80:int(s.end * SR) - 80] for s in segs
                 if s.kind == kind and s.end - s.start > 0.02]
        x = np.concatenate(parts).astype(np.float64)
        return np.sqrt(np.mean(x ** 2))
    assert rms("pause") < 0.05 * rms("vowel")


def test_synthesize_bad_input():
    spk = SyntheticSpeaker()
    with pytest.raises(ValueError, match="duration"):
        synthesize(spk, 0.0)
    with pytest.raises(ValueError, match="duration"):
        synthesize(spk, float("inf"))
    with pytest.raises(ValueError, match="sr"):
        synthesize(spk, 1.0, sr=4000)
    with pytest.raises(TypeError, match="SyntheticSpeaker"):
        synthesize({"f0_mean": 100}, 1.0)


def test_f0_of_a_voiced_segment_matches_speaker():
    librosa = pytest.importorskip("librosa")
    # flat intonation so that any single vowel sits near the mean F0
    for f0 in (110.0, 220.0):
        spk = SyntheticSpeaker(f0_mean=f0, f0_range=0.3,
                               vocal_tract_scale=1.0 if f0 < 150 else 1.18)
        y, segs = synthesize(spk, 2.0, sr=SR, seed=3, return_alignment=True)
        vowel = max((s for s in segs if s.kind == "vowel" and s.end < 2.0),
                    key=lambda s: s.end - s.start)
        seg = y[int(vowel.start * SR):int(vowel.end * SR)]
        assert seg.size >= 1600  # at least 100 ms to look at
        est = librosa.yin(seg, fmin=60, fmax=400, sr=SR, frame_length=1024,
                          hop_length=160)
        assert np.median(est) == pytest.approx(f0, rel=0.04)


def test_f0_of_random_speakers_over_utterance():
    librosa = pytest.importorskip("librosa")
    for i in range(3):
        spk = SyntheticSpeaker.random(100 + i)
        y = synthesize(spk, 3.0, sr=SR, seed=i)
        f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=400, sr=SR,
                                     frame_length=1024, hop_length=320)
        assert voiced.mean() > 0.2
        # geometric mean over voiced frames: the contour is zero-mean in log-F0
        est = np.exp(np.mean(np.log(f0[voiced])))
        assert est == pytest.approx(spk.f0_mean, rel=0.05)


def test_vocal_tract_scale_changes_spectrum_and_voice_is_shared():
    # Two speakers alike in everything but vocal-tract length. Above ~2.5 kHz
    # the spectrum is shaped by F3..F7, which hardly depend on the vowel, so
    # it is a voice property: utterances of one speaker (different content)
    # must be closer to each other there than to the other speaker's.
    short = SyntheticSpeaker(vocal_tract_scale=1.2)
    long_ = SyntheticSpeaker(vocal_tract_scale=0.9)
    dur = 4.0
    s1 = synthesize(short, dur, seed=1)
    s2 = synthesize(short, dur, seed=2)
    l1 = synthesize(long_, dur, seed=3)
    l2 = synthesize(long_, dur, seed=4)
    assert not np.allclose(s1, s2)  # different content
    spec = {k: _band_spectrum(v) for k, v in dict(s1=s1, s2=s2, l1=l1, l2=l2).items()}
    within = max(_dist(spec["s1"], spec["s2"]), _dist(spec["l1"], spec["l2"]))
    between = min(_dist(spec[a], spec[b]) for a in ("s1", "s2") for b in ("l1", "l2"))
    assert between > 1.2 * within


def test_vocal_tract_scale_moves_formants():
    # All formants scale with vocal_tract_scale: the same vowel measured by
    # LPC in the two voices has F1..F3 in the ratio of the scales,
    # 1.2 / 0.9 = 1.333, and the neutral vowel (schwa, 500/1500/2500 Hz
    # unscaled) sits where the scale puts it.
    short = SyntheticSpeaker(vocal_tract_scale=1.2)
    long_ = SyntheticSpeaker(vocal_tract_scale=0.9)
    fs = _lpc_formants(*synthesize(short, 4.0, seed=11, return_alignment=True))
    fl = _lpc_formants(*synthesize(long_, 4.0, seed=12, return_alignment=True))
    common = sorted(set(fs) & set(fl))
    assert len(common) >= 3
    ratios = np.median([fs[v] / fl[v] for v in common], axis=0)
    assert ratios == pytest.approx([1.2 / 0.9] * 3, abs=0.1)
    neutral = np.array([500.0, 1500.0, 2500.0])
    assert fs["@"] == pytest.approx(1.2 * neutral, rel=0.1)
    assert fl["@"] == pytest.approx(0.9 * neutral, rel=0.1)


def test_random_speakers_are_closer_to_themselves():
    # averaged over several random pairs, a speaker's two utterances are
    # closer in average spectrum than utterances of different speakers
    within, between = [], []
    for i in range(5):
        a, b = SyntheticSpeaker.random(2 * i), SyntheticSpeaker.random(2 * i + 1)
        a1, a2 = (_band_spectrum(synthesize(a, 3.0, seed=k), lo=250.0) for k in (1, 2))
        b1 = _band_spectrum(synthesize(b, 3.0, seed=3), lo=250.0)
        within.append(_dist(a1, a2))
        between.append(min(_dist(a1, b1), _dist(a2, b1)))
    assert np.mean(between) > 1.3 * np.mean(within)


# ---------------------------------------------------------------------------
# corpora
# ---------------------------------------------------------------------------

def test_make_corpus_deterministic_and_nested():
    c1 = make_corpus(3, 2, 0.5, sr=8000, seed=7)
    c2 = make_corpus(3, 2, 0.5, sr=8000, seed=7)
    assert [(s, u) for s, u, _ in c1] == [
        ("spk000", "spk000_utt000"), ("spk000", "spk000_utt001"),
        ("spk001", "spk001_utt000"), ("spk001", "spk001_utt001"),
        ("spk002", "spk002_utt000"), ("spk002", "spk002_utt001"),
    ]
    for x, y in zip(c1, c2):
        assert np.array_equal(x.audio, y.audio)
        assert x.audio.dtype == np.float32 and x.audio.shape == (4000,)
    # a bigger corpus with the same seed starts with the same audio
    big = {(s, u): a for s, u, a in make_corpus(4, 3, 0.5, sr=8000, seed=7)}
    for s, u, a in c1:
        assert np.array_equal(big[(s, u)], a)
    # another seed gives other audio
    other = make_corpus(3, 2, 0.5, sr=8000, seed=8)
    assert not np.allclose(other[0].audio, c1[0].audio)
    # utterances of a speaker differ; speakers match make_speakers
    assert not np.allclose(c1[0].audio, c1[1].audio)
    assert list(make_speakers(3, seed=7)) == ["spk000", "spk001", "spk002"]


def test_make_corpus_duration_range_and_errors():
    corpus = make_corpus(2, 3, (0.3, 0.6), sr=8000, seed=1)
    sizes = [u.audio.size for u in corpus]
    assert all(2400 <= n <= 4800 for n in sizes) and len(set(sizes)) > 1
    with pytest.raises(ValueError, match="n_speakers"):
        make_corpus(0, 1, 1.0)
    with pytest.raises(ValueError, match="n_utterances"):
        make_corpus(1, 1.5, 1.0)
    with pytest.raises(ValueError, match="duration"):
        make_corpus(1, 1, (2.0, 1.0))
