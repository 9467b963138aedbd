"""Audio sources of `speaker-id stream`: raw PCM decoding, files, pipes that stall, missing microphone support."""

import io
import os
import sys

import numpy as np
import pytest
import soundfile as sf

import speaker_id.frontend.sources as sources
from speaker_id.frontend.sources import (
    FileSource,
    MicrophoneSource,
    RawPcmSource,
    SourceError,
    decode_pcm,
    normalise_format_name,
    open_source,
)

VALUES = np.array([0.0, 0.5, -0.5, 0.25, -1.0, 0.75])


def encode(values, fmt):
    """Independent encoder: scale by the format's full scale and pack with numpy/int.to_bytes."""
    if fmt.startswith("f"):
        return np.asarray(values, dtype={"f32le": "<f4", "f32be": ">f4", "f64le": "<f8"}[fmt]).tobytes()
    bits = {"s8": 8, "u8": 8, "s16le": 16, "s16be": 16, "s24le": 24, "s24be": 24, "s32le": 32}[fmt]
    ints = np.round(np.asarray(values) * 2 ** (bits - 1)).astype(np.int64)
    if fmt == "u8":
        return bytes(int(v) + 128 for v in ints)
    order = "big" if fmt.endswith("be") else "little"
    return b"".join(int(v).to_bytes(bits // 8, order, signed=True) for v in ints)


@pytest.mark.parametrize("fmt", ["s8", "u8", "s16le", "s16be", "s24le", "s24be", "s32le", "f32le", "f32be", "f64le"])
def test_decode_every_format(fmt):
    # every value is a multiple of 1/4, exact in every format
    np.testing.assert_array_equal(decode_pcm(encode(VALUES, fmt), fmt, 1), VALUES.astype(np.float32))


def test_channels_are_averaged_and_names_normalised():
    stereo = encode(np.array([0.5, 0.0, -0.5, -0.25]), "s16le")  # frames (0.5, 0) and (-0.5, -0.25)
    np.testing.assert_allclose(decode_pcm(stereo, "s16le", 2), [0.25, -0.375])
    assert normalise_format_name("S16_LE") == "s16le" and normalise_format_name("S24_3LE") == "s24le"
    with pytest.raises(SourceError, match="unknown sample format 'mp3'"):
        normalise_format_name("mp3")


def test_raw_pcm_in_chunks_and_a_torn_last_frame():
    signal = np.linspace(-0.9, 0.9, 2000)
    data = encode(signal, "s16le") + b"\x07"  # one stray byte at the end
    source = RawPcmSource(8000, 1, "s16le", chunk_ms=100, stream=io.BytesIO(data))
    chunks = list(source)
    assert [len(c) for c in chunks] == [800, 800, 400]
    np.testing.assert_allclose(np.concatenate(chunks), signal, atol=1 / 32768)
    assert len(source.notes) == 1 and "1 trailing byte(s) ignored" in source.notes[0]


def test_a_stalled_pipe_raises_instead_of_waiting_forever():
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, encode(np.zeros(100), "s16le"))  # 100 samples, then nothing
        with os.fdopen(read_fd, "rb", buffering=0) as reader:
            source = RawPcmSource(8000, 1, "s16le", chunk_ms=100, stream=reader, stall_timeout=0.2)
            with pytest.raises(SourceError, match="no audio on .* for 0.2 s: the producer stalled"):
                list(source)
    finally:
        os.close(write_fd)


def test_file_source_mixes_channels_and_paces_playback(tmp_path, monkeypatch):
    path = tmp_path / "stereo.wav"
    t = np.arange(4000) / 8000
    sf.write(path, np.stack([np.sin(2 * np.pi * 200 * t), np.zeros_like(t)], axis=1) * 0.5, 8000)
    clock = {"now": 0.0, "slept": 0.0}

    def sleep(seconds):
        clock["now"] += seconds
        clock["slept"] += seconds

    monkeypatch.setattr(sources.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(sources.time, "sleep", sleep)
    with FileSource(path, chunk_ms=50, realtime=True) as source:
        chunks = list(source)
    assert source.sr == 8000 and [len(c) for c in chunks] == [400] * 10
    np.testing.assert_allclose(np.concatenate(chunks), 0.25 * np.sin(2 * np.pi * 200 * t), atol=1e-4)
    assert clock["slept"] == pytest.approx(0.5)  # half a second of audio handed out over half a second


def test_missing_file_and_undecodable_file(tmp_path):
    with pytest.raises(SourceError, match="audio file not found"):
        open_source(str(tmp_path / "nope.wav"))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(SourceError, match="cannot decode audio"):
        open_source(str(bad))
    with pytest.raises(SourceError, match=r"--rate\) is 0 Hz; it must be at least 1000 Hz"):
        open_source("-", rate=0)


def test_microphone_without_sounddevice_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    with pytest.raises(SourceError, match=r"pip install 'streamgmm\[mic\]'"):
        open_source("mic")
    with pytest.raises(SourceError, match="arecord"):
        MicrophoneSource(16000)


class _FakeInputStream:
    """Stands in for sounddevice.InputStream: start() delivers blocks to the callback at once."""

    blocks = []

    def __init__(self, samplerate, channels, device, dtype, blocksize, callback):
        self.callback, self.channels, self.blocksize = callback, channels, blocksize
        self.closed = False

    def start(self):
        for block in self.blocks:
            self.callback(block, len(block), None, None)

    def stop(self):
        pass

    def close(self):
        self.closed = True


def test_microphone_chunks_overruns_and_stalls(monkeypatch):
    import types

    stereo = [np.full((800, 2), 0.1 * (i + 1), np.float32) for i in range(5)]
    _FakeInputStream.blocks = stereo
    fake = types.SimpleNamespace(InputStream=_FakeInputStream)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    source = open_source("mic:3", rate=8000, channels=2, chunk_ms=100, stall_timeout=0.05)
    assert isinstance(source, MicrophoneSource) and source.sr == 8000 and source.chunk_samples == 800
    got = []
    with pytest.raises(SourceError, match="delivered no audio for 0.05 s"):
        for chunk in source:  # five blocks, then the device goes quiet
            got.append(chunk)
    assert [float(c[0]) for c in got] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    source.close()
    assert source._stream.closed
    # a reader that falls behind loses the newest audio beyond the queue, and is told
    _FakeInputStream.blocks = stereo
    slow = MicrophoneSource(8000, channels=2, chunk_ms=100, stall_timeout=0.05, max_queued_chunks=2)
    with pytest.raises(SourceError):
        list(slow)
    assert slow.notes == ["2400 samples lost: scoring fell behind the microphone"]
