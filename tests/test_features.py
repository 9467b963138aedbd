"""Tests for speaker_id.frontend (config, spectral, mfcc, deltas, vad, normalization, extraction): framing, MFCCs, deltas, VAD, CMVN, config."""

import json

import librosa
import numpy as np
import pytest

from conftest import count_pool_starts
import scipy.fft
import soundfile as sf

from speaker_id.evaluation.corpora import find_dataset_root
from speaker_id.frontend.audio import AudioError
from speaker_id.frontend.config import FeatureConfig, FeatureError
from speaker_id.frontend.deltas import acceleration, add_deltas, delta
from speaker_id.frontend.extraction import extract, extract_file, extract_files
from speaker_id.frontend.mfcc import mfcc, mfcc_from_frames
from speaker_id.frontend.normalization import cmvn
from speaker_id.frontend.spectral import (
    dct_matrix,
    frame_count,
    frame_signal,
    power_spectrum,
)
from speaker_id.frontend.vad import energy_vad, frame_energy_db, vad_mask

DATA = find_dataset_root()


def _noise(n, amp=0.1, seed=0):
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _multitone(t):
    """Band-limited test signal (all components below 7 kHz), amplitude-modulated."""
    s = np.zeros_like(t)
    for k, f in enumerate([150, 420, 900, 1700, 2600, 3900, 5200, 6500]):
        s += 0.1 * np.sin(2 * np.pi * f * t + k) * (1 + 0.5 * np.sin(2 * np.pi * (3 + k) * t))
    return s


# --- configuration ---------------------------------------------------------


def test_config_derived_sizes():
    c16, c8 = FeatureConfig(), FeatureConfig(sr=8000)
    assert (c16.win_length, c16.hop_length, c16.fft_size, c16.mel_fmax) == (400, 160, 512, 8000.0)
    assert (c8.win_length, c8.hop_length, c8.fft_size, c8.mel_fmax) == (200, 80, 256, 4000.0)
    assert c16.n_features == 60
    assert FeatureConfig(deltas=False).n_features == 20
    assert FeatureConfig(n_fft=1024).fft_size == 1024


def test_config_json_round_trip():
    cfg = FeatureConfig(sr=8000, n_mfcc=13, fmax=3800, vad=False, window="hann")
    text = json.dumps(cfg.to_dict())
    back = FeatureConfig.from_dict(json.loads(text))
    assert back == cfg
    assert hash(back) == hash(cfg)
    assert isinstance(back.fmax, float)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hop_ms', 'nmfcc'\]; known keys: sr, n_mfcc"):
        FeatureConfig.from_dict({"nmfcc": 13, "hop_ms": 10})


def test_config_from_dict_fills_defaults():
    assert FeatureConfig.from_dict({"center": True, "cmvn": False, "prior_frames": 200}) == FeatureConfig()
    # a dict without "center" predates the option: those models were trained on unpadded frames;
    # one without "cmvn" or "prior_frames" on per-utterance CMVN, without a prior
    assert FeatureConfig.from_dict({}) == FeatureConfig(center=False, cmvn=True, prior_frames=None)
    assert FeatureConfig.from_dict(FeatureConfig().to_dict()) == FeatureConfig()


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"n_mfcc": 41}, "n_mfcc .* cannot exceed n_mels"),
        ({"delta_width": 8}, "delta_width must be odd"),
        ({"fmax": 9000}, "fmax must lie in"),
        ({"fmin": 9000}, "fmin .* must be below fmax"),
        ({"n_fft": 256}, "n_fft .* must be >= win_length"),
        ({"preemphasis": 1.0}, "preemphasis must lie in"),
        ({"sr": 16000.5}, "sr must be an integer"),
        ({"vad": "yes"}, "vad must be True or False"),
        ({"hop_length_ms": 0}, "must be positive"),
        ({"vad_threshold_db": -3}, "vad_threshold_db must be positive"),
        ({"n_tapers": 0}, "n_tapers must be >= 1"),
        ({"n_tapers": 17}, "n_tapers must be at most 16"),
        ({"n_tapers": True}, "n_tapers must be an integer"),
        ({"window": 3}, "window must be 'multitaper' or a window name"),
        ({"n_tapers": 12, "sr": 1000, "frame_length_ms": 10}, r"n_tapers \(12\) must be below the frame's 10 samples"),
    ],
)
def test_config_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        FeatureConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(Exception):
        FeatureConfig().sr = 8000


