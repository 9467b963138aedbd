"""Shared fixtures: small generated mixtures with known parameters."""

import warnings

import numpy as np
import pytest

from streamgmm import OnlineGMM


def make_mixture(n, weights, means, stds, seed=0, dtype=np.float64):
    """Frames from a diagonal Gaussian mixture; returns (X, labels)."""
    rng = np.random.default_rng(seed)
    weights = np.asarray(weights, dtype=float)
    labels = rng.choice(len(weights), size=n, p=weights / weights.sum())
    means, stds = np.asarray(means, dtype=float), np.asarray(stds, dtype=float)
    X = means[labels] + rng.standard_normal((n, means.shape[1])) * stds[labels]
    return X.astype(dtype), labels


@pytest.fixture
def blobs():
    """Four well-separated 3-D clusters, 1,200 frames."""
    means = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 7.0, -2.0], [5.0, 6.0, 5.0]])
    stds = np.array([[1.0, 0.5, 0.8], [0.7, 1.2, 1.0], [1.0, 1.0, 0.4], [0.6, 0.9, 1.1]])
    X, labels = make_mixture(1200, [0.3, 0.2, 0.25, 0.25], means, stds, seed=3)
    return X, labels, means, stds


def fit_ubm(n_components, n_features, seed):
    """A diagonal UBM fitted on frames around well-spread random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_components, n_features))
    X = centres[rng.integers(n_components, size=200 * n_components)]
    X = X + rng.normal(size=X.shape) * rng.uniform(0.5, 1.5, size=n_features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OnlineGMM(n_components, covariance_type="diag", random_state=seed, max_iter=20).fit(X)


def write_voices(root, n_speakers, n_utterances, seconds, *, sr, seed):
    """WAV files of synthetic speakers, ``root/spkNNN/spkNNN_uttMMM.wav``; returns {speaker: [paths]}."""
    import soundfile as sf

    from speaker_id.demo.synth import make_corpus

    by_speaker = {}
    for utt in make_corpus(n_speakers, n_utterances, seconds, sr=sr, seed=seed):
        path = root / utt.speaker_id / f"{utt.utt_id}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, utt.audio, sr)
        by_speaker.setdefault(utt.speaker_id, []).append(path)
    return by_speaker


@pytest.fixture(scope="module")
def client():
    """A Dask client of a real LocalCluster of 2 worker processes (one thread each) for the module's tests."""
    distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed (pip install '.[dask]')")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=50)
    with cluster, distributed.Client(cluster) as c:
        yield c


def count_pool_starts(monkeypatch):
    """Record the ``max_workers`` of every extraction process pool started from now on; returns the list."""
    import concurrent.futures

    import speaker_id.frontend.extraction as extraction

    started = []

    class CountingExecutor(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            started.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(extraction.concurrent.futures, "ProcessPoolExecutor", CountingExecutor)
    return started
