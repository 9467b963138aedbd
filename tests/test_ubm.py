"""UBM training over files: features cached in shards, out-of-core EM over them."""

import warnings

import numpy as np
import pytest

from conftest import count_pool_starts
import soundfile as sf

from speaker_id.frontend.config import FeatureConfig
from speaker_id.frontend.extraction import extract_file
from speaker_id.frontend.normalization import apply_prior
from speaker_id.models.ubm import FeatureCache, train_ubm
from streamgmm import OnlineGMM


def _write_voices(directory, n_files=12, sr=16000, seconds=1.0):
    """Harmonic tones with noise, of two pitch groups, as WAV files."""
    paths = []
    t = np.arange(int(sr * seconds)) / sr
    for i in range(n_files):
        rng = np.random.default_rng(i)
        f0 = 110.0 if i % 2 else 220.0
        y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
        y = 0.1 * y + 0.01 * rng.standard_normal(len(t))
        path = directory / f"utt{i:02d}.wav"
        sf.write(path, y.astype(np.float32), sr)
        paths.append(path)
    return paths


def test_cache_shards_hold_every_frame_in_order(tmp_path):
    paths = _write_voices(tmp_path)
    config = FeatureConfig()
    expected = np.concatenate([extract_file(p, config) for p in paths])
    with FeatureCache(paths, config, n_jobs=1, shard_frames=250) as cache:
        shards = [np.array(s) for s in cache.chunks()]
        assert len(shards) > 1
        assert all(len(s) >= 250 for s in shards[:-1])
        np.testing.assert_array_equal(np.concatenate(shards), expected)
        assert cache.n_frames == len(expected)
        directory = cache.directory
    assert not directory.exists()


def test_cache_extracts_every_batch_with_one_pool_of_workers(tmp_path, monkeypatch):
    """The cache streams every file through one pool of workers, started once, in file order."""
    import speaker_id.frontend.extraction as extraction

    started = count_pool_starts(monkeypatch)
    monkeypatch.setattr(extraction, "_POOL_MIN_BYTES", 0)  # a small corpus would stay in this process
    sr = 8000
    paths = []
    for i in range(600):
        rng = np.random.default_rng(i)
        path = tmp_path / f"u{i:03d}.wav"
        sf.write(path, (0.1 * rng.standard_normal(sr // 10)).astype(np.float32), sr)
        paths.append(path)
    config = FeatureConfig(sr=sr, vad=False)
    with FeatureCache(paths, config, n_jobs=2) as cache:
        utterances = cache.utterances()
        assert len(utterances) == 600
        for i in (0, 511, 512, 599):  # in file order, across tasks and shards
            np.testing.assert_array_equal(np.asarray(utterances[i]), extract_file(paths[i], config))
    assert started == [2]


def test_train_ubm_equals_in_memory_em_on_the_same_frames(tmp_path):
    paths = _write_voices(tmp_path)
    ubm, config = train_ubm(paths, FeatureConfig(), n_components=4, max_iter=10, n_jobs=1, schedule="full",
                            return_config=True)
    # the default front end: each file's mean shrunk towards the mean of all their frames
    raw = [extract_file(p, FeatureConfig()) for p in paths]
    all_frames = np.concatenate(raw).astype(np.float64)
    np.testing.assert_allclose(config.prior_mean, all_frames.mean(axis=0), rtol=1e-6, atol=1e-6)
    frames = np.concatenate([extract_file(p, config) for p in paths])
    np.testing.assert_allclose(frames, np.concatenate([apply_prior(X, config) for X in raw]), atol=1e-5)
    reference = OnlineGMM(4, covariance_type="diag", max_iter=10, tol=1e-3, init_params="kmeans",
                          random_state=0, init_size=max(100 * 4, 20_000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(frames)
    np.testing.assert_allclose(ubm.means_, reference.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ubm.covariances_, reference.covariances_, rtol=1e-9, atol=1e-12)


def test_too_little_audio_for_the_components(tmp_path):
    paths = _write_voices(tmp_path, n_files=1, seconds=0.1)
    with pytest.raises(ValueError, match="fewer than the 64 components"):
        train_ubm(paths, FeatureConfig(), n_components=64, n_jobs=1, return_config=True)


def test_no_files():
    with pytest.raises(ValueError, match="no audio files"):
        train_ubm([], FeatureConfig(prior_frames=None))


def test_train_ubm_asks_for_the_config_it_fits():
    with pytest.raises(ValueError, match="return_config=True"):
        train_ubm(["never-read.wav"], FeatureConfig())


def test_workers_never_run_far_ahead_of_the_cache(tmp_path, monkeypatch):
    """imap keeps at most two tasks per worker in flight, so memory does not grow with the corpus."""
    import speaker_id.frontend.extraction as extraction

    monkeypatch.setattr(extraction, "_TASK_BYTES", 1)  # one file per task
    paths = _write_voices(tmp_path, n_files=12, sr=8000, seconds=0.3)
    config = FeatureConfig(sr=8000, vad=False)
    with extraction.ExtractionPool(config, n_jobs=2) as pool:
        submitted = []
        submit = pool._pool.submit
        pool._pool.submit = lambda *args: submitted.append(args[1]) or submit(*args)
        stream = pool.imap(paths)
        first = next(stream)
        assert len(submitted) <= 5  # 2 workers x 2 tasks, and the one sent when the first came back
        rest = list(stream)
    assert len(submitted) == 12
    for got, path in zip([first] + rest, paths):
        np.testing.assert_array_equal(got, extract_file(path, config))
