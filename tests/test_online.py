"""Online (stepwise) EM: one pass gets close to batch EM; forgetting follows a drifting stream."""

import warnings

import numpy as np
import pytest

from conftest import make_mixture
from streamgmm import OnlineGMM


def _stationary(seed=0):
    rng = np.random.default_rng(seed)
    k, d = 8, 5
    means = rng.normal(0, 4, (k, d))
    stds = rng.uniform(0.5, 1.5, (k, d))
    weights = rng.dirichlet(np.full(k, 3.0))
    return weights, means, stds


def test_one_online_pass_is_within_one_percent_of_batch_em():
    weights, means, stds = _stationary()
    X, _ = make_mixture(200_000, weights, means, stds, seed=1)
    held_out, _ = make_mixture(20_000, weights, means, stds, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = OnlineGMM(8, covariance_type="diag", random_state=0, max_iter=200).fit(X)
    online = OnlineGMM(8, covariance_type="diag", random_state=0)
    for chunk in np.array_split(X, 200):
        online.partial_fit(chunk)
    batch_ll, online_ll = batch.score(held_out), online.score(held_out)
    assert (batch_ll - online_ll) / abs(batch_ll) < 0.01
    # and both are near the generating model's own held-out likelihood
    truth = OnlineGMM(8, covariance_type="diag")
    truth._set_parameters(weights, means, stds**2, shift=means.mean(0))
    assert (truth.score(held_out) - online_ll) / abs(truth.score(held_out)) < 0.01


def _two_regimes():
    rng = np.random.default_rng(0)
    k, d = 4, 3
    means_a = rng.normal(0, 4, (k, d))
    means_b = means_a + rng.normal(0, 3, (k, d))
    ones, weights = np.ones((k, d)), np.full(k, 0.25)
    A, _ = make_mixture(60_000, weights, means_a, ones, seed=1)
    B, _ = make_mixture(60_000, weights, means_b, ones, seed=2)
    held_out_b, _ = make_mixture(10_000, weights, means_b, ones, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = OnlineGMM(k, covariance_type="diag", random_state=0).fit(B).score(held_out_b)
    return A, B, held_out_b, reference


def _chunks_to_recover(model, A, B, held_out, reference, limit):
    for chunk in np.array_split(A, 60):
        model.partial_fit(chunk)
    for i, chunk in enumerate(np.array_split(B, 60)[:limit], start=1):
        model.partial_fit(chunk)
        if (reference - model.score(held_out)) / abs(reference) < 0.01:
            return i
    return None


def test_forgetting_recovers_after_a_change_within_the_documented_chunks():
    A, B, held_out, reference = _two_regimes()
    # README: with forgetting=g the model is back within 1% of a model fitted
    # to the new regime in about 3.5 / g chunks.
    recovered = _chunks_to_recover(OnlineGMM(4, covariance_type="diag", random_state=0, forgetting=0.2),
                                   A, B, held_out, reference, limit=25)
    assert recovered is not None and recovered <= int(3.5 / 0.2) + 3
    # a decaying step size (stationary assumption) has not recovered by then
    stationary = _chunks_to_recover(OnlineGMM(4, covariance_type="diag", random_state=0),
                                    A, B, held_out, reference, limit=recovered)
    assert stationary is None


def test_partial_fit_buffers_until_init_size_then_learns():
    X, _ = make_mixture(3000, [0.5, 0.5], [[-3.0, 0.0], [3.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]])
    model = OnlineGMM(2, covariance_type="full", init_size=500, random_state=0)
    model.partial_fit(X[:300])
    with pytest.raises(ValueError, match="buffered 300 of the 500 frames"):
        model.score(X)
    model.partial_fit(X[300:600])
    assert model.n_updates_ == 1
    for chunk in np.array_split(X[600:], 12):
        model.partial_fit(chunk)
    assert model.n_updates_ == 13
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [-3.0, 3.0], atol=0.2)


def test_online_learning_continues_from_a_batch_model_without_a_jump():
    X, _ = make_mixture(20_000, [0.5, 0.5], [[-3.0, 0.0], [3.0, 1.0]], [[1.0, 1.0], [0.5, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = OnlineGMM(2, covariance_type="diag", random_state=0).fit(X[:10_000])
    before = model.means_.copy()
    model.partial_fit(X[10_000:11_000])
    assert np.abs(model.means_ - before).max() < 0.2


def test_stats_from_parameters_inverts_the_m_step():
    X, _ = make_mixture(5000, [0.3, 0.7], [[-3.0, 0.0], [3.0, 1.0]], [[1.0, 1.0], [0.5, 2.0]])
    for covariance_type in ("diag", "full", "tied", "spherical"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = OnlineGMM(2, covariance_type=covariance_type, random_state=0, max_iter=5).fit(X)
        before = (model.weights_.copy(), model.means_.copy(), model.covariances_.copy())
        model._m_step(model.stats_from_parameters())
        for old, new in zip(before, (model.weights_, model.means_, model.covariances_)):
            np.testing.assert_allclose(new, old, rtol=1e-9, atol=1e-12)


def test_init_max_iter_runs_em_on_the_initialisation_buffer():
    X, _ = make_mixture(3000, [0.5, 0.3, 0.2], [[0, 0], [5, 5], [0, 6]], [[1, 1], [0.5, 2], [2, 0.5]], seed=4)
    models = {}
    for n_iter in (1, 30):
        model = OnlineGMM(3, covariance_type="diag", init_size=3000, init_max_iter=n_iter, tol=0.0,
                          random_state=0)
        models[n_iter] = model.partial_fit(X)
    # the lower bound reported is the likelihood before learning, the same initial model either way
    assert models[1].lower_bound_ == pytest.approx(models[30].lower_bound_, abs=1e-12)
    # EM never lowers the likelihood of the frames it runs on: more iterations fit the buffer better
    assert models[30].score(X) > models[1].score(X) + 1e-3
    # three well-separated clusters have one optimum: 30 in-memory iterations reach batch EM's
    batch = OnlineGMM(3, covariance_type="diag", random_state=1, max_iter=200, tol=1e-10).fit(X)
    assert models[30].score(X) == pytest.approx(batch.score(X), abs=1e-3)
    with pytest.raises(ValueError, match="init_max_iter"):
        OnlineGMM(2, init_max_iter=0).partial_fit(X)
