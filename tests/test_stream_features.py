"""Streaming features: the offline numbers whatever the chunking, causal VAD/CMVN, bad input."""

import numpy as np
import pytest
import soxr

from speaker_id.demo.synth import make_speakers, synthesize
from speaker_id.evaluation.corpora import find_dataset_root
from speaker_id.frontend.config import FeatureConfig, FeatureError
from speaker_id.frontend.extraction import extract
from speaker_id.frontend.mfcc import config_frames
from speaker_id.frontend.streaming import StreamingFeatureExtractor
from speaker_id.frontend.vad import frame_energy_db

SR = 8000
CHUNKS = [1, 7, 80, 333, 4000, None]  # None: the whole signal in one push


@pytest.fixture(scope="module")
def speech():
    """About 9 s at 8 kHz: real FSDD digits when the corpus is there, synthetic speech otherwise."""
    root = find_dataset_root()
    if root is not None and (root / "fsdd" / "recordings").is_dir():
        from speaker_id.frontend.audio import load_audio

        rec = root / "fsdd" / "recordings"
        parts = [load_audio(rec / f"{d}_{s}_0.wav", SR) for s in ("george", "theo", "jackson") for d in range(8)]
        return np.concatenate(parts)
    voices = make_speakers(2, seed=4)
    return np.concatenate([synthesize(v, 4.5, sr=SR, seed=i) for i, v in enumerate(voices.values())])


