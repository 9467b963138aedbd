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

__all__ = ["AUDIO_EXTENSIONS", "AudioError", "is_audio_file", "load_audio"]

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
        If the file does not exist, cannot be decoded, holds no samples, or
        holds NaN or infinite samples. The message names the file.

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
    path_str = os.fspath(path)
    if not os.path.exists(path_str):
        raise AudioError(f"{path_str}: audio file not found; check the path (and the current directory for relative paths)")
    if os.path.isdir(path_str):
        raise AudioError(f"{path_str}: is a directory, not an audio file; pass the files inside it (see speaker_id.evaluation.corpora.scan_audio)")
    try:
        data, file_sr = sf.read(path_str, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(
            f"{path_str}: cannot decode audio ({exc}); supported formats are those of "
            f"libsndfile (WAV, FLAC, OGG, AIFF, ...): convert the file, e.g. "
            f"`ffmpeg -i INPUT -ar {sr} -ac 1 OUTPUT.wav`"
        ) from exc
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{path_str}: the file holds no audio samples; remove it from the list or re-record it")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        n_bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioError(
            f"{path_str}: {n_bad} of {y.size} samples are NaN or infinite; the file is corrupt "
            f"or was written from invalid floats: regenerate it or remove it from the list"
        )
    if file_sr != sr:
        import librosa  # imported here: only needed when the rates differ

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type=_resample_type())
        if y.size == 0:
            raise AudioError(f"{path_str}: too short to resample from {file_sr} Hz to {sr} Hz; the file holds almost no audio")
    return np.ascontiguousarray(y, dtype=np.float32)
