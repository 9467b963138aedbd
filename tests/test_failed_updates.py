"""A failed update leaves model and tracker exactly as they were; no NaN ever comes out.

Issue 10, part A.1: frames of finite but huge values used to overwrite the
running statistics with infinities before the update raised, so the model
was poisoned for good. Every update now computes into temporaries and
commits only once they are valid; input beyond the scale limit (1e100) is
refused with a message, and a log-density that overflows anyway is refused
by the E-step.
"""

import copy
import dataclasses

import numpy as np
import pytest

import streamgmm.estimators
from streamgmm import NoveltyTracker, OnlineGMM, load
from streamgmm._validation import MAX_ABS_VALUE, check_frames

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _two_clusters(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return np.array([[-3.0, 0.0, 1.0], [3.0, 1.0, -1.0]])[labels] + rng.normal(size=(n, 3))


def _online_model(covariance_type, **params):
    model = OnlineGMM(2, covariance_type=covariance_type, random_state=0, **params)
    for seed in range(3):
        model.partial_fit(_two_clusters(300, seed))
    return model


def _assert_same(a, b, where="model"):
    """Recursive bit-for-bit equality of two states (arrays, dataclasses, objects, generators)."""
    if isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, where
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)) or hasattr(a, "maxlen"):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        _assert_same(dataclasses.asdict(a), dataclasses.asdict(b), where)
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b), where
        _assert_same(vars(a), vars(b), where)
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    else:
        assert a == b, where


def _assert_learns_like(model, twin):
    """An ordinary update and a save/load round trip work, exactly as on a model that never failed."""
    chunk = _two_clusters(300, 99)
    model.partial_fit(chunk)
    twin.partial_fit(chunk)
    _assert_same(vars(model), vars(twin))
    assert np.isfinite(model.score_samples(chunk)).all()


@pytest.fixture
def saved_and_loaded(tmp_path):
    def round_trip(model):
        model.save(tmp_path / "m.npz")
        return load(tmp_path / "m.npz")
    return round_trip


