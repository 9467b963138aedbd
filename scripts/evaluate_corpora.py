"""Speaker recognition on the real corpora: speaker_id beside a hand-built scikit-learn baseline.

    python scripts/evaluate_corpora.py [--datasets DIR] [--components K] [--skip-baseline] [--corpus NAME ...]

On three corpora:

* FSDD (official split: index 0-4 test, 5-49 train the UBM and enroll; the
  training speakers are the test speakers, so there is no honest cohort and
  only raw scores are reported);
* librispeech-mini (UBM and cohort on train-clean-100, 251 speakers; each
  test-other speaker enrolls on its first 5 utterances and is tested on the
  last 5);
* arabic-speech-commands (UBM and cohort on the 18 training speakers; the 12
  test speakers enroll on rounds 01-05 and are tested with rounds 06-10),

it prints identification accuracy, EER and minDCF (p_target 0.01 and 0.001) of:

* speaker_id: ``speaker_id.evaluation.protocols.evaluate`` (the same code as
  ``speaker-id evaluate``), raw scores and S-normalised scores whose cohort
  (cohort models and Z-norm impostors) comes from the training speakers only;
* the hand-built baseline of issue 9: a GMM-UBM assembled from librosa and
  scikit-learn: ``librosa.feature.mfcc`` (20 coefficients, 25 ms / 10 ms,
  40 mel bands) with deltas and double deltas, per-utterance mean and
  variance normalisation, no VAD, a diagonal ``GaussianMixture`` UBM of the
  same number of components as ours, MAP adaptation of the means with
  relevance factor 16 computed from ``predict_proba``, and the average
  log-likelihood ratio from exact ``score_samples``; raw scores.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

P_TARGETS = (0.01, 0.001)
CORPORA = ("fsdd", "librispeech-mini", "arabic-speech-commands")


def baseline(train, enroll, test, sr, n_components, relevance=16.0):
    """The scikit-learn + librosa GMM-UBM. Returns (accuracy, raw EER, {p_target: minDCF}, seconds)."""
    import librosa
    from sklearn.mixture import GaussianMixture

    from speaker_id.evaluation import metrics

    started = time.perf_counter()

    def features(path):
        y, _ = librosa.load(path, sr=sr)
        # 25 ms windows every 10 ms and 40 mel bands, as speaker_id's defaults
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=512 if sr > 8000 else 256,
                                 win_length=int(0.025 * sr), hop_length=sr // 100, n_mels=40)
        X = np.vstack([m, librosa.feature.delta(m, mode="nearest"),
                       librosa.feature.delta(m, order=2, mode="nearest")]).T
        return (X - X.mean(0)) / np.maximum(X.std(0), 1e-8)

    cache = {}
    for utt in train + [u for us in enroll.values() for u in us] + test:
        if utt.path not in cache:
            cache[utt.path] = features(utt.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ubm = GaussianMixture(n_components, covariance_type="diag", random_state=0, max_iter=100)
        ubm.fit(np.concatenate([cache[u.path] for u in train]))
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
    scores = np.array([[m.score(cache[u.path]) - ubm.score(cache[u.path]) for m in models] for u in test])
    truth = np.array([u.speaker for u in test])
    labels = (truth[:, None] == np.array(speakers)[None, :]).astype(int)
    accuracy = float(np.mean(np.array(speakers)[scores.argmax(1)] == truth))
    eer, _ = metrics.eer(scores.ravel(), labels.ravel())
    dcf = {p: metrics.min_dcf(scores.ravel(), labels.ravel(), p_target=p)[0] for p in P_TARGETS}
    return accuracy, float(eer), dcf, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=None, help="corpora root (default: find_dataset_root())")
    parser.add_argument("--components", type=int, default=128)
    parser.add_argument("--corpus", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    from speaker_id.evaluation.corpora import find_dataset_root, load_librispeech_dir, write_kaldi_dir
    from speaker_id.evaluation.protocols import _fsdd_split, _kaldi_split, evaluate

    root = args.datasets or find_dataset_root()
    if root is None:
        sys.exit("no corpora: pass --datasets DIR or set SPEAKER_ID_DATASETS")
    import tempfile

    kaldi = Path(tempfile.mkdtemp(prefix="librispeech-mini-kaldi-"))
    write_kaldi_dir(load_librispeech_dir(root / "librispeech-mini" / "train-clean-100"), kaldi / "train", kaldi)
    write_kaldi_dir(load_librispeech_dir(root / "librispeech-mini" / "test-other"), kaldi / "test", kaldi)
    corpora = {"fsdd": ("fsdd", root / "fsdd" / "recordings", 8000, _fsdd_split, "none"),
               "librispeech-mini": ("kaldi", kaldi, 16000, _kaldi_split, "snorm"),
               "arabic-speech-commands": ("kaldi", root / "arabic-speech-commands" / "kaldi", 16000, _kaldi_split,
                                          "snorm")}
    rows = []
    k = args.components
    for title in args.corpus:
        protocol, directory, sr, split_fn, norm = corpora[title]
        result = evaluate(protocol, directory, n_components=k, norm=norm, p_targets=P_TARGETS)
        rows.append((title, f"speaker_id {k} diag, raw", result.accuracy, result.raw_eer, result.raw_min_dcf,
                     result.seconds["total"]))
        if norm != "none":
            rows.append((title, f"speaker_id {k} diag, {norm} (train cohort)", result.norm_accuracy, result.eer,
                         result.min_dcf, result.seconds["total"]))
        if not args.skip_baseline:
            split = split_fn(directory)
            acc, eer, dcf, seconds = baseline(split.train, split.enroll, split.test, sr, k)
            rows.append((title, f"sklearn+librosa {k} diag, raw", acc, eer, dcf, seconds))
    print(f"{'corpus':23s} {'system':40s} {'ident.':>7s} {'EER':>7s} {'DCF.01':>7s} {'DCF.001':>7s} {'seconds':>8s}")
    for title, system, acc, eer, dcf, seconds in rows:
        print(f"{title:23s} {system:40s} {100 * acc:6.2f}% {100 * eer:6.2f}% {dcf[0.01]:7.4f} {dcf[0.001]:7.4f} "
              f"{seconds:8.1f}")


if __name__ == "__main__":
    main()
