"""Same initial parameters, same data: streamgmm's EM is scikit-learn's EM."""

import warnings

import numpy as np
import pytest

sklearn_mixture = pytest.importorskip("sklearn.mixture")

from streamgmm import OnlineGMM  # noqa: E402

COVARIANCE_TYPES = ["diag", "full", "tied", "spherical"]


def _initial_parameters(X, covariance_type, k=4):
    """A deliberately poor start, so EM has many iterations of real work to do."""
    rng = np.random.default_rng(7)
    means = X[rng.choice(len(X), k, replace=False)]
    weights = np.full(k, 1.0 / k)
    var = X.var(axis=0)
    precisions = {
        "diag": np.tile(1.0 / var, (k, 1)),
        "spherical": np.full(k, 1.0 / var.mean()),
        "full": np.tile(np.diag(1.0 / var), (k, 1, 1)),
        "tied": np.diag(1.0 / var),
    }[covariance_type]
    return weights, means, precisions


def _fit_both(X, covariance_type, chunks, max_iter=25):
    weights, means, precisions = _initial_parameters(X, covariance_type)
    common = dict(covariance_type=covariance_type, weights_init=weights, means_init=means,
                  precisions_init=precisions, max_iter=max_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sklearn_mixture.GaussianMixture(4, **common).fit(X)
        # floors and re-seeding off: scikit-learn has neither
        ours = OnlineGMM(4, covariance_floor=0.0, min_weight=0.0, **common).fit(chunks)
    return ours, theirs


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_every_iteration_and_final_parameters_match(blobs, covariance_type):
    X = blobs[0]
    ours, theirs = _fit_both(X, covariance_type, [X[:500], X[500:900], X[900:]])
    assert len(ours.lower_bounds_) == len(theirs.lower_bounds_) == 25
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-8)
    # EM made progress, so the comparison is not of two untouched starts
    assert ours.lower_bounds_[-1] > ours.lower_bounds_[0] + 0.1
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scores_and_posteriors_match_on_new_data(blobs, covariance_type):
    X = blobs[0]
    ours, theirs = _fit_both(X, covariance_type, X, max_iter=5)
    Y = np.random.default_rng(11).normal(3.0, 4.0, size=(300, 3))
    np.testing.assert_allclose(ours.score_samples(Y), theirs.score_samples(Y), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(Y), theirs.predict_proba(Y), atol=1e-9)
    np.testing.assert_array_equal(ours.predict(Y), theirs.predict(Y))
    assert ours.bic(Y) == pytest.approx(theirs.bic(Y), rel=1e-9)
    assert ours.aic(Y) == pytest.approx(theirs.aic(Y), rel=1e-9)


def test_float32_input_matches_float64(blobs):
    X = blobs[0]
    ours64, _ = _fit_both(X, "diag", X, max_iter=10)
    ours32, _ = _fit_both(X, "diag", X.astype(np.float32), max_iter=10)
    # only the input rounding differs: the arithmetic is float64 either way
    np.testing.assert_allclose(ours32.means_, ours64.means_, rtol=1e-5, atol=1e-5)
