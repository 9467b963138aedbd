"""Scoring: LLR (exact and top-C), the stacked many-speaker scorer, decisions, normalisation."""

import functools
import warnings

import numpy as np
import pytest

import speaker_id.scoring.scorer as scorer_module
from speaker_id.models.adaptation import map_adapt, speaker_stats
from speaker_id.scoring.decisions import identify, verify
from speaker_id.scoring.likelihood_ratio import llr, top_components
from speaker_id.scoring.normalization import snorm, tnorm, znorm, ztnorm
from speaker_id.scoring.scorer import SpeakerScorer
from streamgmm import OnlineGMM

K, D = 8, 3


@pytest.fixture(scope="module")
def ubm():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(K, D))
    X = centres[rng.integers(K, size=4000)] + rng.normal(size=(4000, D))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OnlineGMM(K, covariance_type="diag", random_state=0, max_iter=30).fit(X)


def draw(model, n, offset, seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(model.n_components, size=n, p=model.weights_)
    noise = rng.normal(size=(n, model.n_features_in_)) * np.sqrt(model.covariances_[labels])
    return model.means_[labels] + offset + noise


@pytest.fixture(scope="module")
def speakers(ubm):
    """Means-only speakers plus two adapted in weights/variances (the exact path)."""
    out = {}
    for i in range(5):
        data = draw(ubm, 300, np.random.default_rng(100 + i).normal(scale=0.6, size=D), 200 + i)
        out[f"m{i}"] = map_adapt(ubm, speaker_stats(ubm, [data]), relevance_factor=8.0)
    data = draw(ubm, 300, 0.5, 300)
    out["wv"] = map_adapt(ubm, speaker_stats(ubm, [data]), adapt=("weights", "means", "variances"))
    out["v"] = map_adapt(ubm, speaker_stats(ubm, [data]), adapt="variances")
    return out


def manual_log_joint(model, X):
    """log w_k + log N(x; mu_k, diag var_k) straight from the formula, (n, K)."""
    var = model.covariances_
    diff = X[:, None, :] - model.means_[None]
    return (
        np.log(model.weights_)
        - 0.5 * np.sum(np.log(2 * np.pi * var), axis=1)
        - 0.5 * np.sum(diff**2 / var[None], axis=2)
    )


def manual_logsumexp(a):
    top = a.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=1, keepdims=True)))[:, 0]


def manual_top_c_llr(ubm, speaker, X, c):
    u, s = manual_log_joint(ubm, X), manual_log_joint(speaker, X)
    chosen = np.argsort(-u, axis=1, kind="stable")[:, :c]
    pick = lambda a: np.take_along_axis(a, chosen, axis=1)  # noqa: E731
    return float(np.mean(manual_logsumexp(pick(s)) - manual_logsumexp(pick(u))))


# ---------------------------------------------------------------------- llr
def test_exact_llr_matches_formula_and_sklearn(ubm, speakers):
    X = draw(ubm, 200, 0.2, 1)
    for name in ("m0", "wv"):
        expected = np.mean(manual_logsumexp(manual_log_joint(speakers[name], X))
                           - manual_logsumexp(manual_log_joint(ubm, X)))
        assert llr(ubm, speakers[name], X, top_c=None) == pytest.approx(expected, abs=1e-10)
    mixture = pytest.importorskip("sklearn.mixture")  # noqa: F841
    sk = np.mean(speakers["m0"].to_sklearn().score_samples(X) - ubm.to_sklearn().score_samples(X))
    assert llr(ubm, speakers["m0"], X, top_c=None) == pytest.approx(sk, abs=1e-10)


def test_top_c_equal_to_k_is_exact(ubm, speakers):
    X = draw(ubm, 300, -0.3, 2)
    for speaker in speakers.values():
        exact = llr(ubm, speaker, X, top_c=None)
        assert llr(ubm, speaker, X, top_c=K) == pytest.approx(exact, abs=1e-10)
        assert llr(ubm, speaker, X, top_c=K + 10) == pytest.approx(exact, abs=1e-10)


@pytest.mark.parametrize("c", [1, 2, 5])
def test_top_c_matches_hand_selection(ubm, speakers, c):
    X = draw(ubm, 250, 0.1, 3)
    for name in ("m1", "wv", "v"):
        expected = manual_top_c_llr(ubm, speakers[name], X, c)
        assert llr(ubm, speakers[name], X, top_c=c) == pytest.approx(expected, abs=1e-10)


def test_means_array_is_a_means_only_speaker(ubm, speakers):
    X = draw(ubm, 100, 0.0, 4)
    assert llr(ubm, speakers["m2"].means_, X, top_c=3) == pytest.approx(
        llr(ubm, speakers["m2"], X, top_c=3), abs=1e-12
    )


