"""Recovery of known parameters, numerical robustness, and clear errors for bad input."""

import warnings

import numpy as np
import pytest

from conftest import make_mixture
from streamgmm import ConvergenceWarning, NotFittedError, OnlineGMM


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_recovers_generating_parameters(blobs, covariance_type):
    X, labels, means, stds = blobs
    X = np.concatenate([X] + [make_mixture(1200, [0.3, 0.2, 0.25, 0.25], means, stds, seed=s)[0]
                              for s in range(4, 8)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm = OnlineGMM(4, covariance_type=covariance_type, random_state=0, n_init=2).fit(X)
    order = [int(np.argmin(np.linalg.norm(gmm.means_ - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(gmm.means_[order], means, atol=0.15)
    np.testing.assert_allclose(gmm.weights_[order], [0.3, 0.2, 0.25, 0.25], atol=0.03)
    if covariance_type == "diag":
        np.testing.assert_allclose(np.sqrt(gmm.covariances_[order]), stds, rtol=0.1)


def test_float32_data_with_large_offset_keeps_positive_variances():
    # variance 1e-4 around 1e4: E[x^2] - E[x]^2 in float32 would be pure cancellation
    rng = np.random.default_rng(0)
    X = (1e4 + rng.normal(0, 1e-2, (20_000, 3)) + rng.integers(0, 2, (20_000, 1)) * 0.1).astype(np.float32)
    for covariance_type in ("diag", "full"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmm = OnlineGMM(2, covariance_type=covariance_type, random_state=0, reg_covar=0.0).fit(X)
        variances = gmm.covariances_ if covariance_type == "diag" else np.diagonal(gmm.covariances_, axis1=1, axis2=2)
        assert np.all(variances > 0)
        # float32 rounding at 1e4 is ~1e-3, so the per-component variance can
        # only be recovered to that; it must be the right order, not zero or huge
        assert np.all(variances < 1e-3) and np.all(variances > 1e-5)
        np.testing.assert_allclose(np.sort(gmm.means_[:, 0]), [1e4, 1e4 + 0.1], atol=2e-3)


def test_duplicate_frames_and_starved_components_never_give_nan():
    # 4 distinct points for 6 components: some components must starve or collapse
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0], [9.0, 0.0]]), 250, axis=0)
    X = X + np.random.default_rng(0).normal(0, 1e-9, X.shape)
    for covariance_type in ("diag", "full", "spherical", "tied"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmm = OnlineGMM(6, covariance_type=covariance_type, random_state=0, max_iter=20).fit(X)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.isfinite(getattr(gmm, name)).all(), (covariance_type, name)
        assert np.isfinite(gmm.score_samples(X)).all()
        # the floor is relative to the global variance, 1e-3 by default
        floor = 1e-3 * X.var(axis=0)
        if covariance_type in ("diag", "spherical"):
            variances = gmm.covariances_
        elif covariance_type == "full":
            variances = np.diagonal(gmm.covariances_, axis1=1, axis2=2)
        else:
            variances = np.diag(gmm.covariances_)
        assert np.all(variances >= floor.min() * (1 - 1e-9))


def test_starved_component_is_reseeded_by_splitting_the_heaviest():
    X, _ = make_mixture(4000, [0.5, 0.5], [[-5.0, 0.0], [5.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]])
    far_away = np.array([[500.0, 500.0], [0.0, 0.0], [5.0, 0.0]])
    gmm = OnlineGMM(3, covariance_type="diag", weights_init=np.full(3, 1 / 3), means_init=far_away,
                    precisions_init=np.ones((3, 2)), max_iter=30, random_state=0, min_weight=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm.fit(X)
    # the component parked at (500, 500) got no frames; it now serves the data
    assert np.all(np.abs(gmm.means_) < 20)
    assert np.all(gmm.weights_ > 0.05)


def test_convergence_warning_when_max_iter_is_reached(blobs):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        OnlineGMM(4, max_iter=1, tol=0.0, random_state=0).fit(blobs[0])


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data", "split"])
def test_every_data_driven_initialisation_reaches_a_good_solution(blobs, init_params):
    X = blobs[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm = OnlineGMM(4, covariance_type="diag", init_params=init_params, random_state=0,
                        n_init=3, max_iter=300).fit(X)
    truth_ll = OnlineGMM(4, covariance_type="diag")
    X_, labels, means, stds = blobs
    truth_ll._set_parameters(np.bincount(labels) / len(labels), means, stds**2, shift=X.mean(0))
    assert gmm.score(X) > truth_ll.score(X) - 0.05


def test_random_initialisation_beats_one_gaussian(blobs):
    # random soft responsibilities put every mean near the global mean; EM only
    # slowly breaks that symmetry (as in scikit-learn), so it is a weak start
    X = blobs[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmm = OnlineGMM(4, covariance_type="diag", init_params="random", random_state=0).fit(X)
        single = OnlineGMM(1, covariance_type="diag").fit(X)
    assert gmm.score(X) > single.score(X)


# ------------------------------------------------------------------ bad input
def test_nan_is_refused_with_its_position():
    X = np.random.default_rng(0).normal(size=(50, 3))
    X[17, 2] = np.nan
    with pytest.raises(ValueError, match=r"row 17, column 2"):
        OnlineGMM(2).fit(X)
    with pytest.raises(ValueError, match=r"chunk 1 contains 1 non-finite"):
        OnlineGMM(2).fit([X[:10], X[10:]])


def test_inf_in_a_later_pass_chunk_is_refused():
    X = np.random.default_rng(0).normal(size=(50, 3))
    gmm = OnlineGMM(2, random_state=0).fit(X)
    bad = X.copy()
    bad[3, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        gmm.partial_fit(bad)
    with pytest.raises(ValueError, match="non-finite"):
        gmm.score_samples(bad)


def test_wrong_number_of_columns():
    gmm = OnlineGMM(2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(ValueError, match="has 4 features, but OnlineGMM is expecting 3 features as input"):
        gmm.score_samples(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="has 2 features, but OnlineGMM is expecting 3 features as input"):
        gmm.partial_fit(np.zeros((5, 2)))


def test_fewer_frames_than_components():
    with pytest.raises(ValueError, match="at least n_components=5 frames, got 3"):
        OnlineGMM(5).fit(np.random.default_rng(0).normal(size=(3, 2)))


def test_empty_chunks_non_numeric_and_wrong_rank():
    with pytest.raises(ValueError, match="empty"):
        OnlineGMM(1).fit([np.zeros((10, 2)), np.zeros((0, 2))])
    with pytest.raises(ValueError, match="not a real numeric type"):
        OnlineGMM(1).fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="2-D.*reshape"):
        OnlineGMM(1).fit(np.zeros(10))
    with pytest.raises(ValueError, match="one-shot iterator"):
        OnlineGMM(1).fit(iter([np.zeros((10, 2))]))


def test_invalid_settings_are_named():
    X = np.zeros((10, 2))
    for kwargs, message in [
        (dict(covariance_type="round"), "covariance_type"),
        (dict(init_params="magic"), "init_params"),
        (dict(step_exponent=0.4), "step_exponent"),
        (dict(forgetting=1.5), "forgetting"),
        (dict(n_components=0), "n_components"),
        (dict(reg_covar=-1.0), "reg_covar"),
    ]:
        with pytest.raises(ValueError, match=message):
            OnlineGMM(**kwargs).fit(X)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        OnlineGMM(2).score(np.zeros((3, 2)))
