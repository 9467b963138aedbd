"""Universal background model training over audio files, streaming.

Features are extracted once (on every core) into a temporary cache of
shards on disk, then :class:`streamgmm.OnlineGMM` learns from them in one
of two ways (``learning_method``, as scikit-learn's
``LatentDirichletAllocation``):

* ``"batch"``: exact out-of-core EM over the shards, one pass per
  iteration, one shard in memory at a time, so the whole corpus's frames
  are never held in memory together.
* ``"online"``: a single pass of stepwise EM (``partial_fit``) over the
  utterances in a seeded random order, ``batch_size`` frames per update.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from streamgmm import OnlineGMM

from ..frontend.cluster import ClusterFeatures
from ..frontend.config import FeatureConfig
from ..frontend.extraction import ExtractionPool, _total_bytes
from ..frontend.normalization import apply_prior, fit_prior
from .ubm_schedule import (
    DEFAULT_SCHEDULE,
    ClusterFrames,
    LocalFrames,
    ScheduleLog,
    as_schedule,
    fit_full,
    fit_grow,
)

# frames per cache shard: 100,000 x 60 float32 = 24 MB
_SHARD_FRAMES = 100_000

LEARNING_METHODS = ("batch", "online")
# Frames per online update. Each partial_fit call is one step of the step
# schedule whatever its length, so the batches are made equal. Measured on
# FSDD (94,000 training frames, 128 components, 10 seeds; python
# scripts/online_vs_batch_ubm.py --sweep): raw EER after one pass falls from
# 1.69 % with 1,000-frame batches, 1.49 % with 2,000 and 1.20 % with 4,000 to
# 1.15 % with 8,000 (batch EM: 1.07 %), and is no lower with 12,000;
# held-out likelihood is flat from 2,000 to 8,000.
DEFAULT_BATCH_SIZE = 8000


def _init_size(n_components):
    """Frames the UBM initialises from: batch EM's reservoir sample, online EM's first frames."""
    return max(100 * n_components, 20_000)


def check_learning_method(learning_method, batch_size) -> None:
    """Raise ``ValueError`` unless ``learning_method`` and ``batch_size`` are usable.

    Parameters
    ----------
    learning_method : {"batch", "online"}
    batch_size : int
        Frames per online update; must be a positive integer (checked for
        both methods, so a bad value fails before any audio is read).
    """
    if not isinstance(learning_method, str) or learning_method not in LEARNING_METHODS:
        raise ValueError(f"learning_method must be 'batch' or 'online', got {learning_method!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of frames, got {batch_size!r}.")


class FeatureCache:
    """Features of many audio files written once to ``.npy`` shards, read back per pass.

    Parameters
    ----------
    paths : sequence of path-like
        Audio files.
    config : FeatureConfig
    directory : path-like, optional
        Where the shards go; a temporary directory (removed by
        :meth:`close`) by default.
    n_jobs : int
        Processes for feature extraction.
    progress : bool
        Show a progress bar (tqdm) while extracting.

    Examples
    --------
    >>> cache = FeatureCache(paths, FeatureConfig(sr=8000))     # doctest: +SKIP
    >>> for shard in cache.chunks(): ...                        # doctest: +SKIP
    """

    def __init__(self, paths: Sequence, config: FeatureConfig, directory=None, n_jobs: int = 2,
                 progress: bool = False, shard_frames: int = _SHARD_FRAMES):
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("no audio files to train on; give files, directories or a wav.scp.")
        self._tmp = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="speaker-id-features-")
            directory = self._tmp.name
        self.directory = Path(directory)
        self.shards: list[Path] = []
        self._spans: list[tuple[int, int, int]] = []  # (shard, first row, end row) per utterance
        self.n_frames = 0
        self.n_files = len(paths)
        bar = _progress(total=len(paths), desc="features", unit="file", enabled=progress)
        # one pool of workers for every batch (a corpus of less than _POOL_MIN_BYTES is faster in this process)
        pool = ExtractionPool(config, n_jobs, n_files=len(paths),
                              n_bytes=_total_bytes(paths) if n_jobs != 1 else None)
        try:
            with pool:
                self._extract(pool, paths, shard_frames, bar)
        finally:
            bar.close()

    def _extract(self, pool, paths, shard_frames, bar):
        # file by file as the workers finish them: memory holds one shard and a few files in flight
        pending: list[np.ndarray] = []
        pending_frames = 0
        for feats in pool.imap(paths):
            pending.append(feats)
            pending_frames += len(feats)
            if pending_frames >= shard_frames:
                self._write_shard(pending)
                pending, pending_frames = [], 0
            bar.update(1)
        if pending:
            self._write_shard(pending)

    def _write_shard(self, arrays):
        shard = np.concatenate(arrays)
        ends = np.cumsum([len(a) for a in arrays])
        self._spans.extend((len(self.shards), int(e - len(a)), int(e)) for a, e in zip(arrays, ends))
        path = self.directory / f"shard-{len(self.shards):05d}.npy"
        np.save(path, shard, allow_pickle=False)
        self.shards.append(path)
        self.n_frames += len(shard)

    def fit_prior(self, config: FeatureConfig) -> FeatureConfig:
        """Compute the training mean of the cached features and normalise them with it, in place.

        For a ``config`` that :attr:`~speaker_id.frontend.config.FeatureConfig.needs_prior`
        (the shards then hold un-normalised features): the mean over every
        cached frame (float64 sums, shard by shard) becomes the prior, and
        each utterance is rewritten through
        :func:`~speaker_id.frontend.normalization.apply_prior`.

        Parameters
        ----------
        config : FeatureConfig
            The one the cache extracted with.

        Returns
        -------
        FeatureConfig
            ``config.with_prior(mean)``: extract enrollment and test audio with it.
        """
        fitted = fit_prior(config, self.chunks())  # the mean over every frame, shard by shard
        spans: dict = {}
        for shard, start, end in self._spans:
            spans.setdefault(shard, []).append((start, end))
        for index, path in enumerate(self.shards):
            shard = np.load(path, allow_pickle=False)
            for start, end in spans.get(index, ()):
                shard[start:end] = apply_prior(shard[start:end], fitted)
            np.save(path, shard, allow_pickle=False)
        return fitted

    def chunks(self) -> Iterable[np.ndarray]:
        """Yield the shards in order, each read whole (one shard in memory at a time).

        Read, not memory-mapped: the pages of a mapped file count in the
        process's resident memory for as long as the map lives, so mapping
        every shard of a pass made the peak grow with the corpus (805 MiB
        for 10 hours of audio against 382 MiB for 1 hour,
        ``scripts/memory_train_ubm.py``).
        """
        for path in self.shards:
            yield np.load(path, allow_pickle=False)

    def utterances(self) -> "_CachedUtterances":
        """The features of each file, in file order, read lazily from the shards.

        Returns
        -------
        sequence of ndarray of shape (n_frames_i, n_features)
            ``len()`` is the number of files; item ``i`` is a copy of file
            ``i``'s frames, read from its memory-mapped shard (only the latest
            shard read stays mapped, so memory does not grow with the corpus).
        """
        return _CachedUtterances(self.shards, self._spans)

    def close(self):
        """Remove the temporary shards (if the cache made its own directory)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _CachedUtterances:
    """Random access to the utterances of a :class:`FeatureCache` (the latest shard read stays mapped)."""

    def __init__(self, shards, spans):
        self._shards, self._spans = shards, spans
        self._mapped = (None, None)  # (shard index, its memory map)

    def __len__(self):
        return len(self._spans)

    def __getitem__(self, i):
        shard, start, end = self._spans[i]
        if self._mapped[0] != shard:
            self._mapped = shard, np.load(self._shards[shard], mmap_mode="r", allow_pickle=False)
        return np.array(self._mapped[1][start:end])