# --- framing and MFCCs -----------------------------------------------------


@pytest.mark.parametrize("n,win,hop,expected", [(16000, 400, 160, 98), (400, 400, 160, 1), (399, 400, 160, 0), (559, 400, 160, 1), (560, 400, 160, 2)])
def test_frame_count_formula(n, win, hop, expected):
    assert frame_count(n, win, hop) == expected
    assert frame_signal(np.zeros(n), win_length=win, hop_length=hop).shape == (expected, win)


def test_frame_signal_frames_are_the_right_samples():
    y = np.arange(1000, dtype=np.float32)
    fr = frame_signal(y, win_length=50, hop_length=20)
    assert fr.shape == (48, 50)
    np.testing.assert_array_equal(fr[7], y[140:190])
    assert not fr.flags.writeable


def test_pure_tone_mfcc_frame_count_and_dtype():
    sr = 16000
    n = 12345
    # 500 Hz completes exactly 5 periods per 160-sample hop, so every frame
    # holds the same samples and must give the same cepstrum.
    y = np.sin(2 * np.pi * 500 * np.arange(n) / sr).astype(np.float32)
    assert mfcc(y, FeatureConfig()).shape == (1 + n // 160, 20)  # librosa's count with center=True
    m = mfcc(y, FeatureConfig(center=False))  # no zero-padded edge frames
    assert m.shape == (1 + (n - 400) // 160, 20)
    assert m.dtype == np.float32
    assert np.isfinite(m).all()
    np.testing.assert_allclose(m, np.broadcast_to(m[0], m.shape), atol=2e-2)


def test_power_spectrum_peak_at_tone_frequency():
    sr, n_fft = 8000, 256
    frames = frame_signal(np.sin(2 * np.pi * 1500 * np.arange(2000) / sr).astype(np.float32), win_length=200, hop_length=80)
    p = power_spectrum(frames, n_fft=n_fft, window="hamming", preemphasis=0.97)
    assert p.shape == (frames.shape[0], 129)
    assert np.all(np.argmax(p, axis=1) == round(1500 * n_fft / sr))


def _direct_multitaper(frames, n_fft, n_tapers):
    """Thomson's estimate written out: DPSS tapers weighted by their concentrations, at a Hamming window's energy."""
    import scipy.signal

    n = frames.shape[1]
    tapers, concentration = scipy.signal.windows.dpss(n, (n_tapers + 1) / 2, Kmax=n_tapers, return_ratios=True)
    energy = np.sum(np.hamming(n + 1)[:-1] ** 2)  # the periodic Hamming window
    spectra = [np.abs(np.fft.rfft(frames.astype(np.float64) * t, n=n_fft, axis=1)) ** 2 for t in tapers]
    return energy * np.tensordot(concentration / concentration.sum(), spectra, axes=1)


@pytest.mark.parametrize("n_tapers", [1, 4, 6])
def test_multitaper_power_spectrum_is_the_weighted_mean_of_dpss_periodograms(n_tapers):
    frames = frame_signal(_noise(4000, seed=n_tapers), win_length=200, hop_length=80)
    ours = power_spectrum(frames, n_fft=256, window="multitaper", n_tapers=n_tapers)
    np.testing.assert_allclose(ours, _direct_multitaper(frames, 256, n_tapers), rtol=1e-4, atol=1e-9)


def test_multitaper_has_the_hamming_windows_mean_power_and_a_fraction_of_its_variance():
    """On white noise a single window's periodogram varies by its own mean (chi-square, 2 degrees of freedom);
    four orthogonal tapers average about four independent estimates."""
    frames = frame_signal(_noise(400_000, seed=3), win_length=400, hop_length=400)
    hamming = power_spectrum(frames, n_fft=512, window="hamming")[:, 10:-10]
    multitaper = power_spectrum(frames, n_fft=512, window="multitaper", n_tapers=4)[:, 10:-10]
    assert multitaper.mean() == pytest.approx(hamming.mean(), rel=0.02)
    relative_variance = lambda p: np.mean(p.var(axis=0) / p.mean(axis=0) ** 2)  # noqa: E731
    assert relative_variance(hamming) == pytest.approx(1.0, abs=0.1)
    assert relative_variance(multitaper) < 0.35


@pytest.mark.parametrize("window,n_fft", [("multitaper", 256), ("hann", 256), ("multitaper", 8192)])
def test_power_spectrum_of_each_frame_is_its_own_across_blocks(window, n_fft):
    """Frames go through the FFT in blocks (fewer per block for long FFTs): 130 frames equal 130 single ones."""
    frames = frame_signal(_noise(130 * 80 + 120, seed=5), win_length=200, hop_length=80)
    assert len(frames) == 130
    whole = power_spectrum(frames, n_fft=n_fft, window=window, preemphasis=0.97)
    single = np.vstack([power_spectrum(f[None], n_fft=n_fft, window=window, preemphasis=0.97) for f in frames])
    np.testing.assert_allclose(whole, single, rtol=1e-5, atol=1e-9)


def test_multitaper_keeps_a_tone_within_its_bandwidth():
    """DPSS tapers concentrate their energy within +-NW / N cycles per sample: (4 + 1) / 2 / 200 * 8000 = 100 Hz."""
    sr, n_fft = 8000, 256
    frames = frame_signal(np.sin(2 * np.pi * 1500 * np.arange(2000) / sr).astype(np.float32), win_length=200, hop_length=80)
    p = power_spectrum(frames, n_fft=n_fft, window="multitaper", n_tapers=4, preemphasis=0.97)
    band = np.abs(np.fft.rfftfreq(n_fft, 1 / sr) - 1500) <= 100 + sr / n_fft  # one bin of the FFT grid's slack
    assert np.all(p[:, band].sum(axis=1) > 0.99 * p.sum(axis=1))


def test_dct_matrix_matches_scipy_orthonormal_dct():
    x = np.random.default_rng(0).standard_normal((7, 40))
    ours = x @ dct_matrix(40, 20).astype(np.float64)
    np.testing.assert_allclose(ours, scipy.fft.dct(x, type=2, norm="ortho", axis=1)[:, :20], atol=1e-5)


@pytest.mark.parametrize("sr", [8000, 16000])
def test_mfcc_matches_librosa_with_same_framing(sr):
    """Our MFCCs equal librosa's melspectrogram -> dB -> DCT on the same frames.

    librosa centres a win_length window inside n_fft; padding the signal by
    the difference aligns its frames with ours (center=False in both).
    """
    y = _noise(sr, seed=sr)
    cfg = FeatureConfig(sr=sr, preemphasis=0.0, window="hann", center=False)
    win, n_fft, hop = cfg.win_length, cfg.fft_size, cfg.hop_length
    left = (n_fft - win) // 2
    padded = np.concatenate([np.zeros(left, np.float32), y, np.zeros(n_fft - win - left, np.float32)])
    S = librosa.feature.melspectrogram(
        y=padded, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
        center=False, power=2.0, n_mels=40, fmin=20.0, fmax=sr / 2,
    )
    ref = librosa.feature.mfcc(S=10 * np.log10(np.maximum(S, 1e-10)), n_mfcc=20).T
    ours = mfcc(y, cfg)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_preemphasis_is_applied_inside_each_frame():
    cfg = FeatureConfig(preemphasis=0.9, window="hann")
    y = _noise(4000)
    frames = frame_signal(y, win_length=cfg.win_length, hop_length=cfg.hop_length)
    manual = np.array([np.concatenate([[0.1 * f[0]], f[1:] - 0.9 * f[:-1]]) for f in frames.astype(np.float64)])
    expected = power_spectrum(manual, n_fft=cfg.fft_size, window="hann", preemphasis=0.0)
    np.testing.assert_allclose(power_spectrum(frames, n_fft=cfg.fft_size, window="hann", preemphasis=0.9), expected, rtol=1e-4, atol=1e-6)


def test_mfcc_of_frame_chunks_equals_mfcc_of_whole_signal():
    """Streaming-friendliness: a frame's MFCCs depend on that frame only."""
    cfg = FeatureConfig(center=False)
    y = _noise(16000 * 2, seed=3)
    whole = mfcc(y, cfg)
    hop, win = cfg.hop_length, cfg.win_length
    # Cut the signal into chunks, carrying the samples of incomplete frames.
    rows, pending = [], np.zeros(0, np.float32)
    for chunk in np.array_split(y, 7):
        pending = np.concatenate([pending, chunk])
        fr = frame_signal(pending, win_length=win, hop_length=hop)
        if len(fr):
            rows.append(mfcc_from_frames(fr, cfg))
            pending = pending[len(fr) * hop:]
    streamed = np.concatenate(rows)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-4)


# --- deltas ----------------------------------------------------------------


def test_delta_matches_librosa_nearest_mode():
    x = np.random.default_rng(1).standard_normal((30, 5))
    ref = librosa.feature.delta(x, width=9, order=1, axis=0, mode="nearest")
    np.testing.assert_allclose(delta(x, width=9), ref, atol=1e-10)


def test_delta_of_linear_ramp_is_its_slope_in_the_interior():
    x = (3.0 * np.arange(20))[:, None] + np.zeros((1, 2))
    d = delta(x, width=9)
    np.testing.assert_allclose(d[4:-4], 3.0)
    assert d[0, 0] < 3.0  # edges repeat the first frame, so the slope shrinks


def test_add_deltas_layout_and_short_inputs():
    x = np.random.default_rng(2).standard_normal((3, 20)).astype(np.float32)  # fewer frames than the width
    out = add_deltas(x, width=9)
    assert out.shape == (3, 60) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :20], x)
    np.testing.assert_allclose(out[:, 20:40], delta(x, 9), atol=1e-6)
    np.testing.assert_allclose(out[:, 40:], acceleration(x, 9), atol=1e-6)
    assert add_deltas(x, order=1).shape == (3, 40)


