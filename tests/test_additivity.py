"""Statistics add: chunked EM is in-memory EM; accumulate(A) + accumulate(B) == accumulate(A ++ B)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamgmm import OnlineGMM, SufficientStats, accumulate


@pytest.fixture(scope="module")
def fitted_models():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 1, (400, 3)), rng.normal(2, 0.5, (400, 3))])
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for covariance_type in ("diag", "full", "tied", "spherical"):
            models[covariance_type] = OnlineGMM(
                3, covariance_type=covariance_type, max_iter=3, random_state=0
            ).fit(X)
    return models


frames = arrays(
    np.float64, st.tuples(st.integers(1, 60), st.just(3)),
    elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False),
)


def assert_stats_close(a, b, rtol=1e-9):
    scale = max(1.0, float(np.abs(b.second).max()))
    np.testing.assert_allclose(a.zeroth, b.zeroth, rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(a.first, b.first, rtol=rtol, atol=1e-9 * scale)
    np.testing.assert_allclose(a.second, b.second, rtol=rtol, atol=1e-9 * scale)
    assert a.n_frames == b.n_frames
    assert a.log_likelihood == pytest.approx(b.log_likelihood, rel=1e-9, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(A=frames, B=frames, covariance_type=st.sampled_from(["diag", "full", "tied", "spherical"]))
def test_statistics_of_concatenation_are_the_sum(fitted_models, A, B, covariance_type):
    model = fitted_models[covariance_type]
    assert_stats_close(accumulate(model, A) + accumulate(model, B), accumulate(model, np.concatenate([A, B])))


@settings(max_examples=30, deadline=None)
@given(A=frames, seed=st.integers(0, 2**31 - 1))
def test_statistics_do_not_depend_on_row_order(fitted_models, A, seed):
    model = fitted_models["full"]
    order = np.random.default_rng(seed).permutation(len(A))
    assert_stats_close(accumulate(model, A[order]), accumulate(model, A))


@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_block_size_does_not_change_statistics(fitted_models, block_size):
    X = np.random.default_rng(5).normal(0, 2, (300, 3))
    for covariance_type, model in fitted_models.items():
        small = OnlineGMM(3, covariance_type=covariance_type, block_size=block_size)
        small._set_parameters(model.weights_, model.means_, model.covariances_, shift=model.shift_)
        assert_stats_close(accumulate(small, X), accumulate(model, X))


def test_statistics_match_a_direct_numpy_computation(fitted_models):
    X = np.random.default_rng(6).normal(0, 2, (200, 3))
    for covariance_type, model in fitted_models.items():
        resp = model.predict_proba(X)
        c = model.shift_
        stats = accumulate(model, X)
        np.testing.assert_allclose(stats.zeroth, resp.sum(0), rtol=1e-10)
        np.testing.assert_allclose(stats.means(), (resp.T @ X) / resp.sum(0)[:, None], rtol=1e-10)
        if stats.layout == "diag":
            expected = resp.T @ (X - c) ** 2
        else:
            expected = np.einsum("nk,ni,nj->kij", resp, X - c, X - c)
        np.testing.assert_allclose(stats.second, expected, rtol=1e-10)
        assert stats.log_likelihood == pytest.approx(model.score_samples(X).sum(), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(A=frames, shift=arrays(np.float64, 3, elements=st.floats(-100, 100)))
def test_recentring_is_exact_algebra(fitted_models, A, shift):
    for model in (fitted_models["diag"], fitted_models["full"]):
        stats = accumulate(model, A)
        moved = stats.recentred(shift)
        np.testing.assert_allclose(moved.means(), stats.means(), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(moved.covariances(), stats.covariances(), rtol=1e-6, atol=1e-6)
        # adding statistics taken about different points recentres the second
        total = stats + moved
        np.testing.assert_allclose(total.zeroth, 2 * stats.zeroth)
        np.testing.assert_allclose(total.means(), stats.means(), rtol=1e-9, atol=1e-9)


def test_sum_and_scale(fitted_models):
    model = fitted_models["diag"]
    parts = [accumulate(model, np.full((4, 3), float(i))) for i in range(3)]
    total = sum(parts)
    assert total.n_frames == 12.0
    half = total * 0.5
    np.testing.assert_allclose(half.zeroth, total.zeroth / 2)
    assert half.n_frames == 6.0
    with pytest.raises(ValueError, match="finite factor"):
        total * -1.0
    with pytest.raises(ValueError, match="different shapes"):
        total + SufficientStats.zeros(2, 3)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
@pytest.mark.parametrize("init_params", ["k-means++", "split", "random_from_data"])
def test_chunked_fit_equals_in_memory_fit(covariance_type, init_params):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(m, 1.0, (700, 4)) for m in (-4, 0, 5)])
    rng.shuffle(X)
    chunks = np.array_split(X, 9)
    kwargs = dict(covariance_type=covariance_type, init_params=init_params, random_state=3,
                  max_iter=30, tol=1e-12, init_size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = OnlineGMM(3, **kwargs).fit(X)
        chunked = OnlineGMM(3, **kwargs).fit(chunks)
        called = OnlineGMM(3, **kwargs).fit(lambda: iter(chunks))
    for other in (chunked, called):
        np.testing.assert_allclose(other.lower_bounds_, whole.lower_bounds_, rtol=1e-10)
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(getattr(other, name), getattr(whole, name), rtol=1e-10, atol=1e-12)


def test_threaded_split_equals_one_block_at_a_time(fitted_models):
    import numba

    X = np.random.default_rng(8).normal(0, 2, (5000, 3))
    for covariance_type, model in fitted_models.items():
        small = OnlineGMM(3, covariance_type=covariance_type, block_size=100)
        small._set_parameters(model.weights_, model.means_, model.covariances_, shift=model.shift_)
        threaded = accumulate(small, X)  # 5000 rows >= 4 x threads x 100: split over threads
        previous = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            single = accumulate(small, X)
        finally:
            numba.set_num_threads(previous)
        assert_stats_close(threaded, single)