def _progress(total, desc, unit, enabled):
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
        except ImportError:  # tqdm is a dependency; a broken install only loses the bar
            pass
    return _NoProgress()


class _NoProgress:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass


def shuffled_batches(utterances: Sequence, batch_size: int = DEFAULT_BATCH_SIZE, random_state=0):
    """Join utterances, in a seeded random order, into batches of about ``batch_size`` frames.

    Utterances are never split, so a batch holds whole utterances of many
    files: with the order shuffled, each batch is a sample of the whole
    corpus rather than of one speaker or session, which online EM assumes
    (it treats the batches as draws from one stationary stream). Batch
    boundaries are placed so that every batch has close to the same number
    of frames (an utterance goes to the batch its last frame falls in):
    online EM gives each batch one step whatever its length.

    Parameters
    ----------
    utterances : sequence of ndarray of shape (n_frames_i, n_features)
        Random access is needed (a list, or :meth:`FeatureCache.utterances`).
    batch_size : int, default=DEFAULT_BATCH_SIZE
        Target frames per batch; there are ``max(1, round(n_frames /
        batch_size))`` batches (fewer when one utterance is longer than
        several batches).
    random_state : int, numpy Generator or None, default=0
        Seed of the order.

    Yields
    ------
    ndarray of shape (n_batch_frames, n_features)
        Every frame exactly once over the whole iteration.
    """
    check_learning_method("online", batch_size)
    lengths = np.array([len(u) for u in utterances], dtype=np.int64)
    order = np.random.default_rng(random_state).permutation(len(lengths))
    order = order[lengths[order] > 0]
    if order.size == 0:
        return
    ends = np.cumsum(lengths[order])
    total = int(ends[-1])
    n_batches = max(1, round(total / batch_size))
    batch_of = (ends * n_batches - 1) // total  # non-decreasing, in [0, n_batches)
    for members in np.split(order, np.flatnonzero(np.diff(batch_of)) + 1):
        yield np.concatenate([np.asarray(utterances[i]) for i in members])


