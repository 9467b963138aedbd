"""Reading audio files into mono float32 arrays at a chosen sample rate.

This is the leftmost step of the pipeline (audio -> frames -> statistics ->
models -> scores): every other module that needs samples goes through
:func:`load_audio`, so decoding, channel mixing, resampling and the checks on
what came out of the file live in one place.

Decoding is done by `soundfile` (libsndfile), which reads WAV, FLAC, OGG
(Vorbis/Opus), AIFF, AU, CAF, W64 and a few more; resampling, when the file's
rate differs from the requested one, by :func:`librosa.resample`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf

from .limits import (
    MAX_SAMPLE_MAGNITUDE,
    LimitError,
    check_channels,
    check_resampling,
    check_sample_rate,
)
from .paths import display_path, open_regular_file

__all__ = ["AUDIO_EXTENSIONS", "AudioError", "check_audio_header", "check_samples", "is_audio_file", "load_audio"]

PathLike = Union[str, os.PathLike]

#: File name extensions (lower case, without the dot) that soundfile can
#: decode and that :func:`speaker_id.evaluation.corpora.scan_audio` picks up. Matching is
#: case-insensitive: ``.WAV`` and ``.Flac`` count too.
AUDIO_EXTENSIONS = frozenset(
    {
        "wav", "wave", "flac", "ogg", "oga", "opus",
        "aiff", "aif", "aifc", "au", "snd", "caf", "w64", "rf64",
        "sph", "nist", "mp3",
    }
)


class AudioError(ValueError):
    """An audio file cannot be turned into usable samples.

    Raised for a missing file, a format that cannot be decoded, a file with no
    samples, or samples that are NaN or infinite. The message names the file
    and says what to do about it.
    """


def is_audio_file(path: PathLike) -> bool:
    """Tell whether a file name has one of the :data:`AUDIO_EXTENSIONS`.

    Only the name is looked at, in any letter case; the file is not opened.

    Parameters
    ----------
    path : str or os.PathLike
        File name or path.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_audio_file("speaker1/utt_001.WAV")
    True
    >>> is_audio_file("notes.txt")
    False
    """
    suffix = Path(path).suffix
    return suffix[1:].lower() in AUDIO_EXTENSIONS if suffix else False


def _resample_type() -> str:
    # soxr is librosa's default high-quality resampler; fall back to
    # librosa's own default if the package is not installed.
    return "soxr_hq" if importlib.util.find_spec("soxr") is not None else "fft"


def load_audio(path: PathLike, sr: int = 16000) -> np.ndarray:
    """Read an audio file as mono float32 samples at sample rate `sr`.

    Multichannel audio is mixed to mono by averaging the channels. When the
    file's sample rate differs from `sr` the signal is resampled with
    :func:`librosa.resample` (``res_type='soxr_hq'`` when the `soxr` package
    is available). Integer PCM is scaled to [-1, 1).

    Parameters
    ----------
    path : str or os.PathLike
        An audio file soundfile can decode (see :data:`AUDIO_EXTENSIONS`).
    sr : int, default 16000
        Sample rate of the returned signal, in Hz.

    Returns
    -------
    y : np.ndarray, shape (n_samples,), dtype float32
        The mono signal at rate `sr`; finite and non-empty.

    Raises
    ------
    AudioError
        If the file does not exist, is not a regular file (a directory, a
        FIFO, a device), cannot be read or decoded, has a sample rate or
        channel count outside :mod:`~speaker_id.frontend.limits` (or would
        be resampled up more than ``MAX_UPSAMPLING`` times), holds no
        samples, or holds NaN, infinite or absurdly large samples. The
        message names the file.

    Examples
    --------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> t = np.arange(48000) / 48000
    >>> stereo = np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.5
    >>> sf.write(os.path.join(d, "tone.wav"), stereo, 48000)
    >>> y = load_audio(os.path.join(d, "tone.wav"), sr=16000)
    >>> y.shape, y.dtype
    ((16000,), dtype('float32'))
    """
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise ValueError(f"sr must be a positive integer sample rate in Hz, got {sr!r}")
    sr = int(sr)
    shown = display_path(path)
    with open_regular_file(path, "audio file", AudioError) as handle:
        try:
            # libsndfile reads the checked descriptor itself (a Python file object would be read
            # through Python callbacks, about 30 us more per file); the handle still closes it
            with sf.SoundFile(handle.fileno(), closefd=False) as audio:
                file_sr = check_audio_header(audio.samplerate, audio.channels, shown, sr)
                y = _read_mono(audio)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise AudioError(
                f"{shown}: cannot decode audio ({getattr(exc, 'error_string', exc)}); supported formats are those of "
                f"libsndfile (WAV, FLAC, OGG, AIFF, ...): convert the file, e.g. "
                f"`ffmpeg -i INPUT -ar {sr} -ac 1 OUTPUT.wav`"
            ) from None
    if y.size == 0:
        raise AudioError(f"{shown}: the file holds no audio samples; remove it from the list or re-record it")
    check_samples(y, shown)
    if file_sr != sr:
        import librosa  # imported here: only needed when the rates differ

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type=_resample_type())
        if y.size == 0:
            raise AudioError(f"{shown}: too short to resample from {file_sr} Hz to {sr} Hz; the file holds almost no audio")
    return np.ascontiguousarray(y, dtype=np.float32)


def check_audio_header(rate, channels, source, target_sr=None):
    """Refuse a sample rate or channel count no recording has, before any sample is read.

    Parameters
    ----------
    rate, channels : int
        As the file's header gives them.
    source : str
        The file, for messages.
    target_sr : int, optional
        The rate the audio will be resampled to; resampling up by more than
        :data:`~speaker_id.frontend.limits.MAX_UPSAMPLING` is refused.

    Returns
    -------
    int
        ``rate``.

    Raises
    ------
    AudioError
        Naming the file, the value and the bound.
    """
    def refuse(exc):
        return AudioError(f"{source}: {exc} The header is damaged or the file is not a recording; "
                          "re-encode it (e.g. `ffmpeg -i INPUT -ac 1 -ar 16000 OUTPUT.wav`) or remove it")

    try:
        rate = check_sample_rate(rate, "the sample rate in the file's header")
        check_channels(channels, "the channel count in the file's header")
        if target_sr is not None:
            check_resampling(rate, target_sr)
    except LimitError as exc:
        raise refuse(exc) from None
    return rate


def _read_mono(audio, block_frames=1 << 16):
    """All of an open ``soundfile.SoundFile`` mixed to mono float32, read block by block.

    Memory is the samples actually decoded plus one block, whatever number of
    frames the header claims.
    """
    blocks = []
    mono = audio.channels == 1
    while True:
        block = audio.read(block_frames, dtype="float32", always_2d=not mono)  # mono: 1-D, no copy to take
        if block.shape[0] == 0:
            break
        blocks.append(block if mono else block.mean(axis=1, dtype=np.float32))
        if block.shape[0] < block_frames:  # a short read is the end of the file: no empty read to learn it
            break
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def check_samples(y, source):
    """Refuse NaN, infinite or absurdly large samples (the file is corrupt); return ``y``.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
    source : str
        The file, for messages.

    Raises
    ------
    AudioError
        Naming the file, how many samples are bad and the largest magnitude.
    """
    peak = float(np.max(np.abs(y))) if y.size else 0.0  # NaN if any sample is NaN, inf if any is infinite
    if peak <= MAX_SAMPLE_MAGNITUDE:  # one pass over the samples for the usual, good file
        return y
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(y)
    if not finite.all():
        n_bad = int(np.count_nonzero(~finite))
        raise AudioError(
            f"{source}: {n_bad} of {y.size} samples are NaN or infinite; the file is corrupt "
            f"or was written from invalid floats: regenerate it or remove it from the list"
        )
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise AudioError(
            f"{source}: samples reach {peak:.3g} where full scale is 1 (at most {MAX_SAMPLE_MAGNITUDE:.3g} is "
            f"accepted); the file was written from invalid or unscaled floats: regenerate it or remove it from the list"
        )
    return y