def test_adapted_speaker_scores_higher_on_its_own_gaussian(ubm):
    shift = np.array([1.0, -0.8, 0.6])
    enroll_data = draw(ubm, 1500, shift, 5)
    speaker = map_adapt(ubm, speaker_stats(ubm, [enroll_data]))
    own, background = draw(ubm, 500, shift, 6), draw(ubm, 500, 0.0, 7)
    for top_c in (None, 3):
        s_own, s_bg = llr(ubm, speaker, own, top_c), llr(ubm, speaker, background, top_c)
        assert s_own > 0.0 > s_bg
        assert s_own > s_bg + 0.2


def test_top_components():
    joint = np.array([[0.0, 3.0, 1.0, 2.0], [5.0, -1.0, 4.0, 0.0]])
    index, selected = top_components(joint, 2)
    np.testing.assert_array_equal(index, [[1, 3], [0, 2]])  # best first
    np.testing.assert_array_equal(selected, [[3.0, 2.0], [5.0, 4.0]])
    index, _ = top_components(np.array([[1.0, 2.0, 2.0, 2.0]]), 2)  # ties: lower index first
    np.testing.assert_array_equal(index, [[1, 2]])
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(50, 30))
    index, selected = top_components(wide, 7)
    np.testing.assert_array_equal(index, np.argsort(-wide, axis=1)[:, :7])
    index, selected = top_components(joint, None)
    np.testing.assert_array_equal(index, [[0, 1, 2, 3]] * 2)


def test_llr_errors(ubm, speakers):
    X = draw(ubm, 50, 0.0, 8)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fewer = OnlineGMM(4, covariance_type="diag", random_state=0, max_iter=2).fit(rng.normal(size=(200, D)))
        wider = OnlineGMM(K, covariance_type="diag", random_state=0, max_iter=2).fit(rng.normal(size=(200, D + 1)))
    for other in (fewer, wider):
        with pytest.raises(ValueError, match="belongs to another UBM"):
            llr(ubm, other, X)
    with pytest.raises(ValueError, match="belongs to another UBM"):
        llr(ubm, np.zeros((K, D + 1)), X)
    with pytest.raises(ValueError, match="has 4 features, but OnlineGMM is expecting 3 features as input"):
        llr(ubm, speakers["m0"], np.zeros((10, 4)))
    with pytest.raises(ValueError, match="top_c"):
        llr(ubm, speakers["m0"], X, top_c=0)
    with pytest.raises(ValueError, match="top_c"):
        llr(ubm, speakers["m0"], X, top_c=2.5)
    with pytest.raises(ValueError, match="non-finite"):
        llr(ubm, speakers["m0"], np.full((3, D), np.nan))


# ------------------------------------------------------------ SpeakerScorer
@pytest.fixture(params=["few", "products"])
def stacked_path(request, monkeypatch):
    """Both ways of scoring stacked speakers: one Numba pass per frame (few speakers), or BLAS products."""
    if request.param == "products":
        monkeypatch.setattr(scorer_module, "_FEW_SPEAKERS", 0)
    return request.param


@pytest.mark.parametrize("top_c", [1, 3, 5, None])
def test_stacked_scorer_equals_per_speaker_llr(ubm, speakers, top_c, stacked_path):
    table = dict(speakers)
    table["raw"] = speakers["m3"].means_ + 0.05  # a means array
    X = draw(ubm, 400, 0.3, 9)
    scorer = SpeakerScorer(ubm, table, top_c=top_c)
    assert scorer.names == list(table) and len(scorer) == len(table)
    assert scorer.n_stacked_ == 6  # m0..m4 and the means array; wv and v go one by one
    scores = scorer.score(X)
    assert scores.shape == (len(table),)
    expected = [llr(ubm, model, X, top_c=top_c) for model in table.values()]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)
    slow = SpeakerScorer(ubm, table, top_c=top_c, fast=False)
    assert slow.n_stacked_ == 0
    np.testing.assert_allclose(slow.score(X), expected, rtol=0, atol=1e-9)


