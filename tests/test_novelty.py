"""NoveltyTracker: NLL before learning, a robust baseline, flags that come and go with a change."""

import copy
import dataclasses
import math

import numpy as np
import pytest

from streamgmm import NoveltyResult, NoveltyTracker, OnlineGMM

MEANS = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 5.0, -2.0]])
CHANGE = 60  # chunk index where a regime change starts


def _chunk(rng, regime="base", n=200):
    """One chunk of a three-cluster stream, or of a changed regime."""
    means, scale = MEANS, 1.0
    if regime == "shift":
        means = MEANS + [1.5, 0.0, 0.0]
    elif regime == "cluster":
        means = np.vstack([MEANS, [[6.0, 6.0, 6.0]]])
    elif regime == "wider":
        scale = 2.0
    elif regime == "narrower":
        scale = 0.5
    labels = rng.integers(0, len(means), n)
    return means[labels] + scale * rng.standard_normal((n, 3))


def _tracker(forgetting=0.2, **params):
    model = OnlineGMM(3, covariance_type="diag", forgetting=forgetting, random_state=0)
    return NoveltyTracker(model, **params)


def _run(tracker, regime, n_chunks=200, seed=1):
    rng = np.random.default_rng(seed)
    return [tracker.update(_chunk(rng, "base" if t < CHANGE else regime)) for t in range(n_chunks)]


def _flagged(results):
    return [r.index for r in results if r.is_novel]


def _state(tracker):
    model = tracker.model
    params = None if getattr(model, "means_", None) is None else (
        model.weights_.copy(), model.means_.copy(), model.covariances_.copy(), model.n_updates_
    )
    return (tracker.n_chunks_, tracker.n_scored_, tracker.n_novel_, tracker.baseline_,
            tracker.spread_, len(tracker.history_), params)


def _same_state(a, b):
    *counters_a, params_a = a
    *counters_b, params_b = b
    np.testing.assert_equal(counters_a, counters_b)
    if params_a is None or params_b is None:
        assert params_a is params_b
    else:
        for x, y in zip(params_a, params_b):
            np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------ stationary stream
def test_stationary_stream_false_flag_rate_is_near_the_nominal_tail():
    # threshold 3: a Gaussian tail of P(Z > 3) = 1.35e-3 per chunk; allow 5 times
    # that for the estimated baseline and the slight skew of a chunk NLL.
    results = _run(_tracker(forgetting=0.1, threshold=3.0), "base", n_chunks=600)
    scored = [r for r in results if not r.warming_up]
    assert len(scored) > 580
    assert len(_flagged(scored)) <= 5 * 1.35e-3 * len(scored)
    # the novelty is standardised: |Z| has median 0.674 for a standard normal
    assert 0.55 < np.median([abs(r.novelty) for r in scored]) < 0.8


# --------------------------------------------------------------- regime changes
@pytest.mark.parametrize("regime", ["shift", "cluster", "wider"])
def test_a_change_is_flagged_at_once_and_the_flags_stop_once_learnt(regime):
    results = _run(_tracker(forgetting=0.2), regime)
    flagged = _flagged(results)
    assert flagged, f"the {regime} change was never flagged"
    assert flagged[0] in (CHANGE, CHANGE + 1)
    # the model re-adapts (about 3.5 / forgetting = 18 chunks), the baseline
    # absorbs any lasting change of level, and the stream is ordinary again
    assert max(flagged) < CHANGE + 40


def test_a_narrower_regime_is_not_improbable_and_not_flagged():
    results = _run(_tracker(forgetting=0.2), "narrower")
    assert _flagged(results) == []
    assert results[CHANGE].nll < results[CHANGE].baseline


def test_not_learning_novel_chunks_keeps_them_out_of_the_model():
    tracker = _tracker(forgetting=0.2, learn_novel=False)
    rng = np.random.default_rng(1)
    for _ in range(CHANGE):
        tracker.update(_chunk(rng))
    before = copy.deepcopy(tracker.model)
    result = tracker.update(_chunk(rng, "cluster"))
    assert result.is_novel and not result.learnt
    np.testing.assert_array_equal(tracker.model.means_, before.means_)
    assert tracker.model.n_updates_ == before.n_updates_
    # a lasting regime is still learnt once the baseline has absorbed it
    later = [tracker.update(_chunk(rng, "cluster")) for _ in range(80)]
    assert not later[-1].is_novel and later[-1].learnt


