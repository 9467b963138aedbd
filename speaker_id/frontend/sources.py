"""Audio sources for live scoring: a file, raw PCM on a pipe, or the microphone.

Each source is an iterator of mono float32 chunks in [-1, 1] at the source's
own rate (:attr:`AudioSource.sr`), ``chunk_samples`` long except possibly the
last. Multichannel audio is mixed to mono by averaging the channels.
:func:`open_source` builds one from the ``SOURCE`` argument of
``speaker-id stream``:

* a path: an audio file, read block by block (soundfile), as fast as
  possible or paced at real time (``realtime=True``);
* ``-``: raw interleaved PCM on standard input (``rate``, ``channels``,
  ``sample_format`` as in ``ffmpeg -f s16le``), so that
  ``arecord -f S16_LE -r 16000 -c 1 -t raw``, ``ffmpeg ... -f s16le -`` or
  ``sox ... -t raw -`` can be piped in;
* ``mic`` or ``mic:DEVICE``: the default (or named/numbered) input device,
  through the optional ``sounddevice`` package.

Sources never hold more than a few chunks: a pipe or microphone that stalls
for ``stall_timeout`` seconds raises :class:`SourceError` instead of waiting
forever; a microphone whose reader falls behind drops the audio that does
not fit in its queue and says how much.
"""

from __future__ import annotations

import os
import queue
import select
import sys
import time
from typing import Iterator, Optional

import numpy as np

from .audio import AudioError, check_audio_header
from .limits import (
    MAX_CHUNK_BYTES,
    MAX_CHUNK_MS,
    MAX_STALL_TIMEOUT_S,
    check_channels,
    check_number,
    check_sample_rate,
)
from .paths import display_path, open_regular_file

__all__ = [
    "SAMPLE_FORMATS",
    "AudioSource",
    "FileSource",
    "MicrophoneSource",
    "RawPcmSource",
    "SourceError",
    "StallError",
    "decode_pcm",
    "normalise_format_name",
    "open_source",
]


class SourceError(ValueError):
    """The audio source cannot be opened or stopped delivering audio; the message says why and what to do."""


class StallError(SourceError):
    """A pipe or microphone delivered nothing for ``stall_timeout`` seconds."""


# name -> (numpy dtype, bytes per sample, scale to [-1, 1), offset)
SAMPLE_FORMATS = {
    "u8": ("u1", 1, 1 / 128, -128),
    "s8": ("i1", 1, 1 / 128, 0),
    "s16le": ("<i2", 2, 1 / 32768, 0),
    "s16be": (">i2", 2, 1 / 32768, 0),
    "s24le": (None, 3, 1 / 8388608, 0),
    "s24be": (None, 3, 1 / 8388608, 0),
    "s32le": ("<i4", 4, 1 / 2147483648, 0),
    "s32be": (">i4", 4, 1 / 2147483648, 0),
    "f32le": ("<f4", 4, 1.0, 0),
    "f32be": (">f4", 4, 1.0, 0),
    "f64le": ("<f8", 8, 1.0, 0),
    "f64be": (">f8", 8, 1.0, 0),
}


def normalise_format_name(name: str) -> str:
    """``'S16_LE'`` (arecord) or ``'s16le'`` (ffmpeg, sox) -> ``'s16le'``.

    Raises
    ------
    SourceError
        For a format not in :data:`SAMPLE_FORMATS`.

    Examples
    --------
    >>> normalise_format_name("S16_LE"), normalise_format_name("FLOAT_LE")
    ('s16le', 'f32le')
    """
    key = str(name).lower().replace("_", "").replace("-", "")
    key = {"floatle": "f32le", "floatbe": "f32be", "float64le": "f64le", "float64be": "f64be",
           "s243le": "s24le", "s243be": "s24be"}.get(key, key)
    if key not in SAMPLE_FORMATS:
        raise SourceError(f"unknown sample format {name!r}; use one of {', '.join(SAMPLE_FORMATS)} "
                          f"(ffmpeg's names; arecord's S16_LE etc. are accepted too)")
    return key