def test_stacked_scorer_in_blocks_and_float32(ubm, speakers, monkeypatch, stacked_path):
    X = draw(ubm, 301, -0.2, 10)
    reference = SpeakerScorer(ubm, speakers, top_c=3).score(X)
    exact = SpeakerScorer(ubm, speakers, top_c=None).score(X)
    monkeypatch.setattr(scorer_module, "_BLOCK_BYTES", 1000)  # a few frames per block
    np.testing.assert_allclose(SpeakerScorer(ubm, speakers, top_c=3).score(X), reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(SpeakerScorer(ubm, speakers, top_c=None).score(X), exact, rtol=0, atol=1e-9)
    single = SpeakerScorer(ubm, speakers, top_c=3, dtype=np.float32).score(X)
    np.testing.assert_allclose(single, reference, rtol=0, atol=1e-4)
    # float32 frames (as features.extract returns them) score like their float64 copy
    X32 = X.astype(np.float32)
    expected = [llr(ubm, model, X32.astype(np.float64), top_c=3) for model in speakers.values()]
    np.testing.assert_allclose(SpeakerScorer(ubm, speakers, top_c=3).score(X32), expected, rtol=0, atol=1e-9)
    assert llr(ubm, speakers["m0"], X32, top_c=3) == pytest.approx(expected[0], abs=1e-9)


@pytest.mark.parametrize("top_c", [2, None])
def test_frame_scores_are_single_frame_llrs(ubm, speakers, top_c, monkeypatch, stacked_path):
    """Row t of score_frames is the LLR of the one-frame utterance X[t], on every path."""
    table = dict(speakers)
    table["raw"] = speakers["m1"].means_ - 0.1
    X = draw(ubm, 37, 0.2, 12)
    expected = np.array([[llr(ubm, model, X[t:t + 1], top_c=top_c) for model in table.values()]
                         for t in range(len(X))])
    scorer = SpeakerScorer(ubm, table, top_c=top_c)
    frames = scorer.score_frames(X)
    assert frames.shape == (len(X), len(table))
    np.testing.assert_allclose(frames, expected, rtol=0, atol=1e-9)
    monkeypatch.setattr(scorer_module, "_BLOCK_BYTES", 500)  # several blocks
    np.testing.assert_allclose(SpeakerScorer(ubm, table, top_c=top_c).score_frames(X), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("which", ["means only", "with exact speakers"])
def test_score_utterances_equals_one_score_per_utterance(ubm, speakers, which, stacked_path, monkeypatch):
    table = {n: m for n, m in speakers.items() if which != "means only" or n.startswith("m")}
    lengths = [40, 1, 7, 130, 3, 64, 25]
    tests = [draw(ubm, n, 0.1 * i, 30 + i) for i, n in enumerate(lengths)]
    expected = np.array([[llr(ubm, model, X, top_c=3) for model in table.values()] for X in tests])
    scorer = SpeakerScorer(ubm, table, top_c=3)
    np.testing.assert_allclose(scorer.score_utterances(tests), expected, rtol=0, atol=1e-9)
    # blocks of 50 frames: utterances grouped up to a block, the 130-frame one alone
    monkeypatch.setattr(scorer_module, "_UTTERANCE_BLOCK_FRAMES", 50)
    np.testing.assert_allclose(scorer.score_utterances(tests), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(scorer.score_utterances([t.astype(np.float32) for t in tests]),
                               np.array([[llr(ubm, m, X.astype(np.float32).astype(float), top_c=3)
                                          for m in table.values()] for X in tests]), rtol=0, atol=1e-9)
    assert scorer.score_utterances([]).shape == (0, len(table))
    # densities in blocks of 4 frames: 290 frames are cut into one part per thread, each in its own thread
    monkeypatch.setattr(scorer_module, "DensityPlan", functools.partial(scorer_module.DensityPlan, block_size=4))
    monkeypatch.setattr(scorer_module, "_UTTERANCE_BLOCK_FRAMES", 1 << 16)
    np.testing.assert_allclose(SpeakerScorer(ubm, table, top_c=3).score_utterances(tests), expected, rtol=0, atol=1e-9)
    exact = SpeakerScorer(ubm, table, top_c=None).score_utterances(tests[:2])
    np.testing.assert_allclose(exact, [[llr(ubm, m, X, top_c=None) for m in table.values()] for X in tests[:2]],
                               rtol=0, atol=1e-9)


def test_score_utterances_refuses_bad_utterances(ubm, speakers):
    scorer = SpeakerScorer(ubm, {"m0": speakers["m0"]}, top_c=3)
    good = draw(ubm, 10, 0.0, 1)
    with pytest.raises(ValueError, match="non-finite"):
        scorer.score_utterances([good, np.full((3, D), np.nan)])
    with pytest.raises(ValueError, match="expecting 3 features"):
        scorer.score_utterances([good, np.zeros((4, 2))])
    with pytest.raises(ValueError, match="empty"):
        scorer.score_utterances([good, np.zeros((0, D))])


def test_scorer_identifies_the_right_speaker(ubm):
    offsets = np.random.default_rng(11).normal(scale=1.0, size=(6, D))
    speakers = {f"s{i}": map_adapt(ubm, speaker_stats(ubm, [draw(ubm, 800, off, 20 + i)]))
                for i, off in enumerate(offsets)}
    scorer = SpeakerScorer(ubm, speakers, top_c=4)
    for i, off in enumerate(offsets):
        name, _ = identify(scorer.score(draw(ubm, 400, off, 40 + i)), scorer.names)
        assert name == f"s{i}"


def test_scorer_errors(ubm, speakers):
    with pytest.raises(ValueError, match="no speakers"):
        SpeakerScorer(ubm, {})
    with pytest.raises(TypeError, match="mapping"):
        SpeakerScorer(ubm, [speakers["m0"]])
    with pytest.raises(ValueError, match="speaker 'bad'.*belongs to another UBM"):
        SpeakerScorer(ubm, {"ok": speakers["m0"], "bad": np.zeros((K + 1, D))})
    with pytest.raises(ValueError, match="speaker 'nan'.*non-finite"):
        SpeakerScorer(ubm, {"nan": np.full((K, D), np.nan)})
    with pytest.raises(ValueError, match="dtype"):
        SpeakerScorer(ubm, speakers, dtype=np.int32)
    scorer = SpeakerScorer(ubm, speakers)
    with pytest.raises(ValueError, match="features"):
        scorer.score(np.zeros((5, D + 2)))


# ---------------------------------------------------------------- decisions
def test_verify():
    assert verify(0.5, 0.5) is True
    assert verify(0.49, 0.5) is False
    np.testing.assert_array_equal(verify(np.array([0.1, 0.9]), 0.5), [False, True])
    with pytest.raises(ValueError, match="NaN"):
        verify(float("nan"), 0.0)


def test_identify_closed_and_open_set():
    scores, names = np.array([0.2, 1.3, -0.4]), ["ann", "bob", "cid"]
    assert identify(scores, names) == ("bob", 1.3)
    assert identify(scores, names, threshold=1.0) == ("bob", 1.3)
    assert identify(scores, names, threshold=1.5) == (None, 1.3)
    with pytest.raises(ValueError, match="3 scores but 2 names"):
        identify(scores, names[:2])
    with pytest.raises(ValueError, match="non-empty"):
        identify([], [])
    with pytest.raises(ValueError, match="NaN"):
        identify([np.nan, 1.0], ["a", "b"])


# ------------------------------------------------------------ normalisation
def test_znorm_tnorm_by_hand():
    # impostors 1, 2, 3: mean 2, sample std 1
    assert znorm(4.0, [1.0, 2.0, 3.0]) == pytest.approx(2.0)
    assert tnorm(0.0, [1.0, 2.0, 3.0]) == pytest.approx(-2.0)
    # vectorised: one cohort per score along the last axis
    out = znorm(np.array([4.0, 10.0]), np.array([[1.0, 2.0, 3.0], [0.0, 10.0, 20.0]]))
    np.testing.assert_allclose(out, [2.0, 0.0])
    # one cohort shared by many scores
    np.testing.assert_allclose(tnorm(np.array([2.0, 3.0]), [1.0, 2.0, 3.0]), [0.0, 1.0])


def test_snorm_and_ztnorm_by_hand():
    # z = (4 - 2) / 1 = 2; t = (4 - 0) / 2 (cohort 0, 2, -2: mean 0, std 2) = 2
    assert snorm(4.0, [1.0, 2.0, 3.0], [0.0, 2.0, -2.0]) == pytest.approx(2.0)
    assert snorm(4.0, [1.0, 2.0, 3.0], [0.0, 4.0, -4.0]) == pytest.approx(1.5)
    # ztnorm: z = 2; cohort models z-normed with their own impostors:
    # (1 - 0)/1 = 1, (5 - 2)/1 = 3, (2 - 0)/1 = 2 -> mean 2, std 1 -> (2 - 2) / 1 = 0
    cohort_impostors = [[-1.0, 0.0, 1.0], [1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]]
    assert ztnorm(4.0, [1.0, 2.0, 3.0], [1.0, 5.0, 2.0], cohort_impostors) == pytest.approx(0.0, abs=1e-12)
    assert ztnorm(5.0, [1.0, 2.0, 3.0], [1.0, 5.0, 2.0], cohort_impostors) == pytest.approx(1.0)


def test_normalisation_errors():
    with pytest.raises(ValueError, match="at least 2"):
        znorm(1.0, [0.5])
    with pytest.raises(ValueError, match="zero spread"):
        tnorm(1.0, [0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="zero spread"):
        znorm([1.0, 2.0], [[0.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match="NaN"):
        znorm(1.0, [0.0, np.nan])
    with pytest.raises(ValueError, match="does not match"):
        znorm(np.ones(3), np.ones((2, 4)) * [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="scalar"):
        tnorm(1.0, 2.0)