def stream(y, config, chunk, **options):
    """Push ``y`` in chunks of ``chunk`` samples (random sizes for 'random'), then flush."""
    ex = StreamingFeatureExtractor(config, **options)
    if chunk is None:
        sizes = [len(y)]
    elif chunk == "random":
        sizes = np.random.default_rng(0).integers(0, 900, size=len(y) // 200 + 10)
    else:
        sizes = [chunk] * (len(y) // chunk + 1)
    blocks, start = [], 0
    for size in sizes:
        blocks.append(ex.push(y[start:start + size]))
        start += size
    blocks.append(ex.push(y[start:]))
    blocks.append(ex.flush())
    return np.concatenate([b.features for b in blocks]), np.concatenate([b.frame_index for b in blocks]), ex


def close(a, b):
    # float32 features of magnitude up to a few hundred (c0): rounding-level differences only
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-4)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("chunk", CHUNKS + ["random"])
def test_mfcc_and_deltas_equal_offline_whatever_the_chunking(speech, chunk, center):
    cfg = FeatureConfig(sr=SR, vad=False, cmvn=False, center=center)
    X, index, ex = stream(speech, cfg, chunk)
    reference = extract(speech, cfg)
    assert X.shape == reference.shape and X.dtype == np.float32
    np.testing.assert_array_equal(index, np.arange(len(reference)))
    close(X, reference)
    assert ex.n_emitted_ == ex.n_frames_ == len(reference)


def test_short_streams_use_the_same_edge_frames(speech):
    cfg = FeatureConfig(sr=SR, vad=False, cmvn=False)
    for n_samples in (200, 280, 520, 900):  # 1, 2, 5 and 9 frames: shorter than the delta window
        y = speech[3000:3000 + n_samples]
        X, _, _ = stream(y, cfg, 37)
        close(X, extract(y, cfg))
    X, index, ex = stream(speech[:150], FeatureConfig(sr=SR, vad=False, cmvn=False, center=False), 10)
    assert X.shape == (0, 60) and ex.n_pending_samples == 150  # less than one frame, unpadded


def test_vad_is_the_causal_offline_rule(speech):
    cfg = FeatureConfig(sr=SR, cmvn=False)
    X, index, _ = stream(speech, cfg, 333)
    energy = frame_energy_db(config_frames(speech, cfg))
    # the first 100 frames against the loudest of them, then the loudest so far
    running_peak = np.maximum.accumulate(np.concatenate([[energy[:100].max()], energy[100:]]))
    running_peak = np.concatenate([np.full(100, running_peak[0]), running_peak[1:]])
    expected = (energy > running_peak - cfg.vad_threshold_db) & (energy > cfg.vad_floor_db)
    np.testing.assert_array_equal(index, np.flatnonzero(expected))
    close(X, extract(speech, FeatureConfig(sr=SR, vad=False, cmvn=False))[index])
    # after the loudest frame the decisions are the offline ones; before it, a superset
    offline = (energy > energy.max() - cfg.vad_threshold_db) & (energy > cfg.vad_floor_db)
    loudest = int(np.argmax(energy))
    np.testing.assert_array_equal(expected[loudest:], offline[loudest:])
    assert np.all(expected[offline])


def test_vad_memory_uses_the_loudest_recent_frame(speech):
    cfg = FeatureConfig(sr=SR, cmvn=False)
    memory_s = 0.5  # 50 frames
    _, index, _ = stream(speech, cfg, 123, vad_memory_s=memory_s)
    energy = frame_energy_db(config_frames(speech, cfg))
    peak = np.array([energy[max(0, t - 49):t + 1].max() for t in range(len(energy))])
    peak[:100] = energy[:100].max()  # the warm-up second is judged against its loudest frame
    expected = (energy > peak - cfg.vad_threshold_db) & (energy > cfg.vad_floor_db)
    np.testing.assert_array_equal(index, np.flatnonzero(expected))


def test_warm_up_cmvn_of_a_short_utterance_is_the_offline_cmvn(speech):
    cfg = FeatureConfig(sr=SR, vad=False)
    y = speech[:8000]  # 101 frames, all held back and normalised together
    X, _, _ = stream(y, cfg, 250, cmvn_min_frames=200)
    close(X, extract(y, cfg))


@pytest.mark.parametrize("chunk", [1, 80, None])
def test_an_utterance_of_at_most_a_second_streams_to_the_offline_features(speech, chunk):
    """VAD and CMVN warm-ups hold the whole utterance, so the offline rules apply exactly."""
    cfg = FeatureConfig(sr=SR)
    for start in (0, 3000, 11000):
        y = speech[start:start + 7800]  # 98 frames, under the 100-frame warm-ups
        X, _, _ = stream(y, cfg, chunk)
        reference = extract(y, cfg)
        assert X.shape == reference.shape
        close(X, reference)


@pytest.mark.parametrize("window_s", [0.4, None])
def test_sliding_prior_normalisation_against_a_direct_computation(speech, window_s):
    raw, raw_index, _ = stream(speech, FeatureConfig(sr=SR, prior_frames=None), 400)
    prior = np.linspace(-2.0, 2.0, raw.shape[1])
    config = FeatureConfig(sr=SR, prior_frames=20.0).with_prior(prior)
    X, index, _ = stream(speech, config, 400, cmvn_window_s=window_s, cmvn_min_frames=30)
    np.testing.assert_array_equal(index, raw_index)
    x = raw.astype(np.float64)
    start = x[:30]  # held back, then normalised as offline over themselves
    expected = [start - 30 / 50 * (start.mean(0) - prior)]
    for t in range(30, len(x)):
        window = x[max(0, t - 39):t + 1] if window_s else x[:t + 1]
        expected.append((x[t] - len(window) / (len(window) + 20) * (window.mean(0) - prior))[None])
    assert len(x) > 3 * 40
    np.testing.assert_allclose(X, np.concatenate(expected), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window_s", [0.4, None])
def test_sliding_cmvn_against_a_direct_computation(speech, window_s):
    raw, raw_index, _ = stream(speech, FeatureConfig(sr=SR, prior_frames=None), 400)
    X, index, _ = stream(speech, FeatureConfig(sr=SR, cmvn=True, prior_frames=None), 400, cmvn_window_s=window_s,
                         cmvn_min_frames=30)
    np.testing.assert_array_equal(index, raw_index)
    x = raw.astype(np.float64)
    start = x[:30]
    expected = [(start - start.mean(0)) / start.std(0)]
    for t in range(30, len(x)):
        window = x[max(0, t - 39):t + 1] if window_s else x[:t + 1]
        expected.append(((x[t] - window.mean(0)) / window.std(0))[None])
    assert len(x) > 3 * 40  # the window wraps several times (the sums are recomputed)
    np.testing.assert_allclose(X, np.concatenate(expected), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("chunk", [1, 160, "random", None])
def test_the_whole_causal_chain_does_not_depend_on_the_chunking(speech, chunk):
    reference, ref_index, _ = stream(speech, FeatureConfig(sr=SR), 80)
    X, index, _ = stream(speech, FeatureConfig(sr=SR), chunk)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_allclose(X, reference, rtol=1e-4, atol=1e-4)


def test_other_sample_rates_are_resampled_or_refused(speech):
    y44 = soxr.resample(speech, SR, 44100, quality="HQ").astype(np.float32)
    cfg = FeatureConfig(sr=SR, vad=False, cmvn=False)
    X, _, _ = stream(y44, cfg, 4410, sr=44100)
    reference = extract(soxr.resample(y44, 44100, SR, quality="HQ").astype(np.float32), cfg)
    assert X.shape == reference.shape
    close(X, reference)
    with pytest.raises(FeatureError, match="44100 Hz but the models' features are at 8000 Hz"):
        StreamingFeatureExtractor(cfg, sr=44100, resample=False)


def test_nan_and_clipped_samples_do_not_break_the_stream(speech):
    y = speech.copy()
    y[1000:1100] = np.nan
    y[5000] = np.inf
    y[9000:9050] = 1.0
    X, _, ex = stream(y, FeatureConfig(sr=SR), 333)
    assert np.isfinite(X).all() and len(X) > 0
    assert ex.n_nonfinite_ == 101 and ex.n_clipped_ >= 50
    assert np.isnan(speech).sum() == 0  # the caller's buffer is untouched
    cleaned = y.copy()
    cleaned[~np.isfinite(cleaned)] = 0.0
    np.testing.assert_allclose(X, stream(cleaned, FeatureConfig(sr=SR), 333)[0], rtol=1e-4, atol=1e-4)


def test_minutes_of_silence_keep_the_state_small(speech):
    ex = StreamingFeatureExtractor(FeatureConfig(sr=SR), vad_memory_s=2.0)
    quiet = np.zeros(SR, np.float32)
    for _ in range(180):  # three minutes
        assert ex.push(quiet).features.shape[0] == 0
        assert ex.n_pending_samples < ex.config.win_length
    assert ex._vad_queue.size <= ex.latency_frames and ex._energies.size < 200
    emitted = sum(ex.push(speech[i:i + 800]).features.shape[0] for i in range(0, len(speech), 800))
    assert emitted > 0  # speech after the silence is found (the VAD peak forgot the silence)


def test_bad_input_is_refused_with_the_fix():
    ex = StreamingFeatureExtractor(FeatureConfig(sr=SR))
    with pytest.raises(FeatureError, match="convert PCM integers"):
        ex.push(np.zeros(100, np.int16))
    with pytest.raises(FeatureError, match="mix the channels"):
        ex.push(np.zeros((100, 2), np.float32))
    assert ex.push(np.zeros(0, np.float32)).features.shape == (0, 60)
    ex.flush()
    with pytest.raises(FeatureError, match="call reset"):
        ex.push(np.zeros(10, np.float32))
    ex.reset()
    assert ex.n_samples_in_ == 0 and ex.push(np.zeros(10, np.float32)).features.shape == (0, 60)
    for options in ({"vad_memory_s": 0}, {"cmvn_window_s": -1.0}, {"cmvn_min_frames": 0}, {"sr": 0}):
        with pytest.raises(ValueError):
            StreamingFeatureExtractor(FeatureConfig(sr=SR), **options)