def decode_pcm(data: bytes, sample_format: str, channels: int) -> np.ndarray:
    """Interleaved PCM bytes -> mono float32 samples (channels averaged).

    Parameters
    ----------
    data : bytes
        A whole number of sample frames (``channels`` samples each).
    sample_format : str
        A key of :data:`SAMPLE_FORMATS`.
    channels : int

    Returns
    -------
    np.ndarray, shape (len(data) // (bytes_per_sample * channels),), float32

    Examples
    --------
    >>> decode_pcm(np.array([16384, -16384], "<i2").tobytes(), "s16le", 1)
    array([ 0.5, -0.5], dtype=float32)
    >>> decode_pcm(np.array([16384, 0], "<i2").tobytes(), "s16le", 2)
    array([0.25], dtype=float32)
    """
    dtype, width, scale, offset = SAMPLE_FORMATS[sample_format]
    if dtype is None:  # 24-bit: assemble from 3 bytes, sign-extend
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        if sample_format == "s24be":
            raw = raw[:, ::-1]
        values = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        values = values - ((values & 0x800000) << 1)
    else:
        values = np.frombuffer(data, dtype=dtype)
    samples = (values.astype(np.float64) + offset) * scale
    samples = samples.reshape(-1, channels)
    mono = samples[:, 0] if channels == 1 else samples.mean(axis=1)
    return mono.astype(np.float32)


class AudioSource:
    """Base class: an iterator of mono float32 chunks at :attr:`sr`.

    Attributes
    ----------
    sr : int
        Sample rate of the chunks, in Hz.
    chunk_samples : int
        Samples per chunk (the last may be shorter).
    name : str
        What is being read, for messages.
    notes : list of str
        Things the user should know that did not stop the stream (bytes
        dropped at the end, audio lost to overruns).
    """

    sr: int
    chunk_samples: int
    name: str

    def __init__(self):
        self.notes = []

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _chunk_samples(sr, chunk_ms):
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, (int, float)) or not np.isfinite(chunk_ms) or chunk_ms <= 0:
        raise SourceError(f"chunk length must be a positive number of milliseconds, got {chunk_ms!r}")
    check_number(chunk_ms, "the chunk length (--chunk-ms)", 0, MAX_CHUNK_MS, low_open=True, unit=" ms",
                 error=SourceError)
    return max(1, int(round(sr * chunk_ms / 1000.0)))


def _check_rate_and_channels(rate, channels):
    """(rate, channels) of stdin or microphone audio, within :mod:`~speaker_id.frontend.limits`."""
    return (check_sample_rate(rate, "the sample rate (--rate)", error=SourceError),
            check_channels(channels, "the channel count (--channels)", error=SourceError))


def _check_chunk_bytes(n_bytes):
    if n_bytes > MAX_CHUNK_BYTES:
        raise SourceError(f"one chunk of this audio would take {n_bytes / 2**20:.0f} MiB, more than the "
                          f"{MAX_CHUNK_BYTES // 2**20} MiB allowed; lower --chunk-ms, --rate or --channels")


