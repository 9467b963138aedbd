"""OnlineGMM is a scikit-learn estimator: check_estimator, Pipeline, GridSearchCV, clone, validation."""

import warnings

import numpy as np
import pytest
from scipy import sparse
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn import exceptions as sklearn_exceptions
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted

from streamgmm import ConvergenceWarning, NotFittedError, OnlineGMM


def _mixture_log_density(X, weights, means, covariances):
    """Log-density of a diagonal mixture, computed directly with scipy."""
    per_component = [
        np.log(w) + multivariate_normal(mean=m, cov=np.diag(c)).logpdf(X)
        for w, m, c in zip(weights, means, covariances)
    ]
    return logsumexp(np.stack(per_component, axis=1), axis=1)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_check_estimator_passes(covariance_type):
    # raises on the first failed check; no check is declared as an expected failure
    results = check_estimator(OnlineGMM(covariance_type=covariance_type), on_skip=None)
    statuses = {r["check_name"]: r["status"] for r in results}
    assert "check_estimators_unfitted" in statuses and "check_fit2d_predict1d" in statuses
    assert "failed" not in statuses.values() and "xfail" not in statuses.values()


def test_tags_and_exceptions_are_scikit_learns():
    assert OnlineGMM().__sklearn_tags__().estimator_type == "density_estimator"
    assert issubclass(NotFittedError, sklearn_exceptions.NotFittedError)
    assert issubclass(ConvergenceWarning, sklearn_exceptions.ConvergenceWarning)


def test_pipeline_fit_score_and_score_samples(blobs):
    X = blobs[0] * [1.0, 100.0, 0.01] + [0.0, 5000.0, 0.0]  # features on very different scales
    pipe = make_pipeline(StandardScaler(), OnlineGMM(4, covariance_type="diag", random_state=0))
    pipe.fit(X)
    gmm = pipe.named_steps["onlinegmm"]
    scaled = StandardScaler().fit_transform(X)
    expected = _mixture_log_density(scaled, gmm.weights_, gmm.means_, gmm.covariances_)
    np.testing.assert_allclose(pipe.score_samples(X), expected, rtol=1e-10)
    assert pipe.score(X) == pytest.approx(expected.mean(), rel=1e-10)
    assert pipe.predict(X).shape == (len(X),)
    # the same estimator outside the pipeline, on the scaled frames, learns the same model
    alone = OnlineGMM(4, covariance_type="diag", random_state=0).fit(scaled)
    np.testing.assert_allclose(alone.means_, gmm.means_, rtol=1e-8, atol=1e-10)


def test_grid_search_picks_by_held_out_log_likelihood(blobs):
    X = blobs[0]  # four clusters with unequal spreads per axis
    grid = {"n_components": [1, 2, 4], "covariance_type": ["spherical", "diag"]}
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(OnlineGMM(random_state=0), grid, cv=cv).fit(X)
    assert search.best_params_ == {"n_components": 4, "covariance_type": "diag"}
    # the default scoring is OnlineGMM.score: the mean held-out log-likelihood per frame
    manual = np.mean([
        OnlineGMM(4, covariance_type="diag", random_state=0).fit(X[train]).score(X[test])
        for train, test in cv.split(X)
    ])
    assert search.best_score_ == pytest.approx(manual, rel=1e-12)
    assert search.best_estimator_.n_components == 4


def test_clone_gives_an_unfitted_copy_that_learns_the_same(blobs):
    X = blobs[0]
    gmm = OnlineGMM(4, covariance_type="full", forgetting=0.1, random_state=3).fit(X)
    copy = clone(gmm)
    assert copy.get_params() == gmm.get_params()
    assert not hasattr(copy, "means_")
    with pytest.raises(NotFittedError):
        copy.score(X)
    np.testing.assert_allclose(copy.fit(X).means_, gmm.means_)


