"""Tests for speaker_id.frontend.audio: decoding, mono mixing, resampling, errors."""

import numpy as np
import pytest
import soundfile as sf

from speaker_id.frontend.audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    is_audio_file,
    load_audio,
)


def _tone(freq, sr, seconds, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def _peak_hz(y, sr):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spec) * sr / len(y)


def test_pcm16_wav_read_as_float32_in_unit_range(tmp_path):
    ints = np.array([0, 16384, -16384, 32767, -32768, 1] * 100, dtype=np.int16)
    p = tmp_path / "pcm.wav"
    sf.write(p, ints, 16000, subtype="PCM_16")
    y = load_audio(p, sr=16000)
    assert y.dtype == np.float32 and y.shape == (600,)
    np.testing.assert_array_equal(y, ints.astype(np.float32) / 32768.0)


def test_stereo_is_mixed_to_the_mean_of_channels(tmp_path):
    left = _tone(300, 16000, 0.5, amp=0.4)
    right = _tone(700, 16000, 0.5, amp=0.2)
    p = tmp_path / "stereo.wav"
    sf.write(p, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y = load_audio(p, sr=16000)
    assert y.ndim == 1 and y.shape == (8000,)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_resampling_keeps_duration_and_pitch(tmp_path):
    p = tmp_path / "tone48k.wav"
    sf.write(p, _tone(1000, 48000, 1.0), 48000)
    y = load_audio(p, sr=16000)
    assert y.dtype == np.float32
    assert y.shape == (16000,)
    assert abs(_peak_hz(y, 16000) - 1000) <= 2
    # The amplitude survives resampling (away from the edges).
    assert abs(np.abs(y[1000:-1000]).max() - 0.5) < 0.01


def test_8k_file_upsampled_to_16k(tmp_path):
    p = tmp_path / "tone8k.flac"
    sf.write(p, _tone(440, 8000, 0.5), 8000)
    y = load_audio(p, sr=16000)
    assert y.shape == (8000,)
    assert abs(_peak_hz(y, 16000) - 440) <= 3


@pytest.mark.parametrize("name,fmt", [("a.flac", "FLAC"), ("a.ogg", "OGG"), ("A.WAV", "WAV"), ("a.aiff", "AIFF")])
def test_formats_and_uppercase_extension(tmp_path, name, fmt):
    p = tmp_path / name
    sf.write(p, _tone(500, 16000, 0.25), 16000, format=fmt)
    y = load_audio(p)
    assert y.shape[0] in range(3990, 4010)  # OGG may pad or trim a few samples
    assert abs(_peak_hz(y, 16000) - 500) <= 5


def test_is_audio_file_ignores_case_and_knows_common_extensions():
    for ext in ("wav", "flac", "ogg", "oga", "aiff", "aif", "au", "caf", "w64"):
        assert ext in AUDIO_EXTENSIONS
        assert is_audio_file(f"x/y.{ext.upper()}")
    assert not is_audio_file("notes.txt")
    assert not is_audio_file("wav")  # no extension at all


def test_missing_file_error_names_the_file(tmp_path):
    p = tmp_path / "nowhere" / "missing.wav"
    with pytest.raises(AudioError, match="missing.wav.*not found"):
        load_audio(p)


def test_audio_error_is_a_value_error():
    assert issubclass(AudioError, ValueError)


def test_undecodable_file_error_names_the_file_and_the_fix(tmp_path):
    p = tmp_path / "fake.wav"
    p.write_text("this is not audio")
    with pytest.raises(AudioError, match="fake.wav.*cannot decode.*convert"):
        load_audio(p)


def test_directory_is_refused(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)


def test_empty_file_error(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0), 16000)
    with pytest.raises(AudioError, match="empty.wav.*no audio samples"):
        load_audio(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_error(tmp_path, bad):
    y = _tone(200, 16000, 0.1)
    y[37] = bad
    p = tmp_path / "bad.wav"
    sf.write(p, y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"bad.wav: 1 of 1600 samples are NaN or infinite"):
        load_audio(p)


@pytest.mark.parametrize("sr", [0, -16000, 16000.0, None, True])
def test_invalid_sample_rate(tmp_path, sr):
    p = tmp_path / "a.wav"
    sf.write(p, _tone(200, 16000, 0.1), 16000)
    with pytest.raises(ValueError, match="sr must be a positive integer"):
        load_audio(p, sr=sr)