def fit_ubm(
    utterances,
    *,
    n_components: int = 128,
    covariance_type: str = "diag",
    learning_method: str = "batch",
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_iter: int = 50,
    tol: float = 1e-3,
    init_params: str = "kmeans",
    random_state: int = 0,
    progress: bool = False,
    schedule=DEFAULT_SCHEDULE,
) -> OnlineGMM:
    """Fit a UBM to features already extracted, by batch EM or one pass of online EM.

    Parameters
    ----------
    utterances : FeatureCache, ClusterFeatures or sequence of ndarray of shape (n_frames_i, n_features)
        The training frames, one array per utterance. Batch EM reads a
        cache shard by shard; online EM reads its utterances in random order.
        Features kept on a Dask cluster (:class:`~speaker_id.frontend.cluster.ClusterFeatures`)
        are learnt from there by batch EM (:func:`streamgmm.distributed.fit`),
        which gives the same model as in one process.
    n_components : int, default=128
    covariance_type : {"diag", "full"}, default="diag"
    learning_method : {"batch", "online"}, default="batch"
        ``"batch"``: EM to convergence (at most ``max_iter`` passes after an
        initialisation pass that draws a reservoir sample of
        ``max(100 * n_components, 20000)`` frames). ``"online"``: ONE pass
        of :meth:`streamgmm.OnlineGMM.partial_fit` over
        :func:`shuffled_batches` of the utterances: the first
        ``max(100 * n_components, 20000)`` frames of the shuffled stream
        (or all, if fewer) initialise the model, then every further batch
        is one stepwise-EM update with the library's default schedule
        ``(t + 1) ** -0.6``. Every frame is read once.
    batch_size : int, default=DEFAULT_BATCH_SIZE
        Frames per online update (validated, unused by batch EM).
    max_iter, tol
        Batch EM only, as :class:`streamgmm.OnlineGMM` (for ``schedule="grow"``,
        ``max_iter`` caps the passes over all the frames).
    init_params, random_state
        As :class:`streamgmm.OnlineGMM`; ``random_state`` also seeds the
        online order of the utterances.
    progress : bool
        A progress bar over EM passes (batch) or updates (online).
    schedule : {"grow", "full"} or UbmSchedule, default="grow"
        How batch EM spends its passes (see
        :mod:`speaker_id.models.ubm_schedule`). ``"grow"``: k-means to
        ``n_components // 8`` components on a random subsample of
        ``200 * n_components`` frames, 4 EM iterations on the subsample per
        size, every component split in two until ``n_components``, 8 more
        iterations on the subsample, then 8 passes over all the frames
        (at most ``max_iter``); about 10 passes' worth of E-step work
        instead of 50. ``"full"``: the old behaviour, k-means on a sample
        then EM over all the frames for ``max_iter`` passes or until the
        lower bound changes by less than ``tol``. Every EM iteration is an
        :meth:`streamgmm.OnlineGMM.fit` call.

    Returns
    -------
    OnlineGMM
        Fitted. After online learning ``n_iter_`` counts the updates
        (the initialisation is the first) and ``converged_`` is False.
        After batch EM ``n_iter_`` counts the passes over all the frames
        of the last stage and ``schedule_log_`` (a
        :class:`~speaker_id.models.ubm_schedule.ScheduleLog`) says what
        each stage did.

    Examples
    --------
    >>> ubm = fit_ubm([feats_a, feats_b, ...], n_components=64, learning_method="online")  # doctest: +SKIP
    """
    check_learning_method(learning_method, batch_size)
    schedule = as_schedule(schedule, max_iter=max_iter, tol=tol)
    on_cluster = isinstance(utterances, ClusterFeatures)
    if on_cluster:
        if learning_method != "batch":
            raise ValueError("online EM is one sequential pass and runs in one process; use the batch "
                             "learning method on a cluster (--learning-method batch), or no --workers/--scheduler.")
        utterances.wait()
        lengths = utterances.map(len, utterances.paths)
        frames = ClusterFrames(utterances.futures, utterances.client)
    else:
        if isinstance(utterances, FeatureCache):
            chunks, utterances = utterances.chunks, utterances.utterances()
        else:
            utterances = list(utterances)
            chunks = lambda: iter(utterances)  # noqa: E731
        lengths = [len(u) for u in utterances]
    n_frames = sum(lengths)
    if n_frames < n_components:
        raise ValueError(
            f"the training audio gave {n_frames} speech frames, fewer than the "
            f"{n_components} components asked for; add audio or use --components smaller."
        )
    init_size = _init_size(n_components)
    ubm = OnlineGMM(
        n_components, covariance_type=covariance_type, max_iter=max_iter, tol=tol,
        init_params=init_params, random_state=random_state,
        init_size=init_size if learning_method == "batch" else min(init_size, n_frames),
    )
    if learning_method == "online":
        bar = _progress(total=None, desc="online EM", unit="batch", enabled=progress)
        try:
            for batch in shuffled_batches(utterances, batch_size, random_state):
                ubm.partial_fit(batch)
                bar.update(1)
        finally:
            bar.close()
        return ubm
    log = ScheduleLog(schedule, n_frames)
    bar = _progress(total=None, desc="EM", unit="pass", enabled=progress and not on_cluster)

    def each_pass():
        bar.update(1)
        return chunks()

    if not on_cluster:
        frames = LocalFrames(each_pass)
    try:
        if schedule.kind == "grow":
            ubm = fit_grow(frames, n_components, schedule, covariance_type=covariance_type,
                           random_state=random_state, log=log)
        else:
            ubm = fit_full(frames, n_components, schedule, covariance_type=covariance_type,
                           init_params=init_params, init_size=init_size, random_state=random_state, log=log)
    finally:
        bar.close()
    ubm.schedule_log_ = log
    return ubm