def test_get_params_set_params_round_trip():
    gmm = OnlineGMM(5, covariance_type="tied", tol=1e-4, init_params="split", step_exponent=0.8, random_state=7)
    params = gmm.get_params()
    assert OnlineGMM().set_params(**params).get_params() == params
    assert OnlineGMM(**params).get_params() == params
    pipe = make_pipeline(StandardScaler(), OnlineGMM())
    pipe.set_params(onlinegmm__n_components=3, onlinegmm__covariance_type="diag")
    assert pipe.get_params()["onlinegmm__n_components"] == 3
    assert pipe.named_steps["onlinegmm"].covariance_type == "diag"


def test_check_is_fitted_follows_partial_fit_buffering():
    rng = np.random.default_rng(0)
    gmm = OnlineGMM(2, covariance_type="diag", init_size=300, random_state=0)
    gmm.partial_fit(rng.normal(size=(200, 3)))  # buffered: not enough frames to initialise
    assert gmm.n_features_in_ == 3
    with pytest.raises(sklearn_exceptions.NotFittedError):
        check_is_fitted(gmm)
    with pytest.raises(ValueError, match="X has 2 features, but OnlineGMM is expecting 3 features"):
        gmm.partial_fit(rng.normal(size=(200, 2)))
    gmm.partial_fit(rng.normal(size=(200, 3)))
    check_is_fitted(gmm)


# ----------------------------------------------------- input validation
def test_sparse_input_is_refused_naming_sparse():
    X = sparse.random(50, 3, density=0.5, format="coo", random_state=0)
    for matrix in (X, X.tocsr(), X.todia()):
        with pytest.raises(TypeError, match="Sparse data.*toarray"):
            OnlineGMM(2).fit(matrix)
    gmm = OnlineGMM(2, random_state=0).fit(X.toarray())
    with pytest.raises(TypeError, match="Sparse data"):
        gmm.score_samples(X.tocsr())


def test_complex_and_string_data_are_refused_in_one_line():
    for X, message in [
        (np.ones((10, 2), dtype=complex), "Complex data not supported"),
        (np.array([["a", "b"], ["c", "d"]]), "not a real numeric type"),
        (np.array([["1", {}], [2, 3]], dtype=object), "could not be read as an array of numbers"),
    ]:
        with pytest.raises((ValueError, TypeError), match=message) as info:
            OnlineGMM(1).fit(X)
        assert "\n" not in str(info.value)


def test_object_arrays_and_nested_lists_of_numbers_are_read_as_float64(blobs):
    X = blobs[0]
    reference = OnlineGMM(2, covariance_type="diag", random_state=0).fit(X)
    for same in (X.astype(object), X.tolist()):
        gmm = OnlineGMM(2, covariance_type="diag", random_state=0).fit(same)
        np.testing.assert_array_equal(gmm.means_, reference.means_)
        np.testing.assert_array_equal(gmm.score_samples(same), reference.score_samples(X))


def test_one_dimensional_and_empty_input_messages():
    gmm = OnlineGMM(1, random_state=0).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="Reshape your data"):
        gmm.predict(np.zeros(3))
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(5, 0\)\) while a minimum of 1 is required"):
        OnlineGMM(1).fit(np.zeros((5, 0)))
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        gmm.score_samples(np.zeros((0, 2)))


def test_feature_names_of_a_dataframe_are_kept_and_checked(blobs):
    import pandas as pd  # a dev dependency: DataFrames are what feature names come from
    frame = pd.DataFrame(blobs[0], columns=["a", "b", "c"])
    gmm = OnlineGMM(2, covariance_type="diag", random_state=0).fit(frame)
    np.testing.assert_array_equal(gmm.feature_names_in_, ["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gmm.score_samples(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        gmm.score_samples(blobs[0])
    with pytest.raises(ValueError, match="feature names should match"):
        gmm.score_samples(frame.rename(columns={"a": "z"}))
    assert not hasattr(gmm.fit(blobs[0]), "feature_names_in_")