class _Pacer:
    """Sleeps so that audio is handed out no faster than it would be played."""

    def __init__(self, sr):
        self.sr = sr
        self.start = None
        self.samples = 0

    def wait(self, n_samples):
        if self.start is None:
            self.start = time.monotonic()
        self.samples += n_samples
        delay = self.start + self.samples / self.sr - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class FileSource(AudioSource):
    """An audio file read block by block (memory: one block), optionally at real-time pace.

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile (libsndfile) decodes: WAV, FLAC, OGG, ...
    chunk_ms : float, default 100
    realtime : bool, default False
        Hand out each chunk only when it would have been recorded.
    """

    def __init__(self, path, chunk_ms=100.0, realtime=False):
        super().__init__()
        import soundfile as sf

        self.name = display_path(path)
        self._handle = open_regular_file(path, "audio file", SourceError)
        try:
            self._file = sf.SoundFile(self._handle)
            check_audio_header(self._file.samplerate, self._file.channels, self.name)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            self._handle.close()
            raise SourceError(f"{self.name}: cannot decode audio ({getattr(exc, 'error_string', exc)}); convert it "
                              f"to WAV or FLAC, or pipe it in: ffmpeg -i INPUT -f s16le -ac 1 -ar 16000 - | "
                              f"speaker-id stream ... -") from None
        except AudioError as exc:
            self._handle.close()
            raise SourceError(str(exc)) from None
        self.sr = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        self.chunk_samples = _chunk_samples(self.sr, chunk_ms)
        self.realtime = bool(realtime)

    def __iter__(self):
        pacer = _Pacer(self.sr) if self.realtime else None
        while True:
            block = self._file.read(self.chunk_samples, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                return
            mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
            if pacer is not None:
                pacer.wait(mono.size)
            yield np.ascontiguousarray(mono)

    def close(self):
        self._file.close()
        self._handle.close()


class RawPcmSource(AudioSource):
    """Raw interleaved PCM from a binary stream (standard input by default).

    Parameters
    ----------
    rate : int
        Sample rate in Hz.
    channels : int, default 1
    sample_format : str, default "s16le"
        See :data:`SAMPLE_FORMATS`.
    chunk_ms : float, default 100
    stream : binary file object, optional
        Defaults to ``sys.stdin.buffer``.
    stall_timeout : float or None, default 30
        Raise :class:`SourceError` when no byte arrives for this many
        seconds; ``None`` waits forever.
    realtime : bool, default False
        Pace the output at real time (for data that arrives faster).
    """

    def __init__(self, rate, channels=1, sample_format="s16le", chunk_ms=100.0, stream=None,
                 stall_timeout=30.0, realtime=False):
        super().__init__()
        self.sr, self.channels = _check_rate_and_channels(rate, channels)
        if stall_timeout is not None:
            check_number(stall_timeout, "the stall timeout", 0, MAX_STALL_TIMEOUT_S, low_open=True, unit=" s",
                         error=SourceError)
        self.sample_format = normalise_format_name(sample_format)
        self.chunk_samples = _chunk_samples(self.sr, chunk_ms)
        _check_chunk_bytes(self.chunk_samples * self.channels * SAMPLE_FORMATS[self.sample_format][1])
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.name = "standard input" if stream is None else getattr(stream, "name", "stream")
        self.stall_timeout = stall_timeout
        self.realtime = bool(realtime)
        self._frame_bytes = SAMPLE_FORMATS[self.sample_format][1] * self.channels

    def _read(self, n_bytes):
        """Up to ``n_bytes`` (fewer only at end of stream); raise on a stall."""
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:  # an in-memory stream: no stalls possible
            return self.stream.read(n_bytes) or b""
        parts, got = [], 0
        while got < n_bytes:
            if self.stall_timeout is not None:
                ready, _, _ = select.select([fd], [], [], self.stall_timeout)
                if not ready:
                    raise StallError(
                        f"no audio on {self.name} for {self.stall_timeout:g} s: the producer stalled; "
                        f"check it, or raise --stall-timeout (0 waits forever)"
                    )
            data = os.read(fd, n_bytes - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def __iter__(self):
        pacer = _Pacer(self.sr) if self.realtime else None
        want = self.chunk_samples * self._frame_bytes
        while True:
            data = self._read(want)
            whole = len(data) - len(data) % self._frame_bytes
            if whole < len(data):
                self.notes.append(
                    f"the stream ended in the middle of a sample frame: {len(data) - whole} trailing "
                    f"byte(s) ignored (expected multiples of {self._frame_bytes} bytes for "
                    f"{self.channels} channel(s) of {self.sample_format}); check --format and --channels"
                )
            if whole:
                chunk = decode_pcm(data[:whole], self.sample_format, self.channels)
                if pacer is not None:
                    pacer.wait(chunk.size)
                yield chunk
            if len(data) < want:
                return


class MicrophoneSource(AudioSource):
    """The sound card's input, through the optional ``sounddevice`` package.

    Parameters
    ----------
    rate : int
        Sample rate to record at (the device resamples or refuses).
    channels : int, default 1
    device : int or str or None
        Input device index or name (``python -m sounddevice`` lists them).
    chunk_ms : float, default 100
    stall_timeout : float, default 5
        Raise :class:`SourceError` if the device delivers nothing this long.
    max_queued_chunks : int, default 50
        Chunks buffered when the reader falls behind; audio arriving while
        the queue is full is dropped (counted in :attr:`notes`).
    """

    def __init__(self, rate, channels=1, device=None, chunk_ms=100.0, stall_timeout=5.0, max_queued_chunks=50):
        super().__init__()
        self.sr, self.channels = _check_rate_and_channels(rate, channels)
        self.chunk_samples = _chunk_samples(self.sr, chunk_ms)
        _check_chunk_bytes(self.chunk_samples * self.channels * 4)
        sd = _import_sounddevice()
        self.name = f"microphone {device if device is not None else '(default input)'}"
        self.stall_timeout = stall_timeout
        self._queue = queue.Queue(maxsize=max_queued_chunks)
        self._dropped = 0
        try:
            self._stream = sd.InputStream(samplerate=self.sr, channels=self.channels, device=device,
                                          dtype="float32", blocksize=self.chunk_samples, callback=self._callback)
            self._stream.start()
        except Exception as exc:  # sounddevice raises PortAudioError or ValueError for device problems
            raise SourceError(f"cannot open the {self.name} at {self.sr} Hz: {exc}; list the devices with "
                              f"`python -m sounddevice` and pass mic:INDEX, or use a file or '-'") from exc

    def _callback(self, indata, frames, time_info, status):
        chunk = indata[:, 0].copy() if indata.shape[1] == 1 else indata.mean(axis=1, dtype=np.float32)
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            self._dropped += frames

    def __iter__(self):
        while True:
            try:
                chunk = self._queue.get(timeout=self.stall_timeout)
            except queue.Empty:
                raise StallError(f"the {self.name} delivered no audio for {self.stall_timeout:g} s; "
                                  f"check the device and its permissions") from None
            if self._dropped:
                self.notes.append(f"{self._dropped} samples lost: scoring fell behind the microphone")
                self._dropped = 0
            yield chunk

    def close(self):
        self._stream.stop()
        self._stream.close()


def _import_sounddevice():
    try:
        import sounddevice
    except ImportError as exc:
        raise SourceError(
            "microphone input needs the optional 'sounddevice' package: pip install 'streamgmm[mic]'; "
            "or pipe audio in: arecord -f S16_LE -r 16000 -c 1 -t raw | speaker-id stream --store STORE -"
        ) from exc
    except OSError as exc:  # sounddevice is installed but the PortAudio library is not
        raise SourceError(
            f"microphone input needs the PortAudio library ({exc}); install it (e.g. apt install "
            f"libportaudio2, brew install portaudio), or pipe audio in with arecord/ffmpeg/sox and '-'"
        ) from exc
    return sounddevice


def open_source(spec: str, *, chunk_ms: float = 100.0, realtime: bool = False, rate: Optional[int] = None,
                channels: int = 1, sample_format: str = "s16le", stall_timeout: Optional[float] = 30.0,
                default_rate: int = 16000) -> AudioSource:
    """The source named by ``spec``: a file path, ``-`` (raw PCM on stdin) or ``mic[:DEVICE]``.

    Parameters
    ----------
    spec : str
        A file named ``mic`` is given as ``./mic``.
    chunk_ms : float, default 100
    realtime : bool, default False
        Pace file and pipe input at real time.
    rate : int, optional
        Sample rate of stdin or microphone audio; defaults to `default_rate`.
        A file's rate comes from its header.
    channels : int, default 1
    sample_format : str, default "s16le"
        Raw PCM format of stdin.
    stall_timeout : float or None, default 30
    default_rate : int, default 16000
        The models' rate, used when `rate` is not given.

    Returns
    -------
    AudioSource
    """
    rate = default_rate if rate is None else rate
    if spec == "-":
        return RawPcmSource(rate, channels, sample_format, chunk_ms, stall_timeout=stall_timeout, realtime=realtime)
    if spec == "mic" or spec.startswith("mic:"):
        device = spec[4:] or None
        if device is not None and device.isdigit():
            device = int(device)
        return MicrophoneSource(rate, channels, device, chunk_ms, stall_timeout=stall_timeout or 5.0)
    return FileSource(spec, chunk_ms, realtime)