def train_ubm(
    paths: Sequence,
    config: Optional[FeatureConfig] = None,
    *,
    n_components: int = 128,
    covariance_type: str = "diag",
    learning_method: str = "batch",
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_iter: int = 50,
    tol: float = 1e-3,
    init_params: str = "kmeans",
    random_state: int = 0,
    n_jobs: int = 2,
    progress: bool = False,
    cache_dir=None,
    schedule=DEFAULT_SCHEDULE,
    return_config: bool = False,
):
    """Train a UBM on the speech frames of ``paths``, out of core.

    Parameters
    ----------
    paths : sequence of path-like
        Audio files (see :func:`speaker_id.evaluation.corpora.scan_audio` to expand
        directories).
    config : FeatureConfig, optional
    n_components : int, default=128
    covariance_type : {"diag", "full"}, default="diag"
    learning_method : {"batch", "online"}, default="batch"
        Batch EM to convergence, or one shuffled pass of online EM; see
        :func:`fit_ubm`.
    batch_size : int, default=DEFAULT_BATCH_SIZE
        Frames per online update.
    max_iter, tol, init_params, random_state
        As :class:`streamgmm.OnlineGMM` (``max_iter`` and ``tol``: batch
        EM only); ``random_state`` also seeds the online order.
    n_jobs : int
        Processes for feature extraction.
    progress : bool
        Progress bars for feature extraction and EM passes.
    cache_dir : path-like, optional
        Directory for the feature shards (default: a temporary one).
    schedule : {"grow", "full"} or UbmSchedule, default="grow"
        Batch EM's schedule; see :func:`fit_ubm` (``"full"``: the old
        k-means start and EM to convergence).
    return_config : bool, default=False
        Also return the feature configuration the UBM was trained with.
        Required when ``config`` waits for its training mean (the default
        ``FeatureConfig``: ``prior_frames`` set): the mean is computed
        from these files' frames (:meth:`FeatureCache.fit_prior`) and the
        returned configuration carries it.

    Returns
    -------
    ubm : OnlineGMM
        Fitted; ``covariance_type`` as asked.
    config : FeatureConfig
        Only with ``return_config``: extract enrollment and test audio with it.

    Examples
    --------
    >>> ubm, config = train_ubm(scan_audio("corpus/"), FeatureConfig(), n_components=64,
    ...                         return_config=True)                                  # doctest: +SKIP
    """
    check_learning_method(learning_method, batch_size)
    schedule = as_schedule(schedule, max_iter=max_iter, tol=tol)
    config = config or FeatureConfig()
    if config.needs_prior and not return_config:
        raise ValueError(
            "the feature configuration normalises towards the training mean (prior_frames set, prior_mean not "
            "yet), which this training computes: pass return_config=True to get the configuration to extract "
            "enrollment and test audio with, or give a FeatureConfig with prior_frames=None or cmvn=True."
        )
    with FeatureCache(paths, config, directory=cache_dir, n_jobs=n_jobs, progress=progress) as cache:
        if config.needs_prior:
            config = cache.fit_prior(config)
        ubm = fit_ubm(
            cache, n_components=n_components, covariance_type=covariance_type,
            learning_method=learning_method, batch_size=batch_size, max_iter=max_iter, tol=tol,
            init_params=init_params, random_state=random_state, progress=progress, schedule=schedule,
        )
    return (ubm, config) if return_config else ubm
