"""Universal background model training over audio files, streaming.

Features are extracted once (on every core) into a temporary cache of
shards on disk, then :class:`streamgmm.OnlineGMM` runs exact out-of-core EM
over the shards: one pass per iteration, one shard in memory at a time, so
the whole corpus's frames are never held in memory together.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from streamgmm import ConvergenceWarning, OnlineGMM

from .features import FeatureConfig, extract_files

# frames per cache shard: 100,000 x 60 float32 = 24 MB
_SHARD_FRAMES = 100_000
# files whose features are extracted by one call to extract_files
_FILES_PER_BATCH = 512


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
        self.n_frames = 0
        self.n_files = len(paths)
        pending: list[np.ndarray] = []
        pending_frames = 0
        bar = _progress(total=len(paths), desc="features", unit="file", enabled=progress)
        try:
            for start in range(0, len(paths), _FILES_PER_BATCH):
                batch = paths[start : start + _FILES_PER_BATCH]
                jobs = n_jobs if len(batch) >= 64 else 1
                for feats in extract_files(batch, config, n_jobs=jobs):
                    pending.append(feats)
                    pending_frames += len(feats)
                    if pending_frames >= shard_frames:
                        self._write_shard(pending)
                        pending, pending_frames = [], 0
                bar.update(len(batch))
            if pending:
                self._write_shard(pending)
        finally:
            bar.close()

    def _write_shard(self, arrays):
        shard = np.concatenate(arrays)
        path = self.directory / f"shard-{len(self.shards):05d}.npy"
        np.save(path, shard, allow_pickle=False)
        self.shards.append(path)
        self.n_frames += len(shard)

    def chunks(self) -> Iterable[np.ndarray]:
        """Yield the shards in order, each memory-mapped (read-only)."""
        for path in self.shards:
            yield np.load(path, mmap_mode="r", allow_pickle=False)

    def close(self):
        """Remove the temporary shards (if the cache made its own directory)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def train_ubm(
    paths: Sequence,
    config: Optional[FeatureConfig] = None,
    *,
    n_components: int = 128,
    covariance_type: str = "diag",
    max_iter: int = 50,
    tol: float = 1e-3,
    init_params: str = "kmeans",
    random_state: int = 0,
    n_jobs: int = 2,
    progress: bool = False,
    cache_dir=None,
) -> OnlineGMM:
    """Train a UBM on the speech frames of ``paths`` by out-of-core EM.

    Parameters
    ----------
    paths : sequence of path-like
        Audio files (see :func:`speaker_id.datasets.scan_audio` to expand
        directories).
    config : FeatureConfig, optional
    n_components : int, default=128
    covariance_type : {"diag", "full"}, default="diag"
    max_iter, tol, init_params, random_state
        As :class:`streamgmm.OnlineGMM`.
    n_jobs : int
        Processes for feature extraction.
    progress : bool
        Progress bars for feature extraction and EM passes.
    cache_dir : path-like, optional
        Directory for the feature shards (default: a temporary one).

    Returns
    -------
    OnlineGMM
        Fitted; ``covariance_type`` as asked.

    Examples
    --------
    >>> ubm = train_ubm(scan_audio("corpus/"), FeatureConfig(), n_components=64)   # doctest: +SKIP
    """
    config = config or FeatureConfig()
    with FeatureCache(paths, config, directory=cache_dir, n_jobs=n_jobs, progress=progress) as cache:
        if cache.n_frames < n_components:
            raise ValueError(
                f"the training audio gave {cache.n_frames} speech frames, fewer than the "
                f"{n_components} components asked for; add audio or use --components smaller."
            )
        bar = _progress(total=max_iter, desc="EM", unit="pass", enabled=progress)
        passes = {"n": 0}

        def each_pass():
            passes["n"] += 1
            if passes["n"] > 1:  # the first pass initialises
                bar.update(1)
            return cache.chunks()

        ubm = OnlineGMM(
            n_components, covariance_type=covariance_type, max_iter=max_iter, tol=tol,
            init_params=init_params, random_state=random_state,
            init_size=max(100 * n_components, 20_000),
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ubm.fit(each_pass)
        finally:
            bar.close()
    return ubm
