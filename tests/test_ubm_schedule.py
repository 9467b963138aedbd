"""UBM EM schedules: mixture growth on a subsample, then a few passes over all the frames."""

import warnings

import numpy as np
import pytest
from conftest import make_mixture

from speaker_id.models.ubm import fit_ubm, train_ubm
from speaker_id.models.ubm_schedule import LocalFrames, UbmSchedule, as_schedule, split_components, subsample
from streamgmm import OnlineGMM


def _frames(n=30_000, k=16, d=6, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    stds = rng.uniform(0.5, 1.5, size=(k, d))
    X, _ = make_mixture(n, rng.uniform(0.5, 1.5, size=k), means, stds, seed=seed + 1)
    return X


def _utterances(X, size=300):
    return [X[i:i + size] for i in range(0, len(X), size)]


@pytest.mark.parametrize("k, start_fraction, sizes", [(20, 8, [2, 4, 8, 16, 20]), (24, 8, [3, 6, 12, 24]),
                                                      (16, 16, [1, 2, 4, 8, 16]), (5, 8, [1, 2, 4, 5])])
def test_growth_ends_at_exactly_k_components(k, start_fraction, sizes):
    schedule = UbmSchedule("grow", start_fraction=start_fraction, iterations_per_size=2, final_iterations=2)
    ubm = fit_ubm(_utterances(_frames(6000)), n_components=k, schedule=schedule)
    assert ubm.n_components == k and ubm.weights_.shape == (k,) and ubm.means_.shape == (k, 6)
    assert np.isclose(ubm.weights_.sum(), 1.0) and np.all(ubm.weights_ > 0)
    stages = ubm.schedule_log_.stages
    assert [s.components for s in stages] == sizes + [k]
    assert [s.on for s in stages] == ["subsample"] * len(sizes) + ["all"]
    assert stages[-1].iterations == 2 == ubm.schedule_log_.full_passes


def test_growth_reaches_the_lower_bound_of_full_em():
    # 32 components fitted to 30,000 frames of 64 overlapping Gaussians (6-D): full EM (k-means
    # start, 12 passes to tol) against growth from 4 components on a 6,400-frame subsample,
    # then 8 passes over all the frames. Measured (data seeds 0-2): growth ends 0.13-0.32 %
    # below full EM's mean log-likelihood per frame (about -10.5), on held-out frames too.
    rng = np.random.default_rng(0)
    means, stds = rng.normal(size=(64, 6)), rng.uniform(0.5, 1.5, size=(64, 6))
    frames, _ = make_mixture(40_000, rng.uniform(0.5, 1.5, size=64), means, stds, seed=1)
    X, held_out = frames[:30_000], frames[30_000:]
    full = fit_ubm(_utterances(X), n_components=32, schedule="full")
    grown = fit_ubm(_utterances(X), n_components=32, schedule="grow")
    assert grown.schedule_log_.full_passes == 8 < full.schedule_log_.full_passes
    assert grown.schedule_log_.equivalent_passes < 11
    assert grown.lower_bound_ > full.lower_bound_ - 0.005 * abs(full.lower_bound_)
    assert grown.score(held_out) > full.score(held_out) - 0.005 * abs(full.score(held_out))


def test_every_em_iteration_is_a_fit_call_and_all_frames_are_read_once_per_pass(tmp_path, monkeypatch):
    from test_ubm import _write_voices

    from speaker_id.frontend.config import FeatureConfig
    from speaker_id.models.ubm import FeatureCache

    calls, reads = [], []
    original_fit, original_chunks = OnlineGMM.fit, FeatureCache.chunks

    def recording_fit(self, X, y=None):
        calls.append((self.n_components, callable(X), self.warm_start, self.max_iter))
        return original_fit(self, X, y)

    def counting_chunks(self):
        reads.append(1)
        return original_chunks(self)

    monkeypatch.setattr(OnlineGMM, "fit", recording_fit)
    monkeypatch.setattr(FeatureCache, "chunks", counting_chunks)
    schedule = UbmSchedule("grow", final_iterations=3, subsample_iterations_at_full_size=2, iterations_per_size=2)
    with FeatureCache(_write_voices(tmp_path), FeatureConfig(), n_jobs=1, shard_frames=300) as cache:
        ubm = fit_ubm(cache, n_components=8, schedule=schedule)
    # 1 -> 2 -> 4 -> 8 components on the subsample (in memory), then one warm-started fit over the shards
    assert [c[0] for c in calls] == [1, 2, 4, 8, 8]
    assert [c[1:] for c in calls[:-1]] == [(False, False, 2)] * 4
    assert calls[-1][1:] == (True, True, 3)
    assert ubm.n_iter_ == 3 == ubm.schedule_log_.full_passes
    # passes over the shards: one to draw the subsample, then one per EM pass
    assert len(reads) == 1 + 3


def test_full_schedule_is_the_old_batch_em():
    X = _frames(5000)
    ubm = fit_ubm(_utterances(X), n_components=4, schedule="full", max_iter=10)
    reference = OnlineGMM(4, covariance_type="diag", max_iter=10, tol=1e-3, init_params="kmeans",
                          random_state=0, init_size=20_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(X)
    np.testing.assert_allclose(ubm.means_, reference.means_, rtol=1e-9, atol=1e-9)
    assert ubm.schedule_log_.full_passes == reference.n_iter_


def test_relative_tolerance_stops_full_em_early():
    X = _utterances(_frames(8000))
    loose = fit_ubm(X, n_components=8, schedule=UbmSchedule("full", max_iter=50, rel_tol=1e-2))
    tight = fit_ubm(X, n_components=8, schedule=UbmSchedule("full", max_iter=50, rel_tol=1e-6))
    assert loose.schedule_log_.full_passes < tight.schedule_log_.full_passes


def test_split_components_halves_the_heaviest():
    rng = np.random.default_rng(0)
    weights = np.array([0.5, 0.3, 0.2])
    means = rng.normal(size=(3, 4))
    covariances = rng.uniform(0.5, 2.0, size=(3, 4))
    w, m, c = split_components(weights, means, covariances, 5, 0.2, rng)
    assert w.shape == (5,) and np.isclose(w.sum(), 1.0)
    np.testing.assert_allclose(w, [0.25, 0.15, 0.2, 0.25, 0.15])
    # the halves sit symmetrically about the old mean, 0.2 standard deviations away in every dimension
    np.testing.assert_allclose((m[0] + m[3]) / 2, means[0])
    np.testing.assert_allclose(np.abs(m[3] - means[0]), 0.2 * np.sqrt(covariances[0]))
    np.testing.assert_array_equal(c[3], covariances[0])
    np.testing.assert_array_equal(m[2], means[2])


def test_subsample_does_not_depend_on_the_chunking():
    X = _frames(5000)
    a = subsample(LocalFrames(lambda: iter(_utterances(X, 7))), 1000, np.random.default_rng(3))
    b = subsample(LocalFrames(lambda: iter([X])), 1000, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert len(subsample(LocalFrames(lambda: iter([X])), 10_000, np.random.default_rng(0))) == 5000


@pytest.mark.parametrize("schedule, message", [
    ("fast", "schedule must be one of"),
    (None, "schedule must be one of"),
    (UbmSchedule, "schedule must be one of"),
])
def test_unknown_schedule_is_refused(schedule, message):
    with pytest.raises(ValueError, match=message):
        fit_ubm(_utterances(_frames(1000)), n_components=2, schedule=schedule)


@pytest.mark.parametrize("options, message", [
    ({"kind": "slow"}, "schedule must be one of"),
    ({"final_iterations": 0}, "final_iterations >= 1"),
    ({"iterations_per_size": -1}, "iterations_per_size must be an integer >= 0"),
    ({"start_fraction": 0}, "start_fraction must be an integer >= 1"),
    ({"subsample_frames": 2.5}, "subsample_frames must be an integer"),
    ({"rel_tol": -1.0}, "rel_tol must be a number >= 0"),
    ({"perturbation": float("nan")}, "perturbation must be a number >= 0"),
    ({"max_iter": True}, "max_iter must be an integer"),
])
def test_bad_schedule_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        UbmSchedule(**options)


def test_growth_needs_diagonal_covariances():
    with pytest.raises(ValueError, match="diagonal"):
        fit_ubm(_utterances(_frames(2000)), n_components=4, covariance_type="full", schedule="grow")


def test_bad_schedule_is_refused_before_any_audio_is_read(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(ValueError, match="schedule must be one of"):
        train_ubm([missing], n_components=4, schedule="fastest")


def test_the_command_line_default_is_the_library_default():
    from speaker_id.cli import DEFAULT_UBM_SCHEDULE
    from speaker_id.models.ubm_schedule import DEFAULT_SCHEDULE

    assert DEFAULT_UBM_SCHEDULE == DEFAULT_SCHEDULE


def test_named_schedules_take_max_iter_and_tol():
    assert as_schedule("full", max_iter=7, tol=0.5) == UbmSchedule("full", max_iter=7, tol=0.5)
    schedule = UbmSchedule("grow", final_iterations=3)
    assert as_schedule(schedule, max_iter=7) is schedule
