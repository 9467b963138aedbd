"""StreamScorer: scores equal to batch scoring whatever the chunking, window arithmetic, decisions and events."""

import warnings

import numpy as np
import pytest

from speaker_id.demo.synth import make_corpus
from speaker_id.frontend.config import FeatureConfig
from speaker_id.frontend.normalization import fit_prior
from speaker_id.frontend.extraction import extract
from speaker_id.models.adaptation import map_adapt, speaker_stats
from speaker_id.scoring.likelihood_ratio import llr
from speaker_id.scoring.scorer import SpeakerScorer
from speaker_id.scoring.stream import StreamScorer
from speaker_id.models.ivector_backend import IvectorBackend
from streamgmm import OnlineGMM, accumulate

SR = 8000


@pytest.fixture(scope="module")
def corpus():
    """6 synthetic speakers x 4 utterances of 3 s at 8 kHz: spk000..spk003 enrolled on 3 utterances."""
    utterances = {}
    for utt in make_corpus(6, 4, 3.0, sr=SR, seed=7):
        utterances.setdefault(utt.speaker_id, []).append(utt.audio)
    return utterances


def build(corpus, config):
    feats = {name: [extract(y, config) for y in ys] for name, ys in corpus.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = OnlineGMM(16, covariance_type="diag", random_state=0, max_iter=20).fit(
            np.concatenate([x for xs in feats.values() for x in xs]))
    models = {name: map_adapt(ubm, speaker_stats(ubm, feats[name][:3]), relevance_factor=8.0)
              for name in ("spk000", "spk001", "spk002", "spk003")}
    return ubm, models


@pytest.fixture(scope="module")
def plain(corpus):
    """Models on features without VAD or CMVN: the stream then equals offline exactly."""
    config = FeatureConfig(sr=SR, vad=False, cmvn=False)
    return (config,) + build(corpus, config)


@pytest.fixture(scope="module")
def default(corpus):
    """The default front end, its prior the mean of every utterance's frames (as train-ubm computes it)."""
    config = fit_prior(FeatureConfig(sr=SR), [extract(y, FeatureConfig(sr=SR)) for ys in corpus.values() for y in ys])
    return (config,) + build(corpus, config)


def run(scorer, y, chunk):
    updates = [scorer.push(y[i:i + chunk]) for i in range(0, len(y), chunk)]
    return updates + [scorer.flush()]


@pytest.mark.parametrize("chunk", [1, 80, 800, 10**6])
def test_total_scores_are_the_offline_scores_whatever_the_chunking(plain, corpus, chunk):
    config, ubm, models = plain
    y = corpus["spk001"][3]
    scorer = StreamScorer(ubm, models, config, top_c=5, dtype=np.float64)
    last = run(scorer, y, chunk)[-1]
    X = extract(y, config)
    expected = [llr(ubm, model, X, top_c=5) for model in models.values()]
    assert last.total_frames == len(X)
    np.testing.assert_allclose(last.total_scores, expected, rtol=0, atol=1e-5)


def test_window_scores_average_the_last_seconds_of_frames(default, corpus):
    config, ubm, models = default
    y = np.concatenate([corpus["spk000"][3], corpus["spk002"][3]])
    scorer = StreamScorer(ubm, models, config, window_s=1.0, dtype=np.float64)
    features, index = [], []
    for i in range(0, len(y), 800):
        block = scorer.extractor.push(y[i:i + 800])  # the extractor alone gives the frames ...
        features.append(block.features)
        index.append(block.frame_index)
    X, index = np.concatenate(features), np.concatenate(index)
    frame_llrs = SpeakerScorer(ubm, models, top_c=5).score_frames(X)  # ... a batch scorer their LLRs
    latest = scorer.extractor.n_decided_ - 1
    point = _last_decision(latest)
    in_window = (index > point - 100) & (index <= point)  # 1 s = 100 frames of 10 ms
    scorer.reset()
    updates = run(scorer, y, 800)
    final_push = updates[-2]  # before the flush
    assert final_push.window_frames == in_window.sum()
    np.testing.assert_allclose(final_push.window_scores, frame_llrs[in_window].mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(final_push.total_scores, frame_llrs.mean(axis=0), atol=1e-4)
    assert final_push.time == pytest.approx(scorer.extractor.frame_time(latest))


def _last_decision(latest, step=10):
    """The stream frame of the latest decision: decisions fall every 100 ms = 10 frames, after frames 9, 19, ..."""
    return (latest + 1) // step * step - 1


def test_a_conversation_gives_one_event_per_change(default, corpus):
    config, ubm, models = default
    gap = np.zeros(5 * SR, np.float32)  # longer than the window: the decision falls back to silence
    y = np.concatenate([corpus["spk000"][3], gap, corpus["spk003"][3]])
    scorer = StreamScorer(ubm, models, config, window_s=2.0, threshold=-np.inf)
    updates = run(scorer, y, 800)
    events = [e for u in updates for e in u.events]
    assert [(e.state, e.speaker) for e in events] == [
        ("speaker", "spk000"), ("silence", None), ("speaker", "spk003")]
    assert events[1].previous == "spk000" and events[2].previous_state == "silence"
    first_end, second_start = 3.0, 8.0
    assert 0 < events[0].time < first_end
    assert first_end < events[1].time <= first_end + 2.0 + 0.1  # the window empties
    assert second_start < events[2].time < second_start + 3.0
    assert [u.time for u in updates] == sorted(u.time for u in updates)


def test_unknown_below_the_threshold_and_json_form(default, corpus):
    config, ubm, models = default
    scorer = StreamScorer(ubm, models, config, threshold=50.0)
    updates = run(scorer, corpus["spk005"][0], 800)  # not enrolled
    assert updates[-1].state == "unknown" and updates[-1].speaker is None
    record = updates[-1].to_dict(top=2)
    assert record["state"] == "unknown" and len(record["top"]) == 2
    assert record["top"][0]["window"] >= record["top"][1]["window"]
    silent = StreamScorer(ubm, models, config).push(np.zeros(800, np.float32))
    assert silent.n_frames == 0 and silent.state == "silence" and "silence" in silent.describe()
    assert silent.to_dict()["top"][0]["window"] is None  # no NaN in JSON


def test_bad_settings_and_mismatched_models(default, plain):
    config, ubm, models = default
    for options in ({"window_s": 0}, {"min_speech_s": -1}, {"threshold": float("nan")}):
        with pytest.raises(ValueError):
            StreamScorer(ubm, models, config, **options)
    with pytest.raises(ValueError, match="no speakers"):
        StreamScorer(ubm, {}, config)
    with pytest.raises(ValueError, match="gives 39 features but the UBM expects 60"):
        StreamScorer(ubm, models, FeatureConfig(sr=SR, n_mfcc=13))


def test_nan_samples_do_not_reach_the_scores(default, corpus):
    config, ubm, models = default
    y = corpus["spk002"][3].copy()
    y[4000:4400] = np.nan
    updates = run(StreamScorer(ubm, models, config, threshold=-np.inf), y, 800)
    assert all(np.isfinite(u.total_scores).all() for u in updates if u.total_frames)
    assert updates[-1].speaker == "spk002"


def test_switch_margin_holds_the_decision_until_another_speaker_is_clearly_ahead(default, corpus):
    config, ubm, models = default
    y = np.concatenate([corpus["spk000"][3], corpus["spk003"][3]])  # no pause between the turns
    follow = run(StreamScorer(ubm, models, config, threshold=-np.inf, switch_margin=0.0), y, 800)
    sticky = run(StreamScorer(ubm, models, config, threshold=-np.inf, switch_margin=1e6), y, 800)
    assert follow[-1].speaker == "spk003"
    assert {u.speaker for u in sticky if u.state == "speaker"} == {"spk000"}
    # while held, the reported score is the held speaker's, not the best one
    held = sticky[-1]
    assert held.score == pytest.approx(held.window_scores[held.names.index("spk000")])
    assert held.score < np.max(held.window_scores)
    with pytest.raises(ValueError, match="switch_margin"):
        StreamScorer(ubm, models, config, switch_margin=-0.1)


def test_state_stays_bounded_over_a_long_stream(default, corpus):
    config, ubm, models = default
    scorer = StreamScorer(ubm, models, config, window_s=2.0)
    speech = np.concatenate([corpus[name][0] for name in sorted(corpus)])  # 18 s of six voices
    sizes = None
    for lap in range(20):  # six minutes of audio
        for i in range(0, len(speech), 800):
            update = scorer.push(speech[i:i + 800])
        state = (scorer.speaker_scores._ring.shape, scorer._ring_index.shape, scorer.extractor._ring.shape,
                 scorer.extractor._context.shape, scorer.extractor._samples.size < config.win_length + 800)
        assert sizes is None or state == sizes
        sizes = state
    assert update.total_frames > 20_000 and update.window_frames <= 200
    assert np.isfinite(update.total_scores).all()


@pytest.fixture(scope="module")
def ivector(corpus, plain):
    """An i-vector back end on the plain front end's UBM, trained on all six speakers' utterances."""
    config, ubm, _ = plain
    stats, labels = [], []
    for k, name in enumerate(sorted(corpus)):
        for y in corpus[name]:
            stats.append(accumulate(ubm, extract(y, config)))
            labels.append(k)
    backend = IvectorBackend(rank=6, lda_dim=4, max_iter=3).fit(ubm, stats, np.array(labels))
    enrolled = {name: backend.enrollment(backend.vectors([accumulate(ubm, extract(y, config)) for y in corpus[name][:3]]))
                for name in ("spk000", "spk001", "spk002", "spk003")}
    return backend, enrolled


def _ivector_scores(backend, ubm, enrolled, X):
    """Scores of frames X against the enrolled speakers, the way ``speaker-id verify`` scores a file."""
    names = sorted(enrolled)
    sums, counts = np.array([enrolled[n][0] for n in names]), [enrolled[n][1] for n in names]
    return backend.score(sums, counts, backend.vectors([accumulate(ubm, X)]))[0]


@pytest.mark.parametrize("chunk", [80, 800, 10**6])
def test_ivector_total_scores_are_the_offline_scores_whatever_the_chunking(plain, ivector, corpus, chunk):
    config, ubm, _ = plain
    backend, enrolled = ivector
    y = corpus["spk001"][3]
    scorer = StreamScorer(ubm, enrolled, config, ivector_backend=backend)
    last = run(scorer, y, chunk)[-1]
    X = extract(y, config)
    assert last.total_frames == len(X) and scorer.names == sorted(enrolled)
    # the statistics are summed in another order; the i-vector solve and PLDA amplify that rounding
    np.testing.assert_allclose(last.total_scores, _ivector_scores(backend, ubm, enrolled, X), rtol=1e-6, atol=1e-8)


def test_ivector_window_scores_are_the_scores_of_the_last_seconds(plain, ivector, corpus):
    config, ubm, _ = plain
    backend, enrolled = ivector
    y = np.concatenate([corpus["spk000"][3], corpus["spk002"][3]])
    scorer = StreamScorer(ubm, enrolled, config, ivector_backend=backend, window_s=1.0, threshold=-np.inf)
    X = extract(y, config)  # the plain front end streams exactly these frames, all of them speech
    checked = 0
    for i in range(0, len(y), 1600):
        update = scorer.push(y[i:i + 1600])
        point = _last_decision(scorer.extractor.n_decided_ - 1)
        seen = np.arange(update.total_frames)
        in_window = (seen > point - 100) & (seen <= point)  # 1 s = 100 frames of 10 ms
        if update.window_frames:
            assert update.window_frames == in_window.sum()
            np.testing.assert_allclose(update.window_scores,
                                       _ivector_scores(backend, ubm, enrolled, X[seen[in_window]]),
                                       rtol=1e-6, atol=1e-5)
            checked += 1
    assert checked > 20
    assert update.speaker == "spk002"  # the window has left the first speaker behind


@pytest.mark.parametrize("backend", ["gmm", "ivector"])
def test_events_do_not_depend_on_how_the_audio_is_read(default, plain, ivector, corpus, backend):
    """Decisions fall on a grid of stream time: 10 ms to 1 s reads give the same events at the same times."""
    gap = np.zeros(3 * SR, np.float32)
    y = np.concatenate([corpus["spk000"][3], corpus["spk003"][3], gap, corpus["spk001"][3], corpus["spk002"][3]])
    if backend == "gmm":
        config, ubm, models = default
        make = lambda: StreamScorer(ubm, models, config, threshold=-np.inf, switch_margin=0.1)  # noqa: E731
    else:  # the i-vector back end, on the plain front end it was trained on
        config, ubm, _ = plain
        ivector_backend, enrolled = ivector
        make = lambda: StreamScorer(ubm, enrolled, config, ivector_backend=ivector_backend,  # noqa: E731
                                    threshold=-np.inf, switch_margin=0.1)
    runs, totals = {}, set()
    for chunk_ms in (10, 30, 100, 370, 1000):
        updates = run(make(), y, SR * chunk_ms // 1000)
        runs[chunk_ms] = [(e.time, e.state, e.speaker, e.previous) for u in updates for e in u.events]
        totals.add(updates[-1].total_frames)
    assert len(totals) == 1
    reference = runs[10]
    assert len(reference) >= 3 and "speaker" in {e[1] for e in reference}
    if backend == "gmm":  # the VAD drops the gap: the window empties and the decision falls to silence
        assert "silence" in {e[1] for e in reference}
    for chunk_ms, events in runs.items():
        assert events == reference, f"{chunk_ms} ms reads"
    # event times are grid points: whole multiples of the 10-frame (100 ms) interval, in stream frames
    scorer = make()
    frames = [round((t * SR - (config.win_length - scorer.extractor._pad)) / config.hop_length) for t, *_ in reference]
    assert all((f + 1) % 10 == 0 for f in frames[:-1])


def test_decision_interval_and_window_options_are_checked(default):
    config, ubm, models = default
    with pytest.raises(ValueError, match="min_speech_s .* longer than window_s"):
        StreamScorer(ubm, models, config, window_s=1.0, min_speech_s=1.5)
    with pytest.raises(ValueError, match="decision_interval_s"):
        StreamScorer(ubm, models, config, decision_interval_s=0)
    assert StreamScorer(ubm, models, config, decision_interval_s=0.001)._step == 1  # at least one frame
