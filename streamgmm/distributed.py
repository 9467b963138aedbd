"""Batch EM on a Dask cluster: the E-step mapped over the workers, the statistics summed in a tree.

Statistics add, so one EM iteration over many chunk sources is a map (each
worker accumulates the :class:`~streamgmm.SufficientStats` of its own
chunks under the current parameters), a reduce (a sum, done pairwise on
the workers, so the client receives one set of statistics of
``K x (2D + 1)`` numbers, or ``K x (D + D^2 + 1)`` for full covariances)
and one M-step on the client. The chunks are loaded once, by the worker
that keeps them, and never pass through the client; the parameters are
sent once per iteration.

The result equals :meth:`OnlineGMM.fit` in one process on the same rows in
the same order, to rounding: the initialisation sample is drawn by hashed
row index (:class:`~streamgmm.init.UniformSample`), so it is the same
however the rows are cut into sources, and the sum's order is fixed by
the list of sources, not by which worker finishes first. A worker lost in
the middle of an iteration costs a recomputation, not a different model:
Dask reruns its tasks (reloading its chunks from their sources) elsewhere.

Needs the ``dask`` extra: ``pip install 'streamgmm[dask]'``. Dask limits
each worker's BLAS to one thread but not Numba's: give the workers
``NUMBA_NUM_THREADS`` (cores per worker), e.g. ``LocalCluster(n_workers=2,
threads_per_worker=1, env={"NUMBA_NUM_THREADS": "1"})``, as ``speaker-id
--workers`` does. ``OnlineGMM.fit(sources, client=client)`` uses the
defaults; :func:`fit` also takes ``loader``, ``keep_loaded`` and ``callback``.

Examples
--------
>>> from dask.distributed import Client, LocalCluster            # doctest: +SKIP
>>> from functools import partial
>>> sources = [partial(np.load, p) for p in sorted(glob("frames/*.npy"))]  # doctest: +SKIP
>>> with Client(LocalCluster(n_workers=2)) as client:             # doctest: +SKIP
...     gmm = OnlineGMM(64, covariance_type="diag").fit(sources, client=client)
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ._validation import check_frames, coalesced_chunks
from .estep import DensityPlan
from .init import RunningMoments, UniformSample

#: statistics summed per reduce task
FAN_IN = 8

DASK_EXTRA_HINT = "install the extra: pip install 'streamgmm[dask]'"


def require_dask():
    """Import ``dask.distributed`` or raise ``ImportError`` naming the extra that provides it."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise ImportError(f"distributed EM needs Dask, which is not installed; {DASK_EXTRA_HINT}.") from None
    return dask.distributed


# ---------------------------------------------------------------- sources
def load_source(source, loader=None):
    """The chunks of one source, validated: a list of 2-D float arrays.

    Parameters
    ----------
    source : ndarray, path-like or callable
        An array of shape (n_frames, n_features); a path read by ``loader``;
        or a callable returning an array or an iterable of arrays.
    loader : callable, optional
        Reads a path; default ``numpy.load(path, allow_pickle=False)``.

    Returns
    -------
    list of ndarray of shape (n_frames_i, n_features)
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        data = loader(source) if loader is not None else np.load(source, allow_pickle=False)
    elif callable(source) and not hasattr(source, "__array__"):
        data = source()
    else:
        data = source
    if hasattr(data, "__array__") or isinstance(data, np.ndarray):
        chunks = [data]
    elif hasattr(data, "__iter__"):
        chunks = list(data)
    else:
        raise ValueError(f"a chunk source gave {type(data).__name__}; it must give an array or an iterable of arrays.")
    return [check_frames(chunk, name=f"chunk {i} of a source") for i, chunk in enumerate(chunks)]


def _chunks(data, loader):
    """The chunks of a task's argument: loaded already (a list kept on the worker) or a source to load now."""
    if isinstance(data, _Loaded):
        return data.chunks
    return load_source(data, loader)


@dataclass
class _Loaded:
    """A source's chunks as kept on a worker."""

    chunks: list


def _load_task(source, loader):
    return _Loaded(load_source(source, loader))


def _count_task(data, loader):
    chunks = _chunks(data, loader)
    moments = RunningMoments()
    for chunk in chunks:
        moments.add(chunk)
    n_features = {chunk.shape[1] for chunk in chunks}
    return moments, n_features


