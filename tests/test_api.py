"""scikit-learn conventions, conversion, sampling and files."""

import os
import warnings
import zipfile

import numpy as np
import pytest

from streamgmm import OnlineGMM, SufficientStats, accumulate, load


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 1, (300, 2)), rng.normal(3, 0.5, (300, 2))])
    models = {}
    for covariance_type in ("diag", "full", "tied", "spherical"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models[covariance_type] = OnlineGMM(2, covariance_type=covariance_type, random_state=0).fit(X)
    return X, models


def test_get_params_set_params_and_sklearn_clone():
    base = pytest.importorskip("sklearn.base")
    gmm = OnlineGMM(3, covariance_type="diag", forgetting=0.1, random_state=4)
    copy = base.clone(gmm)
    assert copy.get_params() == gmm.get_params()
    assert copy is not gmm
    gmm.set_params(n_components=5)
    assert gmm.n_components == 5
    with pytest.raises(ValueError, match="(?i)invalid parameter 'colour'"):
        gmm.set_params(colour="red")
    assert "forgetting=0.1" in repr(copy)


def test_sklearn_round_trip(fitted):
    mixture = pytest.importorskip("sklearn.mixture")
    X, models = fitted
    for covariance_type, model in models.items():
        theirs = model.to_sklearn()
        assert isinstance(theirs, mixture.GaussianMixture)
        np.testing.assert_allclose(theirs.score_samples(X), model.score_samples(X), rtol=1e-10)
        back = OnlineGMM.from_sklearn(theirs)
        np.testing.assert_allclose(back.score_samples(X), model.score_samples(X), rtol=1e-10)
        back.partial_fit(X[:100])  # a converted model can go on learning
        assert np.isfinite(back.means_).all()


def test_from_sklearn_of_a_model_fitted_by_sklearn():
    mixture = pytest.importorskip("sklearn.mixture")
    X = np.random.default_rng(1).normal(size=(500, 3))
    theirs = mixture.GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    ours = OnlineGMM.from_sklearn(theirs)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)


def test_sample_follows_the_mixture(fitted):
    _, models = fitted
    for covariance_type, model in models.items():
        X, y = model.sample(20_000)
        assert X.shape == (20_000, 2) and y.shape == (20_000,)
        np.testing.assert_allclose(np.bincount(y) / len(y), model.weights_, atol=0.02)
        for k in range(2):
            np.testing.assert_allclose(X[y == k].mean(0), model.means_[k], atol=0.1)


def test_save_load_round_trip_is_exact(tmp_path, fitted):
    X, models = fitted
    for covariance_type, model in models.items():
        path = tmp_path / f"{covariance_type}.npz"
        model.save(path)
        loaded = load(path)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "shift_"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
        assert loaded.get_params() == model.get_params()
        np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
        # and it goes on learning exactly as the original would
        model_copy = load(path)
        model_copy.partial_fit(X[:50])
        loaded.partial_fit(X[:50])
        np.testing.assert_array_equal(loaded.means_, model_copy.means_)


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path, fitted):
    _, models = fitted
    good = tmp_path / "good.npz"
    models["diag"].save(good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or of another format"):
        load(truncated)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable"):
        load(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(2))
    with pytest.raises(ValueError, match="not a streamgmm file"):
        load(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, kind=np.array("streamgmm.OnlineGMM"), format_version=np.array(1),
             params_json=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled objects"):
        load(pickled)
    stats_file = tmp_path / "stats.npz"
    SufficientStats.zeros(2, 2).save(stats_file)
    with pytest.raises(ValueError, match="holds a 'streamgmm.SufficientStats', not a 'streamgmm.OnlineGMM'"):
        load(stats_file)
    with pytest.raises(ValueError, match="does not exist"):
        load(tmp_path / "missing.npz")


def test_future_format_version_is_refused(tmp_path, fitted):
    _, models = fitted
    path = tmp_path / "model.npz"
    models["full"].save(path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["format_version"] = np.array(99)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="format version 99"):
        load(path)


def test_save_is_atomic(tmp_path, fitted, monkeypatch):
    _, models = fitted
    path = tmp_path / "model.npz"
    models["diag"].save(path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        models["full"].save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_statistics_file_round_trip(tmp_path, fitted):
    X, models = fitted
    stats = accumulate(models["full"], X)
    path = tmp_path / "stats.npz"
    stats.save(path)
    back = SufficientStats.load(path)
    for name in ("zeroth", "first", "second", "shift"):
        np.testing.assert_array_equal(getattr(back, name), getattr(stats, name))
    assert back.log_likelihood == stats.log_likelihood and back.n_frames == stats.n_frames
    assert zipfile.is_zipfile(path) and os.path.getsize(path) > 0


def test_models_without_a_floor_save_and_load(tmp_path, fitted):
    mixture = pytest.importorskip("sklearn.mixture")
    X, _ = fitted
    unfloored = OnlineGMM(2, covariance_type="diag", covariance_floor=0.0, random_state=0).fit(X)
    converted = OnlineGMM.from_sklearn(mixture.GaussianMixture(2, random_state=0).fit(X))
    for i, model in enumerate((unfloored, converted)):
        assert model.variance_floor_ is None
        path = tmp_path / f"m{i}.npz"
        model.save(path)
        loaded = load(path)
        assert loaded.variance_floor_ is None
        np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


@pytest.mark.parametrize("covariance_type", ["diag", "full", "tied", "spherical"])
def test_float32_estep_matches_float64_even_far_from_the_origin(covariance_type):
    """estep_dtype="float32": float32 products, float64 sums; offset data stays right thanks to the shift."""
    import copy

    rng = np.random.default_rng(3)
    X = (rng.normal(size=(6000, 5)) * [1, 2, 0.5, 1, 3] + 1e4).astype(np.float32)  # a large common offset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = OnlineGMM(4, covariance_type=covariance_type, random_state=0, max_iter=5).fit(X)
    fast = copy.deepcopy(model).set_params(estep_dtype="float32")
    # the tolerances: per-frame log-likelihoods of the same model within 1e-5 relative ...
    np.testing.assert_allclose(fast.score_samples(X), model.score_samples(X), rtol=1e-5)
    np.testing.assert_allclose(fast.predict_proba(X), model.predict_proba(X), atol=1e-4)
    # ... and the parameters of one EM iteration from the same start within 1e-5 relative
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact_step = copy.deepcopy(model).set_params(warm_start=True, max_iter=1).fit(X)
        fast_step = copy.deepcopy(fast).set_params(warm_start=True, max_iter=1).fit(X)
    np.testing.assert_allclose(fast_step.weights_, exact_step.weights_, rtol=1e-5)
    np.testing.assert_allclose(fast_step.means_, exact_step.means_, rtol=1e-5)
    # (relative to the covariances' scale: off-diagonal entries near zero have no relative precision)
    np.testing.assert_allclose(fast_step.covariances_, exact_step.covariances_, rtol=1e-5,
                               atol=1e-5 * np.abs(exact_step.covariances_).max())
    assert fast.get_params()["estep_dtype"] == "float32"
    with pytest.raises(ValueError, match="estep_dtype must be one of"):
        OnlineGMM(2, estep_dtype="float16").fit(X)


def test_float32_estep_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 3))
    model = OnlineGMM(3, covariance_type="diag", random_state=0, estep_dtype="float32").fit(X)
    model.save(tmp_path / "m.npz")
    again = load(tmp_path / "m.npz")
    assert again.estep_dtype == "float32"
    np.testing.assert_array_equal(again.score_samples(X), model.score_samples(X))
