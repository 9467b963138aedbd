"""The hand-built GMM-UBM a user assembles from librosa and scikit-learn: the peer of our benchmarks.

Used by ``scripts/evaluate_corpora.py`` (accuracy) and ``scripts/bench_pipeline.py``
(time per stage). As issue 9 describes it:

* features: ``librosa.load`` at the protocol's rate, ``librosa.feature.mfcc``
  (20 coefficients, 25 ms windows every 10 ms, 40 mel bands) with deltas and
  double deltas (``librosa.feature.delta``), per-utterance mean and variance
  normalisation, no VAD;
* UBM: ``sklearn.mixture.GaussianMixture`` with diagonal covariances, as many
  components as ours, seeded (``random_state``, 0 unless told), up to ``max_iter`` EM iterations;
* enrollment: MAP adaptation of the means (relevance factor 16) from
  ``predict_proba`` responsibilities;
* scoring: average log-likelihood ratio from exact ``score`` (one
  ``GaussianMixture.score`` per speaker model and test, minus the UBM's).

Run from the ``scripts/`` directory's siblings as ``from handbuilt_baseline import run``
(Python puts a script's own directory on ``sys.path``).
"""

from __future__ import annotations

import time
import warnings

import numpy as np


def features(path, sr):
    """(n_frames, 60) normalised MFCC + deltas + double deltas of one file."""
    import librosa

    y, _ = librosa.load(path, sr=sr)
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=512 if sr > 8000 else 256,
                             win_length=int(0.025 * sr), hop_length=sr // 100, n_mels=40)
    X = np.vstack([m, librosa.feature.delta(m, mode="nearest"), librosa.feature.delta(m, order=2, mode="nearest")]).T
    return (X - X.mean(0)) / np.maximum(X.std(0), 1e-8)


def run(train, enroll, test, sr, n_components, *, relevance=16.0, max_iter=100, random_state=0):
    """Train, enroll and score one protocol.

    Parameters
    ----------
    train : list of Utterance
        UBM training utterances.
    enroll : dict of speaker -> list of Utterance
    test : list of Utterance
    sr : int
    n_components : int
    relevance : float, default 16
    max_iter : int, default 100
    random_state : int, default 0
        Seed of the UBM's k-means initialisation.

    Returns
    -------
    dict
        ``scores`` (n_test, n_speakers), ``labels`` (same shape, 1 for target),
        ``accuracy``, ``seconds`` per stage (``features``, ``ubm``,
        ``enroll``, ``scoring``, ``total``) and ``ubm_iterations``.
    """
    from sklearn.mixture import GaussianMixture

    seconds = {}
    start = time.perf_counter()
    cache = {}
    for utt in train + [u for us in enroll.values() for u in us] + test:
        if utt.path not in cache:
            cache[utt.path] = features(utt.path, sr)
    seconds["features"] = time.perf_counter() - start

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = GaussianMixture(n_components, covariance_type="diag", random_state=random_state, max_iter=max_iter)
        ubm.fit(np.concatenate([cache[u.path] for u in train]))
    seconds["ubm"] = time.perf_counter() - t

    t = time.perf_counter()
    speakers = sorted(enroll)
    models = []
    for s in speakers:
        X = np.concatenate([cache[u.path] for u in enroll[s]])
        resp = ubm.predict_proba(X)
        n = resp.sum(0)
        ex = resp.T @ X / np.maximum(n, 1e-10)[:, None]
        alpha = (n / (n + relevance))[:, None]
        model = GaussianMixture(n_components, covariance_type="diag")
        model.weights_, model.covariances_ = ubm.weights_, ubm.covariances_
        model.precisions_cholesky_ = ubm.precisions_cholesky_
        model.means_ = alpha * ex + (1 - alpha) * ubm.means_
        models.append(model)
    seconds["enroll"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = np.array([[m.score(cache[u.path]) - ubm.score(cache[u.path]) for m in models] for u in test])
    seconds["scoring"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start

    truth = np.array([u.speaker for u in test])
    labels = (truth[:, None] == np.array(speakers)[None, :]).astype(int)
    accuracy = float(np.mean(np.array(speakers)[scores.argmax(1)] == truth))
    return {"scores": scores, "labels": labels, "accuracy": accuracy, "seconds": seconds,
            "ubm_iterations": int(ubm.n_iter_)}