def _sample_task(data, loader, size, seed, first_row):
    sample = UniformSample(size, seed)
    for chunk in _chunks(data, loader):
        sample.add(chunk, first_row=first_row + sample.seen)
    return sample


def _merge_samples(*samples):
    total = samples[0]
    for other in samples[1:]:
        total.merge(other)
    return total


@dataclass
class EStep:
    """What a worker needs to run the E-step: the parameters of a :class:`~streamgmm.estep.DensityPlan`."""

    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: str
    shift: np.ndarray
    block_size: Optional[int]
    dtype: str

    @classmethod
    def of(cls, model):
        return cls(model.weights_, model.means_, model.precisions_cholesky_, model.covariance_type,
                   model.shift_, model.block_size, model.estep_dtype)

    def plan(self):
        return DensityPlan(self.weights, self.means, self.precisions_cholesky, self.covariance_type,
                           self.shift, self.block_size, dtype=np.dtype(self.dtype))


def _value(x):
    return x


def _accumulate_task(data, loader, estep):
    started = time.perf_counter()
    plan = estep.plan()
    total = None
    chunks = _chunks(data, loader)
    for block in coalesced_chunks(chunks, chunks[0].shape[1], plan.block_size):
        stats = plan.accumulate(block)
        total = stats if total is None else total + stats
    return total, time.perf_counter() - started


def _sum_task(*parts):
    started = time.perf_counter()
    total = parts[0][0].copy()
    seconds = parts[0][1]
    for stats, more in parts[1:]:
        total += stats
        seconds += more
    return total, seconds + (time.perf_counter() - started)


def _tree(client, futures, combine, fan_in=FAN_IN):
    """Combine futures ``fan_in`` at a time, level by level, in list order, into one future."""
    futures = list(futures)
    if not futures:
        raise ValueError("nothing to combine: no futures.")
    while len(futures) > 1:
        futures = [
            client.submit(combine, *futures[i:i + fan_in], pure=False)
            for i in range(0, len(futures), fan_in)
        ]
    return futures[0]


def _add(*parts):
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def tree_sum(client, futures, fan_in=FAN_IN):
    """The sum of the futures' values (anything with ``+``), added on the workers in a fixed tree.

    The order of the additions depends only on the list, so the result is
    the same whichever worker computed what.

    Parameters
    ----------
    client : dask.distributed.Client
    futures : list of Future
    fan_in : int, default=FAN_IN

    Returns
    -------
    Future
    """
    return _tree(client, futures, _add, fan_in)


