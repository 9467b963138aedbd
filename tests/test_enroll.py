"""MAP enrollment: statistics of a speaker, Reynolds-style adaptation, additivity."""

import warnings

import numpy as np
import pytest

from speaker_id.models.adaptation import (
    SpeakerModel,
    adaptation_coefficients,
    map_adapt,
    speaker_stats,
)
from streamgmm import OnlineGMM, SufficientStats, accumulate, load

ALL = ("weights", "means", "variances")


@pytest.fixture(scope="module")
def ubm():
    rng = np.random.default_rng(0)
    centres = np.array([[-3.0, 0.0, 1.0], [0.0, 3.0, -1.0], [3.0, 0.0, 0.0], [0.0, -3.0, 2.0]])
    X = centres[rng.integers(4, size=3000)] + rng.normal(size=(3000, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OnlineGMM(4, covariance_type="diag", random_state=0, max_iter=30).fit(X)


def speaker_data(ubm, n, offset, seed):
    """Frames drawn from the UBM with every mean moved by ``offset``."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(ubm.n_components, size=n, p=ubm.weights_)
    return ubm.means_[labels] + offset + rng.normal(size=(n, ubm.n_features_in_)) * np.sqrt(
        ubm.covariances_[labels]
    )


def hand_ubm(weights, means, variances, reg_covar=0.0):
    """A diagonal UBM with given parameters, no variance floor."""
    means = np.asarray(means, dtype=float)
    model = OnlineGMM(len(weights), covariance_type="diag", reg_covar=reg_covar)
    model._set_parameters(weights, means, variances, shift=np.zeros(means.shape[1]))
    model.variance_floor_ = None
    return model


# ------------------------------------------------------------ speaker_stats
def test_speaker_stats_sums_accumulate(ubm):
    A, B = speaker_data(ubm, 200, 0.5, 1), speaker_data(ubm, 300, 0.5, 2)
    stats = speaker_stats(ubm, [A, B])
    expected = accumulate(ubm, A) + accumulate(ubm, B)
    assert stats.n_frames == 500
    for name in ("zeroth", "first", "second"):
        np.testing.assert_allclose(getattr(stats, name), getattr(expected, name), rtol=1e-12, atol=1e-10)
    # a single 2-D array is one utterance; a generator works too
    single = speaker_stats(ubm, A)
    np.testing.assert_allclose(single.zeroth, accumulate(ubm, A).zeroth, rtol=1e-12)
    gen = speaker_stats(ubm, (x for x in [A, B]))
    np.testing.assert_allclose(gen.first, stats.first, rtol=1e-12, atol=1e-10)


def test_speaker_stats_errors(ubm):
    with pytest.raises(ValueError, match="no features given"):
        speaker_stats(ubm, [])
    with pytest.raises(ValueError, match="feature array 1.*4 features"):
        speaker_stats(ubm, [np.zeros((5, 3)), np.zeros((5, 4))])
    with pytest.raises(ValueError, match="feature array 0.*non-finite"):
        speaker_stats(ubm, [np.full((5, 3), np.nan)])
    with pytest.raises(ValueError, match="iterable of arrays"):
        speaker_stats(ubm, 3.0)


# ---------------------------------------------------------------- map_adapt
def test_alpha_coefficients():
    alpha = adaptation_coefficients(np.array([0.0, 4.0, 12.0]), 4.0)
    np.testing.assert_allclose(alpha, [0.0, 0.5, 0.75])
    np.testing.assert_array_equal(adaptation_coefficients(np.array([0.0, 3.0]), 0.0), [0.0, 1.0])
    np.testing.assert_array_equal(adaptation_coefficients(np.array([5.0, 3.0]), np.inf), [0.0, 0.0])


def test_hand_computed_one_component_one_dimension():
    ubm = hand_ubm([1.0], [[0.0]], [[1.0]])
    x = np.array([[1.0], [2.0], [3.0]])
    stats = speaker_stats(ubm, [x])
    # n = 3, E[x] = 2, E[x^2] = 14/3, r = 16: alpha = 3/19
    model = map_adapt(ubm, stats, relevance_factor=16.0, adapt=ALL)
    alpha = 3.0 / 19.0
    mean = alpha * 2.0
    assert model.means_[0, 0] == pytest.approx(6.0 / 19.0, abs=1e-14)
    variance = alpha * 14.0 / 3.0 + (1 - alpha) * (1.0 + 0.0) - mean**2
    assert variance == pytest.approx(534.0 / 361.0, abs=1e-14)
    assert model.covariances_[0, 0] == pytest.approx(variance, abs=1e-13)
    assert model.weights_[0] == 1.0
    # means only: variance untouched
    means_only = map_adapt(ubm, stats, relevance_factor=16.0)
    assert means_only.means_[0, 0] == pytest.approx(6.0 / 19.0, abs=1e-14)
    assert means_only.covariances_[0, 0] == 1.0
    # variances only: second moment about the unchanged UBM mean
    var_only = map_adapt(ubm, stats, relevance_factor=16.0, adapt="variances")
    assert var_only.means_[0, 0] == 0.0
    assert var_only.covariances_[0, 0] == pytest.approx(alpha * 14.0 / 3.0 + (1 - alpha) * 1.0, abs=1e-13)


def test_hand_computed_weights_and_unseen_component():
    ubm = hand_ubm([0.5, 0.5], [[-1.0], [1.0]], [[1.0], [2.0]])
    # hand-made statistics: 3 frames on component 0 with mean -2, none on component 1
    stats = SufficientStats(
        zeroth=[3.0, 0.0], first=[[-6.0], [0.0]], second=[[13.0], [0.0]], shift=[0.0], n_frames=3.0
    )
    model = map_adapt(ubm, stats, relevance_factor=1.0, adapt=ALL)
    # alpha = [0.75, 0]: w = [0.75 * 1 + 0.25 * 0.5, 0.5] / 1.375
    np.testing.assert_allclose(model.weights_, [0.875 / 1.375, 0.5 / 1.375], rtol=1e-14)
    assert model.means_[0, 0] == pytest.approx(0.75 * -2.0 + 0.25 * -1.0, abs=1e-14)
    # E[x^2] = 13/3; var = 0.75 * 13/3 + 0.25 * (1 + 1) - 1.75^2
    assert model.covariances_[0, 0] == pytest.approx(0.75 * 13 / 3 + 0.5 - 1.75**2, abs=1e-13)
    # the unseen component keeps the UBM's parameters exactly
    assert model.means_[1, 0] == 1.0 and model.covariances_[1, 0] == 2.0


def test_relevance_zero_gives_maximum_likelihood(ubm):
    stats = speaker_stats(ubm, [speaker_data(ubm, 4000, 0.3, 3)])
    assert np.all(stats.zeroth > 100)
    model = map_adapt(ubm, stats, relevance_factor=0.0, adapt=ALL)
    np.testing.assert_allclose(model.means_, stats.means(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.weights_, stats.zeroth / stats.zeroth.sum(), rtol=1e-12)
    expected_var = np.maximum(stats.covariances() + ubm.reg_covar, ubm.variance_floor_)
    np.testing.assert_allclose(model.covariances_, expected_var, rtol=1e-9)


@pytest.mark.parametrize("relevance", [np.inf, 1e300])
def test_infinite_relevance_leaves_ubm_unchanged(ubm, relevance):
    stats = speaker_stats(ubm, [speaker_data(ubm, 500, 2.0, 4)])
    model = map_adapt(ubm, stats, relevance_factor=relevance, adapt=ALL)
    np.testing.assert_array_equal(model.means_, ubm.means_)
    np.testing.assert_array_equal(model.covariances_, ubm.covariances_)
    np.testing.assert_allclose(model.weights_, ubm.weights_, rtol=1e-15)


@pytest.mark.parametrize("adapt", [("means",), ("weights",), ("variances",), ALL])
def test_incremental_enrollment_equals_one_shot(ubm, adapt):
    A, B = speaker_data(ubm, 250, 0.7, 5), speaker_data(ubm, 400, 0.7, 6)
    later = map_adapt(ubm, speaker_stats(ubm, [A]) + speaker_stats(ubm, [B]), adapt=adapt)
    at_once = map_adapt(ubm, speaker_stats(ubm, [A, B]), adapt=adapt)
    concatenated = map_adapt(ubm, speaker_stats(ubm, [np.concatenate([A, B])]), adapt=adapt)
    for other in (at_once, concatenated):
        np.testing.assert_allclose(later.means_, other.means_, rtol=0, atol=1e-10)
        np.testing.assert_allclose(later.weights_, other.weights_, rtol=0, atol=1e-10)
        np.testing.assert_allclose(later.covariances_, other.covariances_, rtol=0, atol=1e-10)


def test_speaker_model_add_equals_enroll_at_once(ubm):
    A, B = speaker_data(ubm, 250, -0.5, 7), speaker_data(ubm, 100, -0.5, 8)
    grown = SpeakerModel.enroll("ann", ubm, [A], adapt=("variances", "means")).add(ubm, [B])
    once = SpeakerModel.enroll("ann", ubm, [A, B], adapt=("means", "variances"))
    assert grown.n_frames == 350 and grown.adapt == ("means", "variances")
    np.testing.assert_allclose(grown.model.means_, once.model.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(grown.model.covariances_, once.model.covariances_, rtol=0, atol=1e-10)
    with pytest.raises(Exception):
        grown.name = "bob"  # frozen


def test_statistics_about_another_shift_give_the_same_model(ubm):
    stats = speaker_stats(ubm, [speaker_data(ubm, 300, 0.4, 9)])
    moved = stats.recentred(ubm.shift_ + np.array([5.0, -3.0, 100.0]))
    a = map_adapt(ubm, stats, adapt=ALL)
    b = map_adapt(ubm, moved, adapt=ALL)
    np.testing.assert_allclose(a.means_, b.means_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-8)


def test_result_is_a_fitted_model_like_the_ubm(ubm, tmp_path):
    data = speaker_data(ubm, 400, 1.0, 10)
    model = map_adapt(ubm, speaker_stats(ubm, [data]), adapt=ALL)
    assert isinstance(model, OnlineGMM) and model is not ubm
    np.testing.assert_array_equal(model.shift_, ubm.shift_)
    np.testing.assert_array_equal(model.variance_floor_, ubm.variance_floor_)
    assert model.get_params() == ubm.get_params()
    assert model.score(data) > ubm.score(data)  # moved toward the speaker
    path = tmp_path / "speaker.npz"
    model.save(path)
    np.testing.assert_allclose(load(path).score_samples(data), model.score_samples(data), rtol=1e-12)
    # the UBM itself is not modified
    assert not np.array_equal(model.means_, ubm.means_)


def test_means_only_copies_weights_and_variances_exactly(ubm):
    model = map_adapt(ubm, speaker_stats(ubm, [speaker_data(ubm, 200, 1.0, 11)]))
    np.testing.assert_array_equal(model.weights_, ubm.weights_)
    np.testing.assert_array_equal(model.covariances_, ubm.covariances_)
    assert model.covariances_ is not ubm.covariances_


def test_variances_are_floored_and_finite():
    ubm = hand_ubm([0.5, 0.5], [[0.0, 0.0], [10.0, 10.0]], [[1.0, 1.0], [1.0, 1.0]], reg_covar=1e-6)
    ubm.variance_floor_ = np.array([1e-3, 1e-4])
    # all frames identical: zero data variance, r = 0
    stats = speaker_stats(ubm, [np.tile([[0.2, -0.1]], (50, 1))])
    model = map_adapt(ubm, stats, relevance_factor=0.0, adapt=ALL)
    assert np.isfinite(model.covariances_).all() and np.isfinite(model.precisions_cholesky_).all()
    np.testing.assert_allclose(model.covariances_[0], [1e-3, 1e-4])
    # no floor at all: reg_covar is the floor
    ubm.variance_floor_ = None
    model = map_adapt(ubm, stats, relevance_factor=0.0, adapt=ALL)
    np.testing.assert_allclose(model.covariances_[0], [1e-6, 1e-6])


def test_large_offset_data_keep_accurate_variances():
    offset = 1e5
    rng = np.random.default_rng(12)
    X = offset + rng.normal(size=(4000, 2)) * 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = OnlineGMM(1, covariance_type="diag", random_state=0, covariance_floor=0.0,
                        reg_covar=0.0).fit(X)
    spk = offset + 0.5e-2 + rng.normal(size=(3000, 2)) * 2e-2
    model = map_adapt(ubm, speaker_stats(ubm, [spk]), relevance_factor=0.0, adapt=ALL)
    np.testing.assert_allclose(model.covariances_[0], spk.var(axis=0), rtol=1e-6)


def test_map_adapt_errors(ubm):
    stats = speaker_stats(ubm, [speaker_data(ubm, 100, 0.0, 13)])
    other = hand_ubm([0.5, 0.5], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], np.ones((2, 3)))
    with pytest.raises(ValueError, match="another UBM"):
        map_adapt(other, stats)
    with pytest.raises(ValueError, match="another UBM"):
        map_adapt(ubm, SufficientStats.zeros(4, 2))
    with pytest.raises(ValueError, match="another UBM"):
        map_adapt(ubm, SufficientStats.zeros(4, 3, layout="full"))
    with pytest.raises(ValueError, match="unknown: \\['mean'\\]"):
        map_adapt(ubm, stats, adapt=("mean",))
    with pytest.raises(ValueError, match="adapt is empty"):
        map_adapt(ubm, stats, adapt=())
    with pytest.raises(ValueError, match="relevance_factor"):
        map_adapt(ubm, stats, relevance_factor=-1.0)
    with pytest.raises(ValueError, match="relevance_factor"):
        map_adapt(ubm, stats, relevance_factor=float("nan"))
    with pytest.raises(TypeError, match="SufficientStats"):
        map_adapt(ubm, stats.first)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = OnlineGMM(2, covariance_type="full", random_state=0, max_iter=3).fit(rng.normal(size=(300, 3)))
    with pytest.raises(ValueError, match="diagonal-covariance UBMs only"):
        map_adapt(full, speaker_stats(full, [rng.normal(size=(10, 3))]))
    with pytest.raises(ValueError, match="not fitted"):
        map_adapt(OnlineGMM(2, covariance_type="diag"), stats)


def test_cli_default_relevance_factor_is_the_library_default():
    from speaker_id.cli import DEFAULT_RELEVANCE_FACTOR as cli_default, build_parser
    from speaker_id.models.adaptation import DEFAULT_RELEVANCE_FACTOR

    assert cli_default == DEFAULT_RELEVANCE_FACTOR
    for argv in (["evaluate", "--protocol", "fsdd", "D"], ["train-ubm", "--store", "S", "a.wav"]):
        assert build_parser().parse_args(argv).relevance_factor == cli_default
