"""Batch EM on a real Dask LocalCluster of two worker processes equals EM in one process.

The reference is always ``OnlineGMM.fit`` in this process on the same rows;
the cluster must reach the same parameters (1e-9 relative) from the same
seed, whatever the rows' partition into sources, whether chunks are kept on
the workers or re-read, and when a worker is killed mid-iteration.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import warnings

import numpy as np
import pytest

from streamgmm import ConvergenceWarning, OnlineGMM
from streamgmm.estimators import LocalPasses, chunk_source

distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed (pip install '.[dask]')")

from streamgmm.distributed import ClusterPasses, fit as fit_on_cluster  # noqa: E402

PARAMS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


def _frames(n=6000, d=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(3, d))
    X = np.concatenate([rng.normal(c, 1.0, size=(n // 3, d)) for c in centres])
    return X[rng.permutation(len(X))] + 100.0  # an offset: statistics are kept about a shift


def _settings(covariance_type="diag", **more):
    settings = dict(n_components=3, covariance_type=covariance_type, random_state=5, max_iter=15, tol=1e-10,
                    init_size=500)
    return {**settings, **more}


def _assert_same_model(ours, reference, rtol=1e-9):
    for name in PARAMS:
        np.testing.assert_allclose(getattr(ours, name), getattr(reference, name), rtol=rtol, atol=0, err_msg=name)
    assert ours.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=1e-12)


def _local(X, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return OnlineGMM(**settings).fit(X)


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_cluster_fit_equals_fit_in_one_process(client, covariance_type):
    X = _frames()
    reference = _local(X, **_settings(covariance_type))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = OnlineGMM(**_settings(covariance_type)).fit(np.array_split(X, 5), client=client)
    _assert_same_model(ours, reference)
    assert reference.n_iter_ >= 3  # enough iterations for rounding to have a chance to grow


@pytest.mark.parametrize("n_sources", [1, 2, 7])
def test_initialisation_sample_does_not_depend_on_the_partition(client, n_sources):
    X = _frames()
    local_sample, local_moments = LocalPasses(chunk_source(X)).scan(400, seed=123)
    passes = ClusterPasses(client, np.array_split(X, n_sources))
    sample, moments = passes.scan(400, seed=123)
    np.testing.assert_array_equal(sample, local_sample)  # the same rows, in the same order
    assert sample.shape == (400, X.shape[1])
    # every sampled row is a row of X
    assert set(map(tuple, sample)) <= set(map(tuple, X))
    np.testing.assert_allclose(moments.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.variance, X.var(axis=0), rtol=1e-9)
    assert moments.count == local_moments.count == len(X)


def test_paths_callables_and_rereading_give_the_same_model(client, tmp_path):
    X = _frames(seed=1)
    parts = np.array_split(X, 4)
    paths = []
    for i, part in enumerate(parts):
        paths.append(str(tmp_path / f"part-{i}.npy"))
        np.save(paths[-1], part)
    reference = _local(X, **_settings("full"))
    callables = [functools.partial(np.load, p) for p in paths]
    # a source may also give several chunks: the last source gives its rows in two pieces
    callables[-1] = functools.partial(np.array_split, parts[-1], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        from_paths = fit_on_cluster(OnlineGMM(**_settings("full")), paths, client)
        from_callables = fit_on_cluster(OnlineGMM(**_settings("full")), callables, client)
        reread = fit_on_cluster(OnlineGMM(**_settings("full")), paths, client, keep_loaded=False)
    for model in (from_paths, from_callables, reread):
        _assert_same_model(model, reference)


def test_float32_estep_on_the_cluster_equals_one_process(client):
    X = _frames(seed=2).astype(np.float32)
    settings = _settings("diag", estep_dtype="float32")
    reference = _local(X, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = OnlineGMM(**settings).fit(np.array_split(X, 3), client=client)
    _assert_same_model(ours, reference, rtol=1e-6)


def test_the_iteration_callback_reports_timings(client):
    events = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = fit_on_cluster(OnlineGMM(**_settings("diag", max_iter=4)), np.array_split(_frames(), 3), client,
                               callback=lambda event, info: events.append((event, info)))
    iterations = [info for event, info in events if event == "iteration"]
    assert len(iterations) == model.n_iter_ == 4
    assert events[0][0] == "scan"
    for info in iterations:
        assert info["n_sources"] == 3
        assert 0 < info["compute"] and 0 < info["wall"]


def test_bad_sources_leave_the_model_as_it_was(client):
    X = _frames()
    model = OnlineGMM(**_settings("diag", max_iter=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    before = {name: getattr(model, name).copy() for name in PARAMS}
    with pytest.raises(ValueError, match="different widths"):
        model.fit([X, X[:, :2]], client=client)
    with pytest.raises(ValueError, match="empty list"):
        model.fit([], client=client)
    with pytest.raises(ValueError, match="list of chunk sources"):
        model.fit(X, client=client)
    bad = X.copy()
    bad[10, 1] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        model.fit([X, bad], client=client)
    for name in PARAMS:
        np.testing.assert_array_equal(getattr(model, name), before[name])


def test_a_worker_killed_mid_iteration_changes_nothing(tmp_path):
    X = _frames(n=30000, d=6, seed=3)
    paths = []
    for i, part in enumerate(np.array_split(X, 8)):
        paths.append(str(tmp_path / f"part-{i}.npy"))
        np.save(paths[-1], part)
    settings = _settings("full", max_iter=6)
    reference = _local(X, **settings)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=50)
    with cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        victim, pid = sorted(client.run(os.getpid).items())[0]
        killed = []

        def kill_once(event, info):
            # kill a worker process while the tasks of the third iteration are queued or running
            if event == "submitted" and not killed and events.count("iteration") == 2:
                os.kill(pid, signal.SIGKILL)
                killed.append(victim)
            events.append(event)

        events = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours = fit_on_cluster(OnlineGMM(**settings), paths, client, callback=kill_once)
        assert killed and victim not in client.scheduler_info()["workers"]
    _assert_same_model(ours, reference)


def test_without_dask_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    from streamgmm.distributed import require_dask

    with pytest.raises(ImportError, match=r"pip install 'streamgmm\[dask\]'"):
        require_dask()