def test_one_outlier_moves_the_baseline_by_at_most_a_clipped_step():
    tracker = _tracker(forgetting=0.2, baseline_halflife=10.0)
    rng = np.random.default_rng(2)
    for _ in range(30):
        tracker.update(_chunk(rng))
    baseline, spread = tracker.baseline_, tracker.spread_
    result = tracker.update(_chunk(rng) + 30.0)
    assert result.novelty > 100
    step = (1 - 0.5 ** (1 / 10.0)) * tracker.threshold * spread
    assert tracker.baseline_ - baseline == pytest.approx(step)


class _ScriptedModel:
    """A fitted stand-in whose chunks have prescribed NLLs (to check the baseline arithmetic)."""

    means_ = np.zeros((1, 1))
    n_features_in_ = 1

    def __init__(self, nlls):
        self._nlls = iter(nlls)

    def partial_fit(self, X):
        self.lower_bound_ = -next(self._nlls)
        return self

    def score(self, X):
        raise AssertionError("a learning tracker reads lower_bound_, it does not score twice")


def test_the_baseline_starts_as_a_plain_mean_then_weighs_exponentially():
    tracker = NoveltyTracker(_ScriptedModel([1.0, 3.0, 2.0, 10.0]), baseline_halflife=2.0, warmup=100)
    for _ in range(3):
        tracker.update(np.zeros((5, 1)))
    assert tracker.baseline_ == pytest.approx(2.0)  # mean of 1, 3, 2
    # mean absolute deviation from the running mean: |3 - 1| and |2 - 2|
    assert tracker.spread_ == pytest.approx(math.sqrt(math.pi / 2) * 1.0)
    tracker.update(np.zeros((5, 1)))  # weight 1 - 2 ** -0.5 = 0.293 now exceeds 1/4
    assert tracker.baseline_ == pytest.approx(2.0 + (1 - 2**-0.5) * 8.0)


# ------------------------------------------------------- what the NLL means
@pytest.mark.parametrize("learn_novel", [True, False])
def test_nll_is_minus_the_score_of_the_model_before_it_learnt_the_chunk(learn_novel):
    tracker = _tracker(forgetting=0.2, learn_novel=learn_novel)
    rng = np.random.default_rng(3)
    checked = 0
    for t in range(80):
        chunk = _chunk(rng, "base" if t < 50 else "cluster")
        before = copy.deepcopy(tracker.model)
        result = tracker.update(chunk)
        if getattr(before, "means_", None) is None:
            assert math.isnan(result.nll)
            continue
        assert result.nll == pytest.approx(-before.score(chunk), rel=1e-12, abs=1e-12)
        if result.learnt:  # and the model learnt exactly this chunk
            before.partial_fit(chunk)
            np.testing.assert_allclose(tracker.model.means_, before.means_, rtol=1e-12)
        checked += 1
    assert checked > 70


def test_results_depend_only_on_the_stream():
    a = _run(_tracker(history_size=3), "cluster", n_chunks=100)
    b = _run(_tracker(history_size=1000), "cluster", n_chunks=100)
    np.testing.assert_equal([dataclasses.astuple(r) for r in a], [dataclasses.astuple(r) for r in b])
    assert [r.index for r in _tracker(history_size=3).history_] == []


# ------------------------------------------------------------------ warm-up
def test_nothing_is_flagged_during_warm_up_even_a_wild_chunk():
    model = OnlineGMM(3, covariance_type="diag", forgetting=0.2, random_state=0, init_size=400)
    tracker = NoveltyTracker(model, warmup=5)
    rng = np.random.default_rng(4)
    results = [tracker.update(_chunk(rng) + (50.0 if t == 4 else 0.0)) for t in range(7)]
    # chunks 0-1 fill the 400-frame init buffer (NaN NLL), 2-6 build the baseline
    assert [math.isnan(r.nll) for r in results] == [True, True] + [False] * 5
    assert all(r.warming_up and not r.is_novel and math.isnan(r.novelty) for r in results)
    assert results[4].nll > results[3].nll + 100
    following = tracker.update(_chunk(rng))
    assert not following.warming_up and math.isfinite(following.novelty)


def test_a_fitted_model_only_needs_the_baseline_warm_up():
    rng = np.random.default_rng(5)
    model = OnlineGMM(3, covariance_type="diag", forgetting=0.2, random_state=0).fit(_chunk(rng, n=2000))
    tracker = NoveltyTracker(model, warmup=3)
    results = [tracker.update(_chunk(rng)) for _ in range(4)]
    assert [r.warming_up for r in results] == [True, True, True, False]
    assert all(math.isfinite(r.nll) for r in results)