def test_acceleration_matches_librosa_and_the_second_derivative():
    x = np.random.default_rng(3).standard_normal((30, 5))
    ref = librosa.feature.delta(x, width=9, order=2, axis=0, mode="nearest")
    np.testing.assert_allclose(acceleration(x, 9), ref, atol=1e-10)
    t = np.arange(25, dtype=float)[:, None]
    np.testing.assert_allclose(acceleration(0.5 * t**2 - 3 * t, 9)[4:-4], 1.0, atol=1e-9)


# --- CMVN and VAD ----------------------------------------------------------


def test_cmvn_zero_mean_unit_variance_per_column():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((500, 6)) * [1, 10, 0.01, 3, 100, 5] + [5, -3, 1e4, 0, 7, 2]).astype(np.float32)
    y = cmvn(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-5)
    z = cmvn(x, variance=False)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-2)
    np.testing.assert_allclose(z.std(axis=0), x.astype(np.float64).std(axis=0), rtol=1e-4)


def test_cmvn_constant_column_becomes_zero():
    x = np.column_stack([np.full(10, 4.0), np.arange(10.0)])
    y = cmvn(x)
    np.testing.assert_array_equal(y[:, 0], 0.0)
    assert np.isfinite(y).all()


def test_frame_energy_db_values():
    frames = np.vstack([np.full(100, 0.1), np.zeros(100), np.full(100, 1.0)])
    np.testing.assert_allclose(frame_energy_db(frames), [-20.0, -100.0, 0.0], atol=1e-5)