# ------------------------------------------------------------- the scale limit
def test_frames_up_to_the_limit_pass_and_beyond_it_are_refused_with_the_fix():
    X = np.ones((4, 2))
    X[2, 1] = MAX_ABS_VALUE
    assert check_frames(X) is X
    X[2, 1] = -MAX_ABS_VALUE * 1.0000001
    with pytest.raises(ValueError, match=r"(?s)1 value\(s\) beyond \+-1e\+100.*row 2, column 1.*[Ss]cale the features"):
        check_frames(X)
    with pytest.raises(ValueError, match="non-finite"):
        check_frames(np.array([[1.0, np.inf]], dtype=np.float32))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_data_near_the_limit_fit_as_well_as_unit_data(covariance_type):
    # The likelihood of scaled data is the likelihood of the unscaled data
    # minus D log(scale): a model near the limit must find the same solution.
    X = _two_clusters(2000, 0)
    scale = 1e99
    unit = OnlineGMM(2, covariance_type=covariance_type, random_state=0).fit(X)
    scaled = OnlineGMM(2, covariance_type=covariance_type, random_state=0).fit(X * scale)
    np.testing.assert_allclose(scaled.means_ / scale, unit.means_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(scaled.score(X * scale), unit.score(X) - 3 * np.log(scale), rtol=1e-9)
    edge = np.full((2, 3), MAX_ABS_VALUE)
    assert np.isfinite(scaled.score_samples(edge)).all()
    np.testing.assert_allclose(scaled.predict_proba(edge).sum(axis=1), 1.0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scoring_rows_beyond_the_limit_raises_instead_of_returning_nan(covariance_type):
    model = _online_model(covariance_type)
    rows = np.zeros((3, 3))
    rows[1, 0] = 1e155
    for method in (model.score_samples, model.predict_proba, model.predict, model.score, model.bic):
        with pytest.raises(ValueError, match=r"(?s)row 1, column 0.*1e\+100"):
            method(rows)


# ------------------------------------------------------------ partial_fit
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_huge_chunk_leaves_the_model_bit_identical_and_usable(covariance_type, saved_and_loaded):
    model = _online_model(covariance_type)
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=r"(?s)beyond \+-1e\+100.*[Ss]cale the features"):
        model.partial_fit(_two_clusters(300, 5) * 1e200)
    _assert_same(vars(model), vars(before))
    _assert_learns_like(model, before)
    reloaded = saved_and_loaded(model)
    np.testing.assert_array_equal(reloaded.means_, model.means_)
    reloaded.partial_fit(_two_clusters(300, 6))
    assert np.isfinite(reloaded.means_).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_an_overflowing_log_density_is_refused_by_every_method_and_changes_nothing(covariance_type):
    # Variances of 1e-120 (no regularisation, no floor): frames at 1e95 are
    # within the input limit but 1e155 standard deviations away, whose square
    # overflows. Nothing may come out as NaN or inf, and nothing may change.
    tiny = OnlineGMM(2, covariance_type=covariance_type, reg_covar=0.0, covariance_floor=0.0, random_state=0)
    tiny.fit(_two_clusters(1000, 0) * 1e-60)
    tiny.score(_two_clusters(10, 0) * 1e-60)  # scoring caches the density plan: before the copy
    before = copy.deepcopy(tiny)
    far = np.full((4, 3), 1e95)
    for method in (tiny.partial_fit, tiny.score_samples, tiny.predict_proba, tiny.predict):
        with pytest.raises(ValueError, match="frame 0 has no finite log-density"):
            method(far)
    _assert_same(vars(tiny), vars(before))
    near = _two_clusters(300, 1) * 1e-60
    tiny.partial_fit(near)
    before.partial_fit(near)
    _assert_same(vars(tiny), vars(before))


def _poisoned_estimate(starve):
    """An M-step that returns NaN covariances (after re-seeding, which draws randomly, if ``starve``)."""
    real = streamgmm.estimators.estimate_parameters

    def estimate(*args, **kwargs):
        weights, means, covariances = real(*args, **kwargs)
        if starve:
            weights = np.array([1.0 - 1e-9, 1e-9])
        covariances = covariances.copy()
        covariances[..., 0] = np.nan
        return weights, means, covariances
    return estimate


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("starve", [False, True])
def test_a_failing_m_step_leaves_the_model_bit_identical(covariance_type, starve, monkeypatch, saved_and_loaded):
    model = _online_model(covariance_type)
    before = copy.deepcopy(model)
    with monkeypatch.context() as patch:
        patch.setattr(streamgmm.estimators, "estimate_parameters", _poisoned_estimate(starve))
        with pytest.raises(ValueError, match="not finite|could not be estimated"):
            model.partial_fit(_two_clusters(300, 7))
    _assert_same(vars(model), vars(before))
    _assert_learns_like(model, before)
    np.testing.assert_array_equal(saved_and_loaded(model).covariances_, model.covariances_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_failing_initialisation_leaves_the_buffer_as_it_was(covariance_type, monkeypatch):
    model = OnlineGMM(2, covariance_type=covariance_type, random_state=0, init_size=400)
    model.partial_fit(_two_clusters(200, 0))
    before = copy.deepcopy(model)
    with monkeypatch.context() as patch:
        patch.setattr(streamgmm.estimators, "estimate_parameters", _poisoned_estimate(False))
        with pytest.raises(ValueError, match="not finite"):
            model.partial_fit(_two_clusters(200, 1))
    _assert_same(vars(model), vars(before))
    model.partial_fit(_two_clusters(200, 1))
    assert np.isfinite(model.means_).all()


# -------------------------------------------------------------------- fit
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_on_huge_values_raises_value_error_and_keeps_the_previous_fit(covariance_type):
    model = OnlineGMM(2, covariance_type=covariance_type, random_state=0).fit(_two_clusters(600, 0))
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=r"(?s)chunk 0 holds .*beyond \+-1e\+100"):
        model.fit(_two_clusters(600, 1) * 1e200)
    _assert_same(vars(model), vars(before))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_linalg_error_inside_fit_becomes_a_value_error_and_changes_nothing(covariance_type, monkeypatch):
    model = OnlineGMM(2, covariance_type=covariance_type, random_state=0).fit(_two_clusters(600, 0))
    before = copy.deepcopy(model)

    def diverging(*args, **kwargs):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")
    monkeypatch.setattr(streamgmm.estimators, "estimate_parameters", diverging)
    with pytest.raises(ValueError, match="Eigenvalues did not converge"):
        model.fit(_two_clusters(600, 1))
    monkeypatch.setattr(streamgmm.estimators, "initial_responsibilities", diverging)
    with pytest.raises(ValueError, match="(?s)Eigenvalues did not converge.*unchanged"):
        model.fit(_two_clusters(600, 1))
    _assert_same(vars(model), vars(before))


# -------------------------------------------------------------- the tracker
def _warm_tracker(covariance_type):
    model = OnlineGMM(2, covariance_type=covariance_type, forgetting=0.2, random_state=0)
    tracker = NoveltyTracker(model, warmup=3)
    for seed in range(8):
        tracker.update(_two_clusters(200, seed))
    return tracker


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_tracker_survives_a_huge_chunk_and_a_failing_update(covariance_type, monkeypatch):
    tracker = _warm_tracker(covariance_type)
    before = copy.deepcopy(tracker)
    with pytest.raises(ValueError, match=r"(?s)beyond \+-1e\+100.*unchanged"):
        tracker.update(_two_clusters(200, 50) * 1e200)
    with monkeypatch.context() as patch:
        patch.setattr(streamgmm.estimators, "estimate_parameters", _poisoned_estimate(True))
        with pytest.raises(ValueError, match="not finite|could not be estimated"):
            tracker.update(_two_clusters(200, 51))
    _assert_same(vars(tracker), vars(before), "tracker")
    chunk = _two_clusters(200, 52)
    assert tracker.update(chunk) == before.update(chunk)
    assert np.isfinite(tracker.baseline_) and np.isfinite(tracker.spread_)