# ------------------------------------------------------------------ bad input
def _warm_tracker(n_chunks=20):
    tracker = _tracker()
    rng = np.random.default_rng(6)
    for _ in range(n_chunks):
        tracker.update(_chunk(rng))
    return tracker, rng


def test_a_chunk_with_nan_raises_and_leaves_the_tracker_unchanged():
    tracker, rng = _warm_tracker()
    twin = copy.deepcopy(tracker)
    bad = _chunk(rng)
    following = _chunk(rng)
    bad[7, 2] = np.nan
    state = _state(tracker)
    with pytest.raises(ValueError, match=r"(?s)NaN.*row 7, column 2.*impute.*unchanged"):
        tracker.update(bad)
    _same_state(_state(tracker), state)
    assert tracker.update(following) == twin.update(following)


def test_a_chunk_with_nan_during_init_buffering_changes_nothing():
    tracker = _tracker()
    tracker.update(np.zeros((10, 3)))
    state = _state(tracker)
    with pytest.raises(ValueError, match="NaN"):
        tracker.update(np.full((10, 3), np.nan))
    _same_state(_state(tracker), state)


@pytest.mark.parametrize("n_chunks", [1, 20])  # model still buffering / fitted
def test_wrong_dimensions_raise_naming_the_expected_shape(n_chunks):
    tracker, rng = _warm_tracker(n_chunks)
    state = _state(tracker)
    with pytest.raises(ValueError, match="4 features.*3"):
        tracker.update(rng.standard_normal((50, 4)))
    with pytest.raises(ValueError, match=r"2-D.*reshape"):
        tracker.update(rng.standard_normal(50))
    with pytest.raises(ValueError, match=r"shape \(0, 3\)"):
        tracker.update(np.empty((0, 5)))
    _same_state(_state(tracker), state)


def test_an_empty_chunk_is_counted_and_changes_nothing_else():
    tracker, rng = _warm_tracker()
    twin = copy.deepcopy(tracker)
    state = _state(tracker)
    result = tracker.update(np.empty((0, 3)))
    assert result.index == state[0] and result.n_frames == 0
    assert math.isnan(result.nll) and not result.is_novel and not result.learnt
    assert tracker.n_chunks_ == state[0] + 1
    chunk = _chunk(rng)
    after_empty, direct = tracker.update(chunk), twin.update(chunk)
    assert after_empty.index == direct.index + 1
    assert (after_empty.nll, after_empty.novelty) == (direct.nll, direct.novelty)


def test_history_is_bounded_and_holds_the_latest_results():
    tracker = _tracker(history_size=5)
    results = _run(tracker, "base", n_chunks=30)
    assert tracker.history_ == results[-5:]
    assert all(isinstance(r, NoveltyResult) for r in tracker.history_)
    assert _tracker(history_size=0).history_ == []


@pytest.mark.parametrize("params, message", [
    (dict(threshold=0), "threshold must be > 0"),
    (dict(threshold=float("nan")), "threshold must be a finite number"),
    (dict(baseline_halflife=-1), "baseline_halflife must be > 0"),
    (dict(warmup=1), "warmup must be an integer >= 2"),
    (dict(learn_novel="no"), "learn_novel must be True or False"),
    (dict(history_size=-1), "history_size must be an integer >= 0"),
])
def test_bad_parameters_are_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        _tracker(**params)


def test_a_model_without_partial_fit_is_refused():
    with pytest.raises(ValueError, match="partial_fit"):
        NoveltyTracker(object())


# ------------------------------------------------------------ example script
def test_the_example_script_detects_every_change_and_writes_its_plot(tmp_path, capsys, monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "track_density.py"
    spec = importlib.util.spec_from_file_location("track_density", path)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "track_density", script)  # its dataclass looks itself up
    spec.loader.exec_module(script)
    out = tmp_path / "tracking.png"
    evaluation = script.main(["--out", str(out), "--seed", "0"])
    assert evaluation.n_detected == len(script.CHANGES)
    assert all(0 < delay <= 3 * script.CHUNK_SECONDS for delay in evaluation.delays)
    assert evaluation.false_alarms == []
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "summary: 4/4 changes detected" in capsys.readouterr().out