def test_energy_vad_relative_and_absolute_thresholds():
    e = np.array([-90.0, -65.0, -41.0, -39.0, -10.0])
    np.testing.assert_array_equal(energy_vad(e, threshold_db=30, floor_db=-60), [False, False, False, True, True])
    # A quiet but clean recording: the relative threshold alone would keep -65 dB.
    np.testing.assert_array_equal(energy_vad(e - 50, threshold_db=30, floor_db=-60), [False] * 5)


def _silence_then_burst(sr=16000, silence_s=0.5, burst_s=0.5):
    rng = np.random.default_rng(5)
    quiet = 1e-4 * rng.standard_normal(int(sr * silence_s))  # -80 dB background
    burst = 0.3 * rng.standard_normal(int(sr * burst_s))
    return np.concatenate([quiet, burst]).astype(np.float32)


def test_vad_drops_leading_silence():
    cfg = FeatureConfig()
    y = _silence_then_burst()
    mask = vad_mask(y, cfg)
    starts = np.arange(len(mask)) * cfg.hop_length
    in_silence = starts + cfg.win_length <= 8000  # frames entirely in the silence
    in_burst = starts >= 8000
    assert not mask[in_silence].any()
    assert mask[in_burst].all()
    X = extract(y, cfg)
    assert X.shape == (int(mask.sum()), 60)
    assert X.shape[0] < frame_count(len(y), cfg.win_length, cfg.hop_length)