def broadcast(client, value):
    """A future of ``value`` for many tasks to share: sent to the cluster once, recomputable if a worker is lost.

    The value travels inside its task (so the scheduler can recompute it
    where a worker holding it died), which for models of several MB makes
    Dask warn about a "large graph"; that is the intent here, sent once for
    many tasks, so the warning is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return client.submit(_value, value, pure=False)


# ---------------------------------------------------------------- passes
class ClusterPasses:
    """Batch EM's passes over chunk sources, run on the workers of a Dask cluster.

    The counterpart of :class:`streamgmm.estimators.LocalPasses`: ``scan``
    and ``accumulate`` return what the local ones return for the rows of
    all sources in list order.

    Parameters
    ----------
    client : dask.distributed.Client
    sources : list
        Chunk sources (see :func:`load_source`), or futures of the cluster
        whose values are chunk sources (an array or a list of arrays).
    loader : callable, optional
        Reads path sources.
    keep_loaded : bool, default=True
        Load each source once and keep its chunks in its worker's memory
        (recomputed from the source if the worker is lost). False re-reads
        every source in every pass, for data larger than the cluster's memory.
    callback : callable, optional
        ``callback(event, info)`` after each stage; events ``"scan"``
        (``n_rows``), ``"submitted"`` (an iteration's tasks are queued) and
        ``"iteration"`` (seconds: ``wall``, ``compute`` summed over the map
        and reduce tasks, ``submit`` spent queuing them; and ``n_sources``).
        For benchmarks and fault tests.
    """

    def __init__(self, client, sources, *, loader=None, keep_loaded=True, callback=None):
        require_dask()
        if isinstance(sources, np.ndarray) or not isinstance(sources, (list, tuple)):
            raise ValueError(
                "with a client, X must be a list of chunk sources (arrays, file paths or callables "
                f"returning arrays), got {type(sources).__name__}."
            )
        if not sources:
            raise ValueError("X is an empty list: pass at least one chunk source.")
        self.client = client
        self.loader = loader
        self.callback = callback or (lambda event, info: None)
        future = require_dask().Future
        # a Future is data already on the cluster (e.g. features extracted there): used as it is
        if keep_loaded:
            self.data = [s if isinstance(s, future) else client.submit(_load_task, s, loader, pure=False)
                         for s in sources]
        else:
            self.data = list(sources)

    def scan(self, size, seed):
        """A uniform sample of ``size`` rows of all sources and their moments (two maps, one gather each)."""
        counted = self.client.gather([self.client.submit(_count_task, d, self.loader, pure=False) for d in self.data])
        dims = set().union(*(n for _, n in counted))
        if len(dims) > 1:
            raise ValueError(f"the chunk sources hold frames of {len(dims)} different widths {sorted(dims)}; "
                             "every chunk must have the same number of features.")
        moments = RunningMoments()
        for part, _ in counted:
            moments.merge(part)
        if moments.count == 0:
            raise ValueError("the chunk sources hold no frames.")
        offsets = np.concatenate([[0], np.cumsum([part.count for part, _ in counted])[:-1]])
        samples = [self.client.submit(_sample_task, d, self.loader, size, seed, int(first), pure=False)
                   for d, first in zip(self.data, offsets)]
        sample = _tree(self.client, samples, _merge_samples).result()
        self.callback("scan", {"n_rows": moments.count})
        return sample.sample(), moments

    def accumulate(self, model):
        """One E-step over every source on the workers; the statistics summed in a tree."""
        started = time.perf_counter()
        # the parameters go to the cluster once, inside a task (so a lost copy is recomputed), not once per source
        estep = broadcast(self.client, EStep.of(model))
        parts = [self.client.submit(_accumulate_task, d, self.loader, estep, pure=False)
                 for d in self.data]
        self.callback("submitted", {})
        mapped = time.perf_counter()
        total, compute = _tree(self.client, parts, _sum_task).result()
        wall = time.perf_counter() - started
        self.callback("iteration", {"wall": wall, "compute": compute, "n_sources": len(self.data),
                                    "submit": mapped - started})
        return total

    def close(self):
        """Release the loaded chunks on the workers."""
        self.data = []


# ---------------------------------------------------------------- fit
def fit(model, sources, client, *, loader=None, keep_loaded=True, callback: Optional[Callable] = None):
    """Batch EM of ``model`` over chunk sources on a Dask cluster; ``model.fit(sources, client=client)``.

    Parameters
    ----------
    model : OnlineGMM
        Its settings as for :meth:`~streamgmm.OnlineGMM.fit` (``n_init``,
        ``warm_start``, ``max_iter``, ``tol``, ...).
    sources : list
        Chunk sources, in the order of the rows: arrays of shape
        (n_frames, n_features), paths (read by ``loader``) or callables
        returning an array or an iterable of arrays. A source is loaded on a
        worker; a path or a callable is what makes it cheap to recompute
        there if a worker is lost (an array is shipped inside the task).
    client : dask.distributed.Client
    loader : callable, optional
        Reads a path source; default ``numpy.load(path, allow_pickle=False)``.
    keep_loaded : bool, default=True
        Keep each source's chunks in its worker's memory across iterations;
        False reads them again in every pass (data larger than memory).
    callback : callable, optional
        See :class:`ClusterPasses`.

    Returns
    -------
    model
        Fitted. Equal, to rounding, to ``model.fit`` in one process on the
        concatenated rows from the same settings.

    Raises
    ------
    ValueError
        Bad sources or failed numerics; the model is then as it was.
    ImportError
        Dask is not installed.
    """
    model._validate_params()
    model._fit_passes(
        lambda: ClusterPasses(client, sources, loader=loader, keep_loaded=keep_loaded, callback=callback), sources
    )
    model._warn_if_not_converged()
    return model
