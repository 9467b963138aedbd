"""Features on a Dask cluster: the connection, and features extracted on the workers that stay there.

``--workers N`` starts a :class:`dask.distributed.LocalCluster` of N worker
processes on this machine; ``--scheduler ADDRESS`` joins an existing cluster.
:class:`ClusterFeatures` extracts the features of a corpus on the workers,
in groups of files, and keeps them there: the UBM's EM passes
(:func:`streamgmm.distributed.fit`), the i-vector statistics, enrollment
and scoring all run where the features are, and only statistics, models
and scores cross the network.

Dask is the optional extra ``pip install 'streamgmm[dask]'``; without it
these options are a :class:`ClusterError` naming the extra.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Optional, Sequence

import numpy as np

from streamgmm.distributed import broadcast, require_dask

from .config import FeatureConfig
from .extraction import extract_file
from .normalization import apply_prior

#: seconds to wait for a scheduler before giving up
CONNECT_TIMEOUT = 10.0
#: audio bytes per group of files extracted (and kept) by one task, at most
GROUP_BYTES = 64 * 2**20


class ClusterError(RuntimeError):
    """The cluster could not be started or reached, or Dask is not installed."""


@contextlib.contextmanager
def dask_client(scheduler: Optional[str] = None, workers: Optional[int] = None, timeout: float = CONNECT_TIMEOUT):
    """A Dask client for ``--scheduler`` or ``--workers``, or None when neither is given.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
    workers : int, optional
        Start a local cluster of this many worker processes (one thread
        each, the machine's cores shared among them for the E-step's threads).
    timeout : float, default=CONNECT_TIMEOUT
        Seconds to wait for the scheduler (or the local workers).

    Yields
    ------
    dask.distributed.Client or None

    Raises
    ------
    ClusterError
        Dask is missing, the scheduler cannot be reached in time, or the
        local cluster does not start.
    ValueError
        Both or invalid options.
    """
    if scheduler is None and workers is None:
        yield None
        return
    if scheduler is not None and workers is not None:
        raise ValueError("give --scheduler (an existing cluster) or --workers (a local one), not both.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be a positive number of processes, got {workers!r}.")
    try:
        distributed = require_dask()
    except ImportError as exc:
        raise ClusterError(f"--scheduler and --workers run on Dask: {exc}") from None
    if workers is not None:
        threads = max(1, (os.cpu_count() or 1) // workers)
        try:
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=50, env={"NUMBA_NUM_THREADS": str(threads)},
            )
        except Exception as exc:  # noqa: BLE001 - whatever stops the cluster, say so in one line
            raise ClusterError(f"could not start a local Dask cluster of {workers} workers: {exc}") from None
        with cluster, distributed.Client(cluster, timeout=timeout) as client:
            yield client
        return
    with _connect(distributed, scheduler, timeout) as client:
        yield client


def _connect(distributed, address, timeout):
    """``Client(address)``, or ClusterError once ``timeout`` has passed, whatever the other end does.

    Dask's own timeout covers the TCP connection only: a port that accepts
    and never answers its handshake (a wrong service, a stuck scheduler)
    would keep ``Client`` waiting for ever. So the connection is made in a
    daemon thread that is abandoned if it has not finished in time.
    """
    outcome = {}

    def connect():
        try:
            outcome["client"] = distributed.Client(address, timeout=timeout, set_as_default=False)
        except BaseException as exc:  # noqa: BLE001 - reported below, in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="speaker-id-connect", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if "client" in outcome:
        return outcome["client"]
    reason = f"{outcome['error']}" if "error" in outcome else "no answer"
    raise ClusterError(
        f"could not reach the Dask scheduler at {address!r} within {timeout:g} s ({reason}); check the address "
        "and that the scheduler is running (dask scheduler), or use --workers N for a local cluster."
    )


def _extract_group(paths, config):
    return [extract_file(path, config) for path in paths]


def file_groups(paths: Sequence[str], n_workers: int, group_bytes: int = GROUP_BYTES) -> list:
    """Consecutive runs of ``paths`` of about equal audio size: at least 4 per worker, at most ``group_bytes`` each.

    Returns
    -------
    list of list of str
        Every path once, in order.
    """
    sizes = []
    for path in paths:
        try:
            sizes.append(os.stat(path).st_size)
        except OSError:  # extraction names the problem
            sizes.append(0)
    target = max(1, min(group_bytes, sum(sizes) // max(1, 4 * n_workers)))
    groups, group, size = [], [], 0
    for path, n in zip(paths, sizes):
        group.append(path)
        size += n
        if size >= target:
            groups.append(group)
            group, size = [], 0
    if group:
        groups.append(group)
    return groups


class ClusterFeatures:
    """The features of many audio files, extracted on the workers of a cluster and kept there.

    Parameters
    ----------
    client : dask.distributed.Client
    paths : sequence of path-like
        Each file once.
    config : FeatureConfig

    Attributes
    ----------
    futures : list of Future
        One per group of consecutive files: the list of their feature arrays
        (n_frames_i, n_features), float32. In file order, so they are the
        chunk sources of :func:`streamgmm.distributed.fit`.
    """

    def __init__(self, client, paths: Sequence, config: FeatureConfig):
        self.client = client
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise ValueError("no audio files to train on; give files, directories or a wav.scp.")
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        self.groups = file_groups(self.paths, n_workers)
        self.futures = [client.submit(_extract_group, group, config, pure=False) for group in self.groups]
        self._where = {}
        for g, group in enumerate(self.groups):
            for i, path in enumerate(group):
                self._where.setdefault(path, (g, i))

    def __len__(self):
        return len(self.paths)

    def wait(self):
        """Wait for every group's extraction; raise the first error (e.g. an unreadable file)."""
        require_dask().wait(self.futures)
        for future in self.futures:
            if future.status == "error":
                future.result()

    def map(self, function: Callable, paths: Sequence, *shared) -> list:
        """``[function(features_of(path), *shared) for path in paths]``, computed on the workers.

        One task per group holding any of ``paths``; ``shared`` is sent to
        the cluster once. Only the results travel back.

        Parameters
        ----------
        function : callable
            A module-level function (it is pickled by reference).
        paths : sequence of path-like
            Files given to the constructor.
        *shared
            Further arguments, the same for every call (models, settings).

        Returns
        -------
        list
            In the order of ``paths``.
        """
        return self._map(_apply_group, function, paths, shared)

    def map_batches(self, function: Callable, paths: Sequence, *shared) -> list:
        """``function([features_of(path) for path in paths], *shared)``, one call per group on the workers.

        As :meth:`map`, but ``function`` takes the list of a group's
        feature arrays and returns one result per array, so it can work on
        many utterances at once.
        """
        return self._map(_apply_group_batch, function, paths, shared)

    def sum_by_key(self, function: Callable, paths: Sequence, keys: Sequence, *shared) -> dict:
        """Per key, the sum over groups of ``function([the group's features of the key's paths], *shared)``.

        ``function`` must be additive over utterances (as sufficient
        statistics are): its results for the parts of a key's utterances
        are added with ``+`` on the client, in group order.

        Parameters
        ----------
        function : callable
            A module-level function of a list of feature arrays.
        paths : sequence of path-like
        keys : sequence of hashable
            One per path (e.g. the speaker).
        *shared
            Further arguments, the same for every call.

        Returns
        -------
        dict
            Key -> sum, in the keys' first order in ``paths``.
        """
        return _add_by_key(self._map(_sum_group, function, paths, shared, keys), keys)

    def _map(self, apply, function, paths, shared, keys=None):
        """One ``apply`` task per group holding any of ``paths``: one result per path in order, or,
        with ``keys``, the groups' results (each task then gets its positions paired with their keys)."""
        wanted: dict = {}
        for k, path in enumerate(paths):
            g, i = self._where[os.fspath(path)]
            wanted.setdefault(g, []).append((k, i if keys is None else (i, keys[k])))
        shared_future = broadcast(self.client, shared)
        tasks = {g: self.client.submit(apply, self.futures[g], [item for _, item in members], function,
                                       shared_future, pure=False)
                 for g, members in wanted.items()}
        if keys is not None:
            return self.client.gather(list(tasks.values()))
        results = [None] * len(paths)
        for g, values in zip(tasks, self.client.gather(list(tasks.values()))):
            for (k, _), value in zip(wanted[g], values):
                results[k] = value
        return results

    def fit_prior(self, config: FeatureConfig) -> FeatureConfig:
        """The training mean of these features (sums added on the client); normalise them with it where they are.

        As :meth:`speaker_id.models.ubm.FeatureCache.fit_prior`, for
        features extracted on the cluster with a ``config`` that
        :attr:`~speaker_id.frontend.config.FeatureConfig.needs_prior`.

        Returns
        -------
        FeatureConfig
            ``config.with_prior(mean)``.
        """
        if not config.needs_prior:
            raise ValueError("this configuration does not wait for a training mean; nothing to fit.")
        sums = self.client.gather([self.client.submit(_group_sum, f, pure=False) for f in self.futures])
        total = np.sum([s for s, _ in sums], axis=0)
        fitted = config.with_prior(total / max(sum(n for _, n in sums), 1))
        self.apply_prior(fitted)
        return fitted

    def apply_prior(self, config: FeatureConfig) -> None:
        """Normalise the kept (un-normalised) features with ``config.prior_mean``, on the workers."""
        self.futures = [self.client.submit(_group_prior, f, config, pure=False) for f in self.futures]

    def close(self):
        """Release the features on the workers."""
        self.futures = []