# --- whole chain -----------------------------------------------------------


def test_extract_output_contract():
    cfg = FeatureConfig(cmvn=True, prior_frames=None)
    X = extract(_noise(16000 * 2, seed=9), cfg)
    assert X.dtype == np.float32 and X.ndim == 2 and X.shape[1] == 60
    assert np.isfinite(X).all()
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(X.std(axis=0), 1, atol=1e-3)
    raw = extract(_noise(16000 * 2, seed=9), FeatureConfig(vad=False, cmvn=False, deltas=False))
    np.testing.assert_allclose(raw, mfcc(_noise(16000 * 2, seed=9)), atol=1e-6)


def test_prior_normalisation_moves_the_mean_part_way_to_the_prior():
    y = _noise(16000 * 2, seed=9)
    assert FeatureConfig().needs_prior
    raw = extract(y, FeatureConfig()).astype(np.float64)  # no prior yet: not normalised
    np.testing.assert_allclose(raw, extract(y, FeatureConfig(prior_frames=None)), atol=0)
    prior = np.linspace(-3.0, 3.0, 60)
    for frames in (50.0, 200.0, 5000.0):
        X = extract(y, FeatureConfig(prior_frames=frames).with_prior(prior)).astype(np.float64)
        n = len(raw)
        # the utterance's mean estimated with `frames` frames at the prior, and that estimate's offset removed
        estimate = (raw.sum(axis=0) + frames * prior) / (n + frames)
        np.testing.assert_allclose(X.mean(axis=0), raw.mean(axis=0) - (estimate - prior), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(X - X.mean(axis=0), raw - raw.mean(axis=0), atol=1e-3)  # only shifted
    # a long utterance is nearly mean-normalised; with a tiny prior exactly
    X = extract(y, FeatureConfig(prior_frames=1e-9).with_prior(prior))
    np.testing.assert_allclose(X.mean(axis=0), prior, atol=1e-3)


def test_prior_settings_are_checked_and_survive_a_round_trip():
    cfg = FeatureConfig(sr=8000).with_prior(np.arange(60.0))
    assert not cfg.needs_prior and cfg.prior_mean == tuple(np.arange(60.0))
    assert FeatureConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="prior_mean must hold n_features=60"):
        FeatureConfig(prior_mean=(1.0, 2.0))
    with pytest.raises(ValueError, match="non-finite"):
        FeatureConfig().with_prior(np.full(60, np.nan))
    with pytest.raises(ValueError, match="unused"):
        FeatureConfig(cmvn=True).with_prior(np.zeros(60))
    with pytest.raises(ValueError, match="prior_frames must be positive"):
        FeatureConfig(prior_frames=0)


def test_extract_too_short_names_the_fix():
    with pytest.raises(FeatureError, match="too short.*frame_length_ms"):
        extract(np.zeros(399, np.float32), FeatureConfig())


def test_extract_silence_names_the_vad_fix():
    with pytest.raises(FeatureError, match="vad_floor_db.*vad=False"):
        extract(np.zeros(16000, np.float32), FeatureConfig())
    # Without VAD, digital silence still gives finite features.
    X = extract(np.zeros(16000, np.float32), FeatureConfig(vad=False))
    assert np.isfinite(X).all()


@pytest.mark.parametrize(
    "y,msg",
    [
        (np.array([0.0, np.nan] * 1000, np.float32), "NaN"),
        (np.zeros((2, 1000), np.float32), "mono 1-D"),
        (np.zeros(1000, np.int16), "float samples"),
    ],
)
def test_extract_rejects_bad_signals(y, msg):
    with pytest.raises(FeatureError, match=msg):
        extract(y)


