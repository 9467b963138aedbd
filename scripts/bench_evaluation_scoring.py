"""Scoring a whole evaluation: every trial of a Kaldi corpus, ours beside the hand-built per-model loop.

    python scripts/bench_evaluation_scoring.py [--corpus arabic-speech-commands librispeech-mini]
                                               [--components 256] [--repeats 7] [--peer-repeats 3]

On each corpus, once: our features, a UBM (``fit_ubm``, the default grow
schedule) on ``train``, and every ``test`` speaker MAP-adapted in its means
(r = 16) on the first half of its utterances. Then, on those same frames and
the same models, the scoring of every test utterance against every enrolled
speaker is timed three ways:

* ours: ``SpeakerScorer(...).score_utterances(tests)``, top-5, in float32
  (what ``evaluate`` uses: float32 selection, exact float64 log-densities of
  the selected components) and in float64;
* the peer: the hand-built loop of ``scripts/handbuilt_baseline.py``,
  ``model.score(X) - ubm.score(X)`` per speaker and utterance with
  scikit-learn ``GaussianMixture`` objects carrying the same parameters
  (exact, all components).

Each time is the median of its repeats after an untimed warm-up (Numba
kernels loaded, BLAS threads started), in this one process; the first,
cold call of ours is printed too. It prints the raw EER and identification
accuracy each side reaches with those scores (equal models: the columns
differ only by top-5 against exact scoring).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

CORPORA = ("arabic-speech-commands", "librispeech-mini")


def timed(fn, repeats):
    """(result of an untimed first call, seconds of that call, median seconds of ``repeats`` more)."""
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return result, first, float(np.median(times))


def as_sklearn(ubm, means=None):
    """A fitted ``GaussianMixture`` with the UBM's weights and variances (and ``means`` if given)."""
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(ubm.n_components, covariance_type="diag")
    gmm.weights_ = ubm.weights_.copy()
    gmm.means_ = (ubm.means_ if means is None else means).copy()
    gmm.covariances_ = ubm.covariances_.copy()
    gmm.precisions_cholesky_ = 1.0 / np.sqrt(gmm.covariances_)
    gmm.converged_, gmm.n_iter_, gmm.lower_bound_ = True, 0, 0.0
    return gmm


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of ours (default 7)")
    parser.add_argument("--peer-repeats", type=int, default=3, help="timed runs of the peer loop (default 3)")
    parser.add_argument("--datasets", type=Path, default=None)
    args = parser.parse_args()

    from corpus_protocols import corpus_protocols

    from speaker_id.evaluation import metrics
    from speaker_id.evaluation.protocols import _kaldi_split, protocol_features
    from speaker_id.models.adaptation import map_adapt, speaker_stats
    from speaker_id.models.ubm import fit_ubm
    from speaker_id.frontend import FeatureConfig
    from speaker_id.frontend.normalization import apply_prior, fit_prior
    from speaker_id.scoring import SpeakerScorer

    directories = {name: directory for name, (_, directory, _) in corpus_protocols(args.datasets).items()}
    print(f"{args.components} diagonal components, means-adapted speakers, every trial; medians of "
          f"{args.repeats} (ours) and {args.peer_repeats} (peer) runs after a warm-up")
    print(f"{'corpus':23s} {'trials':>14s} {'frames':>7s} {'side':34s} {'cold s':>8s} {'median s':>9s} "
          f"{'peer/ours':>9s} {'EER':>7s} {'ident.':>7s}")
    for corpus in args.corpus:
        directory = directories[corpus]
        split = _kaldi_split(directory)
        features = protocol_features("kaldi", directory, n_jobs=1)
        # evaluate's front end: every utterance's mean shrunk towards the training speakers' mean
        config = fit_prior(FeatureConfig(), [features[u.path] for u in split.train])
        features = {path: apply_prior(X, config) for path, X in features.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ubm = fit_ubm([features[u.path] for u in split.train], n_components=args.components)
        speakers = sorted(split.enroll)
        models = {s: map_adapt(ubm, speaker_stats(ubm, [features[u.path] for u in split.enroll[s]])) for s in speakers}
        tests = [features[u.path] for u in split.test]
        labels = (np.array([u.speaker for u in split.test])[:, None] == np.array(speakers)[None, :]).astype(int)
        n_frames = sum(len(X) for X in tests)

        def report(side, scores, first, median, peer_median=None):
            eer, _ = metrics.eer(scores.ravel(), labels.ravel())
            accuracy = np.mean(np.array(speakers)[scores.argmax(1)] == np.array([u.speaker for u in split.test]))
            ratio = f"{peer_median / median:8.1f}x" if peer_median else f"{'':9s}"
            trials = f"{len(tests)} x {len(speakers)}"
            print(f"{corpus:23s} {trials:>14s} {n_frames:7d} {side:34s} {first:8.3f} {median:9.3f} {ratio} "
                  f"{100 * eer:6.2f}% {100 * accuracy:6.2f}%", flush=True)

        peer_ubm = as_sklearn(ubm)
        peer_models = [as_sklearn(ubm, models[s].means_) for s in speakers]
        tests64 = [X.astype(np.float64) for X in tests]  # what librosa features are; not timed

        def peer():
            return np.array([[m.score(X) - peer_ubm.score(X) for m in peer_models] for X in tests64])

        peer_scores, peer_first, peer_median = timed(peer, args.peer_repeats)
        for dtype in (np.float32, np.float64):
            scorer = SpeakerScorer(ubm, models, top_c=5, dtype=dtype)
            scores, first, median = timed(lambda: scorer.score_utterances(tests), args.repeats)
            report(f"ours score_utterances top-5 {np.dtype(dtype).name}", scores, first, median, peer_median)
        report("peer GaussianMixture.score loop", peer_scores, peer_first, peer_median)


if __name__ == "__main__":
    main()