def _group_sum(features):
    return np.sum([np.add.reduce(x, axis=0, dtype=np.float64) for x in features], axis=0), sum(len(x) for x in features)


def _group_prior(features, config):
    return [apply_prior(x, config) for x in features]


def _apply_group(features, positions, function, shared):
    return [function(features[i], *shared) for i in positions]


def _apply_group_batch(features, positions, function, shared):
    return list(function([features[i] for i in positions], *shared))


def _sum_group(features, keyed_positions, function, shared):
    members: dict = {}
    for i, key in keyed_positions:
        members.setdefault(key, []).append(features[i])
    return {key: function(utterances, *shared) for key, utterances in members.items()}


def _add_by_key(partials, keys):
    """Sum dicts of key -> value, in order, into one dict in the keys' first order."""
    totals: dict = {}
    for partial in partials:
        for key, value in partial.items():
            totals[key] = value if key not in totals else totals[key] + value
    return {key: totals[key] for key in dict.fromkeys(keys) if key in totals}


class FeatureSets:
    """Several :class:`ClusterFeatures` seen as one: ``map`` over paths from any of them.

    Parameters
    ----------
    *sets : ClusterFeatures
        With disjoint paths.
    """

    def __init__(self, *sets):
        self.sets = [s for s in sets if s is not None]
        self._owner = {path: s for s in self.sets for path in s.paths}

    def map(self, function: Callable, paths: Sequence, *shared) -> list:
        """``[function(features_of(path), *shared) for path in paths]``, on the workers (see :meth:`ClusterFeatures.map`)."""
        return self._map("map", function, paths, shared)

    def map_batches(self, function: Callable, paths: Sequence, *shared) -> list:
        """One result per path of ``function(list of features, *shared)``, on the workers (see :meth:`ClusterFeatures.map_batches`)."""
        return self._map("map_batches", function, paths, shared)

    def sum_by_key(self, function: Callable, paths: Sequence, keys: Sequence, *shared) -> dict:
        """Per key, the sum of ``function`` over the sets' groups (see :meth:`ClusterFeatures.sum_by_key`)."""
        paths = [os.fspath(p) for p in paths]
        return _add_by_key([s.sum_by_key(function, [paths[k] for k in mine], [keys[k] for k in mine], *shared)
                            for s, mine in self._by_set(paths)], keys)

    def _map(self, method, function, paths, shared):
        paths = [os.fspath(p) for p in paths]
        results = [None] * len(paths)
        for s, mine in self._by_set(paths):
            for k, value in zip(mine, getattr(s, method)(function, [paths[k] for k in mine], *shared)):
                results[k] = value
        return results

    def _by_set(self, paths):
        """``(set, positions in paths of its files)`` for each set holding any of ``paths``."""
        for s in self.sets:
            mine = [k for k, path in enumerate(paths) if self._owner[path] is s]
            if mine:
                yield s, mine

    def close(self):
        for s in self.sets:
            s.close()