def test_48k_stereo_file_matches_16k_mono_file(tmp_path):
    t48, t16 = np.arange(48000 * 2) / 48000, np.arange(16000 * 2) / 16000
    side = 0.05 * np.sin(2 * np.pi * 300 * t48)  # cancels in the mono mix
    sf.write(tmp_path / "s48.wav", np.stack([_multitone(t48) + side, _multitone(t48) - side], axis=1), 48000, subtype="FLOAT")
    sf.write(tmp_path / "m16.wav", _multitone(t16), 16000, subtype="FLOAT")
    raw_cfg = FeatureConfig(vad=False, cmvn=False)
    a, b = extract_file(tmp_path / "s48.wav", raw_cfg), extract_file(tmp_path / "m16.wav", raw_cfg)
    assert a.shape == b.shape == (1 + 32000 // 160, 60)  # 2 s, centred frames
    # Resampling perturbs only the first and last milliseconds, which reach
    # 4 frames into the deltas and delta-deltas; the rest agrees closely.
    np.testing.assert_allclose(a[9:-9], b[9:-9], atol=2e-3)
    a, b = extract_file(tmp_path / "s48.wav"), extract_file(tmp_path / "m16.wav")
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 0.01


def test_extract_file_errors_name_the_file(tmp_path):
    p = tmp_path / "quiet.wav"
    sf.write(p, np.zeros(16000), 16000)
    with pytest.raises(FeatureError, match=r"quiet.wav: voice activity detection kept none"):
        extract_file(p)
    with pytest.raises(AudioError, match="absent.wav"):
        extract_file(tmp_path / "absent.wav")
    short = tmp_path / "short.wav"
    sf.write(short, _noise(100), 16000)
    with pytest.raises(FeatureError, match="short.wav: audio too short"):
        extract_file(short)


def test_extract_files_keeps_order_in_process_and_in_workers(tmp_path, monkeypatch):
    import speaker_id.frontend.extraction as extraction

    paths = []
    for i, seconds in enumerate([1.0, 0.3, 0.6, 0.45]):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, _noise(int(16000 * seconds), seed=i), 16000)
        paths.append(p)
    cfg = FeatureConfig(vad=False)
    serial = extract_files(paths, cfg, n_jobs=1)
    assert [x.shape[0] for x in serial] == [1 + int(16000 * s) // 160 for s in [1.0, 0.3, 0.6, 0.45]]
    monkeypatch.setattr(extraction, "_POOL_MIN_BYTES", 0)  # so few bytes would stay in this process
    parallel = extract_files(paths, cfg, n_jobs=2)
    assert len(parallel) == len(paths)
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_jobs"):
        extract_files(paths, cfg, n_jobs=0)


def test_extract_files_reports_the_failing_file(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, _noise(8000), 16000)
    for n_jobs in (1, 2):
        with pytest.raises(AudioError, match="gone.wav.*not found"):
            extract_files([good, tmp_path / "gone.wav", good], FeatureConfig(), n_jobs=n_jobs)


# --- real recordings -------------------------------------------------------

needs_data = pytest.mark.skipif(DATA is None, reason="shared datasets not found: set SPEAKER_ID_DATASETS or place them in ../shared/datasets")


@needs_data
def test_real_fsdd_and_librispeech_files_give_finite_features():
    fsdd = sorted((DATA / "fsdd" / "recordings").glob("*_theo_1*.wav"))[:5]
    libri = sorted((DATA / "librispeech-mini" / "test-other").rglob("*.flac"))[:2]
    assert fsdd and libri, "expected FSDD and LibriSpeech files under the dataset root"
    for paths, cfg in [(fsdd, FeatureConfig(sr=8000)), (libri, FeatureConfig())]:
        for p in paths:
            X = extract_file(p, cfg)
            n_total = 1 + sf.info(p).frames * cfg.sr // sf.info(p).samplerate // cfg.hop_length
            assert X.dtype == np.float32 and X.shape[1] == 60
            assert np.isfinite(X).all()
            # The VAD keeps speech but drops some of the pauses.
            assert 0.2 * n_total < X.shape[0] <= n_total


def test_a_small_corpus_starts_no_worker(tmp_path, monkeypatch):
    """Below _POOL_MIN_BYTES the workers' start-up would cost more than they save: n_jobs=2 runs in this process."""
    import speaker_id.frontend.extraction as extraction

    started = count_pool_starts(monkeypatch)
    paths = []
    for i in range(3):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, _noise(8000, seed=i), 16000)
        paths.append(p)
    cfg = FeatureConfig(vad=False)
    features = extract_files(paths, cfg, n_jobs=2)
    assert started == []
    for path, x in zip(paths, features):
        np.testing.assert_array_equal(x, extract_file(path, cfg))
    with extraction.ExtractionPool(cfg, n_jobs=2, n_bytes=extraction._POOL_MIN_BYTES - 1) as pool:
        assert pool.n_jobs == 1 and pool._pool is None
    assert started == []
