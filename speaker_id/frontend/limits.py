"""Bounds on what an audio header, a stored setting or a command-line option may ask for.

A few bytes can ask for a lot: a WAV header saying 1 Hz makes a 4 MB file
resample into billions of samples, ``--window 1e9`` asks for a ring of 10^11
frames, a manifest whose ``sr`` is 10^12 asks for FFTs of 10^10 points. Every
such number is checked here, against one set of bounds, before anything is
allocated for it; the readers and the command line call these checks.

The bounds are far from anything speech needs, so no real recording, store or
stream meets them.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "LimitError",
    "MAX_CHANNELS",
    "MAX_CHUNK_BYTES",
    "MAX_CHUNK_MS",
    "MAX_DELTA_WIDTH",
    "MAX_FFT_SIZE",
    "MAX_JOBS",
    "MAX_MELS",
    "MAX_SAMPLE_MAGNITUDE",
    "MAX_SAMPLE_RATE",
    "MAX_STALL_TIMEOUT_S",
    "MAX_TAPERS",
    "MAX_UPSAMPLING",
    "MAX_WINDOW_S",
    "MIN_SAMPLE_RATE",
    "check_channels",
    "check_number",
    "check_resampling",
    "check_sample_rate",
]

#: Sample rates accepted from a file header, ``--rate``, ``--sr`` or a stored
#: feature configuration, in Hz.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
#: Audio is resampled up by at most this factor (8 kHz telephone audio to a
#: 64 kHz store), so a file's samples after resampling stay within a few per
#: byte of the file, whatever its header says.
MAX_UPSAMPLING = 8
#: Channels of an audio file or of raw PCM on a pipe (mixed to mono).
MAX_CHANNELS = 64
#: Largest absolute sample value of float audio (full scale is 1.0). Floats
#: written unscaled from 16- or 32-bit PCM (up to 2^31) pass; beyond this the
#: squares taken by the front end would overflow.
MAX_SAMPLE_MAGNITUDE = 2.0**32
#: Audio per update of a stream (``--chunk-ms``), in milliseconds, and the
#: bytes one chunk of raw PCM may take (rate x channels x sample size).
MAX_CHUNK_MS = 10_000.0
MAX_CHUNK_BYTES = 64 * 2**20
#: Sliding window of a stream (``--window``), in seconds.
MAX_WINDOW_S = 600.0
#: Seconds a stream waits for input before giving up (``--stall-timeout``).
MAX_STALL_TIMEOUT_S = 86_400.0
#: Worker processes of feature extraction (``--jobs``).
MAX_JOBS = 256
#: FFT points, mel bands, multitaper tapers and delta regression width of a feature configuration.
MAX_FFT_SIZE = 2**16
MAX_MELS = 512
MAX_TAPERS = 16
MAX_DELTA_WIDTH = 99


class LimitError(ValueError):
    """A number outside the bounds of :mod:`speaker_id.frontend.limits`; the message names both."""


def check_number(value, name, low, high, *, integer=False, low_open=False, unit="", error=LimitError):
    """Return ``value`` if it is a number in ``[low, high]`` (``(low, high]`` with ``low_open``).

    Parameters
    ----------
    value : object
    name : str
        What the value is, as the user knows it (``"--window"``, ``"the header's sample rate"``).
    low, high : float
    integer : bool, default False
        Require an integer (bools never count as numbers).
    low_open : bool, default False
        Exclude ``low`` itself.
    unit : str, default ""
        Appended to the numbers in the message (``" s"``, ``" Hz"``).
    error : type, default LimitError
        Exception class raised.

    Returns
    -------
    int or float

    Raises
    ------
    error
        If the value is not a (finite) number in the range.

    Examples
    --------
    >>> check_number(2.0, "--window", 0, MAX_WINDOW_S, low_open=True, unit=" s")
    2.0
    >>> check_number(1e9, "--window", 0, MAX_WINDOW_S, low_open=True, unit=" s")
    Traceback (most recent call last):
    ...
    speaker_id.frontend.limits.LimitError: --window is 1e+09 s; it must be above 0 s and at most 600 s.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise error(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}.")
    finite = isinstance(value, numbers.Integral) or math.isfinite(value)  # ints of any size are finite
    if not finite or value > high or value < low or (low_open and value == low):
        shown = f"{value}" if isinstance(value, numbers.Integral) and abs(value) > 1e15 else f"{value:g}"
        lowest = f"above {low:g}{unit}" if low_open else f"at least {low:g}{unit}"
        raise error(f"{name} is {shown}{unit}; it must be {lowest} and at most {high:g}{unit}.")
    return int(value) if integer else float(value)


def check_sample_rate(rate, name="the sample rate", error=LimitError):
    """Return ``rate`` as an int if it lies in [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] Hz.

    Examples
    --------
    >>> check_sample_rate(16000)
    16000
    >>> check_sample_rate(1, "the header's sample rate")
    Traceback (most recent call last):
    ...
    speaker_id.frontend.limits.LimitError: the header's sample rate is 1 Hz; it must be at least 1000 Hz and at most 384000 Hz.
    """
    return check_number(rate, name, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, integer=True, unit=" Hz", error=error)


def check_channels(channels, name="the channel count", error=LimitError):
    """Return ``channels`` as an int if it lies in [1, :data:`MAX_CHANNELS`]."""
    return check_number(channels, name, 1, MAX_CHANNELS, integer=True, error=error)


def check_resampling(from_rate, to_rate, error=LimitError):
    """Refuse resampling from ``from_rate`` up to more than :data:`MAX_UPSAMPLING` times as many samples.

    Both rates must already be valid (:func:`check_sample_rate`).

    Examples
    --------
    >>> check_resampling(8000, 16000)
    >>> check_resampling(1000, 16000)
    Traceback (most recent call last):
    ...
    speaker_id.frontend.limits.LimitError: audio at 1000 Hz would be resampled 16x up to 16000 Hz, more than the 8x allowed; resample it yourself (e.g. `sox IN -r 16000 OUT.wav`) if the rate is right, else the header is wrong.
    """
    if to_rate > MAX_UPSAMPLING * from_rate:
        raise error(
            f"audio at {from_rate} Hz would be resampled {to_rate / from_rate:.3g}x up to {to_rate} Hz, more than "
            f"the {MAX_UPSAMPLING}x allowed; resample it yourself (e.g. `sox IN -r {to_rate} OUT.wav`) if the "
            "rate is right, else the header is wrong."
        )
