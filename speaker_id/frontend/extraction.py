"""The whole front end of one utterance, one file, or many files on a process pool.

The chain run by :func:`extract` is, per utterance::

    y --config_frames--> frames (n_frames, win_length)   centred: half a window of zeros each side
      --power_spectrum--> (n_frames, 1 + n_fft // 2)   pre-emphasis, window, |FFT|^2
      --log_mel--> (n_frames, n_mels)                   mel filterbank, 10 log10
      --@ dct_matrix--> (n_frames, n_mfcc)              orthonormal DCT-II, c0 kept
      --add_deltas--> (n_frames, 3 * n_mfcc)            delta and delta-delta
      --[energy_vad mask]--> (n_speech_frames, ...)     drop low-energy frames
      --prior_cmn--> float32                            mean shrunk towards the training mean
                                                        (or per-utterance cmvn; see FeatureConfig)

Frames are rows throughout. Each step is a separate function so that a
streaming extractor can run the same steps on chunks and produce the same
numbers; each lives in the module of its stage (:mod:`.spectral`,
:mod:`.mfcc`, :mod:`.deltas`, :mod:`.vad`, :mod:`.normalization`). What each
step depends on:

* **Framing** pads the signal with ``win_length // 2`` zeros at both ends
  (``center=True``, librosa's default with ``pad_mode='constant'``), so
  frame ``t`` is centred on sample ``t * hop_length`` and the onset and end
  of the utterance get whole frames; a signal of ``n`` samples gives
  ``1 + (n + 2 * (win_length // 2) - win_length) // hop_length`` frames
  (``center=False``: no padding, ``1 + (n - win_length) // hop_length``;
  see :func:`frame_count`). Trailing samples that do not fill a frame are
  dropped. A streaming extractor pads the start of the stream when it
  begins and the end when it is flushed, and keeps the samples that do not
  fill a frame yet for the next chunk.
* **MFCCs** of a frame depend on that frame's samples only: pre-emphasis is
  applied inside each frame (``x[0] * (1 - a)``, ``x[i] - a * x[i-1]``, as
  Kaldi does), not across the whole signal, and the log has a fixed floor
  (no per-utterance ``top_db`` clipping as in :func:`librosa.power_to_db`).
* **Deltas** use the regression formula over ``±(delta_width // 2)`` frames
  with the first and last frames repeated at the edges (the same as
  ``librosa.feature.delta(mode='nearest')`` for the first order). The
  delta-delta is the Savitzky-Golay second derivative over the same window
  (``librosa.feature.delta(order=2, mode='nearest')``), so a streaming
  extractor needs a look-ahead of ``delta_width // 2`` frames (4 for the
  default 9) and the same edge repetition at the start and end of an
  utterance.
* **VAD** compares each frame's raw log-energy with the loudest frame of the
  utterance and with an absolute floor; the per-frame energy is local but the
  loudest frame is an utterance-level quantity (a streaming extractor would
  use the running maximum instead).
* **CMVN** uses the statistics of the speech frames of the whole utterance
  (a streaming extractor would use running or sliding-window statistics).

All of it is NumPy and :mod:`scipy.fft`; the window and mel filterbank come
from librosa (:func:`librosa.filters.get_window`, :func:`librosa.filters.mel`)
and are computed once per configuration and cached.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import multiprocessing
import os
from itertools import repeat
from typing import Optional, Sequence

import numpy as np

from .audio import PathLike, load_audio
from .blas_threads import keep_one_blas_thread, one_blas_thread
from .config import FeatureConfig, FeatureError
from .deltas import add_deltas
from .mfcc import _check_length, _check_signal, config_frames, mfcc_from_frames
from .normalization import cmvn, prior_cmn
from .spectral import _TABLES, _window, mel_filterbank
from .vad import energy_vad, frame_energy_db


def extract(y: np.ndarray, config: Optional[FeatureConfig] = None) -> np.ndarray:
    """Features of one utterance: MFCCs, deltas, VAD and CMVN per `config`.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono float signal in [-1, 1] at ``config.sr``.
    config : FeatureConfig, optional
        Defaults to ``FeatureConfig()``.

    Returns
    -------
    np.ndarray, shape (n_kept_frames, config.n_features), dtype float32
        Finite values; ``n_kept_frames`` is the number of frames that pass
        the VAD (all frames when ``config.vad`` is false).

    Raises
    ------
    FeatureError
        If the signal is not a finite 1-D float array, is shorter than one
        frame, or the VAD keeps no frame (the whole utterance is below
        ``config.vad_floor_db``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.concatenate([np.zeros(4000), 0.3 * rng.standard_normal(12000)]).astype(np.float32)
    >>> X = extract(y, FeatureConfig())
    >>> X.shape[1], X.dtype, X.shape[0] < 98  # leading silence dropped
    (60, dtype('float32'), True)
    """
    config = config or FeatureConfig()
    return _extract_checked(_check_signal(y), config)


def _extract_checked(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """:func:`extract` of a signal known to be finite, 1-D, float32 and contiguous (as load_audio gives it)."""
    _check_length(y, config)
    frames = config_frames(y, config)
    feats = mfcc_from_frames(frames, config)
    if config.deltas:
        feats = add_deltas(feats, width=config.delta_width, order=2)
    if config.vad:
        energy = frame_energy_db(frames)
        keep = energy_vad(energy, threshold_db=config.vad_threshold_db, floor_db=config.vad_floor_db)
        if not keep.any():
            raise FeatureError(
                f"voice activity detection kept none of {keep.size} frames: the loudest frame is at "
                f"{energy.max():.1f} dB, below vad_floor_db={config.vad_floor_db:g}; the audio is "
                f"silent or very quiet: check the recording or raise its level (a FeatureConfig with a lower "
                f"vad_floor_db, or vad=False, keeps quieter audio)"
            )
        feats = feats[keep]
    if config.cmvn:
        feats = cmvn(feats)
    elif config.prior_mean is not None:
        feats = prior_cmn(feats, config.prior_mean, config.prior_frames)
    return np.ascontiguousarray(feats, dtype=np.float32)


def extract_file(path: PathLike, config: Optional[FeatureConfig] = None) -> np.ndarray:
    """Load an audio file and :func:`extract` its features.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file (see :func:`speaker_id.frontend.audio.load_audio`); it is read at
        ``config.sr``, resampled if needed.
    config : FeatureConfig, optional

    Returns
    -------
    np.ndarray, shape (n_kept_frames, config.n_features), dtype float32

    Raises
    ------
    speaker_id.frontend.audio.AudioError
        If the file cannot be read (message names the file).
    FeatureError
        If no features can be computed; the message starts with the path.

    Examples
    --------
    >>> import soundfile as sf, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "noise.wav")
    >>> sf.write(p, 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    >>> extract_file(p).shape  # 1 + 16000 // 160 centred frames
    (101, 60)
    """
    config = config or FeatureConfig()
    y = load_audio(path, sr=config.sr)  # finite, 1-D, float32: extract's checks of the signal would repeat its own
    try:
        return _extract_checked(y, config)
    except FeatureError as exc:
        raise FeatureError(f"{os.fspath(path)}: {exc}") from exc


_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def _init_worker(tables: dict) -> None:
    """Worker start-up: one BLAS/OpenMP thread, the parent's cached tables."""
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    try:  # BLAS may already be loaded with its own pool; cap it if we can.
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        pass
    keep_one_blas_thread()  # so that the front end's per-file BLAS contexts cost nothing
    _TABLES.update(tables)


def _worker_extract(path: str, config: FeatureConfig) -> np.ndarray:
    return extract_file(path, config)


def _noop(_):
    return None


def _worker_extract_many(paths, config):
    return [extract_file(path, config) for path in paths]


# Audio bytes per task of ExtractionPool.imap: about a minute of 16 kHz 16-bit audio.
_TASK_BYTES = 2_000_000

# Fewer bytes of audio than this in a run and ExtractionPool starts no worker. A spawned worker imports
# NumPy, SciPy and the front end (0.4 s) and also re-imports the calling script's own imports (2.5 s
# for a script that imports librosa or the evaluation code), and one core extracts 16-33 MB of files
# a second (1000-1900x real time; FLAC is smaller for the same work), so two workers pay only beyond
# about 4 s of one core's work: on two shared cores FSDD's 19 MB took 1.1 s in this process and
# 2.5-3.2 s with two workers, 76 MB of it broke even (3.9 s), 190 MB took 8.1-8.5 s against 10.2-10.4 s;
# librispeech-mini's 69 MB (FLAC) took 2.1 s in this process and 3.6 s with two workers.
_POOL_MIN_BYTES = 128 * 2**20


def _total_bytes(paths):
    """Bytes of the files in ``paths`` (one ``stat`` each; unreadable ones count 0, extraction names them)."""
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    return total


def _tasks_by_size(paths):
    """Consecutive runs of ``paths`` holding about ``_TASK_BYTES`` of files each (one file at least)."""
    task, size = [], 0
    for path in paths:
        try:
            size += os.stat(path).st_size
        except OSError:  # extraction names the problem
            pass
        task.append(path)
        if size >= _TASK_BYTES:
            yield task
            task, size = [], 0
    if task:
        yield task


def extract_files(
    paths: Sequence[PathLike],
    config: Optional[FeatureConfig] = None,
    n_jobs: Optional[int] = 2,
) -> list:
    """Features of many files, in the order given, on several processes.

    Work is spread over `n_jobs` worker processes (started with the
    ``spawn`` method, so it is safe from threaded programs; call it under
    ``if __name__ == "__main__":`` in scripts). Each worker limits BLAS and
    OpenMP to one thread so the workers do not oversubscribe the cores.
    Starting workers costs a second or two, so files holding less than
    :data:`_POOL_MIN_BYTES` (128 MiB, several seconds of one core's work) are
    extracted in this process whatever `n_jobs` is.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Audio files.
    config : FeatureConfig, optional
    n_jobs : int or None, default 2
        Number of processes; 1 runs in this process; ``None`` or -1 uses
        every core (``os.cpu_count()``).

    Returns
    -------
    list of np.ndarray
        ``result[i]`` is ``extract_file(paths[i], config)``, shape
        (n_kept_frames_i, config.n_features), float32.

    Raises
    ------
    AudioError, FeatureError
        The first failure, naming its file; remaining work is cancelled.

    Examples
    --------
    >>> import soundfile as sf, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> ps = [os.path.join(d, f"{i}.wav") for i in range(3)]
    >>> for i, p in enumerate(ps):
    ...     sf.write(p, 0.1 * np.random.default_rng(i).standard_normal(8000 * (i + 1)), 16000)
    >>> [x.shape[0] for x in extract_files(ps, FeatureConfig(), n_jobs=1)]
    [51, 101, 151]
    """
    config = config or FeatureConfig()
    paths = [os.fspath(p) for p in paths]
    n_bytes = _total_bytes(paths) if n_jobs != 1 else None
    with ExtractionPool(config, n_jobs, n_files=len(paths), n_bytes=n_bytes) as pool:
        return pool.map(paths)


class ExtractionPool:
    """Worker processes that extract features, started once and kept for a whole run.

    Starting a worker costs a fraction of a second; a run that extracts its
    files in several batches (:class:`speaker_id.models.ubm.FeatureCache`
    writes shards every few hundred files) reuses one pool instead of
    starting one per batch. Workers are started with the ``spawn`` method
    (safe from threaded programs; call it under ``if __name__ ==
    "__main__":`` in scripts), each with one BLAS/OpenMP thread, and with
    ``n_jobs=1`` no process is started at all.

    Parameters
    ----------
    config : FeatureConfig
    n_jobs : int or None, default 2
        Number of processes; 1 runs in this process; ``None`` or -1 uses
        every core (``os.cpu_count()``).
    n_files : int, optional
        Files the run will extract in all, if known: no more workers than
        files are started.
    n_bytes : int, optional
        Bytes of audio the run will read in all, if known: below
        :data:`_POOL_MIN_BYTES` no worker is started (the files would be done
        in this process before the workers were up).

    Examples
    --------
    >>> with ExtractionPool(FeatureConfig(), n_jobs=2) as pool:          # doctest: +SKIP
    ...     for batch in batches:
    ...         features = pool.map(batch)
    """

    def __init__(self, config: Optional[FeatureConfig] = None, n_jobs: Optional[int] = 2,
                 n_files: Optional[int] = None, n_bytes: Optional[int] = None):
        self.config = config or FeatureConfig()
        if n_jobs is None or n_jobs == -1:
            n_jobs = os.cpu_count() or 1
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise ValueError(f"n_jobs must be a positive integer, -1 or None, got {n_jobs!r}")
        self.n_jobs = n_jobs if n_files is None else max(1, min(n_jobs, n_files))
        if n_bytes is not None and n_bytes < _POOL_MIN_BYTES:
            self.n_jobs = 1
        self._pool = None

    def __enter__(self) -> "ExtractionPool":
        if self.n_jobs > 1:
            config = self.config
            # Build the window and filterbank here once and ship them to the workers.
            _window(config.window, config.win_length, config.n_tapers)
            mel_filterbank(config.sr, config.fft_size, config.n_mels, config.fmin, config.mel_fmax, config.vtln_warp)
            ctx = multiprocessing.get_context("spawn")
            # Spawned children read the thread variables at start-up (before their
            # first numpy import), so set them around the workers' start.
            saved = {var: os.environ.get(var) for var in _THREAD_ENV}
            os.environ.update({var: "1" for var in _THREAD_ENV})
            try:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.n_jobs, mp_context=ctx, initializer=_init_worker, initargs=(dict(_TABLES),)
                )
                # start the workers now, while the thread variables are set
                list(self._pool.map(_noop, range(self.n_jobs)))
            except BaseException:
                self.close(cancel=True)
                raise
            finally:
                for var, value in saved.items():
                    if value is None:
                        os.environ.pop(var, None)
                    else:
                        os.environ[var] = value
        return self

    def map(self, paths: Sequence[PathLike]) -> list:
        """Features of ``paths``, in order: ``[extract_file(p, config) for p in paths]``.

        Raises
        ------
        AudioError, FeatureError
            The first failure, naming its file; remaining work is cancelled.
        """
        paths = [os.fspath(p) for p in paths]
        if self._pool is None or len(paths) < 2:
            with one_blas_thread():  # set once for all the files, not once per file
                return [extract_file(p, self.config) for p in paths]
        chunksize = max(1, min(64, len(paths) // (8 * self.n_jobs)))
        try:
            return list(self._pool.map(_worker_extract, paths, repeat(self.config), chunksize=chunksize))
        except BaseException:
            self.close(cancel=True)
            raise

    def imap(self, paths: Sequence[PathLike]):
        """Features of ``paths``, in order, one file at a time, with little work in flight.

        What :class:`~speaker_id.models.ubm.FeatureCache` needs to write a
        corpus to disk in bounded memory: files go to the workers in tasks of
        about :data:`_TASK_BYTES` of audio (one file at least), at most two
        tasks per worker at a time, so memory holds a few tasks' features
        whatever the number and length of the files.

        Yields
        ------
        np.ndarray of shape (n_kept_frames_i, config.n_features), float32

        Raises
        ------
        AudioError, FeatureError
            The first failure, naming its file; remaining work is cancelled.
        """
        paths = [os.fspath(p) for p in paths]
        if self._pool is None:
            # in this process, task by task as the workers would: one BLAS limit per task, not per file,
            # and never held while the caller has the results
            for task in _tasks_by_size(paths):
                with one_blas_thread():
                    results = [extract_file(path, self.config) for path in task]
                yield from results
            return
        tasks = iter(_tasks_by_size(paths))
        in_flight = collections.deque()
        try:
            for task in itertools.islice(tasks, 2 * self.n_jobs):
                in_flight.append(self._pool.submit(_worker_extract_many, task, self.config))
            while in_flight:
                results = in_flight.popleft().result()
                task = next(tasks, None)
                if task is not None:
                    in_flight.append(self._pool.submit(_worker_extract_many, task, self.config))
                yield from results
        except BaseException:
            self.close(cancel=True)
            raise

    def close(self, cancel: bool = False) -> None:
        """Stop the workers (``cancel``: drop work not yet started)."""
        if self._pool is not None:
            self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self._pool = None

    def __exit__(self, *exc) -> None:
        self.close(cancel=exc[0] is not None)
